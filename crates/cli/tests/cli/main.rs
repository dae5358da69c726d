//! The `neo-ir` binary as an operator runs it: exit codes, error messages, JSON output, and
//! `watch` against a simulated network over real sockets, stopped by SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

/// A child process killed when the test ends, passed or failed: a failing test would
/// otherwise leave its simulator and watcher running, holding ports for later tests.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

mod crash_safety;
mod demo;
mod drills;
mod instances;
mod notify;
mod rehearse;
mod reviews;
mod runbooks;
mod simnode;

/// A simulated Neo network in its own process (`neo-ir sim`): validators, RPC nodes and the
/// control API on consecutive ports.
struct Sim {
    child: Reaped,
    base: u16,
    ports: u16,
}

impl Sim {
    /// Start it on free ports below Linux's ephemeral range (32768 and up): a port the OS
    /// hands out for port 0 is in that range, and the next ones may be taken by any outgoing
    /// connection before the simulator binds them. Another process may still take one
    /// between the check and the simulator's bind: then the simulator exits and other ports
    /// are tried. Returns once every node listens (a node still starting would, rightly, be
    /// reported down).
    fn start(validators: u16, rpc: u16, msperblock: u32) -> Sim {
        let ports = validators + rpc + 1;
        let mut candidates = (0..1000u16).map(|i| {
            20_000
                + (std::process::id() as u16)
                    .wrapping_mul(7)
                    .wrapping_add(i * 13)
                    % 12_000
        });
        loop {
            let base = candidates
                .by_ref()
                .find(|&b| {
                    (0..ports)
                        .map(|i| std::net::TcpListener::bind(("127.0.0.1", b + i)))
                        .collect::<Result<Vec<_>, _>>()
                        .is_ok()
                })
                .expect("free ports below 32000");
            let mut child = Reaped(
                neo_ir()
                    .args(["sim", "--validators", &validators.to_string()])
                    .args(["--rpc", &rpc.to_string()])
                    .args(["--msperblock", &msperblock.to_string()])
                    .args(["--base-port", &base.to_string()])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if (0..ports).all(|i| std::net::TcpStream::connect(("127.0.0.1", base + i)).is_ok())
                {
                    break;
                }
                if child.try_wait().unwrap().is_some() {
                    break; // it could not bind: another base
                }
                assert!(
                    Instant::now() < deadline,
                    "the simulated network never listened"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().unwrap().is_none() {
                return Sim { child, base, ports };
            }
        }
    }

    /// The JSON-RPC URL of the `i`-th node (validators first).
    fn rpc(&self, i: u16) -> String {
        format!("http://127.0.0.1:{}/", self.base + i)
    }

    /// POST to the control API; true on 200. A tiny HTTP client over std, so these tests
    /// need no async runtime.
    fn post(&self, path: &str, body: &str) -> bool {
        use std::io::Read;
        let addr = format!("127.0.0.1:{}", self.base + self.ports - 1);
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
            return false;
        };
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.starts_with("HTTP/1.1 200")
    }

    /// Inject `fault` ("crash", "freeze", ...) on `node`.
    fn fault(&self, node: &str, fault: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.post(
            &format!("/nodes/{node}/fault"),
            &format!("{{\"fault\":\"{fault}\"}}"),
        ) {
            assert!(Instant::now() < deadline, "sim control API never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn recover(&self, node: &str) {
        assert!(
            self.post(&format!("/nodes/{node}/recover"), ""),
            "recover {node}"
        );
    }
}

/// A `neo-ir watch` process with its log in a file.
struct Watch {
    child: Reaped,
    log: std::path::PathBuf,
}

impl Watch {
    fn start(config: &std::path::Path, log: std::path::PathBuf) -> Watch {
        let child = Reaped(
            neo_ir()
                .args(["watch", "--config"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        Watch { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        assert!(Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success());
    }

    /// SIGKILL, and reap it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The nodes of a simulated network as `[[nodes]]` tables.
fn nodes_toml(sim: &Sim, validators: u16, rpc: u16) -> String {
    let mut out = String::new();
    for i in 0..validators + rpc {
        let (name, role) = if i < validators {
            (format!("validator-{}", i + 1), "validator")
        } else {
            (format!("rpc-{}", i - validators + 1), "rpc")
        };
        out.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\nrpc = \"{}\"\nrole = \"{role}\"\n",
            sim.rpc(i)
        ));
    }
    out
}

/// A fast `neo-ir.toml` in `dir` for the simulated network: 100 ms probes, 1 s lease,
/// stability window and update reminders, and one escalation policy paging `level-N` at
/// each of `steps` seconds.
fn fast_config(
    dir: &tempfile::TempDir,
    sim: &Sim,
    (validators, rpc): (u16, u16),
    store: &str,
    steps: &[u64],
) -> std::path::PathBuf {
    let steps: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{{ after = \"{s}s\", notify = \"level-{}\" }}", i + 1))
        .collect();
    write(
        dir,
        "neo-ir.toml",
        &format!(
            "{}[probe]\ninterval = \"100ms\"\ntimeout = \"500ms\"\n\
             [detect]\nclear_for = \"300ms\"\n\
             [store]\nurl = \"{store}\"\nlease = \"1s\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [response]\nstability_window = \"1s\"\n\
             update_every = {{ P1 = \"1s\", P2 = \"1s\", P3 = \"1s\" }}\n\
             [[escalation]]\nname = \"fast\"\nsteps = [{}]\n",
            nodes_toml(sim, validators, rpc),
            steps.join(", ")
        ),
    )
}

/// One incident with its timeline, read with the CLI.
fn incident_json(store: &str, id: i64) -> Value {
    json_of(&[
        "incident",
        "show",
        &id.to_string(),
        "--json",
        "--store",
        store,
    ])
    .unwrap_or_else(|| panic!("incident {id} readable"))
}

/// Every incident in the store.
fn all_incidents(store: &str) -> Vec<Value> {
    json_of(&["incidents", "--all", "--json", "--store", store])
        .and_then(|v| v["incidents"].as_array().cloned())
        .unwrap_or_default()
}

/// The events of `timeline` of `type`.
fn events_of<'a>(timeline: &'a Value, t: &str) -> Vec<&'a Value> {
    timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == t)
        .collect()
}

/// Wait up to `limit` for `f` to give a value; panics with `what` and `context()` if not.
fn eventually<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `neo-ir ARGS... --json` parsed, or `None` when it failed.
fn json_of(args: &[&str]) -> Option<Value> {
    let out = neo_ir().args(args).output().unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn neo_ir() -> Command {
    Command::cargo_bin("neo-ir").expect("binary built")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "neo-ir.toml",
        "[[nodes]]\nname = \"v1\"\nrpc = \"http://127.0.0.1:10332\"\nrole = \"validator\"\n",
    );
    let out = neo_ir().arg("check-config").arg(&p).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 nodes: 1 validators"));
}

#[test]
fn check_config_warns_about_an_api_token_watch_could_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "neo-ir.toml",
        "[[nodes]]\nname = \"a\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n\
         [[server.tokens]]\nname = \"ops\"\nenv = \"NEO_IR_TEST_TOKEN_NOT_SET\"\naccess = \"write\"\n",
    );
    let out = neo_ir()
        .env_remove("NEO_IR_TEST_TOKEN_NOT_SET")
        .arg("check-config")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NEO_IR_TEST_TOKEN_NOT_SET is not set"),
        "{err}"
    );
    let out = neo_ir()
        .env("NEO_IR_TEST_TOKEN_NOT_SET", "s3cret")
        .arg("check-config")
        .arg(&p)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "{out:?}");
}

