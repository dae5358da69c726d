//! The shared core of a simulated network: chain and node state behind one lock, the
//! listeners of every node, and the lifecycle operations (fault injection, recovery,
//! shutdown) used by both the Rust API and the control API.
//!
//! Every HTTP server runs its own accept loop and keeps its connections in a `JoinSet`, so
//! aborting the server task drops the listener (new connections are refused) AND aborts the
//! connections that were open.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::chain::{self, Chain};
use crate::node::{fork_salt, Fault, NodeState};
use crate::{SimConfig, SimError, SimRole};

/// Fixed facts about one node.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub name: String,
    pub role: SimRole,
    /// JSON-RPC port (kept across crash and recover).
    pub port: u16,
    /// The P2P port the node advertises in `getversion` (nothing listens there).
    pub tcpport: u16,
    /// The `getversion` nonce, unique per node.
    pub nonce: u32,
}

/// Everything that changes, behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub chain: Chain,
    pub nodes: Vec<NodeState>,
    pub stalled: bool,
}

/// Background tasks of the network.
#[derive(Debug, Default)]
struct Tasks {
    closed: bool,
    producer: Option<JoinHandle<()>>,
    control: Option<JoinHandle<()>>,
    nodes: Vec<Option<JoinHandle<()>>>,
}

impl Tasks {
    fn take_all(&mut self) -> Vec<JoinHandle<()>> {
        let mut all: Vec<JoinHandle<()>> = self.nodes.iter_mut().filter_map(Option::take).collect();
        all.extend(self.producer.take());
        all.extend(self.control.take());
        all
    }
}

/// State shared by the handle, the producer and every server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub specs: Vec<NodeSpec>,
    pub keys: Vec<[u8; 33]>,
    pub state: Mutex<State>,
    /// Notified on every fault, stall or block change.
    pub changed: Notify,
    pub control_port: u16,
    tasks: Mutex<Tasks>,
    /// Serializes lifecycle operations (crash, recover, shutdown) that await.
    admin: tokio::sync::Mutex<()>,
    counter: AtomicU64,
}

/// The address URLs use: the configured host, or loopback if it is a wildcard.
pub(crate) fn url_host(host: IpAddr) -> IpAddr {
    if host.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host
    }
}

pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    let err = |source| SimError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

/// Serves `router` on `listener` until the task is aborted; aborting drops the listener and
/// every open connection.
pub(crate) async fn accept_loop(listener: TcpListener, router: Router) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let svc = TowerToHyperService::new(router.clone());
                    conns.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sim accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

