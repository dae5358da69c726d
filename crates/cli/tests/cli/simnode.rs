//! `neo-ir sim node` as a process next to `neo-ir sim`: it catches up, a SIGKILL leaves its
//! LOCK behind and the next start fails with exit 1 until the LOCK is removed, SIGTERM stops it
//! cleanly; `neo-ir sim db check` tells a healthy data directory from a corrupt copy and refuses
//! while the node runs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{eventually, neo_ir, Reaped, Sim};

/// Records of the block file are this long (crates/sim/STANDALONE.md).
const RECORD_LEN: usize = 100;

/// A free loopback port, released for the node (which binds it again on every restart).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `result` of a JSON-RPC call over a plain TCP connection, `None` if no answer.
fn rpc(port: u16, method: &str) -> Option<Value> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#);
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (_, json) = resp.split_once("\r\n\r\n")?;
    serde_json::from_str::<Value>(json)
        .ok()?
        .get("result")
        .cloned()
}

pub(super) fn count(port: u16) -> Option<u64> {
    rpc(port, "getblockcount").and_then(|v| v.as_u64())
}

/// A `neo-ir sim node` process with its log file.
struct Node {
    child: Reaped,
    stderr: PathBuf,
}

/// Starts a node; its stderr goes to `DIR/<name>.stderr`.
fn start_node(upstream: &str, port: u16, data: &Path, dir: &Path, name: &str) -> Node {
    let stderr = dir.join(format!("{name}.stderr"));
    let child = Reaped(
        neo_ir()
            .args(["sim", "node", "--upstream", upstream])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data)
            .arg("--log-file")
            .arg(dir.join("node.log"))
            .args(["--poll", "50ms"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    Node { child, stderr }
}

/// Waits for the process to exit (20 s at most).
fn exit_of(node: &mut Node) -> ExitStatus {
    eventually(
        "the node exits",
        Duration::from_secs(20),
        || node.child.try_wait().unwrap(),
        || std::fs::read_to_string(&node.stderr).unwrap_or_default(),
    )
}

fn db_check(data: &Path) -> (Option<i32>, String, String) {
    let out = neo_ir()
        .args(["sim", "db", "check", "--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sim_node_process_lock_after_sigkill_and_db_check() {
    let sim = Sim::start(4, 1, 100);
    let upstream = sim.rpc(4);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let lock = data.join("LOCK");
    let log = tmp.path().join("node.log");
    let port = free_port();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // It catches up with the network.
    let mut node = start_node(&upstream, port, &data, tmp.path(), "first");
    let near = |port: u16| {
        let net = count(sim.base + 4)?;
        let ours = count(port)?;
        (ours + 2 >= net && ours > 5).then_some(ours)
    };
    let height = eventually(
        "the node catches up",
        Duration::from_secs(20),
        || near(port),
        read_log,
    );
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        node.child.id().to_string(),
        "LOCK holds the pid"
    );

    // The database tools refuse while it runs (exit 2).
    let (code, _, stderr) = db_check(&data);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("held by running process"), "{stderr}");

    // SIGKILL: LOCK stays, and the next start fails (exit 1) naming it.
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    assert!(lock.exists(), "a killed node leaves LOCK behind");
    let mut again = start_node(&upstream, port, &data, tmp.path(), "locked");
    let status = exit_of(&mut again);
    assert_eq!(status.code(), Some(1));
    let expected = format!("IO error: lock {}: already held by process", lock.display());
    let stderr = std::fs::read_to_string(&again.stderr).unwrap();
    assert_eq!(stderr.trim(), format!("error: {expected}"));
    let last = read_log();
    let last = last.lines().last().unwrap_or_default();
    assert!(
        last.contains(" ERROR ") && last.ends_with(&expected),
        "{last}"
    );

    // Without the stale LOCK it starts, resumes from disk and follows the network again.
    std::fs::remove_file(&lock).unwrap();
    let mut node = start_node(&upstream, port, &data, tmp.path(), "restarted");
    eventually(
        "the restarted node answers",
        Duration::from_secs(20),
        || count(port).filter(|c| *c >= height),
        read_log,
    );
    eventually(
        "it follows",
        Duration::from_secs(20),
        || near(port),
        read_log,
    );

    // SIGTERM: exit 0 and LOCK released.
    assert!(Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(exit_of(&mut node).code(), Some(0), "{}", read_log());
    assert!(!lock.exists(), "a clean stop removes LOCK");

    // db check: healthy (exit 0), and a copy with one flipped byte in block 3 (exit 1).
    let (code, stdout, stderr) = db_check(&data);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["blocks"].as_u64().unwrap() > 5);
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(copy.join("chain")).unwrap();
    let mut blocks = std::fs::read(data.join("chain/blocks.dat")).unwrap();
    blocks[3 * RECORD_LEN + 10] ^= 0xff;
    std::fs::write(copy.join("chain/blocks.dat"), &blocks).unwrap();
    let (code, stdout, stderr) = db_check(&copy);
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["blocks"], 3);
    assert_eq!(report["first_bad"]["index"], 3);
    assert_eq!(report["first_bad"]["reason"], "checksum mismatch");
}
