//! One simulated Neo node as its own OS process (`neo-ir sim node`): it follows a node of a
//! running simulated network over JSON-RPC, keeps its chain in a data directory and serves
//! JSON-RPC in the same shapes as the network's nodes (the same builders in `rpc`).
//!
//! It behaves like a real node's database where the playbook's runbooks act on files: a
//! `LOCK` that a killed process leaves behind and that stops the next start, temp files of
//! unfinished writes, and records whose corruption stops the start until the data is
//! checked, repaired or restored ([`db_check`], [`db_repair`], [`db_optimize`]).
//! `crates/sim/STANDALONE.md` documents flags, layout and exit codes.
//!
//! Modules: `store` (data directory, records, database tools), `upstream` (the JSON-RPC
//! client), `log` (neo-rs-like log lines).

mod log;
mod store;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::Response;
use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::value::RawValue;

pub use store::{
    blocks_path, db_check, db_optimize, db_repair, lock_path, BadBlock, Corruption, DbError,
    DbReport, OptimizeReport, RepairReport, BLOCKS_FILE, CHAIN_DIR, LOCK_FILE, RECORD_LEN,
};

use crate::chain::{Block, Chain};
use crate::network::{accept_loop, bind};
use crate::node::NodeState;
use crate::rpc::{self, hash_hex, Identity, Peer};
use crate::SimError;
use log::{NodeLog, Throttle};
use upstream::{Upstream, UpstreamError, UpstreamVersion, MAX_BATCH};

/// How often the node asks its upstream for new blocks, unless told otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_millis(200);
/// Hard timeout of one call to the upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one "upstream unreachable" (or "does not extend") line per this.
const WARN_EVERY: Duration = Duration::from_secs(5);
/// At most one "persisted block" line per this.
const PERSISTED_EVERY: Duration = Duration::from_secs(2);

/// How to run a standalone node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// JSON-RPC URL of a node of a running simulated network.
    pub upstream: String,
    /// Where this node serves JSON-RPC.
    pub listen: SocketAddr,
    /// The data directory (`LOCK`, `chain/blocks.dat`); created if missing.
    pub data_dir: PathBuf,
    /// Log file (appended); `None`: stderr.
    pub log_file: Option<PathBuf>,
    /// Pause between two polls of the upstream (default [`DEFAULT_POLL`]).
    pub poll: Duration,
}

impl NodeOptions {
    /// Options with the default poll interval and the log on stderr.
    pub fn new(upstream: impl Into<String>, listen: SocketAddr, data_dir: PathBuf) -> NodeOptions {
        NodeOptions {
            upstream: upstream.into(),
            listen,
            data_dir,
            log_file: None,
            poll: DEFAULT_POLL,
        }
    }
}

/// Why a standalone node did not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The options cannot run a node (bad upstream URL, zero poll interval).
    #[error("invalid node options: {0}")]
    InvalidOptions(String),
    /// `DATA/LOCK` exists: another process holds the directory, or a killed one left it.
    #[error("IO error: lock {}: already held by process", .path.display())]
    Locked { path: PathBuf },
    /// The block file failed verification at start.
    #[error("Corruption: block {}: {} in {}", .bad.index, .bad.reason, .file.display())]
    Corrupt { file: PathBuf, bad: BadBlock },
    /// Reading or writing the data directory failed.
    #[error(transparent)]
    Store(#[from] DbError),
    /// The log file cannot be opened.
    #[error("cannot open the log file {}: {source}", .path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The JSON-RPC port cannot be bound.
    #[error(transparent)]
    Bind(#[from] SimError),
    /// The data directory holds the chain of another network.
    #[error("the data directory {} holds another chain: its genesis block is {local}, the upstream's is {upstream}", .data_dir.display())]
    GenesisMismatch {
        data_dir: PathBuf,
        local: String,
        upstream: String,
    },
}

/// Who the standalone node is: what it learnt from its upstream's `getversion`, and whether
/// the upstream (its one peer) answered the last poll.
struct SoloIdentity {
    keys: Vec<[u8; 33]>,
    version: String,
    network: u32,
    peer: (String, u16),
    connected: AtomicBool,
}

impl Identity for SoloIdentity {
    fn keys(&self) -> &[[u8; 33]] {
        &self.keys
    }

    fn peer_count(&self) -> u32 {
        u32::from(self.connected.load(Ordering::Relaxed))
    }

    fn peers(&self, count: usize) -> Vec<Peer> {
        (0..count.min(1))
            .map(|_| Peer {
                address: self.peer.0.clone(),
                port: self.peer.1,
            })
            .collect()
    }

    fn version(&self) -> String {
        self.version.clone()
    }
}

/// What the HTTP handlers share with the sync loop.
struct Solo {
    id: SoloIdentity,
    /// The chain, and the node's (fault-free) view of it.
    state: Mutex<(Chain, NodeState)>,
}

impl Solo {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Chain, NodeState)> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn tip(&self) -> Block {
        let st = self.lock();
        *st.0.get(st.0.height()).expect("the tip exists")
    }
}

