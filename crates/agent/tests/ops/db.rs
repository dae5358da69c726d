//! db_check, db_repair and db_optimize with a stand-in of `neo-ir sim db` (same arguments,
//! exit codes and JSON) and a real stand-in node; the refusal of implementations without an
//! offline database tool.

use serde_json::json;

use super::*;
use crate::Agent;

const DBTOOL: &str = include_str!("dbtool.py");

fn db_config(site: &Site) -> AgentConfig {
    std::fs::write(site.path("dbtool.py"), DBTOOL).unwrap();
    let mut cfg = site.config();
    cfg.db_tool = Some(vec![python(), site.path("dbtool.py").display().to_string()]);
    cfg
}

#[tokio::test]
async fn check_repair_optimize_with_the_simulator_tool() {
    let site = Site::new();
    // the implementation comes from the running node's getversion
    let agent = Agent::start(db_config(&site)).await;
    start_node(&agent).await;

    let r = dry_run(&agent, "db_check", json!(null)).await;
    assert_eq!(r.report["implementation"], "neo-ir-sim");
    assert!(!r.plan.destructive(), "a check changes nothing");
    let text = r.plan.describe();
    assert!(
        text.contains(&format!(
            "check: {} {} check --data-dir {} --json",
            python(),
            site.path("dbtool.py").display(),
            site.data.display()
        )),
        "{text}"
    );

    // the check needs the node stopped; a running node is a clear failure
    let r = approved(&agent, "db_check", json!(null)).await;
    assert!(!r.ok);
    assert_eq!(statuses(&r), vec!["check_stopped=failed", "check=skipped"]);
    assert!(output(&r, "check_stopped").contains("run service_stop first"));

    stop_node(&agent).await;
    let r = approved(&agent, "db_check", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.summary, "database healthy: 42 blocks verified");
    assert_eq!(r.report["healthy"], true);
    assert_eq!(r.report["result"]["blocks"], 42);

    std::fs::write(site.data.join("chain/CORRUPT"), "").unwrap();
    let r = approved(&agent, "db_check", json!(null)).await;
    assert!(!r.ok, "corruption found: the check says so");
    assert_eq!(statuses(&r), vec!["check_stopped=ok", "check=ok"]);
    assert_eq!(r.results[1].exit_code, Some(1));
    assert_eq!(r.summary, "database corrupt at block 17: checksum mismatch");
    assert_eq!(r.report["healthy"], false);

    // optimize refuses a corrupt database: the node stays stopped
    start_node(&agent).await;
    let (status, v) = post(&agent, "db_optimize", json!({})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("approval_required"))
    );
    let r = approved(&agent, "db_optimize", json!(null)).await;
    assert!(!r.ok);
    assert_eq!(
        statuses(&r),
        vec![
            "status=ok",
            "stop=ok",
            "optimize=failed",
            "start=skipped",
            "wait_running=skipped"
        ]
    );
    assert!(output(&r, "optimize").contains("repair first"), "{r:#?}");
    assert!(
        r.summary.contains("the node is left stopped"),
        "{}",
        r.summary
    );

    // repair with the node stopped: it stays stopped
    let r = approved(&agent, "db_repair", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec![
            "status=ok",
            "stop=skipped",
            "repair=ok",
            "start=skipped",
            "wait_running=skipped"
        ]
    );
    assert_eq!(r.summary, "database repaired: 25 blocks dropped, 17 intact");
    assert!(!site.data.join("chain/CORRUPT").exists());

    // optimize on a running node: stopped, optimized, started
    start_node(&agent).await;
    let pid = site.pid().unwrap();
    let r = approved(&agent, "db_optimize", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec![
            "status=ok",
            "stop=ok",
            "optimize=ok",
            "start=ok",
            "wait_running=ok"
        ]
    );
    assert_eq!(r.summary, "database optimized: 4200 bytes to 4200");
    assert_ne!(site.pid(), Some(pid));
    assert!(alive(site.pid().unwrap()));
    stop_node(&agent).await;
    agent.stop().await;
}

#[tokio::test]
async fn implementations_without_a_tool_are_refused() {
    let site = Site::new();
    for (implementation, needle) in [
        ("neo-cli", "neo-cli has no offline database command"),
        ("neo-go", "reset --height"),
        ("neo-rs", "neo-rs has no offline database command"),
    ] {
        let mut cfg = db_config(&site);
        cfg.implementation = Some(implementation.into());
        let agent = Agent::start(cfg).await;
        for op in ["db_check", "db_repair", "db_optimize"] {
            let (status, v) = post(&agent, op, json!({"dry_run": true})).await;
            assert_eq!(status, 422, "{op} {implementation}: {v}");
            assert_eq!(v["error"]["code"], "unsupported");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains(needle) && msg.contains("supported: neo-ir-sim"),
                "{msg}"
            );
        }
        agent.stop().await;
    }
    // unknown implementation (node down, none configured)
    let agent = Agent::start(db_config(&site)).await;
    let (status, v) = post(&agent, "db_check", json!({})).await;
    assert_eq!(status, 422);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--implementation"));
    agent.stop().await;
    // no tool configured
    let mut cfg = site.config();
    cfg.implementation = Some("neo-ir-sim".into());
    let agent = Agent::start(cfg).await;
    let (status, v) = post(&agent, "db_repair", json!({"dry_run": true})).await;
    assert_eq!(status, 422);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--db-tool"));
    let (status, v) = post(&agent, "db_check", json!({"args": {"deep": true}})).await;
    assert_eq!(status, 400, "{v}");
    agent.stop().await;
}
