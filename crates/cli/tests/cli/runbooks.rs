//! The runbook scripts end to end, on real processes and files: `neo-ir sim` (the network),
//! `neo-ir agent` with the `process` backend, which starts, stops and kills a real
//! `neo-ir sim node` child process (data directory, LOCK file, block file), and the
//! `neo-ir run` / `approve` / `runs` / `incident` commands recording into an SQLite store.
//! Then `neo-ir watch` with a `[[remediation]]` policy restarts a killed node by itself,
//! verifies it is in sync and resolves the incident, and its circuit breaker stops a crash
//! loop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::simnode::{count, free_port};
use super::{events_of, eventually, incident_json, neo_ir, nodes_toml, write, Reaped, Sim, Watch};

/// The variable holding the agent's token, set for every `neo-ir` this test binary starts.
pub(super) const TOKEN_ENV: &str = "NEO_IR_TEST_AGENT_TOKEN";
pub(super) const TOKEN: &str = "runbook-test-agent-token";
/// The managed node's name in the configuration.
pub(super) const NODE: &str = "rpc-9";

/// `neo-ir` with the agent's token in its environment.
pub(super) fn cli() -> Command {
    let mut c = neo_ir();
    c.env(TOKEN_ENV, TOKEN);
    c
}

/// A node host: `neo-ir agent` managing one `neo-ir sim node` that follows the network.
pub(super) struct Host {
    agent: Reaped,
    agent_port: u16,
    rpc_port: u16,
    data: PathBuf,
    backups: PathBuf,
    logs: PathBuf,
    pid_file: PathBuf,
    agent_log: PathBuf,
}

impl Host {
    pub(super) fn start(sim: &Sim, dir: &Path) -> Host {
        let bin = assert_cmd::cargo::cargo_bin("neo-ir");
        let (agent_port, rpc_port) = (free_port(), free_port());
        let data = dir.join("data");
        let backups = dir.join("backups");
        let logs = dir.join("logs");
        let state = dir.join("state");
        let diagnostics = dir.join("diagnostics");
        for d in [&backups, &logs, &state, &diagnostics] {
            std::fs::create_dir_all(d).unwrap();
        }
        let pid_file = dir.join("node.pid");
        let agent_log = dir.join("agent.log");
        let db_tool = format!("{},sim,db", bin.display());
        let agent = Reaped(
            cli()
                .args(["agent", "--listen", &format!("127.0.0.1:{agent_port}")])
                .args(["--token-env", TOKEN_ENV])
                .arg("--data-dir")
                .arg(&data)
                .args(["--rpc-port", &rpc_port.to_string()])
                .args(["--p2p-port", &(rpc_port + 1).to_string()])
                .arg("--log-file")
                .arg(logs.join("node.log"))
                .arg("--process-pid-file")
                .arg(&pid_file)
                .args(["--start-wait", "20s", "--stop-timeout", "5s"])
                .arg("--backup-dir")
                .arg(&backups)
                .arg("--diagnostics-dir")
                .arg(&diagnostics)
                .arg("--state-dir")
                .arg(&state)
                .args(["--implementation", "neo-ir-sim", "--db-tool", &db_tool])
                .arg("--")
                .arg(&bin)
                .args(["sim", "node", "--upstream", &sim.rpc(0)])
                .args(["--listen", &format!("127.0.0.1:{rpc_port}")])
                .arg("--data-dir")
                .arg(&data)
                .args(["--poll", "50ms"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&agent_log).unwrap())
                .spawn()
                .unwrap(),
        );
        let host = Host {
            agent,
            agent_port,
            rpc_port,
            data,
            backups,
            logs,
            pid_file,
            agent_log,
        };
        eventually(
            "the agent listens",
            Duration::from_secs(20),
            || std::net::TcpStream::connect(("127.0.0.1", agent_port)).ok(),
            || host.agent_log(),
        );
        host
    }

    pub(super) fn agent_log(&self) -> String {
        std::fs::read_to_string(&self.agent_log).unwrap_or_default()
    }