async fn entry(State(solo): State<Arc<Solo>>, method: Method, uri: Uri, body: Bytes) -> Response {
    if method == Method::GET && uri.path() == "/metrics" {
        let height = solo.lock().0.height();
        return rpc::metrics_text(solo.id.network, height, solo.id.peer_count());
    }
    if method != Method::POST {
        return rpc::method_not_allowed();
    }
    rpc::json_response(rpc::handle_body(&body, |m, params| {
        let mut st = solo.lock();
        let (chain, view) = &mut *st;
        rpc::dispatch(&solo.id, chain, view, m, params)
    }))
}

/// Runs a standalone node until `shutdown` resolves (then `LOCK` is removed and `Ok` is
/// returned) or until it cannot go on. Every error is also written to the node's log as an
/// `ERROR` line.
///
/// Start: opens the log, takes `DATA/LOCK` (fails if it exists), loads and verifies
/// `DATA/chain/blocks.dat` (fails on corruption), binds `listen`, then waits until the
/// upstream answers `getversion` and its genesis header (checked against the local one),
/// and serves. Afterwards it polls the upstream every `poll` and appends new blocks; an
/// unreachable upstream is a warning (at most one line per 5 s) and the node keeps serving
/// what it has.
pub async fn run_node(
    opts: NodeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let log = NodeLog::open(opts.log_file.as_deref()).map_err(|source| NodeError::Log {
        path: opts.log_file.clone().unwrap_or_default(),
        source,
    })?;
    let result = run(&opts, &log, shutdown).await;
    if let Err(e) = &result {
        log.error(&e.to_string());
    }
    result
}

async fn run(
    opts: &NodeOptions,
    log: &NodeLog,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    if opts.poll.is_zero() {
        return Err(NodeError::InvalidOptions("poll must be > 0".into()));
    }
    let upstream =
        Upstream::new(&opts.upstream, UPSTREAM_TIMEOUT).map_err(NodeError::InvalidOptions)?;
    log.info(&format!(
        "starting neo-ir-sim node: data {}, rpc {}, upstream {}",
        opts.data_dir.display(),
        opts.listen,
        upstream.url()
    ));
    let opened = store::open(&opts.data_dir)?;
    let _lock = opened.lock;
    let mut appender = opened.appender;
    for t in &opened.temp_files {
        log.warn(&format!(
            "leftover temp file {} from an unfinished write",
            t.display()
        ));
    }
    let local_genesis = opened.blocks.first().copied();
    log.info(&format!(
        "loaded {} blocks from {}",
        opened.blocks.len(),
        appender.path().display()
    ));
    let listener = bind(opts.listen).await?;
    let listen = listener.local_addr().unwrap_or(opts.listen);

    let mut shutdown = pin!(shutdown);
    let handshake = tokio::select! {
        _ = &mut shutdown => {
            log.info("shutting down before the upstream answered");
            return Ok(());
        }
        h = handshake(&upstream, opts.poll, log) => h,
    };
    let (version, genesis) = handshake;
    if let Some(local) = local_genesis {
        if local.hash != genesis.hash {
            return Err(NodeError::GenesisMismatch {
                data_dir: opts.data_dir.clone(),
                local: hash_hex(&local.hash),
                upstream: hash_hex(&genesis.hash),
            });
        }
    } else {
        appender.append(&[genesis])?;
    }
    let mut chain = Chain::with_genesis(version.network, local_genesis.unwrap_or(genesis));
    for b in opened.blocks.into_iter().skip(1) {
        // verified at load: every record extends the one before
        chain.append(b);
    }
    let solo = Arc::new(Solo {
        id: identity(&upstream, &version, listen),
        state: Mutex::new((chain, NodeState::default())),
    });
    let server = tokio::spawn(accept_loop(
        listener,
        Router::new().fallback(entry).with_state(solo.clone()),
    ));
    log.info(&format!(
        "serving JSON-RPC on {listen} at height {} (network 0x{:08X})",
        solo.tip().index,
        version.network
    ));

    let mut sync = Sync {
        upstream: &upstream,
        solo: &solo,
        log,
        unreachable: Throttle::new(WARN_EVERY),
        stray: Throttle::new(WARN_EVERY),
        persisted: Throttle::new(PERSISTED_EVERY),
        down: false,
    };
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            r = sync.once(&mut appender) => if let Err(e) = r { break Err(e) },
        }
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = tokio::time::sleep(opts.poll) => {}
        }
    };
    server.abort();
    let _ = server.await;
    if result.is_ok() {
        log.info(&format!(
            "stopped at height {}; released {}",
            solo.tip().index,
            lock_path(&opts.data_dir).display()
        ));
    }
    result
}

