//! check_validator_connectivity against the simulated network.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use neo_ir_runbook::{
    check_validator_connectivity, check_validators, failing_primaries, validator_indexes,
    ValidatorVerdict,
};
use neo_ir_sim::{Fault, SimNetwork};

use super::{network, prober, targets};

/// Wait (up to 20 s) until the simulated chain is at `height` or above.
pub(crate) async fn chain_at(net: &SimNetwork, height: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while net.height() < height {
        assert!(
            Instant::now() < deadline,
            "the simulated chain did not reach {height} (at {})",
            net.height()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn healthy_validators_pass_each_with_its_turns() {
    let net = network().await;
    let p = prober();
    chain_at(&net, 10).await;
    let r = check_validator_connectivity(&p, &targets(&net), None, 8).await;
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.validators_count, Some(4), "read from getversion");
    assert_eq!(r.validators.len(), 4, "RPC nodes are not validators");
    let (first, last) = r.window.unwrap();
    assert_eq!(last - first + 1, 8);
    for (i, v) in r.validators.iter().enumerate() {
        assert_eq!(v.index, i as u32);
        assert_eq!(v.node, format!("validator-{}", i + 1));
        assert!(v.reachable);
        assert!(v.connections.unwrap() > 0 && v.peers_connected.unwrap() > 0);
        assert!(v.proposed >= 1, "{}", r.to_text());
        assert_eq!(v.missed, 0, "{}", r.to_text());
        // its last block is one of its view-0 turns
        assert_eq!(v.last_proposed.unwrap() % 4, u64::from(v.index));
        assert_eq!(v.verdict, ValidatorVerdict::Ok);
    }
    assert!(failing_primaries(&r).is_empty());
    assert!(r.to_text().contains("check_validator_connectivity: OK"));
    // a configured index wins over the position
    let configured = BTreeMap::from([
        ("validator-1".to_string(), 3),
        ("validator-4".to_string(), 0),
    ]);
    let vs = validator_indexes(&targets(&net), &configured);
    assert_eq!(
        vs.iter()
            .map(|(t, i)| (t.name.as_str(), *i))
            .collect::<Vec<_>>(),
        [
            ("validator-1", 3),
            ("validator-2", 1),
            ("validator-3", 2),
            ("validator-4", 0)
        ]
    );
    let r = check_validators(&p, &targets(&net), &vs, Some(4), 8).await;
    let v1 = r
        .validators
        .iter()
        .find(|v| v.node == "validator-1")
        .unwrap();
    assert_eq!(v1.last_proposed.unwrap() % 4, 3);
}

#[tokio::test]
async fn a_crashed_validator_is_unreachable_with_its_missed_turns() {
    let net = network().await;
    let p = prober();
    chain_at(&net, 3).await;
    net.inject("validator-2", Fault::Crash).await.unwrap();
    let crashed_at = net.height();
    // two of its turns come up after the crash
    chain_at(&net, crashed_at + 9).await;
    let r = check_validator_connectivity(&p, &targets(&net), None, 8).await;
    assert!(!r.ok, "{}", r.to_text());
    let v2 = r
        .validators
        .iter()
        .find(|v| v.node == "validator-2")
        .unwrap();
    assert!(!v2.reachable);
    assert!(
        matches!(&v2.verdict, ValidatorVerdict::Unreachable { error } if !error.is_empty()),
        "{}",
        r.to_text()
    );
    assert!(v2.missed >= 1, "{}", r.to_text());
    assert_eq!(v2.missed as usize, v2.missed_blocks.len());
    assert!(v2
        .missed_blocks
        .iter()
        .all(|b| b % 4 == 1 && *b > crashed_at));
    // the others carry on, and its turns went to the next primary (view 1)
    for v in r.validators.iter().filter(|v| v.node != "validator-2") {
        assert_eq!(v.verdict, ValidatorVerdict::Ok, "{}", r.to_text());
    }
    assert_eq!(failing_primaries(&r), ["validator-2"]);
    assert!(r.to_text().contains("UNREACHABLE"), "{}", r.to_text());
    assert!(r.to_text().contains("missed"), "{}", r.to_text());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["validators"][1]["verdict"], "unreachable");
    assert!(json["validators"][1]["missed_blocks"].is_array());
}

#[tokio::test]
async fn an_isolated_validator_fails_on_peers() {
    let net = network().await;
    let p = prober();
    chain_at(&net, 6).await;
    net.inject("validator-3", Fault::Peers { count: 0 })
        .await
        .unwrap();
    let r = check_validator_connectivity(&p, &targets(&net), Some(4), 6).await;
    assert!(!r.ok);
    let v3 = r
        .validators
        .iter()
        .find(|v| v.node == "validator-3")
        .unwrap();
    assert_eq!(v3.verdict, ValidatorVerdict::NoPeers, "{}", r.to_text());
    assert_eq!(failing_primaries(&r), ["validator-3"]);
}
