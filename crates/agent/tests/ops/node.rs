//! Service control and quick_recovery with the process backend and a real stand-in node,
//! and the API contract's refusals (auth, unknown op, invalid args, unsupported,
//! approval, busy, bad bodies) over HTTP and through `run_op`.

use std::time::Duration;

use neo_ir_agent::{run_op, AgentConfig, AgentError, OpError, OpRequest};
use neo_ir_core::runbook::StepStatus;
use serde_json::json;

use super::*;
use crate::{Agent, TOKEN};

#[tokio::test]
async fn service_start_status_restart_stop() {
    let site = Site::new();
    let agent = Agent::start(site.config()).await;

    // dry run: the plan, nothing started
    let r = dry_run(&agent, "service_start", json!(null)).await;
    assert_eq!(r.summary, "dry run: 3 steps");
    assert!(r.results.is_empty() && r.ok);
    let text = r.plan.describe();
    assert!(
        text.contains(" 1. status: (status) read the pid in"),
        "{text}"
    );
    assert!(
        text.contains(" 2. start: (start) start: ") && text.contains("standin.py --port"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            " 3. wait_running: (wait_running) wait up to 20s until the node runs and 127.0.0.1:{} answers getblockcount",
            site.port
        )),
        "{text}"
    );
    assert!(!r.plan.destructive());
    assert_eq!(site.pid(), None, "a dry run starts nothing");

    // not destructive: runs without an approval
    let (status, v) = post(&agent, "service_start", json!({})).await;
    assert_eq!(status, 200, "{v}");
    let r: neo_ir_agent::OpReport = serde_json::from_value(v).unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.summary, "node started, block count 100");
    assert_eq!(
        statuses(&r),
        vec!["status=ok", "start=ok", "wait_running=ok"]
    );
    let pid = site.pid().expect("pid file written");
    assert!(alive(pid));
    assert!(site.data.join("LOCK").exists());

    let r = approved(&agent, "service_status", json!(null)).await;
    assert!(r.ok);
    assert_eq!(r.report["running"], true);
    assert_eq!(r.report["pid"], pid);
    assert_eq!(r.report["backend"], "process");
    assert_eq!(r.report["block_count"], 100);
    assert_eq!(
        r.summary,
        format!("node running (pid {pid}), block count 100")
    );

    // a second start does not start a second node
    let r = approved(&agent, "service_start", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec!["status=ok", "start=skipped", "wait_running=ok"]
    );
    assert_eq!(site.pid(), Some(pid));

    // restart is destructive: refused without approval, with the plan
    let (status, v) = post(&agent, "service_restart", json!({"args": null})).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "approval_required");
    assert_eq!(v["plan"]["steps"][0]["name"], "restart");
    assert_eq!(v["plan"]["steps"][0]["destructive"], true);
    assert_eq!(site.pid(), Some(pid), "nothing changed");
    assert!(alive(pid));

    let r = approved(&agent, "service_restart", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    let pid2 = site.pid().unwrap();
    assert_ne!(pid2, pid);
    assert!(!alive(pid) && alive(pid2));
    assert!(
        output(&r, "restart").contains(&format!("stopped pid {pid}: exited after SIGTERM")),
        "{r:#?}"
    );

    let r = approved(&agent, "service_stop", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.summary, "node stopped");
    wait_for("the stopped node to be gone", || !alive(pid2)).await;
    assert!(
        !site.data.join("LOCK").exists(),
        "SIGTERM lets the node remove LOCK"
    );
    let r = approved(&agent, "service_status", json!(null)).await;
    assert_eq!(r.report["running"], false);
    assert!(r.summary.starts_with("node not running"), "{}", r.summary);
    // stopping a stopped node is fine
    let r = approved(&agent, "service_stop", json!(null)).await;
    assert!(
        r.ok && output(&r, "stop").starts_with("not running"),
        "{r:#?}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn a_node_that_exits_during_startup_fails_the_start_with_its_log() {
    let site = Site::new();
    std::fs::write(site.data.join("FAIL"), "").unwrap();
    let agent = Agent::start(site.config()).await;
    let r = approved(&agent, "service_start", json!(null)).await;
    assert!(!r.ok);
    assert_eq!(
        statuses(&r),
        vec!["status=ok", "start=ok", "wait_running=failed"]
    );
    let out = output(&r, "wait_running");
    assert!(out.contains("exited during startup"), "{out}");
    assert!(out.contains("database corrupt: refusing to start"), "{out}");
    // the log tail is redacted
    assert!(!out.contains("hunter2") && !out.contains("u:pw@"), "{out}");
    assert!(out.contains("password=<redacted>"), "{out}");
    agent.stop().await;
}

#[tokio::test]
async fn the_pid_of_another_program_is_never_signalled() {
    let site = Site::new();
    // a stale pid file naming a live process that is not the node: this test binary
    std::fs::write(&site.pid_file, format!("{}\n", std::process::id())).unwrap();
    let agent = Agent::start(site.config()).await;
    let r = approved(&agent, "service_stop", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    let out = output(&r, "stop");
    assert!(
        out.contains("not running") && out.contains("stale pid file; not signalled"),
        "{out}"
    );
    let r = approved(&agent, "service_status", json!(null)).await;
    assert_eq!(r.report["running"], false);
    agent.stop().await;
}

#[tokio::test]
async fn quick_recovery_restarts_a_healthy_node() {
    let site = Site::new();
    let agent = Agent::start(site.config()).await;
    let r = dry_run(&agent, "quick_recovery", json!(null)).await;
    let names: Vec<&str> = r.plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "restart",
            "wait_restarted",
            "check_stopped",
            "clear_files",
            "start",
            "wait_started"
        ]
    );
    let text = r.plan.describe();
    assert!(
        text.contains(&format!(
            "[destructive] clear_files: (delete) delete *.tmp and LOCK files under {}",
            site.data.display()
        )),
        "{text}"
    );
    assert!(text.contains("note: if the node still does not answer: restart failed; restore from backup: neo-ir run restore_backup --latest"), "{text}");

    start_node(&agent).await;
    let r = approved(&agent, "quick_recovery", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.summary, "node restarted");
    assert_eq!(r.report["path"], "restart");
    assert_eq!(
        statuses(&r),
        vec![
            "restart=ok",
            "wait_restarted=ok",
            "check_stopped=skipped",
            "clear_files=skipped",
            "start=skipped",
            "wait_started=skipped"
        ]
    );
    stop_node(&agent).await;
    agent.stop().await;
}

