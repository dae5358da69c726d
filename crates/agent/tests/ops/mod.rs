//! Tests of `POST /v1/ops/{op}` against a real agent on 127.0.0.1 that starts and stops a
//! real stand-in node process (`standin.py`, run by python3): it answers JSON-RPC on its
//! port, holds a LOCK file while it runs and refuses to start when one is left behind.

mod backup;
mod cleanup;
mod db;
mod firewall;
mod node;
mod plans;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use neo_ir_agent::{AgentConfig, OpReport, OpRequest, Service};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::{Agent, TOKEN};

/// The stand-in node's source.
const STANDIN: &str = include_str!("standin.py");

/// The python interpreter's real path (not a wrapper: the agent checks the program name in
/// `/proc/<pid>/cmdline` before it signals).
pub fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs (the stand-in node needs it)");
    assert!(out.status.success(), "python3 failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A free port on 127.0.0.1 (released at once; the stand-in binds it with SO_REUSEADDR).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A node's directories and the agent configuration that runs it with the process backend.
pub struct Site {
    pub dir: TempDir,
    pub data: PathBuf,
    pub pid_file: PathBuf,
    pub log: PathBuf,
    pub port: u16,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("chain")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("standin.py"), STANDIN).unwrap();
        Site {
            pid_file: dir.path().join("node.pid"),
            log: dir.path().join("logs/node.log"),
            port: free_port(),
            data,
            dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn argv(&self) -> Vec<String> {
        vec![
            python(),
            self.path("standin.py").display().to_string(),
            "--port".into(),
            self.port.to_string(),
            "--data-dir".into(),
            self.data.display().to_string(),
        ]
    }

    pub fn config(&self) -> AgentConfig {
        let mut cfg = AgentConfig::new(TOKEN, &self.data);
        cfg.rpc_port = self.port;
        cfg.p2p_port = free_port();
        cfg.service = Some(Service::Process {
            argv: self.argv(),
            pid_file: self.pid_file.clone(),
            log_file: Some(self.log.clone()),
        });
        cfg.start_wait = Duration::from_secs(20);
        cfg.stop_timeout = Duration::from_secs(10);
        cfg
    }

    /// The pid in the pid file, when there is one.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    #[allow(dead_code)]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Site {
    /// A test that failed half-way must not leave its node running: the process backend
    /// starts nodes detached on purpose.
    fn drop(&mut self) {
        let script = self.path("standin.py").display().to_string();
        if let Some(pid) = self.pid().filter(|p| alive(*p)) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&script) {
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

/// Whether `pid` runs (and is no zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => {
            let state = t
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// SIGKILL `pid` (as a crash would) and wait until it is gone.
pub async fn kill9(pid: u32) {
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::KILL).unwrap();
    wait_for("the killed node to be gone", || !alive(pid)).await;
}

/// Poll `cond` every 25 ms for up to 20 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `POST /v1/ops/{op}` with a raw JSON body; status and JSON answer.
pub async fn post(agent: &Agent, op: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/ops/{op}", agent.base))
        .bearer_auth(TOKEN)
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Run `op` through the client with an approval.
pub async fn approved(agent: &Agent, op: &str, args: Value) -> OpReport {
    let req = OpRequest {
        args,
        dry_run: false,
        approved_by: Some("alice via test".into()),
    };
    send(agent, op, &req).await
}

/// Dry-run `op` through the client.
pub async fn dry_run(agent: &Agent, op: &str, args: Value) -> OpReport {
    let req = OpRequest {
        args,
        dry_run: true,
        approved_by: None,
    };
    send(agent, op, &req).await
}

async fn send(agent: &Agent, op: &str, req: &OpRequest) -> OpReport {
    neo_ir_agent::run_op(
        &reqwest::Client::new(),
        &agent.base,
        TOKEN,
        op,
        req,
        Duration::from_secs(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// The step statuses of a report, as `name=status`.
pub fn statuses(r: &OpReport) -> Vec<String> {
    r.results
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s.name,
                serde_json::to_value(s.status).unwrap().as_str().unwrap()
            )
        })
        .collect()
}

/// The output of step `name`.
pub fn output<'a>(r: &'a OpReport, name: &str) -> &'a str {
    &r.results
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {r:#?}"))
        .output
}

/// Start the node and wait until it answers.
pub async fn start_node(agent: &Agent) {
    let r = approved(agent, "service_start", json!(null)).await;
    assert!(r.ok, "{r:#?}");
}

/// Stop the node a test left running.
pub async fn stop_node(agent: &Agent) {
    let r = approved(agent, "service_stop", json!(null)).await;
    assert!(r.ok, "{r:#?}");
}

/// Files under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
