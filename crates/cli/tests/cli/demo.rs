//! `neo-ir demo` as a user runs it: a short drill on the built-in network that tells, in
//! order, detection, response, the messages the drill channel received (each marked
//! [DRILL]), a runbook, recovery and the review with the drill's score, then exits 0 with a
//! resolved drill incident in its store.

use serde_json::Value;

use super::neo_ir;

#[test]
fn the_demo_is_a_short_drill_told_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/demo.db", dir.path().display());
    let started = std::time::Instant::now();
    let out = neo_ir()
        .current_dir(dir.path())
        .args(["demo", "--store", &store, "--listen", "127.0.0.1:0"])
        .args(["--msperblock", "500"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let text = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(took.as_secs() < 60, "the demo took {took:?}: {text}");

    // the story, in order
    let mut at = 0;
    for want in [
        "══ DRILL node-crash",
        "DETECTION  fault: crash on rpc-1",
        "OPENED   #1 P2 node_down",
        "key drill:node_down:rpc-1",
        "MESSAGE  drill-room ← [DRILL] [P2] INCIDENT ALERT: node_down",
        "RESPONSE  by demo-responder",
        "ACK      #1 acknowledged by demo-responder",
        "ROLE     #1 demo-responder is Incident Commander (IC)",
        "UPDATE   #1 update by demo-responder",
        "RUNBOOK  neo-ir run validate_sync --incident 1 → run 1 succeeded",
        "RECOVERY",
        "condition cleared",
        "RESOLVED #1",
        "MESSAGE  drill-room ← [DRILL] [P2] INCIDENT RESOLVED",
        "── REVIEW",
        "the resolution notice says: Post-incident review scheduled for ",
        "# Post-Incident Review: Incident #1",
        "## Timeline",
        "Detection - P2 node_down",
        "drill score node-crash: 100/100",
        "every one marked [DRILL]",
        "Summary after",
    ] {
        match stdout[at..].find(want) {
            Some(i) => at += i + want.len(),
            None => panic!("{want:?} missing or out of order after byte {at}:\n{text}"),
        }
    }
    // every message the channel received was a drill message
    let messages: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once("MESSAGE  drill-room ← ").map(|(_, t)| t))
        .collect();
    assert!(messages.len() >= 5, "{text}");
    assert!(messages.iter().all(|t| t.starts_with("[DRILL] ")), "{text}");
    for kind in [
        "INCIDENT ALERT",
        "INCIDENT UPDATE",
        "INCIDENT RESOLVED",
        "Post-incident review",
    ] {
        assert!(
            messages.iter().any(|t| t.contains(kind)),
            "no {kind}: {text}"
        );
    }

    // the store holds one drill incident, resolved, with its review scheduled
    let out = neo_ir()
        .args(["incidents", "--all", "--json", "--store", &store])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["key"], "drill:node_down:rpc-1");
    assert_eq!(list[0]["evidence"]["drill"], true);
    assert_eq!(list[0]["status"], "resolved");
    // the default demo file was not touched: the store was given
    assert!(!dir.path().join("neo-ir-demo.db").exists());
}
