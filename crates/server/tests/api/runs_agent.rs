//! The runbook endpoints with node-host scripts: a real `neo-ir agent` on 127.0.0.1 (port 0)
//! runs a real stand-in node process (the agent tests' `standin.py`, run by python3) with the
//! process backend, configured as the node's `agent` with its token in an environment
//! variable. Destructive scripts wait for an approval; approving runs them, declining
//! refuses them, and a diagnostics archive lands on the incident as an attachment.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use neo_ir_agent::{AgentConfig, Service};
use neo_ir_core::config::NodeConfig;
use neo_ir_core::Role;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

use super::runs::{events, final_run, id_of, item, run_to_end, start_run, Served};
use super::{code, Api, READ, WRITE};

/// The stand-in node (the agent crate's test fixture, used as it is).
const STANDIN: &str = include_str!("../../../agent/tests/ops/standin.py");
/// The node's name in the runner's configuration.
const NODE: &str = "standin";

/// The python interpreter's real path: the agent signals a node only when
/// `/proc/<pid>/cmdline` names the configured program, so no wrapper (pyenv shim) may sit
/// in between.
fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3 runs (the stand-in node needs it)");
    assert!(out.status.success(), "python3 failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A stand-in node's directories, and an agent serving operations on it.
struct Host {
    /// The node's files; removed after the node is stopped (see `Drop`).
    _dir: TempDir,
    pid_file: PathBuf,
    rpc_port: u16,
    agent: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Host {
    async fn start(token: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("chain")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::create_dir_all(dir.path().join("diagnostics")).unwrap();
        let script = dir.path().join("standin.py");
        std::fs::write(&script, STANDIN).unwrap();
        let rpc_port = free_port();
        let pid_file = dir.path().join("node.pid");
        let mut cfg = AgentConfig::new(token, &data);
        cfg.rpc_port = rpc_port;
        cfg.p2p_port = free_port();
        cfg.service = Some(Service::Process {
            argv: vec![
                python(),
                script.display().to_string(),
                "--port".into(),
                rpc_port.to_string(),
                "--data-dir".into(),
                data.display().to_string(),
            ],
            pid_file: pid_file.clone(),
            log_file: Some(dir.path().join("logs/node.log")),
        });
        cfg.start_wait = Duration::from_secs(20);
        cfg.stop_timeout = Duration::from_secs(10);
        cfg.diagnostics_dir = Some(dir.path().join("diagnostics"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = oneshot::channel::<()>();
        tokio::spawn(neo_ir_agent::serve(cfg, listener, async {
            let _ = rx.await;
        }));
        Host {
            _dir: dir,
            pid_file,
            rpc_port,
            agent,
            stop: Some(stop),
        }
    }

    /// The node as the runner knows it: its RPC and its agent, the token in `token_env`.
    fn node(&self, token_env: &str) -> NodeConfig {
        let mut n = NodeConfig::new(
            NODE,
            format!("http://127.0.0.1:{}", self.rpc_port),
            Role::Rpc,
        );
        n.agent = Some(self.agent.clone());
        n.agent_token_env = Some(token_env.to_string());
        n
    }

    /// The pid in the pid file, when the node runs as the stand-in.
    fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        is_standin(pid).then_some(pid)
    }
}

/// Whether `pid` runs (not a zombie) and is a stand-in node.
fn is_standin(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .chars()
        .next();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !matches!(state, Some('Z') | Some('X') | None)
        && String::from_utf8_lossy(&cmdline).contains("standin.py")
}

impl Drop for Host {
    /// The agent spawns the node detached: a test that failed before stopping it must not
    /// leave it running. Only the stand-in this test started is signalled (by its pid).
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Poll `cond` every 25 ms for up to 20 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A script that waits for an approval: 201 `awaiting_approval`.
async fn awaiting(api: &Api, body: Value) -> Value {
    let (s, v) = start_run(api, body.clone()).await;
    assert_eq!(s, 201, "{body}: {v:#}");
    assert_eq!(v["status"], "awaiting_approval", "{v:#}");
    v
}

/// Approve run `id` as "ops": 202 `running`, then its end.
async fn approve(api: &Api, id: i64) -> Value {
    let (s, v) = api
        .post(&format!("/api/v1/runs/{id}/approve"), WRITE, json!({}))
        .await;
    assert_eq!(s, 202, "{v:#}");
    assert_eq!(v["status"], "running", "{v:#}");
    assert_eq!(v["approved_by"], "ops", "{v:#}");
    final_run(api, id).await
}

/// The names and statuses of a run's step results, as `name=status`.
fn results(run: &Value) -> Vec<String> {
    run["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r["name"].as_str().unwrap(),
                r["status"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn destructive_host_scripts_wait_for_an_approval_and_a_decline_refuses_them() {
    let token = "agent-token-runs-approval-7d1e";
    let env = format!(
        "NEO_IR_SERVER_TEST_AGENT_TOKEN_APPROVAL_{}",
        std::process::id()
    );
    std::env::set_var(&env, token);
    let host = Host::start(token).await;
    let served = Served::start(vec![host.node(&env)]).await;
    let api = &served.api;
    let node = json!(NODE);

    // starting is not destructive: it runs at once
    let started = run_to_end(api, json!({"script": "start_node", "node": node})).await;
    assert_eq!(started["status"], "succeeded", "{started:#}");
    assert!(started["approved_by"].is_null(), "{started}");
    assert_eq!(started["node"], NODE);
    assert_eq!(
        results(&started),
        ["status=ok", "start=ok", "wait_running=ok"],
        "{started:#}"
    );
    let pid = host.pid().expect("the node runs");

    // restarting is: the plan (as the agent will run it), and a wait for an approval
    let waiting = awaiting(api, json!({"script": "restart_node", "node": node})).await;
    let id = id_of(&waiting);
    let steps = waiting["plan"]["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["restart", "wait_running"], "{waiting:#}");
    assert_eq!(steps[0]["destructive"], true);
    assert!(waiting["approved_by"].is_null() && waiting["finished_at"].is_null());
    assert_eq!(waiting["results"], json!([]));
    assert!(
        waiting["summary"].as_str().unwrap().contains("approval"),
        "{waiting}"
    );
    assert_eq!(host.pid(), Some(pid), "nothing ran yet");
    let (_, stored) = api.get(&format!("/api/v1/runs/{id}"), None).await;
    assert_eq!(stored, waiting, "stored as answered");

    // an approval needs a write token
    let approve_path = format!("/api/v1/runs/{id}/approve");
    assert_eq!(code(&api.post(&approve_path, None, json!({})).await).0, 401);
    assert_eq!(code(&api.post(&approve_path, READ, json!({})).await).0, 403);
    let done = approve(api, id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["approved_by"], "ops");
    assert_eq!(
        results(&done),
        ["restart=ok", "wait_running=ok"],
        "{done:#}"
    );
    let restarted = host.pid().expect("the node runs again");
    assert_ne!(restarted, pid, "a new process");
    assert!(!is_standin(pid), "the old one is gone");

    // approved once: a second approval is a conflict, and runs nothing
    assert_eq!(
        code(&api.post(&approve_path, WRITE, json!({})).await),
        (409, "conflict")
    );
    assert_eq!(host.pid(), Some(restarted));

    // a dry run shows the same plan and waits for nothing
    let (s, dry) = start_run(
        api,
        json!({"script": "restart_node", "node": node, "dry_run": true}),
    )
    .await;
    assert_eq!(
        (s, dry["status"].as_str()),
        (201, Some("dry_run")),
        "{dry:#}"
    );
    assert_eq!(dry["plan"], waiting["plan"]);
    assert_eq!(
        code(
            &api.post(
                &format!("/api/v1/runs/{}/approve", id_of(&dry)),
                WRITE,
                json!({})
            )
            .await
        ),
        (409, "conflict")
    );

    // two approvals at once: one runs it, the other is a conflict
    let raced = id_of(&awaiting(api, json!({"script": "restart_node", "node": node})).await);
    let path = format!("/api/v1/runs/{raced}/approve");
    let (a, b) = tokio::join!(
        api.post(&path, WRITE, json!({})),
        api.post(&path, WRITE, json!({}))
    );
    let mut codes = [a.0, b.0];
    codes.sort_unstable();
    assert_eq!(codes, [202, 409], "{a:?} {b:?}");
    let done = final_run(api, raced).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let restarted = host.pid().expect("the node runs");

    // another restart, declined with a reason
    let other = id_of(&awaiting(api, json!({"script": "restart_node", "node": node})).await);
    let decline_path = format!("/api/v1/runs/{other}/decline");
    let reason = json!({"reason": "not during the exchange's batch window"});
    assert_eq!(
        code(&api.post(&decline_path, None, reason.clone()).await).0,
        401
    );
    assert_eq!(
        code(&api.post(&decline_path, READ, reason.clone()).await).0,
        403
    );
    for bad in [
        json!({"reason": "  "}),
        json!({"reason": "x".repeat(501)}),
        json!({}),
        json!({"reason": "x", "y": 1}),
    ] {
        assert_eq!(
            code(&api.post(&decline_path, WRITE, bad.clone()).await).0,
            400,
            "{bad}"
        );
    }
    let (s, refused) = api.post(&decline_path, WRITE, reason.clone()).await;
    assert_eq!(s, 200, "{refused:#}");
    assert_eq!(refused["status"], "refused");
    assert_eq!(
        refused["summary"],
        "declined by ops: not during the exchange's batch window"
    );
    assert!(refused["finished_at"].is_string() && refused["approved_by"].is_null());
    assert_eq!(final_run(api, other).await["status"], "refused");
    assert_eq!(
        code(
            &api.post(&format!("/api/v1/runs/{other}/approve"), WRITE, json!({}))
                .await
        ),
        (409, "conflict")
    );
    assert_eq!(code(&api.post(&decline_path, WRITE, reason).await).0, 409);
    assert_eq!(
        host.pid(),
        Some(restarted),
        "a declined run changes nothing"
    );

    // both decisions are audited, by the token's name
    let (_, v) = api.get("/api/v1/audit", READ).await;
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"run.approve") && actions.contains(&"run.decline"),
        "{v:#}"
    );

    // stopping is destructive too
    let stop = id_of(&awaiting(api, json!({"script": "stop_node", "node": node})).await);
    let stopped = approve(api, stop).await;
    assert_eq!(stopped["status"], "succeeded", "{stopped:#}");
    wait_for("the stopped node to be gone", || !is_standin(restarted)).await;
}

/// A stand-in node behind its agent, the API over it, a `node_down` incident on the node,
/// and an `incident_diagnostics` run on that incident as it ended.
struct Diagnosed {
    host: Host,
    served: Served,
    incident: i64,
    run: Value,
}

/// [`Diagnosed`] (the agent's token in a variable named after `tag`); `None` when this
/// build of the agent has no diagnostics operation yet.
async fn diagnose(tag: &str) -> Option<Diagnosed> {
    let token = format!("agent-token-runs-{tag}");
    let env = format!(
        "NEO_IR_SERVER_TEST_AGENT_TOKEN_{}_{}",
        tag.to_uppercase(),
        std::process::id()
    );
    std::env::set_var(&env, &token);
    let host = Host::start(&token).await;
    let served = Served::start(vec![host.node(&env)]).await;
    let api = &served.api;
    let started = run_to_end(api, json!({"script": "start_node", "node": NODE})).await;
    assert_eq!(started["status"], "succeeded", "{started:#}");

    // the incident's only node is where it runs
    let incident = api
        .declare_on("node_down", "standin is down", &[NODE])
        .await;
    let body = json!({"script": "incident_diagnostics", "incident_id": incident});
    let (s, v) = start_run(api, body).await;
    if s == 201 && v["status"] == "refused" {
        let why = v["summary"].as_str().unwrap_or_default();
        assert!(
            why.contains("not available"),
            "refused for another reason than a missing operation: {v:#}"
        );
        println!("skipping the attachment checks: the agent has no diagnostics yet: {why}");
        return None;
    }
    assert_eq!(s, 202, "{v:#}");
    assert_eq!(v["node"], NODE, "the incident's node: {v}");
    let run = final_run(api, id_of(&v)).await;
    Some(Diagnosed {
        host,
        served,
        incident,
        run,
    })
}

impl Diagnosed {
    /// Stop the node through the API (approved), and wait until it is gone.
    async fn stop_node(&self) {
        let api = &self.served.api;
        let pid = self.host.pid();
        let stop = id_of(&awaiting(api, json!({"script": "stop_node", "node": NODE})).await);
        assert_eq!(approve(api, stop).await["status"], "succeeded");
        if let Some(pid) = pid {
            wait_for("the stopped node to be gone", || !is_standin(pid)).await;
        }
    }
}

#[tokio::test]
async fn incident_diagnostics_attaches_its_archive_to_the_incident() {
    let Some(d) = diagnose("diagnostics").await else {
        return;
    };
    let (api, incident, run) = (&d.served.api, d.incident, &d.run);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let run_id = id_of(run);
    assert!(
        run["report"].get("archive_base64").is_none(),
        "the archive is not kept in the run: {run:#}"
    );
    let attachment_id = run["report"]["attachment_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no attachment_id in {run:#}"));

    let (s, v) = api
        .get(&format!("/api/v1/incidents/{incident}/attachments"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let list = v["attachments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v:#}");
    let meta = &list[0];
    assert_eq!(meta["id"], attachment_id);
    assert_eq!(meta["incident_id"], incident);
    assert_eq!(meta["run_id"], run_id);
    assert_eq!(meta["content_type"], "application/gzip");
    assert!(
        meta["name"].as_str().unwrap().ends_with(".tar.gz"),
        "{meta}"
    );
    let sha = meta["sha256"].as_str().unwrap();
    assert!(
        sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "{meta}"
    );
    let size = meta["bytes"].as_u64().unwrap();

    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/attachments/{attachment_id}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");

    // on the timeline with the run, and the checklist's diagnostics step is done by it
    let ended = events(api, incident, "runbook_run").await;
    assert!(
        ended
            .iter()
            .any(|e| e["data"]["run_id"] == run_id && e["data"]["status"] == "succeeded"),
        "{ended:#?}"
    );
    let step = item(api, incident, "diagnostics").await;
    assert_eq!(step["done"], true, "{step}");
    assert_eq!(step["by"], format!("run {run_id}"));

    d.stop_node().await;
}

#[tokio::test]
async fn the_attachment_keeps_the_archive_name() {
    let Some(d) = diagnose("archive_name").await else {
        return;
    };
    let (api, run) = (&d.served.api, &d.run);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let (_, v) = api
        .get(
            &format!("/api/v1/incidents/{}/attachments", d.incident),
            None,
        )
        .await;
    let name = v["attachments"][0]["name"].as_str().unwrap_or_default();
    assert!(
        name.starts_with("incident-diagnostics-") && name.ends_with(".tar.gz"),
        "the archive's own name, as on the host: {name:?}; report: {:#}",
        run["report"]
    );
    d.stop_node().await;
}
