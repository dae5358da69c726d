//! force_view_change --coordinate: restarts through a fake agent whose restart really
//! recovers the simulated node.

use std::sync::Mutex;
use std::time::Duration;

use neo_ir_runbook::viewchange::plan;
use neo_ir_runbook::{
    check_validator_connectivity, coordinate_restarts, failing_primaries, NodeControl,
    RestartStatus,
};
use neo_ir_sim::{Fault, SimNetwork};
use serde_json::json;

use super::connectivity::chain_at;
use super::{network, prober, targets};

/// Restarting a node recovers it in the simulator (a real effect on the chain); `fail`
/// makes the restart of that node fail instead.
struct SimAgent {
    net: SimNetwork,
    fail: Option<&'static str>,
    calls: Mutex<Vec<String>>,
}

impl SimAgent {
    fn new(net: &SimNetwork) -> SimAgent {
        SimAgent {
            net: net.clone(),
            fail: None,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl NodeControl for SimAgent {
    async fn restart(&self, node: &str) -> Result<serde_json::Value, String> {
        self.calls.lock().unwrap().push(node.to_string());
        if self.fail == Some(node) {
            return Err("agent: systemctl restart neo-node exited 1".to_string());
        }
        self.net
            .recover_node(node)
            .await
            .map_err(|e| e.to_string())?;
        Ok(json!({ "node": node, "restarted": true }))
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn restarting_the_failing_primaries_brings_blocks_back() {
    let net = network().await;
    let p = prober();
    chain_at(&net, 3).await;
    // two of four validators down: more than f = 1, no block can be made
    net.inject("validator-2", Fault::Crash).await.unwrap();
    net.inject("validator-3", Fault::Freeze).await.unwrap();
    // the crashed one is found; the frozen one still answers and proposed in the window
    // before it froze, so the operator names it
    let report = check_validator_connectivity(&p, &targets(&net), None, 8).await;
    assert_eq!(
        failing_primaries(&report),
        ["validator-2"],
        "{}",
        report.to_text()
    );
    let failing = names(&["validator-2", "validator-3"]);

    let agent = SimAgent::new(&net);
    let r = coordinate_restarts(
        &agent,
        &p,
        &targets(&net),
        &failing,
        Duration::from_secs(15),
    )
    .await;
    assert!(r.ok, "{}", r.to_text());
    assert_eq!(agent.calls(), failing);
    assert_eq!(r.restarted, failing);
    assert!(r.not_restarted.is_empty());
    for n in &r.nodes {
        assert_eq!(n.status, RestartStatus::Advanced, "{}", r.to_text());
        assert!(n.height_after.unwrap() > n.height_before.unwrap());
        assert_eq!(n.agent.as_ref().unwrap()["restarted"], true);
    }
    assert!(r.to_text().contains("force_view_change: OK"));
}

#[tokio::test]
async fn a_chain_that_stays_stalled_stops_after_the_first_restart() {
    let net = network().await;
    let p = prober();
    chain_at(&net, 2).await;
    net.inject("validator-2", Fault::Crash).await.unwrap();
    // a chain-wide stall that no validator restart cures
    net.stall();
    let agent = SimAgent::new(&net);
    let nodes = names(&["validator-2", "validator-3"]);
    let r = coordinate_restarts(
        &agent,
        &p,
        &targets(&net),
        &nodes,
        Duration::from_millis(1500),
    )
    .await;
    assert!(!r.ok);
    assert_eq!(
        agent.calls(),
        ["validator-2"],
        "the second node is left alone"
    );
    assert_eq!(
        r.nodes[0].status,
        RestartStatus::NoAdvance,
        "{}",
        r.to_text()
    );
    assert_eq!(r.nodes[1].status, RestartStatus::NotRestarted);
    assert_eq!(r.restarted, ["validator-2"]);
    assert_eq!(r.not_restarted, ["validator-3"]);
    let why = r.stopped.as_deref().unwrap();
    assert!(
        why.contains("validator-2") && why.contains("stayed at height"),
        "{why}"
    );
    assert!(r.to_text().contains("NO NEW BLOCK"), "{}", r.to_text());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["nodes"][0]["status"], "no_advance");
}

#[tokio::test]
async fn a_failed_restart_stops_the_run_and_bad_lists_are_refused() {
    let net = network().await;
    let p = prober();
    chain_at(&net, 2).await;
    let agent = SimAgent {
        fail: Some("validator-2"),
        ..SimAgent::new(&net)
    };
    let nodes = names(&["validator-2", "validator-3"]);
    let r = coordinate_restarts(&agent, &p, &targets(&net), &nodes, Duration::from_secs(5)).await;
    assert!(!r.ok);
    assert_eq!(agent.calls(), ["validator-2"]);
    assert_eq!(r.nodes[0].status, RestartStatus::RestartFailed);
    assert!(r.nodes[0].error.as_deref().unwrap().contains("exited 1"));
    assert_eq!(r.not_restarted, ["validator-3"]);
    assert!(r.restarted.is_empty());
    assert!(r
        .stopped
        .as_deref()
        .unwrap()
        .contains("restarting validator-2 failed"));

    // unknown, repeated and empty lists restart nothing
    let agent = SimAgent::new(&net);
    for (list, why) in [
        (names(&["validator-2", "validator-9"]), "validator-9"),
        (names(&["validator-2", "validator-2"]), "listed twice"),
        (Vec::new(), "no nodes"),
    ] {
        let r =
            coordinate_restarts(&agent, &p, &targets(&net), &list, Duration::from_secs(1)).await;
        assert!(!r.ok);
        assert!(
            r.stopped.as_deref().unwrap().contains(why),
            "{:?}",
            r.stopped
        );
        assert_eq!(r.not_restarted, list);
    }
    assert!(agent.calls().is_empty());
}

#[test]
fn the_plan_is_one_destructive_restart_per_node_and_says_why() {
    let p = plan(
        &names(&["validator-2", "validator-5"]),
        Duration::from_secs(30),
    );
    assert_eq!(p.steps.len(), 2);
    assert!(p.destructive());
    assert!(p.steps.iter().all(|s| s.destructive));
    let text = p.describe();
    assert!(
        text.contains("restart the consensus service on validator-2 via its agent"),
        "{text}"
    );
    assert!(text.contains("wait up to 30s for a new block"), "{text}");
    assert!(text.contains("no RPC to force a view change"), "{text}");
}