#[tokio::test]
async fn quick_recovery_clears_a_stale_lock_after_a_crash() {
    let site = Site::new();
    let agent = Agent::start(site.config()).await;
    start_node(&agent).await;
    let pid = site.pid().unwrap();
    // a crash: SIGKILL leaves LOCK behind, and a temp file
    kill9(pid).await;
    std::fs::write(site.data.join("chain/000123.tmp"), "partial").unwrap();
    std::fs::write(site.data.join("chain/000122.ldb"), "table").unwrap();
    assert!(site.data.join("LOCK").exists());

    // a plain start fails on the LOCK
    let r = approved(&agent, "service_start", json!(null)).await;
    assert!(!r.ok);
    assert!(output(&r, "wait_running").contains("exists (is another node running?)"));

    let (status, v) = post(&agent, "quick_recovery", json!({})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("approval_required"))
    );
    assert!(
        site.data.join("LOCK").exists(),
        "nothing changed without approval"
    );

    let r = approved(&agent, "quick_recovery", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.summary, "node started after cleanup");
    assert_eq!(
        statuses(&r),
        vec![
            "restart=ok",
            "wait_restarted=failed",
            "check_stopped=ok",
            "clear_files=ok",
            "start=ok",
            "wait_started=ok"
        ]
    );
    let removed: Vec<String> = serde_json::from_value(r.report["removed"].clone()).unwrap();
    assert_eq!(
        removed,
        vec![
            site.data.join("LOCK").display().to_string(),
            site.data.join("chain/000123.tmp").display().to_string()
        ]
    );
    let out = output(&r, "clear_files");
    assert!(
        out.contains(&format!("removed {}", site.data.join("LOCK").display())),
        "{out}"
    );
    assert!(
        site.data.join("chain/000122.ldb").exists(),
        "chain data untouched"
    );
    assert!(
        site.data.join("LOCK").exists(),
        "the restarted node holds a new LOCK"
    );
    assert!(alive(site.pid().unwrap()));
    stop_node(&agent).await;
    agent.stop().await;
}