    /// The managed node's `[[nodes]]` table.
    fn node_toml(&self) -> String {
        format!(
            "[[nodes]]\nname = \"{NODE}\"\nrpc = \"http://127.0.0.1:{}/\"\nrole = \"rpc\"\n\
             agent = \"http://127.0.0.1:{}\"\nagent_token_env = \"{TOKEN_ENV}\"\n",
            self.rpc_port, self.agent_port
        )
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The node answers JSON-RPC.
    pub(super) fn answers(&self) -> bool {
        count(self.rpc_port).is_some()
    }

    fn kill_node(&self) {
        let pid = self.pid().expect("a pid file");
        assert!(Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success());
        eventually(
            "the node is gone",
            Duration::from_secs(10),
            || (!self.answers()).then_some(()),
            String::new,
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // the node runs in its own process group (the agent started it detached)
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.agent.0.kill();
    }
}

impl Host {
    /// Wait until the node answers JSON-RPC (after a start, restart, restore, repair).
    fn wait_up(&self, what: &str) {
        eventually(
            what,
            Duration::from_secs(20),
            || self.answers().then_some(()),
            || self.agent_log(),
        );
    }

    /// Wait until the node has at least `n` blocks.
    fn wait_blocks(&self, n: u64) {
        eventually(
            "the node has a few blocks",
            Duration::from_secs(20),
            || count(self.rpc_port).filter(|h| *h >= n),
            || self.agent_log(),
        );
    }
}

/// Run `neo-ir ARGS... --config CFG`.
pub(super) fn run(cfg: &Path, args: &[&str]) -> Output {
    cli().args(args).arg("--config").arg(cfg).output().unwrap()
}

pub(super) fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The run id in "neo-ir approve N".
fn waiting_run(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(3),
        "waits for an approval: {}",
        text(o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("neo-ir approve "))
        .unwrap_or_else(|| panic!("no approve line: {out}"))
        .trim()
        .to_string()
}

/// Request a destructive script, check it waits, approve it; the approve's output.
fn approved(cfg: &Path, args: &[&str]) -> Output {
    let waiting = run(cfg, args);
    let id = waiting_run(&waiting);
    run(cfg, &["approve", &id, "--json"])
}

/// The run printed by `--json`.
fn run_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

pub(super) fn config(
    dir: &tempfile::TempDir,
    sim: &Sim,
    host: &Host,
    store: &str,
    extra: &str,
) -> PathBuf {
    write(
        dir,
        "neo-ir.toml",
        &format!(
            "{}{}[probe]\ninterval = \"100ms\"\ntimeout = \"500ms\"\n\
             [detect]\nclear_for = \"300ms\"\n\
             [store]\nurl = \"{store}\"\nlease = \"1s\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [response]\nstability_window = \"1s\"\n\
             [runbook]\nverify_within = \"20s\"\nagent_timeout = \"60s\"\n{extra}",
            nodes_toml(sim, 4, 1),
            host.node_toml(),
        ),
    )
}

/// Start the node through the agent and wait until it follows the network.
pub(super) fn start_node(cfg: &Path, host: &Host) {
    let o = run(cfg, &["run", "start_node", "--node", NODE]);
    assert!(
        o.status.success(),
        "start_node: {}\n{}",
        text(&o),
        host.agent_log()
    );
    host.wait_up("the node answers");
}

#[test]
fn host_scripts_act_on_a_real_node_process_with_approvals() {
    let sim = Sim::start(4, 1, 300);
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(&sim, dir.path());
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = config(&dir, &sim, &host, &store, "");
    start_node(&cfg, &host);

    // a dry run prints the exact steps and changes nothing
    let pid = host.pid();
    let o = run(
        &cfg,
        &["run", "quick_recovery", "--node", NODE, "--dry-run"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("[destructive]") && out.contains("nothing was changed"),
        "{out}"
    );
    assert_eq!(host.pid(), pid, "a dry run restarts nothing");

    // destructive: waits for an approval, then restarts the process
    let o = approved(&cfg, &["run", "restart_node", "--node", NODE]);
    assert!(o.status.success(), "{}\n{}", text(&o), host.agent_log());
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(r["approved_by"].is_string(), "{r}");
    assert_ne!(host.pid(), pid, "a new process");
    assert!(host.answers());

    // approving twice is refused
    let again = run(&cfg, &["approve", &r["id"].to_string()]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));

    // backup: stop, archive with checksum, start
    let o = approved(&cfg, &["run", "backup", "--node", NODE]);
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}\n{}", host.agent_log());
    let archives: Vec<_> = std::fs::read_dir(&host.backups)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        archives.iter().any(|a| a.ends_with(".tar.gz")),
        "{archives:?}"
    );
    assert!(
        archives.iter().any(|a| a.ends_with(".sha256")),
        "{archives:?}"
    );
    host.wait_up("the node is back after the backup");

