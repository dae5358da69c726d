//! The scripts against a simulated Neo network on port 0, and the pure ones (fleet
//! rendering, the blocklist parser) against files in temporary directories.

mod blocklist;
mod connectivity;
mod fleet;
mod viewchange;

use std::time::Duration;

use neo_ir_core::config::ProbeSettings;
use neo_ir_core::detect::Kpi;
use neo_ir_core::Role;
use neo_ir_probe::{NodeTarget, ProbeConfig, Prober};
use neo_ir_runbook::{
    check_network_partitions, performance_diagnostics, validate_sync, Level, Verdict,
};
use neo_ir_sim::{Fault, SimConfig, SimNetwork, SimRole};

pub(crate) async fn network() -> SimNetwork {
    SimNetwork::start(SimConfig {
        validators: 4,
        rpc: 2,
        msperblock: 200,
        ..SimConfig::default()
    })
    .await
    .expect("sim starts")
}

pub(crate) fn targets(net: &SimNetwork) -> Vec<NodeTarget> {
    net.nodes()
        .into_iter()
        .map(|n| {
            let role = match n.role {
                SimRole::Validator => Role::Validator,
                SimRole::Rpc => Role::Rpc,
            };
            NodeTarget::new(n.name, n.rpc_url, role)
        })
        .collect()
}

pub(crate) fn prober() -> Prober {
    Prober::new(ProbeConfig::from(&ProbeSettings {
        timeout: Duration::from_millis(500),
        ..ProbeSettings::default()
    }))
    .unwrap()
}

/// Put `node` on its own branch (`branch`) from height `at` on.
async fn fork(net: &SimNetwork, node: &str, at: u64, branch: Option<u32>) {
    net.inject(node, Fault::Fork { height: at, branch })
        .await
        .unwrap();
}

/// Wait until the chain has some blocks (the check compares hashes at a common height).
pub(crate) async fn blocks(net: &SimNetwork, p: &Prober, at_least: u64) {
    let t = &targets(net)[0];
    for _ in 0..200 {
        let o = p.probe(t, None).await;
        if o.status().is_some_and(|s| s.height() >= at_least) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the simulated chain did not reach {at_least} blocks");
}

#[tokio::test]
async fn a_healthy_network_passes() {
    let net = network().await;
    let p = prober();
    blocks(&net, &p, 3).await;
    let r = validate_sync(&p, &targets(&net), 2).await;
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(r.nodes.len(), 6);
    assert!(r.canonical_hash.is_some());
    assert!(r.to_text().contains("validate_sync: OK"));
}

#[tokio::test]
async fn down_behind_and_diverged_nodes_fail_it_each_named() {
    let net = network().await;
    let p = prober();
    blocks(&net, &p, 3).await;
    net.inject("rpc-1", Fault::Crash).await.unwrap();
    net.inject("rpc-2", Fault::Freeze).await.unwrap();
    // rpc-2 falls behind while the others go on
    let frozen_at = p
        .probe(&targets(&net)[5], None)
        .await
        .status()
        .map(|s| s.height())
        .unwrap();
    blocks(&net, &p, frozen_at + 5).await;
    let r = validate_sync(&p, &targets(&net), 2).await;
    assert!(!r.ok);
    let verdict = |name: &str| {
        r.nodes
            .iter()
            .find(|n| n.node == name)
            .map(|n| n.verdict.clone())
            .unwrap()
    };
    assert!(
        matches!(verdict("rpc-1"), Verdict::Down { .. }),
        "{}",
        r.to_text()
    );
    assert!(
        matches!(verdict("rpc-2"), Verdict::Behind { blocks } if blocks > 2),
        "{}",
        r.to_text()
    );
    assert_eq!(verdict("validator-1"), Verdict::Ok);
    assert!(r.to_text().contains("FAILED"));

    // an RPC node on its own branch from the next block on (as a corrupt node would be)
    net.recover_node("rpc-1").await.unwrap();
    net.recover_node("rpc-2").await.unwrap();
    let at = net.height() + 1;
    fork(&net, "rpc-1", at, None).await;
    blocks(&net, &p, at + 3).await;
    let r = validate_sync(&p, &targets(&net), 5).await;
    let forked = r.nodes.iter().find(|n| n.node == "rpc-1").unwrap();
    assert!(
        matches!(forked.verdict, Verdict::Diverged { .. }),
        "{}",
        r.to_text()
    );
    assert!(r.to_text().contains("DIVERGED"), "{}", r.to_text());
    assert!(!r.ok);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["ok"], false);
    assert!(json["nodes"][0]["verdict"].is_string());
}