#[tokio::test]
async fn quick_recovery_points_at_a_restore_when_nothing_helps() {
    let site = Site::new();
    std::fs::write(site.data.join("FAIL"), "").unwrap();
    let agent = Agent::start(site.config()).await;
    let r = approved(&agent, "quick_recovery", json!(null)).await;
    assert!(!r.ok);
    assert_eq!(
        r.summary,
        "restart failed; restore from backup: neo-ir run restore_backup --latest"
    );
    assert_eq!(
        statuses(&r),
        vec![
            "restart=ok",
            "wait_restarted=failed",
            "check_stopped=ok",
            "clear_files=ok",
            "start=ok",
            "wait_started=failed"
        ]
    );
    assert!(site.data.join("FAIL").exists());
    agent.stop().await;
}

#[tokio::test]
async fn quick_recovery_leaves_a_running_but_silent_node_alone() {
    let site = Site::new();
    // the node starts but listens only after 30 s: it runs and does not answer
    std::fs::write(site.data.join("SLOW"), "30").unwrap();
    let mut cfg = site.config();
    cfg.start_wait = Duration::from_secs(1);
    let agent = Agent::start(cfg).await;
    std::fs::write(site.data.join("keep.tmp"), "x").unwrap();
    let r = approved(&agent, "quick_recovery", json!(null)).await;
    assert!(!r.ok);
    assert_eq!(
        statuses(&r),
        vec![
            "restart=ok",
            "wait_restarted=failed",
            "check_stopped=failed",
            "clear_files=skipped",
            "start=skipped",
            "wait_started=skipped"
        ]
    );
    assert!(output(&r, "check_stopped").contains("files are left alone"));
    assert!(site.data.join("keep.tmp").exists());
    let pid = site.pid().unwrap();
    assert!(alive(pid));
    stop_node(&agent).await;
    agent.stop().await;
}