    // corruption: stop the node, damage the block file; the implementation's own check
    // finds it, the verified restore brings the chain back
    host.wait_blocks(5);
    let o = approved(&cfg, &["run", "stop_node", "--node", NODE]);
    assert_eq!(run_json(&o)["status"], "succeeded", "{}", text(&o));
    let blocks = host.data.join("chain").join("blocks.dat");
    let mut bytes = std::fs::read(&blocks).unwrap();
    assert!(bytes.len() > 300, "some blocks were kept");
    bytes[150] ^= 0xff;
    std::fs::write(&blocks, &bytes).unwrap();
    let o = run(
        &cfg,
        &["run", "check_db_integrity", "--node", NODE, "--json"],
    );
    assert_eq!(o.status.code(), Some(1), "corruption found: {}", text(&o));
    let o = approved(
        &cfg,
        &[
            "run",
            "restore_backup",
            "--node",
            NODE,
            "--latest",
            "--verify",
        ],
    );
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}\n{}", host.agent_log());
    host.wait_up("the restored node answers");

    // the other way out: the implementation's own repair (node stopped and started around
    // it), then its compaction
    host.wait_blocks(5);
    let o = approved(&cfg, &["run", "stop_node", "--node", NODE]);
    assert_eq!(run_json(&o)["status"], "succeeded", "{}", text(&o));
    let mut bytes = std::fs::read(&blocks).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    std::fs::write(&blocks, &bytes).unwrap();
    let o = approved(&cfg, &["run", "repair_database", "--node", NODE]);
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}\n{}", host.agent_log());
    assert!(
        !host.answers(),
        "a node stopped before the repair stays stopped"
    );
    start_node(&cfg, &host);
    let o = approved(&cfg, &["run", "optimize_database", "--node", NODE]);
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}\n{}", host.agent_log());
    host.wait_up("the node answers after the compaction");

    // quick_recovery after a SIGKILL: the stale LOCK keeps the node from starting until the
    // recovery clears it (only because the process is not running)
    host.kill_node();
    assert!(host.data.join("LOCK").exists(), "a SIGKILL leaves the LOCK");
    let o = approved(&cfg, &["run", "quick_recovery", "--node", NODE]);
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}\n{}", host.agent_log());
    assert!(host.answers(), "recovered");
    let output = r["results"].to_string();
    assert!(output.contains("LOCK"), "the removed LOCK is listed: {r}");

    // emergency_cleanup frees rotated logs and keeps the active log and the chain
    let rotated = host.logs.join("node.log.1");
    std::fs::write(&rotated, vec![b'x'; 512 * 1024]).unwrap();
    let o = approved(&cfg, &["run", "emergency_cleanup", "--node", NODE]);
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(!rotated.exists(), "the rotated log is gone");
    assert!(blocks.exists(), "never the chain data");
    assert!(
        r.to_string().contains("524288") || r["report"].to_string().contains("bytes"),
        "{r}"
    );

    // diagnostics on an incident: the archive is attached, the run is on the timeline, the
    // checklist shows the step done by the run
    let o = cli()
        .args([
            "declare",
            "--severity",
            "P3",
            "--kind",
            "node_down",
            "--summary",
            "rpc-9 restarts",
            "--node",
            NODE,
            "--json",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let incident = run_json(&o)["id"].as_i64().unwrap();
    let o = run(
        &cfg,
        &[
            "run",
            "incident_diagnostics",
            "--incident",
            &incident.to_string(),
            "--json",
        ],
    );
    let r = run_json(&o);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["node"], NODE, "the incident's only node by default");
    assert!(r["report"]["attachment_id"].is_i64(), "{r}");
    let timeline = incident_json(&store, incident);
    let runs = events_of(&timeline, "runbook_run");
    assert!(
        runs.iter()
            .any(|e| e["data"]["script"] == "incident_diagnostics"
                && e["data"]["status"] == "succeeded"),
        "{timeline}"
    );
    let o = run(
        &cfg,
        &[
            "incident",
            "show",
            &incident.to_string(),
            "--runbook",
            "--store",
            &store,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("[x] diagnostics"), "{out}");
    assert!(out.contains("[ ] restore"), "{out}");
    let o = cli()
        .args([
            "incident",
            "step",
            &incident.to_string(),
            "service_status",
            "--store",
            &store,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[x] service_status"));
    let timeline = incident_json(&store, incident);
    assert_eq!(
        events_of(&timeline, "checklist_step").len(),
        1,
        "{timeline}"
    );

    // hostile input: a blocklist with a shell injection is refused before anything runs,
    // naming the line
    let bad = write(&dir, "ips.txt", "203.0.113.7\n1.2.3.4; rm -rf /\n");
    let o = run(
        &cfg,
        &["run", "block_ips", "--node", NODE, bad.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 2"),
        "{}",
        text(&o)
    );
    // a good one: the dry run shows the nftables rules
    let good = write(
        &dir,
        "good.txt",
        "# attackers\n203.0.113.7\n198.51.100.0/24\n",
    );
    let o = run(
        &cfg,
        &[
            "run",
            "block_ips",
            "--node",
            NODE,
            good.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("203.0.113.7") && out.contains("nft"), "{out}");

    // every run is listed
    let list: Value = serde_json::from_slice(
        &cli()
            .args(["runs", "--json", "--store", &store])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(list["runs"].as_array().unwrap().len() >= 10, "{list}");
}

/// `[[remediation]]` for node_down on RPC nodes: `neo-ir watch` restarts a killed node with
/// quick_recovery, verifies it with validate_sync, and the incident resolves; the second
/// crash within the window trips the circuit breaker (max_runs = 1): no run, a timeline
/// event saying people take over.
#[test]
fn auto_remediation_restarts_a_crashed_node_and_the_breaker_stops_a_crash_loop() {
    let sim = Sim::start(4, 1, 300);
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(&sim, dir.path());
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = config(
        &dir,
        &sim,
        &host,
        &store,
        "[[remediation]]\nkind = \"node_down\"\nroles = [\"rpc\"]\nscript = \"quick_recovery\"\n\
         max_runs = 1\nwindow = \"1h\"\ndelay = \"0s\"\n",
    );
    start_node(&cfg, &host);
    let log = dir.path().join("watch.log");
    let watch = {
        // the watcher reads the agent's token from its environment
        std::env::set_var(TOKEN_ENV, TOKEN);
        Watch::start(&cfg, log)
    };
    let context = || format!("{}\n--- agent\n{}", watch.log(), host.agent_log());

    host.kill_node();
    let incident = eventually(
        "node_down on rpc-9 opens",
        Duration::from_secs(20),
        || {
            super::all_incidents(&store)
                .into_iter()
                .find(|i| i["kind"] == "node_down" && i["nodes"] == serde_json::json!([NODE]))
                .and_then(|i| i["id"].as_i64())
        },
        context,
    );
    // the policy's run restarts it, verifies sync, and the incident resolves by itself
    let resolved = eventually(
        "the incident resolves after the automatic recovery",
        Duration::from_secs(60),
        || {
            let t = incident_json(&store, incident);
            (t["status"] == "resolved").then_some(t)
        },
        context,
    );
    let runs = events_of(&resolved, "runbook_run");
    let done = runs
        .iter()
        .find(|e| e["data"]["status"] == "succeeded")
        .unwrap_or_else(|| panic!("a succeeded run on the timeline: {resolved}"));
    assert_eq!(done["data"]["automatic"], true, "{done}");
    assert_eq!(done["data"]["script"], "quick_recovery");
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .contains("verified in sync"),
        "{done}"
    );
    assert!(host.answers());

    // a second crash within the hour: the breaker (max_runs = 1) holds, people take over
    host.kill_node();
    let tripped = eventually(
        "the breaker opens on the second crash",
        Duration::from_secs(30),
        || {
            super::all_incidents(&store)
                .into_iter()
                .filter(|i| i["kind"] == "node_down")
                .filter_map(|i| i["id"].as_i64())
                .map(|id| incident_json(&store, id))
                .find(|t| !events_of(t, "remediation").is_empty())
        },
        context,
    );
    let event = &events_of(&tripped, "remediation")[0];
    assert!(
        event["message"].as_str().unwrap().contains("crash loop"),
        "{event}"
    );
    // give the watcher a few more rounds: still one automatic run only, the node stays down
    std::thread::sleep(Duration::from_millis(1500));
    let list: Value = serde_json::from_slice(
        &cli()
            .args(["runs", "--json", "--store", &store])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let automatic = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["automatic"] == true)
        .count();
    assert_eq!(automatic, 1, "{list}");
    assert!(!host.answers(), "nobody restarted it");
    watch.kill();
}

/// The scripts that need no agent: the network checks, `deploy_node_fleet` (dry run, files
/// written, never overwritten) and `force_view_change` (refused without a failing primary,
/// an error for a validator without an agent), each recorded as a run.
#[test]
fn fleet_rendering_and_view_change_guards() {
    let sim = Sim::start(4, 1, 300);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = write(
        &dir,
        "neo-ir.toml",
        &format!(
            "{}[store]\nurl = \"{store}\"\n[probe]\ninterval = \"100ms\"\ntimeout = \"500ms\"\n",
            nodes_toml(&sim, 4, 1)
        ),
    );
    eventually(
        "the network is in sync",
        Duration::from_secs(20),
        || {
            run(&cfg, &["run", "validate_sync"])
                .status
                .success()
                .then_some(())
        },
        String::new,
    );
    // once the chain has a few blocks, every validator has proposed
    let o = eventually(
        "every validator proposes",
        Duration::from_secs(20),
        || {
            let o = run(&cfg, &["run", "check_validator_connectivity", "--json"]);
            o.status.success().then_some(o)
        },
        || text(&run(&cfg, &["run", "check_validator_connectivity"])),
    );
    assert_eq!(
        run_json(&o)["report"]["validators"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    let out = dir.path().join("fleet");
    let out_s = out.to_str().unwrap();
    let fleet = [
        "run",
        "deploy_node_fleet",
        "--count",
        "3",
        "--out",
        out_s,
        "--implementation",
        "neo-go",
        // a private network past HF_Echidna: its configured timing is not in getversion
        "--ms-per-block",
        "300",
        "--max-traceable-blocks",
        "2102400",
    ];
    let mut dry = fleet.to_vec();
    dry.push("--dry-run");
    let o = run(&cfg, &dry);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("your"),
        "says applying is the operator's step: {}",
        text(&o)
    );
    assert!(!out.exists(), "a dry run writes nothing");
    let o = run(&cfg, &fleet);
    assert!(o.status.success(), "{}", text(&o));
    let nginx = std::fs::read_dir(out.join("nginx")).unwrap().count();
    assert_eq!(nginx, 1);
    let units = walk(&out)
        .iter()
        .filter(|p| p.ends_with(".service"))
        .count();
    assert_eq!(units, 3, "{:?}", walk(&out));
    let o = run(&cfg, &fleet);
    assert_eq!(o.status.code(), Some(1), "never overwrites: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("exist"),
        "{}",
        text(&o)
    );
    let o = run(
        &cfg,
        &["run", "deploy_node_fleet", "--count", "0", "--out", out_s],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // every validator proposes: nothing to restart
    let o = run(&cfg, &["run", "force_view_change", "--coordinate"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no failing primary"),
        "{}",
        text(&o)
    );
    let o = run(
        &cfg,
        &[
            "run",
            "force_view_change",
            "--coordinate",
            "--nodes",
            "validator-2",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("agent"),
        "{}",
        text(&o)
    );
    // a crashed validator misses its turns: it is the failing primary to restart, which
    // needs its agent
    sim.fault("validator-2", "crash");
    let o = eventually(
        "validator-2 is found failing",
        Duration::from_secs(20),
        || {
            let o = run(&cfg, &["run", "force_view_change", "--coordinate"]);
            (o.status.code() == Some(2)).then_some(o)
        },
        || text(&run(&cfg, &["run", "check_validator_connectivity"])),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("validator-2") && err.contains("agent"),
        "{}",
        text(&o)
    );
    let o = run(&cfg, &["run", "force_view_change"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no RPC"),
        "{}",
        text(&o)
    );
}

/// Every file under `dir`, as strings.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
