//! The standalone node in-process against a network on ephemeral ports: it catches up and
//! serves the network's hashes, resumes from its data directory, refuses a `LOCK`, stops on
//! a corrupt block file, and the database tools check, repair and optimize that file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use neo_ir_sim::standalone::{
    blocks_path, db_check, db_optimize, db_repair, lock_path, Corruption, DbError, RECORD_LEN,
};
use neo_ir_sim::{run_node, NodeError, NodeOptions};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{eventually, Net};

/// A free loopback port (bound and released: the node binds it again on every restart).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A standalone node running in a task of this test.
struct Node {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), NodeError>>,
}

impl Node {
    fn start(upstream: &str, addr: SocketAddr, dir: &Path, log: &Path) -> Node {
        let mut opts = NodeOptions::new(upstream, addr, dir.to_path_buf());
        opts.log_file = Some(log.to_path_buf());
        opts.poll = Duration::from_millis(50);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run_node(opts, async {
            let _ = rx.await;
        }));
        Node {
            url: format!("http://{addr}/"),
            stop: Some(tx),
            task,
        }
    }

    /// Stops it the clean way (SIGTERM in the binary) and returns how it ended.
    async fn stop(mut self) -> Result<(), NodeError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the node stops")
            .expect("task")
    }

    /// How a start that must fail ended.
    async fn failure(self) -> NodeError {
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the node gives up")
            .expect("task")
            .expect_err("the start fails")
    }
}

/// The `result` of a call, or `None` while the node does not answer.
async fn try_call(net: &Net, url: &str, method: &str, params: Value) -> Option<Value> {
    let req = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params});
    let resp = net.c.post(url).json(&req).send().await.ok()?;
    let v: Value = resp.json().await.ok()?;
    v.get("result").cloned()
}