#[tokio::test]
async fn performance_diagnostics_times_each_method_and_judges_the_kpi_table() {
    let net = network().await;
    let p = prober();
    blocks(&net, &p, 1).await;
    let kpi = Kpi {
        rpc_latency_warn_ms: 150,
        rpc_latency_crit_ms: 400,
        ..Kpi::default()
    };
    net.inject("rpc-1", Fault::Slow { ms: 200 }).await.unwrap();
    net.inject("rpc-2", Fault::Crash).await.unwrap();
    net.inject("validator-2", Fault::Peers { count: 0 })
        .await
        .unwrap();
    let r = performance_diagnostics(&p, &targets(&net), &kpi, 2).await;
    let node = |name: &str| r.nodes.iter().find(|n| n.node == name).unwrap();
    assert_eq!(node("validator-1").level, Level::Ok, "{}", r.to_text());
    assert_eq!(node("validator-1").methods.len(), 4);
    assert!(node("validator-1")
        .methods
        .iter()
        .all(|m| m.median_ms.is_some()));
    let slow = node("rpc-1");
    assert_eq!(slow.level, Level::Warning, "{}", r.to_text());
    assert!(slow.median_ms.unwrap() >= 200, "{}", r.to_text());
    assert_eq!(node("rpc-2").level, Level::Down);
    assert_eq!(
        node("validator-2").level,
        Level::Critical,
        "{}",
        r.to_text()
    );
    assert!(node("validator-2").reasons.iter().any(|r| r == "no peers"));
    assert!(!r.ok);
    assert!(r.to_text().contains("getblockcount"));
    assert!(r.to_text().contains("performance_diagnostics: FAILED"));
}

#[tokio::test]
async fn partitions_are_found_bisected_and_the_canonical_chain_named() {
    let net = network().await;
    let p = prober();
    blocks(&net, &p, 2).await;
    let r = check_network_partitions(&p, &targets(&net)).await;
    assert!(r.ok(), "{}", r.to_text());
    assert!(r.canonical_backed);
    assert_eq!((r.validators, r.consensus_needs), (4, 3));

    // one RPC node on its own branch: the canonical chain keeps every validator
    let at = net.height() + 2;
    fork(&net, "rpc-1", at, None).await;
    blocks(&net, &p, at + 3).await;
    let r = check_network_partitions(&p, &targets(&net)).await;
    assert!(!r.ok());
    assert_eq!(r.partitions.len(), 2, "{}", r.to_text());
    assert_eq!(r.partitions[0].validators.len(), 4);
    assert!(r.canonical_backed);
    assert_eq!(r.divergences.len(), 1);
    assert_eq!(r.divergences[0].nodes, ["rpc-1"]);
    assert_eq!(
        r.divergences[0].first_differing_height,
        Some(at),
        "{}",
        r.to_text()
    );
    assert_eq!(r.divergences[0].last_common_height, Some(at - 1));
    assert!(r.bisection_requests > 0);
    assert!(r.to_text().contains("left the canonical chain at height"));

    // validators split two and two: no chain has dBFT's three
    net.recover_node("rpc-1").await.unwrap();
    let at = net.height() + 2;
    for node in ["validator-3", "validator-4"] {
        fork(&net, node, at, Some(1)).await;
    }
    blocks(&net, &p, at + 2).await;
    let r = check_network_partitions(&p, &targets(&net)).await;
    assert!(!r.canonical_backed, "{}", r.to_text());
    assert_eq!(r.partitions.len(), 2, "{}", r.to_text());
}