#[tokio::test]
async fn refusals_over_http() {
    let site = Site::new();
    let agent = Agent::start(site.config()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/ops/service_status", agent.base);

    let r = client.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(&url)
        .bearer_auth("wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden");

    let (status, v) = post(&agent, "format_disk", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "unknown_op");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("format_disk") && msg.contains("quick_recovery, emergency_cleanup"),
        "{msg}"
    );

    let (status, v) = post(&agent, "service_status", json!({"args": {"unit": "x"}})).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "invalid_args");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("\"unit\""),
        "{v}"
    );

    let (status, v) = post(&agent, "service_status", json!({"args": [1]})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_args"))
    );
    let (status, v) = post(&agent, "service_stop", json!({"approved_by": "a\u{7}b"})).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("approved_by"));

    // not JSON, and too large
    let r = client
        .post(&url)
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_args");
    let r = client
        .post(&url)
        .bearer_auth(TOKEN)
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // an empty body is an empty request
    let r = client.post(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // GET is not an operation
    let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 405);
    agent.stop().await;

    // no service configured: unsupported, saying what to configure
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(AgentConfig::new(TOKEN, dir.path())).await;
    let (status, v) = post(&agent, "service_start", json!({"dry_run": true})).await;
    assert_eq!(status, 422);
    assert_eq!(v["error"]["code"], "unsupported");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--unit"),
        "{v}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn one_operation_at_a_time_and_client_errors() {
    let site = Site::new();
    std::fs::write(site.data.join("SLOW"), "2").unwrap();
    let agent = Agent::start(site.config()).await;
    let client = reqwest::Client::new();
    let t = Duration::from_secs(60);
    let req = OpRequest::default();

    // a slow start holds the agent's lock
    let base = agent.base.clone();
    let first = tokio::spawn(async move {
        run_op(
            &reqwest::Client::new(),
            &base,
            TOKEN,
            "service_start",
            &OpRequest::default(),
            Duration::from_secs(60),
        )
        .await
    });
    wait_for("the first start to spawn the node", || site.pid().is_some()).await;
    let e = run_op(&client, &agent.base, TOKEN, "service_status", &req, t)
        .await
        .unwrap_err();
    assert_eq!(e, OpError::Busy);
    let (status, v) = post(&agent, "service_status", json!({})).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("busy")));
    // a dry run changes nothing and does not wait for the lock
    let dry = OpRequest {
        dry_run: true,
        ..OpRequest::default()
    };
    assert!(
        run_op(&client, &agent.base, TOKEN, "service_status", &dry, t)
            .await
            .is_ok()
    );
    let r = first.await.unwrap().unwrap();
    assert!(r.ok, "{r:#?}");
    assert!(
        run_op(&client, &agent.base, TOKEN, "service_status", &req, t)
            .await
            .unwrap()
            .ok
    );

    // the client's typed refusals
    let e = run_op(&client, &agent.base, TOKEN, "service_stop", &req, t)
        .await
        .unwrap_err();
    let OpError::ApprovalRequired { plan } = e else {
        panic!("{e:?}")
    };
    assert_eq!(plan.steps[0].name, "stop");
    assert!(plan.destructive());
    let e = run_op(&client, &agent.base, TOKEN, "nope", &req, t)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OpError::UnknownOp(m) if m.contains("service_status")),
        "{e}"
    );
    let e = run_op(&client, &agent.base, TOKEN, "../report", &req, t)
        .await
        .unwrap_err();
    assert!(matches!(e, OpError::UnknownOp(_)), "{e}");
    let bad = OpRequest {
        args: json!({"x": 1}),
        ..OpRequest::default()
    };
    let e = run_op(&client, &agent.base, TOKEN, "service_status", &bad, t)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OpError::InvalidArgs(m) if m.contains("\"x\"")),
        "{e}"
    );
    let e = run_op(&client, &agent.base, "wrong", "service_status", &req, t)
        .await
        .unwrap_err();
    assert_eq!(e, OpError::Agent(AgentError::Auth { status: 403 }));
    assert!(!e.to_string().contains("wrong"));
    stop_node(&agent).await;
    agent.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(AgentConfig::new(TOKEN, dir.path())).await;
    let base = agent.base.clone();
    let e = run_op(&client, &base, TOKEN, "service_restart", &req, t)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OpError::Unsupported(m) if m.contains("--process-pid-file")),
        "{e}"
    );
    agent.stop().await;
    let e = run_op(&client, &base, TOKEN, "service_status", &req, t)
        .await
        .unwrap_err();
    assert!(
        matches!(e, OpError::Agent(AgentError::Unreachable(_))),
        "{e}"
    );
}

#[test]
fn step_status_names_are_stable() {
    assert_eq!(
        serde_json::to_value(StepStatus::TimedOut).unwrap(),
        "timed_out"
    );
}

#[tokio::test]
async fn a_pid_file_that_cannot_be_written_leaves_no_node_behind() {
    let site = Site::new();
    let mut cfg = site.config();
    if let Some(neo_ir_agent::Service::Process { pid_file, .. }) = &mut cfg.service {
        *pid_file = site.path("no-such-dir/node.pid");
    }
    let agent = Agent::start(cfg).await;
    let r = approved(&agent, "service_start", json!(null)).await;
    assert!(!r.ok);
    assert_eq!(
        statuses(&r),
        vec!["status=ok", "start=failed", "wait_running=skipped"]
    );
    let out = output(&r, "start");
    assert!(
        out.contains("writing the pid file") && out.contains("was killed"),
        "{out}"
    );
    let script = site.path("standin.py").display().to_string();
    wait_for("the started node to be gone", || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let pid: Option<u32> = e.file_name().to_str().and_then(|s| s.parse().ok());
            String::from_utf8_lossy(&cmdline).contains(&script) && pid.is_some_and(alive)
        })
    })
    .await;
    agent.stop().await;
}