/// Waits until `node` reports at least `height`.
async fn wait_node_height(net: &Net, url: &str, height: u64) {
    eventually(&format!("node at height {height}"), || async {
        try_call(net, url, "getblockcount", json!([]))
            .await
            .and_then(|c| c.as_u64())
            .is_some_and(|c| c > height)
    })
    .await;
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

struct Setup {
    net: Net,
    upstream: String,
    dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
}

async fn setup() -> Setup {
    let net = Net::start(100).await;
    let upstream = net.url("rpc-1");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("node.log");
    Setup {
        net,
        upstream,
        data,
        log,
        dir,
        addr: free_addr(),
    }
}

impl Setup {
    fn start(&self) -> Node {
        Node::start(&self.upstream, self.addr, &self.data, &self.log)
    }

    /// Waits for the network to reach `height`, starts the node and waits until it follows.
    async fn start_at(&self, height: u64) -> Node {
        self.net.wait_height(height).await;
        let node = self.start();
        wait_node_height(&self.net, &node.url, height).await;
        node
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_follows_the_network_and_serves_its_hashes() {
    let s = setup().await;
    let net = &s.net;
    net.wait_height(5).await;
    let node = s.start();
    let target = net.height();
    wait_node_height(net, &node.url, target).await;

    // Same blocks as the network, to the byte of every header.
    net.stall();
    let h = net.height();
    wait_node_height(net, &node.url, h).await;
    assert_eq!(net.call(&node.url, "getblockcount", json!([])).await, h + 1);
    for i in [0, 1, h / 2, h] {
        assert_eq!(
            net.call(&node.url, "getblockhash", json!([i])).await,
            net.block_hash(&s.upstream, i).await,
            "block {i}"
        );
        assert_eq!(
            net.call(&node.url, "getblockheader", json!([i, true]))
                .await,
            net.header(&s.upstream, i).await,
            "header {i}"
        );
    }
    assert_eq!(
        net.call(&node.url, "getbestblockhash", json!([])).await,
        net.call(&s.upstream, "getbestblockhash", json!([])).await
    );
    let root = |url: String| async move { net.call(&url, "getstateroot", json!([2])).await };
    assert_eq!(root(node.url.clone()).await, root(s.upstream.clone()).await);

    // getversion: the upstream's protocol, its own port and nonce; one peer, the upstream.
    let ours = net.call(&node.url, "getversion", json!([])).await;
    let theirs = net.call(&s.upstream, "getversion", json!([])).await;
    assert_eq!(ours["protocol"], theirs["protocol"]);
    assert_eq!(ours["protocol"]["network"], 5_195_086);
    assert_eq!(ours["tcpport"], s.addr.port() + 1);
    assert_eq!(
        net.call(&node.url, "getconnectioncount", json!([])).await,
        1
    );
    let peers = net.call(&node.url, "getpeers", json!([])).await;
    assert_eq!(
        peers["connected"],
        json!([{"address": "127.0.0.1", "port": theirs["tcpport"]}])
    );
    let metrics = net
        .c
        .get(format!("{}metrics", node.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains(&format!("neo_node_ledger_height {h}\n")),
        "{metrics}"
    );

    // The upstream goes away: the node keeps serving, with no peer, and says so at most
    // once per 5 s.
    net.resume();
    let gone = std::time::Instant::now();
    net.clone().shutdown().await;
    eventually("no peer", || async {
        try_call(net, &node.url, "getconnectioncount", json!([])).await == Some(json!(0))
    })
    .await;
    assert!(
        net.call(&node.url, "getblockcount", json!([]))
            .await
            .as_u64()
            >= Some(h + 1)
    );
    node.stop().await.expect("clean stop");
    let allowed = gone.elapsed().as_secs() / 5 + 1;
    let log = read(&s.log);
    assert!(
        log.contains(" INFO neo_ir_sim::node: persisted block "),
        "{log}"
    );
    let warnings = log
        .lines()
        .filter(|l| l.contains("cannot sync from upstream"))
        .count() as u64;
    assert!((1..=allowed).contains(&warnings), "{log}");
    assert!(log
        .lines()
        .all(|l| !l.contains("cannot sync") || l.contains(" WARN ")));
    assert!(!log.to_lowercase().contains("error"), "{log}");
    assert!(!lock_path(&s.data).exists(), "a clean stop releases LOCK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_disk_and_a_lock_stops_the_start() {
    let s = setup().await;
    let net = &s.net;
    let node = s.start_at(3).await;
    net.stall();
    let h = net.height();
    wait_node_height(net, &node.url, h).await;
    assert_eq!(
        std::fs::read_to_string(lock_path(&s.data))
            .expect("LOCK while running")
            .trim(),
        std::process::id().to_string()
    );
    node.stop().await.expect("clean stop");
    let size = std::fs::metadata(blocks_path(&s.data))
        .expect("blocks")
        .len();
    assert_eq!(size, (h + 1) * RECORD_LEN as u64);

    // Restarted on the same directory: the blocks come from disk, nothing is fetched again.
    let node = s.start();
    wait_node_height(net, &node.url, h).await;
    assert!(read(&s.log).contains(&format!("loaded {} blocks from", h + 1)));
    assert_eq!(
        std::fs::metadata(blocks_path(&s.data))
            .expect("blocks")
            .len(),
        size
    );
    node.stop().await.expect("clean stop");

    // A LOCK left behind (a killed node): the start fails, naming it, and leaves it there.
    std::fs::write(lock_path(&s.data), "4242\n").expect("write LOCK");
    let err = s.start().failure().await;
    assert!(matches!(err, NodeError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "IO error: lock {}: already held by process",
            lock_path(&s.data).display()
        )
    );
    assert!(lock_path(&s.data).exists(), "someone else's LOCK is kept");
    let log = read(&s.log);
    let last = log.lines().last().expect("a line");
    assert!(last.contains(" ERROR ") && last.ends_with(&msg), "{last}");
    std::fs::remove_file(lock_path(&s.data)).expect("rm LOCK");
    let node = s.start();
    wait_node_height(net, &node.url, h).await;
    node.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_stops_the_start_until_repaired() {
    let s = setup().await;
    let net = &s.net;
    let node = s.start_at(12).await;
    node.stop().await.expect("clean stop");
    let file = blocks_path(&s.data);
    let healthy = db_check(&s.data).expect("check");
    assert!(healthy.ok && healthy.first_bad.is_none(), "{healthy:?}");
    assert!(healthy.blocks >= 13);

    // One flipped byte in block 7.
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[7 * RECORD_LEN + 50] ^= 0x20;
    std::fs::write(&file, &bytes).expect("write");
    let err = s.start().failure().await;
    assert_eq!(
        err.to_string(),
        format!(
            "Corruption: block 7: checksum mismatch in {}",
            file.display()
        )
    );
    assert!(!lock_path(&s.data).exists(), "a failed start releases LOCK");
    assert!(read(&s.log).contains(&format!(
        " ERROR neo_ir_sim::node: Corruption: block 7: checksum mismatch in {}",
        file.display()
    )));
    let report = db_check(&s.data).expect("check");
    assert!(!report.ok);
    assert_eq!(report.blocks, 7);
    let bad = report.first_bad.expect("first bad");
    assert_eq!((bad.index, bad.reason), (7, Corruption::Checksum));
    assert!(matches!(db_optimize(&s.data), Err(DbError::Corrupt { .. })));

    // Repair drops block 7 and later; the node re-syncs them from the network.
    let total = bytes.len() as u64 / RECORD_LEN as u64;
    let repaired = db_repair(&s.data).expect("repair");
    assert_eq!(
        (repaired.dropped, repaired.blocks, repaired.height),
        (total - 7, 7, Some(6))
    );
    assert!(db_check(&s.data).expect("check").ok);
    let node = s.start();
    let h = net.height();
    wait_node_height(net, &node.url, h).await;
    assert_eq!(
        net.call(&node.url, "getblockhash", json!([7])).await,
        net.block_hash(&s.upstream, 7).await
    );
    node.stop().await.expect("clean stop");

    // A torn write (a partial record at the end) is corruption too.
    let mut bytes = std::fs::read(&file).expect("read");
    let whole = bytes.len() / RECORD_LEN;
    bytes.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&file, &bytes).expect("write");
    let err = s.start().failure().await;
    assert!(
        err.to_string()
            .starts_with(&format!("Corruption: block {whole}: torn record (3 of")),
        "{err}"
    );
    let repaired = db_repair(&s.data).expect("repair");
    assert_eq!((repaired.dropped, repaired.blocks), (1, whole as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_tools_refuse_a_running_node_and_optimize_keeps_the_chain() {
    let s = setup().await;
    let node = s.start_at(4).await;

    // LOCK holds this test's pid: the node is running.
    for r in [
        db_check(&s.data).map(|_| ()),
        db_repair(&s.data).map(|_| ()),
        db_optimize(&s.data).map(|_| ()),
    ] {
        match r {
            Err(DbError::InUse { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("not refused: {other:?}"),
        }
    }
    node.stop().await.expect("clean stop");

    // A stale LOCK (no such process) does not stop them; a LOCK without a pid does.
    std::fs::write(lock_path(&s.data), "2147483600\n").expect("stale LOCK");
    let before = db_check(&s.data).expect("stale LOCK is ignored");
    assert!(before.ok);
    std::fs::write(lock_path(&s.data), "").expect("empty LOCK");
    assert!(matches!(
        db_check(&s.data),
        Err(DbError::UnknownLock { .. })
    ));
    std::fs::remove_file(lock_path(&s.data)).expect("rm LOCK");

    // Leftover temp files are counted by check and removed by optimize; the chain stays.
    let chain_dir = blocks_path(&s.data).parent().expect("dir").to_path_buf();
    std::fs::write(chain_dir.join("batch-3.tmp"), [0u8; 250]).expect("tmp");
    assert_eq!(db_check(&s.data).expect("check").temp_files, 1);
    let blocks = std::fs::read(blocks_path(&s.data)).expect("read");
    let done = db_optimize(&s.data).expect("optimize");
    assert_eq!(done.blocks, before.blocks);
    assert_eq!(done.bytes_before, blocks.len() as u64 + 250);
    assert_eq!(done.bytes_after, blocks.len() as u64);
    assert_eq!(done.temp_files_removed, 1);
    assert_eq!(std::fs::read(blocks_path(&s.data)).expect("read"), blocks);
    let after = db_check(&s.data).expect("check");
    assert!(after.ok && after.temp_files == 0, "{after:?}");
    assert!(matches!(
        db_check(&s.dir.path().join("nope")),
        Err(DbError::NoDataDir(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_an_unreachable_upstream_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("node.log");
    // nothing listens there
    let upstream = format!("http://{}/", free_addr());
    let node = Node::start(&upstream, free_addr(), &data, &log);
    eventually("a warning", || async { read(&log).contains("not ready") }).await;
    assert!(lock_path(&data).exists());
    node.stop().await.expect("clean stop while waiting");
    assert!(!lock_path(&data).exists());

    let bad = Node::start("ftp://x/", free_addr(), &data, &log)
        .failure()
        .await;
    assert!(matches!(bad, NodeError::InvalidOptions(_)), "{bad:?}");
}