#[test]
fn bad_config_is_one_error_with_file_line_and_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "bad.toml",
        "[[nodes]]\nname = \"v1\"\nrpc = \"http://127.0.0.1:10332\"\nrole = \"validator\"\n\n[probe]\ninterval = \"often\"\n",
    );
    let out = neo_ir().arg("check-config").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert!(err.contains("bad.toml:7: key `probe.interval`"), "{err}");

    let p = write(
        &dir,
        "unknown.toml",
        "[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n",
    );
    let out = neo_ir().arg("check-config").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown.toml:3: key `port`"), "{err}");

    let out = neo_ir()
        .arg("check-config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    let out = neo_ir().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn empty_store_lists_no_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/x.db", dir.path().display());
    let out = neo_ir()
        .args(["incidents", "--all", "--json", "--store", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incidents"], serde_json::json!([]));
    let out = neo_ir()
        .args(["incident", "show", "7", "--store", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("incident 7 does not exist"));
}

#[test]
fn declare_stores_a_person_s_incident_with_who_declared_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/x.db", dir.path().display());
    let out = neo_ir()
        .env("USER", "alice")
        .args([
            "declare",
            "--severity",
            "P2",
            "--kind",
            "performance_degradation",
            "--summary",
            "exchanges report slow RPC",
            "--node",
            "rpc-1",
            "--json",
            "--store",
            &url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["severity"], "P2");
    assert_eq!(v["nodes"], serde_json::json!(["rpc-1"]));
    let id = v["id"].as_i64().unwrap().to_string();
    let out = neo_ir()
        .args(["incident", "show", &id, "--json", "--store", &url])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["timeline"][0]["data"]["by"], "alice");
    assert_eq!(shown["timeline"][0]["data"]["from"], "cli");

    // a wrong severity or kind is a usage error (exit 2) and stores nothing
    for (flag, value) in [("--severity", "P7"), ("--kind", "meteor")] {
        let mut args = vec![
            "declare",
            "--severity",
            "P2",
            "--kind",
            "node_down",
            "--summary",
            "x",
            "--store",
            &url,
        ];
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = value;
        let out = neo_ir().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {out:?}");
    }
    let out = neo_ir()
        .args(["incidents", "--json", "--store", &url])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incidents"].as_array().unwrap().len(), 1);

    // acknowledged by the OS user; twice is fine; an unknown incident exits 1
    let run = |user: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--store", url.as_str()]);
        neo_ir().env("USER", user).args(&all).output().unwrap()
    };
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    let out = run("bob", &["ack", &id]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("acknowledged by bob"), "{out:?}");
    let out = run("bob", &["ack", &id]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("was acknowledged by bob"), "{out:?}");
    assert_eq!(run("bob", &["ack", "4242"]).status.code(), Some(1));

    // notes and actions: added as the OS user; empty is a usage error; unknown incident 1
    let out = run("carol", &["note", &id, "rpc-1 restarted"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(run("carol", &["note", &id, "  "]).status.code(), Some(2));
    assert_eq!(run("carol", &["note", "4242", "x"]).status.code(), Some(1));
    let out = run(
        "carol",
        &[
            "note",
            &id,
            "restarted neo-cli",
            "--action",
            "--runbook-run",
            "run-7",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        run("carol", &["note", &id, "x", "--runbook-run", "run-7"])
            .status
            .code(),
        Some(2),
        "a runbook run belongs to an action"
    );

    // roles, phases, severity
    assert!(run("dave", &["assign", &id, "IC", "alice"])
        .status
        .success());
    let out = run("dave", &["assign", &id, "ic", "erin"]);
    assert!(
        stdout(&out).contains("handed over from alice to erin"),
        "{out:?}"
    );
    assert_eq!(
        run("dave", &["assign", &id, "XX", "erin"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run("dave", &["assign", &id, "TL"]).status.code(),
        Some(2),
        "who, or --release"
    );
    assert!(run("dave", &["assign", &id, "IC", "--release"])
        .status
        .success());
    let out = run(
        "dave",
        &[
            "transition",
            &id,
            "mitigating",
            "--reason",
            "moving traffic",
        ],
    );
    assert!(
        stdout(&out).contains("triage") || stdout(&out).contains("detected → mitigating"),
        "{out:?}"
    );
    assert_eq!(
        run("dave", &["transition", &id, "reviewed"]).status.code(),
        Some(1),
        "resolve first"
    );
    assert_eq!(
        run("dave", &["transition", &id, "done"]).status.code(),
        Some(2),
        "no such phase"
    );
    assert_eq!(
        run("dave", &["severity", &id, "P1", "--reason", " "])
            .status
            .code(),
        Some(2)
    );
    let out = run(
        "dave",
        &["severity", &id, "P1", "--reason", "exchanges down"],
    );
    assert!(stdout(&out).contains("raised P2 → P1"), "{out:?}");
    assert!(run("dave", &["update", &id, "rpc-1 back; watching"])
        .status
        .success());
    assert_eq!(
        run("dave", &["transition", &id, "triage", "--root-cause", "x"])
            .status
            .code(),
        Some(2),
        "a root cause goes with resolving"
    );
    let out = run(
        "dave",
        &["transition", &id, "resolved", "--root-cause", "disk full"],
    );
    assert!(stdout(&out).contains("root cause: disk full"), "{out:?}");
    assert_eq!(
        run("dave", &["review", &id, "--at", "2001-01-01T00:00:00Z"])
            .status
            .code(),
        Some(2),
        "a review is in the future"
    );
    assert!(
        run("dave", &["review", &id, "--at", "2099-01-01T10:00:00Z"])
            .status
            .success()
    );
    assert!(run("dave", &["transition", &id, "reviewed"])
        .status
        .success());

    let shown = json_of(&["incident", "show", &id, "--json", "--store", &url]).unwrap();
    assert_eq!(shown["acked_by"], "bob");
    assert_eq!(shown["status"], "reviewed");
    assert_eq!(shown["severity"], "P1");
    let types: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "opened",
            "escalated",
            "acknowledged",
            "note",
            "action",
            "role_assigned",
            "role_handed_over",
            "role_released",
            "phase_changed",
            "severity_changed",
            "status_update",
            "phase_changed",
            "review_scheduled", // by itself as the P1 resolved
            "review_scheduled", // moved by dave with --at
            "phase_changed"
        ]
    );
    assert_eq!(shown["timeline"][3]["data"]["by"], "carol");
    assert_eq!(shown["timeline"][4]["data"]["runbook_run"], "run-7");
    let text = stdout(&run("x", &["incident", "show", &id]));
    assert!(text.contains("reviewed"), "{text}");

    // silences: added, listed, expired; every change is in the audit log
    let out = run(
        "ops",
        &[
            "silence",
            "add",
            "--node",
            "rpc-1",
            "--for",
            "2h",
            "--reason",
            "disk swap",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        run("ops", &["silence", "add", "--for", "2h", "--reason", "x"])
            .status
            .code(),
        Some(2),
        "a silence names a node or a kind"
    );
    let list = json_of(&["silence", "list", "--json", "--store", &url]).unwrap();
    let silence = list["silences"][0]["id"].as_i64().unwrap().to_string();
    assert_eq!(list["silences"][0]["reason"], "disk swap");
    assert!(run("ops", &["silence", "expire", &silence])
        .status
        .success());
    assert_eq!(
        run("ops", &["silence", "expire", &silence]).status.code(),
        Some(1)
    );
    let audit = json_of(&["audit", "--json", "--store", &url]).unwrap();
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["who"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("silence.expire", "ops"),
            ("silence.create", "ops"),
            ("transition", "dave"),
            ("review_scheduled", "dave"),
            ("transition", "dave"),
            ("status_update", "dave"),
            ("severity", "dave"),
            ("transition", "dave"),
            ("role", "dave"),
            ("role", "dave"),
            ("role", "dave"),
            ("action", "carol"),
            ("note", "carol"),
            ("acknowledge", "bob"),
            ("declare", "alice"),
        ]
    );
    assert_eq!(audit["entries"][0]["from"], "cli");
}

/// `neo-ir sim` in one process, `neo-ir watch` in another, a fault through the control API,
/// the incident read back with the CLI, and SIGTERM stopping the watcher cleanly.
#[test]
fn watch_binary_detects_a_crash_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(1, 2, 300);
    let rpc = |i: u16| sim.rpc(i);
    let db = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = write(
        &dir,
        "neo-ir.toml",
        &format!(
            "[[nodes]]\nname = \"validator-1\"\nrpc = \"{}\"\nrole = \"validator\"\n\
             [[nodes]]\nname = \"rpc-1\"\nrpc = \"{}\"\nrole = \"rpc\"\n\
             [[nodes]]\nname = \"rpc-2\"\nrpc = \"{}\"\nrole = \"rpc\"\n\
             [probe]\ninterval = \"100ms\"\ntimeout = \"500ms\"\n\
             [store]\nurl = \"{db}\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
            rpc(0),
            rpc(1),
            rpc(2)
        ),
    );
    let watch_log = dir.path().join("watch.log");
    let mut watch = Reaped(
        neo_ir()
            .args(["watch", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&watch_log).unwrap())
            .spawn()
            .unwrap(),
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    sim.fault("rpc-2", "crash");
    let incident = loop {
        let out = neo_ir()
            .args(["incidents", "--json", "--store", &db])
            .output()
            .unwrap();
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            if let Some(i) = v["incidents"].as_array().and_then(|a| {
                a.iter()
                    .find(|i| i["kind"] == "node_down" && i["nodes"][0] == "rpc-2")
                    .cloned()
            }) {
                break i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no node_down incident from the watch binary; its log:\n{}\nlast `incidents`: {:?}",
            std::fs::read_to_string(&watch_log).unwrap_or_default(),
            out
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(incident["nodes"], serde_json::json!(["rpc-2"]));
    assert_eq!(incident["severity"], "P2");

    let id = incident["id"].as_i64().unwrap().to_string();
    let out = neo_ir()
        .args(["incident", "show", &id, "--store", &db])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("P2 node_down"), "{text}");
    assert!(text.contains("error_kind"), "{text}");
    assert!(text.contains("opened"), "{text}");

    // SIGTERM: the watcher stops by itself, promptly, with exit 0
    let pid = watch.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let stop_deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = watch.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < stop_deadline,
            "watch did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    drop(sim.child);
}

/// `neo-ir run validate_sync` against a simulated network: 0 when in sync, 1 naming a down
/// node, 2 for a script neo-ir does not have.
#[test]
fn run_validate_sync_says_whether_the_network_is_in_sync() {
    let sim = Sim::start(1, 2, 300);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = fast_config(&dir, &sim, (1, 2), &store, &[0]);
    let run = |extra: &[&str]| {
        neo_ir()
            .args(["run", "validate_sync", "--config"])
            .arg(&cfg)
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = eventually(
        "validate_sync passes on a healthy network",
        Duration::from_secs(20),
        || {
            let out = run(&[]);
            out.status.success().then_some(out)
        },
        String::new,
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("validate_sync: OK"));
    sim.fault("rpc-2", "crash");
    let out = run(&["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = run["report"].clone();
    assert_eq!(report["ok"], false);
    let rpc2 = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "rpc-2")
        .unwrap()
        .clone();
    assert_eq!(rpc2["verdict"], "down", "{report}");
    let out = neo_ir()
        .args(["run", "performance_diagnostics", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "rpc-2 is down: {out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = run["report"].clone();
    let levels: Vec<(String, String)> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().into(),
                n["level"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        levels.contains(&("rpc-2".into(), "down".into())),
        "{levels:?}"
    );
    for script in ["check_network_partitions", "identify_canonical_chain"] {
        let out = neo_ir()
            .args(["run", script, "--json", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let run: Value = serde_json::from_slice(&out.stdout).unwrap();
        let report = run["report"].clone();
        assert_eq!(
            report["unanswered"],
            serde_json::json!(["rpc-2"]),
            "{report}"
        );
        assert_eq!(
            report["partitions"].as_array().unwrap().len(),
            1,
            "{report}"
        );
        let expected = if script == "identify_canonical_chain" {
            0
        } else {
            1
        };
        assert_eq!(out.status.code(), Some(expected), "{script}: {out:?}");
    }
    let out = neo_ir()
        .args(["run", "no_such_script", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validate_sync"));
}