/// The upstream's version and genesis header, asked again every `poll` until both come.
async fn handshake(upstream: &Upstream, poll: Duration, log: &NodeLog) -> (UpstreamVersion, Block) {
    let mut warn = Throttle::new(WARN_EVERY);
    loop {
        let r = async {
            Ok::<_, UpstreamError>((upstream.version().await?, upstream.headers(0, 1).await?))
        };
        match r.await {
            Ok((v, mut g)) if !g.is_empty() => return (v, g.remove(0)),
            Ok(_) => {}
            Err(e) => {
                if warn.ready() {
                    log.warn(&format!(
                        "upstream {} not ready: {e}; waiting for it before serving",
                        upstream.url()
                    ));
                }
            }
        }
        tokio::time::sleep(poll).await;
    }
}

fn identity(upstream: &Upstream, v: &UpstreamVersion, listen: SocketAddr) -> SoloIdentity {
    // a real node draws its nonce at every start; the P2P port is advertised, nothing listens
    let nonce: u32 = StdRng::from_os_rng().random();
    let protocol: &RawValue = &v.protocol;
    SoloIdentity {
        keys: v.keys.clone(),
        version: rpc::version_json(listen.port().wrapping_add(1), nonce, &protocol),
        network: v.network,
        peer: (upstream.host(), v.tcpport),
        connected: AtomicBool::new(true),
    }
}

/// The sync loop's state: which warnings were said lately.
struct Sync<'a> {
    upstream: &'a Upstream,
    solo: &'a Solo,
    log: &'a NodeLog,
    unreachable: Throttle,
    stray: Throttle,
    persisted: Throttle,
    /// The last poll failed.
    down: bool,
}

impl Sync<'_> {
    /// One poll: the upstream's count, then up to [`MAX_BATCH`] missing headers, appended to
    /// disk and to the served chain. Only a failed write stops the node.
    async fn once(&mut self, appender: &mut store::Appender) -> Result<(), NodeError> {
        let fetched = async {
            let count = self.upstream.block_count().await?;
            let next = self.solo.tip().index + 1;
            if count <= next {
                return Ok(Vec::new());
            }
            self.upstream
                .headers(next, (count - next).min(MAX_BATCH))
                .await
        };
        let blocks = match fetched.await {
            Ok(b) => b,
            Err(e) => {
                self.solo.id.connected.store(false, Ordering::Relaxed);
                self.down = true;
                if self.unreachable.ready() {
                    self.log.warn(&format!(
                        "cannot sync from upstream {}: {e}; serving local height {}",
                        self.upstream.url(),
                        self.solo.tip().index
                    ));
                }
                return Ok(());
            }
        };
        self.solo.id.connected.store(true, Ordering::Relaxed);
        if self.down {
            self.down = false;
            self.unreachable.reset();
            self.log
                .info(&format!("upstream {} reachable again", self.upstream.url()));
        }
        // keep the blocks that extend the local tip, in order
        let mut tip = self.solo.tip();
        let mut linked = Vec::with_capacity(blocks.len());
        for b in blocks {
            if b.index != tip.index + 1 || b.prev != tip.hash {
                if self.stray.ready() {
                    self.log.warn(&format!(
                        "upstream block {} does not extend the local chain: its previous hash {} is not local block {} ({})",
                        b.index,
                        hash_hex(&b.prev),
                        tip.index,
                        hash_hex(&tip.hash)
                    ));
                }
                break;
            }
            tip = b;
            linked.push(b);
        }
        let Some(last) = linked.last().copied() else {
            return Ok(());
        };
        // on disk first: what is served is always persisted
        appender.append(&linked)?;
        {
            let mut st = self.solo.lock();
            for b in linked {
                st.0.append(b);
            }
        }
        if self.persisted.ready() {
            self.log.info(&format!(
                "persisted block {} hash={}",
                last.index,
                hash_hex(&last.hash)
            ));
        }
        Ok(())
    }
}
