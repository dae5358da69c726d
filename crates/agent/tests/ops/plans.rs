//! Every operation's dry run with the systemd backend: the exact plan lines (argument
//! vectors as they would run), nothing executed; and systemd that cannot answer (no systemd
//! here, or an unknown unit) as a clear failure.

use neo_ir_agent::known_ops;
use serde_json::json;

use super::*;
use crate::Agent;

#[tokio::test]
async fn every_operation_plans_without_running() {
    let site = Site::new();
    let mut cfg = AgentConfig::new(crate::TOKEN, &site.data);
    cfg.unit = Some("neo-ir-test-no-such-unit".into());
    cfg.rpc_port = site.port;
    cfg.p2p_port = 20333;
    cfg.log_file = Some(site.log.clone());
    cfg.backup_dir = Some(site.path("backups"));
    cfg.diagnostics_dir = Some(site.path("diag"));
    cfg.state_dir = Some(site.path("state"));
    cfg.implementation = Some("neo-ir-sim".into());
    cfg.db_tool = Some(vec![
        "/usr/local/bin/neo-ir".into(),
        "sim".into(),
        "db".into(),
    ]);
    let backup = "neo-data-20240101T000000Z.tar.gz";
    std::fs::create_dir_all(site.path("backups")).unwrap();
    std::fs::write(site.path("backups").join(backup), "x").unwrap();
    std::fs::create_dir_all(site.path("state")).unwrap();
    std::fs::write(
        site.path("state/firewall-previous.nft"),
        "table inet neo_ir {\n}\n",
    )
    .unwrap();
    let before = tree(site.dir.path());
    let agent = Agent::start(cfg).await;
    let data = site.data.display().to_string();
    let port = site.port;
    let unit = "neo-ir-test-no-such-unit";
    let wait = format!(
        "wait_running: (wait_running) wait up to 30s until the node runs and 127.0.0.1:{port} answers getblockcount  (timeout 35s)"
    );
    let expected: Vec<(&str, serde_json::Value, Vec<String>)> = vec![
        (
            "service_status",
            json!(null),
            vec![
                format!(" 1. is_active: systemctl is-active {unit}  (timeout 15s)"),
                format!(" 2. status: (status) systemctl show {unit} --property=LoadState,MainPID,ActiveState,SubState  (timeout 15s)"),
                format!(" 3. rpc: (rpc) ask 127.0.0.1:{port} for getblockcount (1 s timeout)  (timeout 5s)"),
            ],
        ),
        (
            "service_start",
            json!(null),
            vec![
                format!(" 1. status: (status) systemctl show {unit} --property=LoadState,MainPID,ActiveState,SubState  (timeout 15s)"),
                format!(" 2. start: systemctl start {unit}  (timeout 150s)"),
                format!(" 3. {wait}"),
            ],
        ),
        (
            "service_stop",
            json!(null),
            vec![format!(" 1. [destructive] stop: systemctl stop {unit}  (timeout 150s)")],
        ),
        (
            "service_restart",
            json!(null),
            vec![
                format!(" 1. [destructive] restart: systemctl restart {unit}  (timeout 150s)"),
                format!(" 2. {wait}"),
            ],
        ),
        (
            "quick_recovery",
            json!(null),
            vec![
                format!(" 1. [destructive] restart: systemctl restart {unit}  (timeout 150s)"),
                format!(" 2. {}", wait.replace("wait_running:", "wait_restarted:")),
                " 3. check_stopped: (status) confirm the node process is not running (a running node's files are left alone)  (timeout 15s)".to_string(),
                format!(" 4. [destructive] clear_files: (delete) delete *.tmp and LOCK files under {data} (recursively, only files and links, links not followed, nothing outside {data})  (timeout 300s)"),
                format!(" 5. start: systemctl start {unit}  (timeout 150s)"),
                format!(" 6. {}", wait.replace("wait_running:", "wait_started:")),
            ],
        ),
        (
            "db_repair",
            json!(null),
            vec![
                format!(" 1. status: (status) systemctl show {unit} --property=LoadState,MainPID,ActiveState,SubState  (timeout 15s)"),
                format!(" 2. [destructive] stop: systemctl stop {unit}  (timeout 150s)"),
                format!(" 3. [destructive] repair: /usr/local/bin/neo-ir sim db repair --data-dir {data} --json  (timeout 14400s)"),
                format!(" 4. start: systemctl start {unit}  (timeout 150s)"),
                format!(" 5. {wait}"),
            ],
        ),
        (
            "db_check",
            json!(null),
            vec![
                " 1. check_stopped: (status) confirm the node is stopped (the tool needs the database unlocked)  (timeout 15s)".to_string(),
                format!(" 2. check: /usr/local/bin/neo-ir sim db check --data-dir {data} --json  (timeout 14400s)"),
            ],
        ),
        ("db_optimize", json!(null), vec![]),
        ("emergency_cleanup", json!(null), vec![]),
        ("backup", json!(null), vec![]),
        ("backup_verify", json!({"name": backup}), vec![]),
        ("restore", json!({"latest": true, "verify": true}), vec![]),
        (
            "firewall_apply",
            json!({"blocklist": ["203.0.113.7"], "rate_limit_per_minute": 10}),
            vec![],
        ),
        ("firewall_rollback", json!(null), vec![]),
        ("diagnostics", json!(null), vec![]),
    ];
    let mut seen: Vec<&str> = Vec::new();
    for (op, args, lines) in &expected {
        let r = dry_run(&agent, op, args.clone()).await;
        assert_eq!(r.op, *op);
        assert!(r.ok && r.results.is_empty());
        assert_eq!(r.summary, format!("dry run: {} steps", r.plan.steps.len()));
        assert!(!r.plan.steps.is_empty(), "{op}");
        let text = r.plan.describe();
        for line in lines {
            assert!(
                text.lines().any(|l| l == line),
                "{op}: no line\n{line}\nin\n{text}"
            );
        }
        seen.push(op);
    }
    let all: Vec<&str> = known_ops().iter().map(|(n, _)| *n).collect();
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    let mut all_sorted = all.clone();
    all_sorted.sort_unstable();
    assert_eq!(sorted, all_sorted, "every known operation is planned here");
    assert_eq!(tree(site.dir.path()), before, "dry runs change nothing");
    agent.stop().await;
}

#[tokio::test]
async fn systemd_that_cannot_answer_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AgentConfig::new(crate::TOKEN, dir.path());
    cfg.unit = Some("neo-ir-test-no-such-unit".into());
    cfg.command_timeout = Duration::from_secs(10);
    let agent = Agent::start(cfg).await;
    // no systemd on this machine (systemctl exits 1), or an unknown unit (LoadState=not-found)
    let r = approved(&agent, "service_status", json!(null)).await;
    assert!(!r.ok, "{r:#?}");
    assert!(
        r.summary.contains("could not tell whether the node runs"),
        "{}",
        r.summary
    );
    assert_eq!(r.report["backend"], "systemd");
    // a quick recovery that cannot restart does not touch the data directory
    std::fs::write(dir.path().join("LOCK"), "").unwrap();
    let r = approved(&agent, "quick_recovery", json!(null)).await;
    assert!(!r.ok, "{r:#?}");
    assert_eq!(
        r.summary,
        "restart failed; restore from backup: neo-ir run restore_backup --latest"
    );
    assert!(dir.path().join("LOCK").exists());
    agent.stop().await;
}