impl Shared {
    /// Validates the config, binds every listener and starts every task.
    pub async fn start(cfg: SimConfig) -> Result<Arc<Shared>, SimError> {
        if cfg.validators == 0 || cfg.validators > 100 {
            return Err(SimError::InvalidConfig(format!(
                "validators must be 1..=100, got {}",
                cfg.validators
            )));
        }
        if cfg.msperblock == 0 {
            return Err(SimError::InvalidConfig("msperblock must be > 0".into()));
        }
        let total = cfg.validators + cfg.rpc;
        if cfg.base_port != 0 && u32::from(cfg.base_port) + total > u32::from(u16::MAX) {
            return Err(SimError::InvalidConfig(format!(
                "base_port {} leaves no room for {} nodes and the control API",
                cfg.base_port, total
            )));
        }
        let port_at = |i: u32| {
            if cfg.base_port == 0 {
                0
            } else {
                cfg.base_port + i as u16
            }
        };
        let mut listeners = Vec::with_capacity(total as usize);
        for i in 0..total {
            listeners.push(bind(SocketAddr::new(cfg.host, port_at(i))).await?);
        }
        let control_addr = SocketAddr::new(cfg.host, port_at(total));
        let control_listener = bind(control_addr).await?;
        let local_port = |l: &TcpListener, addr: SocketAddr| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|source| SimError::Bind { addr, source })
        };
        let control_port = local_port(&control_listener, control_addr)?;

        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut specs = Vec::with_capacity(total as usize);
        for (i, l) in listeners.iter().enumerate() {
            let i = i as u32;
            let (name, role) = if i < cfg.validators {
                (format!("validator-{}", i + 1), SimRole::Validator)
            } else {
                (format!("rpc-{}", i - cfg.validators + 1), SimRole::Rpc)
            };
            let nonce = loop {
                let n: u32 = rng.random();
                if !specs.iter().any(|s: &NodeSpec| s.nonce == n) {
                    break n;
                }
            };
            specs.push(NodeSpec {
                name,
                role,
                port: local_port(l, SocketAddr::new(cfg.host, port_at(i)))?,
                tcpport: 20333u16.wrapping_add(i as u16),
                nonce,
            });
        }

        let shared = Arc::new(Shared {
            keys: chain::validator_keys(cfg.seed, cfg.validators),
            state: Mutex::new(State {
                chain: Chain::new(cfg.network, cfg.seed, chain::now_ms()),
                nodes: vec![NodeState::default(); total as usize],
                stalled: false,
            }),
            changed: Notify::new(),
            control_port,
            tasks: Mutex::new(Tasks::default()),
            admin: tokio::sync::Mutex::new(()),
            counter: AtomicU64::new(0),
            specs,
            cfg,
        });

        let mut tasks = shared.tasks.lock().expect("tasks lock");
        for (i, l) in listeners.into_iter().enumerate() {
            let router = crate::rpc::router(shared.clone(), i);
            tasks.nodes.push(Some(tokio::spawn(accept_loop(l, router))));
        }
        tasks.control = Some(tokio::spawn(accept_loop(
            control_listener,
            crate::control::router(shared.clone()),
        )));
        tasks.producer = Some(tokio::spawn(chain::run_producer(shared.clone())));
        drop(tasks);
        tracing::info!(
            nodes = total,
            control_port,
            msperblock = shared.cfg.msperblock,
            "simulated Neo network started"
        );
        Ok(shared)
    }

    pub fn node_index(&self, name: &str) -> Result<usize, SimError> {
        self.specs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| SimError::UnknownNode(name.to_string()))
    }

    pub fn rpc_url(&self, i: usize) -> String {
        format!(
            "http://{}/",
            SocketAddr::new(url_host(self.cfg.host), self.specs[i].port)
        )
    }

    pub fn control_url(&self) -> String {
        format!(
            "http://{}",
            SocketAddr::new(url_host(self.cfg.host), self.control_port)
        )
    }

    pub fn height(&self) -> u64 {
        self.state.lock().expect("state lock").chain.height()
    }

    pub fn node_height(&self, i: usize) -> u64 {
        let st = self.state.lock().expect("state lock");
        st.nodes[i].height(&st.chain)
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.state.lock().expect("state lock").stalled = stalled;
        self.changed.notify_waiters();
    }

    /// Adds `fault` to node `i`; a crash also closes its listener and open connections.
    pub async fn inject(&self, i: usize, fault: Fault) -> Result<(), SimError> {
        let _admin = self.admin.lock().await;
        {
            let mut guard = self.state.lock().expect("state lock");
            let st = &mut *guard;
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let salt = match fault {
                // one branch per (branch number, height): the nodes on it agree
                Fault::Fork {
                    height,
                    branch: Some(b),
                } => fork_salt(self.cfg.seed, usize::MAX - b as usize, height, 0),
                Fault::Fork { height, .. } => fork_salt(self.cfg.seed, i, height, n),
                _ => fork_salt(self.cfg.seed, i, 0, n),
            };
            st.nodes[i].apply(&fault, &st.chain, salt);
        }
        self.changed.notify_waiters();
        if fault == Fault::Crash {
            let handle = self.tasks.lock().expect("tasks lock").nodes[i].take();
            if let Some(h) = handle {
                h.abort();
                let _ = h.await;
            }
        }
        tracing::info!(node = %self.specs[i].name, ?fault, "sim fault injected");
        Ok(())
    }

    /// Clears the faults of node `i` and reopens its listener on the same port if needed.
    pub async fn recover(self: &Arc<Self>, i: usize) -> Result<(), SimError> {
        let _admin = self.admin.lock().await;
        self.recover_locked(i).await
    }

    async fn recover_locked(self: &Arc<Self>, i: usize) -> Result<(), SimError> {
        self.state.lock().expect("state lock").nodes[i].recover();
        self.changed.notify_waiters();
        if self.tasks.lock().expect("tasks lock").closed {
            return Err(SimError::ShutDown);
        }
        let running = self.tasks.lock().expect("tasks lock").nodes[i].is_some();
        if !running {
            let listener = bind(SocketAddr::new(self.cfg.host, self.specs[i].port)).await?;
            let router = crate::rpc::router(self.clone(), i);
            let mut tasks = self.tasks.lock().expect("tasks lock");
            if tasks.closed {
                return Err(SimError::ShutDown);
            }
            tasks.nodes[i] = Some(tokio::spawn(accept_loop(listener, router)));
        }
        tracing::info!(node = %self.specs[i].name, "sim node recovered");
        Ok(())
    }

    /// Clears every node's faults and resumes a stall.
    pub async fn recover_all(self: &Arc<Self>) -> Result<(), SimError> {
        let _admin = self.admin.lock().await;
        self.state.lock().expect("state lock").stalled = false;
        let mut result = Ok(());
        for i in 0..self.specs.len() {
            if let Err(e) = self.recover_locked(i).await {
                tracing::warn!(node = %self.specs[i].name, error = %e, "sim recover failed");
                result = Err(e);
            }
        }
        self.changed.notify_waiters();
        result
    }

    /// Stops every task and listener and waits until they are gone.
    pub async fn shutdown(&self) {
        let _admin = self.admin.lock().await;
        let handles = {
            let mut tasks = self.tasks.lock().expect("tasks lock");
            tasks.closed = true;
            tasks.take_all()
        };
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let _ = h.await;
        }
        self.changed.notify_waiters();
    }

    /// Aborts every task without waiting (used from `Drop`).
    pub fn abort_all(&self) {
        let mut tasks = match self.tasks.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        tasks.closed = true;
        for h in tasks.take_all() {
            h.abort();
        }
    }
}
