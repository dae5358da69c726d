//! The watch loop, neo-ir's imperative shell around the pure core.
//!
//! Each node has its own probe task: every `probe.interval` one batched JSON-RPC request
//! (bounded concurrency across all tasks, hard timeouts), and after a failure an immediate
//! re-probe, so a single failed probe never pages and confirmation never waits for the next
//! round. Because the tasks are independent, a node that hangs until the timeout delays only
//! its own observations, never the other nodes'.
//!
//! Every `probe.interval` the decision step takes the observations that arrived, feeds the
//! fleet view, runs the detectors, reconciles findings with the open incidents, fires the
//! deadlines that are due and writes every change with its timeline events to the store.
//! The store is the truth: on start the loop resumes open incidents and each node's last
//! height from it.
//!
//! Several instances may share one database: only the holder of the leader's lease probes,
//! decides and fires deadlines. The others follow, asking for the lease every third of its
//! length, and take over when it expires. Every write of a leader is fenced with the
//! lease's epoch, so a leader that was frozen past its lease writes nothing when it wakes:
//! its first write (or renewal) tells it it lost the lease, and it goes back to following.

use std::future::Future;
use std::sync::Arc;

use neo_ir_core::clock::{Clock, SystemClock};
use neo_ir_core::config::Config;
use neo_ir_core::detect::{detect, stall_deadline};
use neo_ir_core::fleet::{Fleet, NodeSpec};
use neo_ir_core::incident::{Change, EventType, Incident, Status, TimelineEvent};
use neo_ir_core::lifecycle::reconcile;
use neo_ir_probe::{Headers, NodeTarget, ProbeConfig, Prober};
use neo_ir_store::{Fence, Lease, Store, StoreError};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

mod chaincheck;
pub mod dispatch;
mod drills;
pub mod reviews;

/// Headers fetched per round at most when the history has gaps.
const HEADER_BATCH: usize = 20;
/// Nodes whose state roots one chain check compares, at most.
const STATE_SAMPLE: usize = 64;
/// The least time between two decisions asked for by failed probes.
const URGENT_GAP: std::time::Duration = std::time::Duration::from_millis(20);
/// In a big fleet, each node is asked for block headers every this many rounds.
const HEADER_EVERY: u64 = 10;
/// How often the dispatcher looks at the outbox.
const DISPATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// Fleets above this size store node views every 5 s instead of every round.
const BIG_FLEET: usize = 500;

/// The node list of a simulated network, as watch configuration (demo, drills, tests).
pub fn simulated_nodes(net: &neo_ir_sim::SimNetwork) -> Vec<neo_ir_core::config::NodeConfig> {
    net.nodes()
        .into_iter()
        .map(|n| {
            let role = match n.role {
                neo_ir_sim::SimRole::Validator => neo_ir_core::Role::Validator,
                neo_ir_sim::SimRole::Rpc => neo_ir_core::Role::Rpc,
            };
            neo_ir_core::config::NodeConfig::new(n.name, n.rpc_url, role)
        })
        .collect()
}

/// Errors that stop the watcher from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("node {node}: environment variable {var} ({key}) is not set")]
    MissingSecret {
        node: String,
        var: String,
        key: &'static str,
    },
    #[error("cannot build the probe client: {0}")]
    Probe(#[from] neo_ir_probe::ProbeError),
    #[error(transparent)]
    Store(#[from] neo_ir_store::StoreError),
    #[error(transparent)]
    Notify(#[from] dispatch::NotifyError),
}

/// What happened to an incident, for live output (the demo, logs, later notifiers).
#[derive(Debug, Clone)]
pub struct Notice {
    pub what: NoticeKind,
    pub incident: Incident,
    pub events: Vec<TimelineEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Opened,
    Updated,
    Resolved,
}

/// A running watcher's outside handles.
#[derive(Clone)]
pub struct WatchHandle {
    notices: broadcast::Sender<Notice>,
    rounds: watch::Receiver<u64>,
    leading: watch::Receiver<bool>,
}

impl WatchHandle {
    /// Incident changes as they are stored.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Number of completed rounds (changes after every round).
    pub fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.clone()
    }

    /// Whether this instance holds the leader's lease now.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }
}

/// How a term of leadership ended.
enum Term {
    Shutdown,
    LostLease,
}

/// A run still `running` after this long was left by a process that died.
const INTERRUPTED_RUN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The watcher: configuration, probe client, store and fleet view.
pub struct Watcher {
    config: Config,
    targets: Vec<NodeTarget>,
    telemetry: Vec<TelemetrySource>,
    prober: Prober,
    /// The store as opened (people's view, the lease).
    base_store: Store,
    /// The store fenced with the current term's lease (the same as `base_store` between
    /// terms).
    store: Store,
    /// This instance's name in the lease: host, process and start.
    holder: String,
    leading: watch::Sender<bool>,
    specs: Vec<NodeSpec>,
    /// The channels with their secrets and templates, built (and checked) at start.
    outlets: Arc<dispatch::Outlets>,
    fleet: Fleet,
    clock: Arc<dyn Clock>,
    notices: broadcast::Sender<Notice>,
    rounds: watch::Sender<u64>,
    debouncer: neo_ir_core::debounce::Debouncer,
    /// The cross-node chain check in flight (at most one).
    checks: JoinSet<chaincheck::CheckOutput>,
    last_check: Option<std::time::Instant>,
    state_offset: usize,
    /// When the chain would count as stalled (recomputed after every decision).
    stall_wakeup: Option<tokio::time::Instant>,
    last_view_save: Option<std::time::Instant>,
    /// First hash seen per recent height, and whether a conflict asks for a check now.
    recent_hashes: std::collections::BTreeMap<u64, String>,
    force_check: bool,
    /// Targets by node name.
    target_index: std::collections::HashMap<String, usize>,
    known_forks: std::collections::HashMap<(String, String), neo_ir_core::fork::FirstDifference>,
    /// The network's name from `getversion` (MainNet, TestNet, a private magic), for messages.
    network: Option<String>,
    /// Acts on `[[remediation]]` policies while this instance leads (none configured: `None`).
    remediator: Option<Arc<neo_ir_runbook::remediate::Remediator>>,
    /// Running drills (their incidents are marked) and reminders of scheduled ones.
    drills: drills::Drills,
}

impl Watcher {
    /// Build a watcher. Reads each node's password from its `auth_password_env` variable.
    pub fn new(config: Config, store: Store) -> Result<Self, WatchError> {
        let mut targets: Vec<NodeTarget> = Vec::with_capacity(config.nodes.len());
        let mut telemetry = Vec::new();
        for n in &config.nodes {
            let secret = |var: &Option<String>, key: &'static str| match var {
                Some(var) => std::env::var(var)
                    .map(Some)
                    .map_err(|_| WatchError::MissingSecret {
                        node: n.name.clone(),
                        var: var.clone(),
                        key,
                    }),
                None => Ok(None),
            };
            let password = secret(&n.auth_password_env, "auth_password_env")?;
            let agent_token = secret(&n.agent_token_env, "agent_token_env")?;
            targets.push(NodeTarget::from_config(n, password));
            telemetry.push(TelemetrySource {
                node: n.name.clone(),
                health_base: n
                    .metrics
                    .as_deref()
                    .and_then(|m| m.strip_suffix("/metrics"))
                    .map(str::to_string),
                metrics: n.metrics.clone(),
                agent: n.agent.clone().zip(agent_token),
            });
        }
        let prober = Prober::new(ProbeConfig::from(&config.probe))?;
        let outlets = Arc::new(dispatch::Outlets::build(&config.notify)?);
        let specs: Vec<NodeSpec> = config
            .nodes
            .iter()
            .map(|n| NodeSpec {
                name: n.name.clone(),
                role: n.role,
                validator_index: n.validator_index,
            })
            .collect();
        let targets_index: std::collections::HashMap<String, usize> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let (notices, _) = broadcast::channel(256);
        let (rounds, _) = watch::channel(0);
        let (leading, _) = watch::channel(false);
        Ok(Self {
            fleet: Fleet::new(&specs),
            specs,
            config,
            targets,
            telemetry,
            prober,
            base_store: store.clone(),
            store,
            holder: instance_name(),
            leading,
            outlets,
            clock: Arc::new(SystemClock),
            notices,
            rounds,
            debouncer: Default::default(),
            checks: JoinSet::new(),
            last_check: None,
            state_offset: 0,
            stall_wakeup: None,
            last_view_save: None,
            recent_hashes: Default::default(),
            force_check: false,
            target_index: targets_index.clone(),
            known_forks: Default::default(),
            network: None,
            remediator: None,
            drills: Default::default(),
        })
    }

    /// Give the watcher the runbook runner: with `[[remediation]]` policies configured, the
    /// leading instance runs them on open incidents (see `neo_ir_runbook::remediate`).
    pub fn with_runner(mut self, runner: Arc<neo_ir_runbook::runner::Runner>) -> Self {
        let r = neo_ir_runbook::remediate::Remediator::new(runner);
        self.remediator = r.enabled().then(|| Arc::new(r));
        self
    }

    pub fn handle(&self) -> WatchHandle {
        WatchHandle {
            notices: self.notices.clone(),
            rounds: self.rounds.subscribe(),
            leading: self.leading.subscribe(),
        }
    }

    /// Run until `shutdown` completes: follow while another instance leads, lead while
    /// this one holds the lease. Shutdown is taken between rounds; the probe tasks are then
    /// stopped and the lease given up. Every write is a transaction, so nothing is
    /// half-stored.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), WatchError> {
        tokio::pin!(shutdown);
        loop {
            let Some(lease) = self.follow(&mut shutdown).await else {
                break;
            };
            self.leading.send_replace(true);
            let term = self.lead(lease, &mut shutdown).await;
            self.leading.send_replace(false);
            self.store = self.base_store.clone();
            match term? {
                Term::Shutdown => {
                    if let Err(e) = self.base_store.release(&self.holder).await {
                        tracing::warn!(error = %e, "could not give the lease up; it expires by itself");
                    }
                    break;
                }
                Term::LostLease => tracing::warn!(
                    holder = %self.holder,
                    "lost the leader's lease to another instance: following"
                ),
            }
        }
        tracing::info!(rounds = *self.rounds.borrow(), "watcher stopped");
        Ok(())
    }

    /// Wait until this instance holds the lease (`None`: shut down first).
    async fn follow(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Lease> {
        let every = (self.config.store.lease / 3).max(std::time::Duration::from_millis(50));
        let mut said = None;
        loop {
            match self
                .base_store
                .try_lead(&self.holder, self.clock.now(), self.config.store.lease)
                .await
            {
                Ok(Some(lease)) => return Some(lease),
                Ok(None) => {
                    if let Ok(Some(l)) = self.base_store.lease().await {
                        if said.as_ref() != Some(&l.holder) {
                            tracing::info!(leader = %l.holder, "another instance leads: following");
                            said = Some(l.holder);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot reach the store for the lease; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.as_mut() => return None,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Forget what the last term saw: a new term starts from the store.
    fn reset_term(&mut self) {
        self.fleet = Fleet::new(&self.specs);
        self.debouncer = Default::default();
        self.recent_hashes.clear();
        self.known_forks.clear();
        self.force_check = false;
        self.stall_wakeup = None;
        self.last_check = None;
        self.last_view_save = None;
    }

    /// One term as leader: probe, decide and fire deadlines until shutdown or until the
    /// lease is lost.
    async fn lead(
        &mut self,
        mut lease: Lease,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Term, WatchError> {
        self.reset_term();
        self.store = self.base_store.fenced(Fence {
            holder: self.holder.clone(),
            epoch: lease.epoch,
            lease: self.config.store.lease,
        });
        let resumed = match self.resume().await {
            Ok(n) => n,
            Err(WatchError::Store(StoreError::LostLease { .. })) => return Ok(Term::LostLease),
            Err(e) => return Err(e),
        };
        tracing::info!(
            nodes = self.targets.len(),
            interval_ms = self.config.probe.interval.as_millis() as u64,
            resumed_open_incidents = resumed,
            epoch = lease.epoch,
            holder = %self.holder,
            "leading: watching"
        );
        // the dispatcher sends the outbox during this term, and stops sending once the lease
        // may have run out
        let (lease_tx, lease_rx) = watch::channel(lease.expires_at);
        let (stop_sending, stop_rx) = watch::channel(false);
        let sender = tokio::spawn(
            dispatch::Dispatcher::new(
                self.store.clone(),
                self.config.notify.clone(),
                self.outlets.clone(),
                self.clock.clone(),
                Some((lease_rx, self.config.store.lease / 3)),
            )
            .run(DISPATCH_EVERY, stop_rx),
        );
        let mut renew = tokio::time::interval(
            (self.config.store.lease / 3).max(std::time::Duration::from_millis(50)),
        );
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        let (tx, mut rx) = mpsc::channel(1024);
        let mut probes = JoinSet::new();
        let probe_now = Arc::new(tokio::sync::Notify::new());
        let n = self.targets.len();
        for (i, target) in self.targets.clone().into_iter().enumerate() {
            // A big fleet's first probes are spread evenly over the first interval (and so
            // stay spread): 10,000 probes due at the same instant would queue behind the
            // concurrency bound, all holding memory at once. A small fleet is probed
            // together, so every round compares nodes seen at the same moment.
            //
            // A small fleet asks every node for its newest header every round. A big one asks
            // each node every HEADER_EVERY-th round, for that header and the one below it:
            // the same block's header from 10,000 nodes every block is a third of the
            // probing cost (bench `scale`), while a tenth of them, in turn, still give the
            // chain's block times and primaries, and each node's own blocks are still
            // checked to link.
            let (first_after, headers) = if n > BIG_FLEET {
                (
                    self.config.probe.interval.mul_f64(i as f64 / n as f64),
                    HeaderTurn::Every {
                        rounds: HEADER_EVERY,
                        phase: i as u64 % HEADER_EVERY,
                    },
                )
            } else {
                (std::time::Duration::ZERO, HeaderTurn::Always)
            };
            probes.spawn(probe_node(
                self.prober.clone(),
                target,
                NodeSchedule {
                    interval: self.config.probe.interval,
                    first_after,
                    headers,
                },
                probe_now.clone(),
                tx.clone(),
            ));
        }
        let agent_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client without TLS roots to load cannot fail");
        for source in self
            .telemetry
            .iter()
            .filter(|s| s.metrics.is_some() || s.agent.is_some())
        {
            probes.spawn(telemetry_node(
                self.prober.clone(),
                agent_client.clone(),
                source.clone(),
                self.config.probe.telemetry_interval,
                self.config.probe.timeout,
                tx.clone(),
            ));
        }
        drop(tx);
        let mut tick = tokio::time::interval(self.config.probe.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut term = Term::Shutdown;
        let mut observed = Vec::new();
        // A failed probe asks for a decision "now", but at most one per URGENT_GAP: a
        // crash is still an incident within milliseconds, and many failing nodes of a big
        // fleet do not make one decision each.
        let mut urgent: Option<tokio::time::Instant> = None;
        let mut last_decision = tokio::time::Instant::now();
        // The two wake-ups live across iterations and are only reset when their time
        // changes: a big fleet sends thousands of observations a second, and a timer made
        // afresh per message would be registered and dropped as often.
        let stall_sleep = tokio::time::sleep_until(far_future());
        let urgent_sleep = tokio::time::sleep_until(far_future());
        tokio::pin!(stall_sleep, urgent_sleep);
        let mut stall_armed: Option<tokio::time::Instant> = None;
        let mut inbox = Vec::with_capacity(256);
        let mut inputs_open = true;
        loop {
            // Decide every interval, and at once when a probe fails: a crash seen through a
            // closed connection becomes an incident in milliseconds, not at the next tick.
            // When the chain would count as stalled before the next tick, wake up at that
            // moment, probe every node afresh and decide on what they say.
            if self.stall_wakeup != stall_armed {
                stall_armed = self.stall_wakeup;
                stall_sleep
                    .as_mut()
                    .reset(stall_armed.unwrap_or_else(far_future));
            }
            tokio::select! {
                _ = shutdown.as_mut() => break,
                _ = renew.tick() => {
                    match self.base_store.try_lead(&self.holder, self.clock.now(), self.config.store.lease).await {
                        Ok(Some(l)) if l.epoch == lease.epoch => {
                            lease_tx.send_replace(l.expires_at);
                            lease = l;
                        }
                        // another instance took it, or it expired (this process was frozen)
                        // and the epoch moved on: the term is over either way
                        Ok(_) => { term = Term::LostLease; break; }
                        Err(e) => tracing::error!(error = %e, "cannot renew the lease; the store's fence decides"),
                    }
                    continue;
                }
                _ = tick.tick() => {}
                _ = &mut stall_sleep, if stall_armed.is_some() => {
                    stall_armed = None;
                    self.stall_wakeup = None;
                    probe_now.notify_waiters();
                    self.collect_fresh(&mut rx, &mut observed).await;
                }
                // a chain check finished: act on a fork at once, not a round later
                Some(done) = self.checks.join_next(), if !self.checks.is_empty() => {
                    if let Ok(out) = done {
                        self.take_check(out);
                    }
                }
                _ = &mut urgent_sleep, if urgent.is_some() => {}
                n = rx.recv_many(&mut inbox, 256), if inputs_open => {
                    if n == 0 {
                        // no probe task is left (an empty fleet): rounds still run
                        inputs_open = false;
                        continue;
                    }
                    let mut wake = false;
                    for input in inbox.drain(..) {
                        let failed = matches!(&input, Input::Rpc(o) if o.outcome.is_err());
                        // two nodes with different blocks at one height: compare chains now
                        let conflict = matches!(&input, Input::Rpc(o) if o.status().is_some_and(|st| self.hash_conflict(st.height(), &st.best_hash)));
                        if conflict {
                            self.force_check = true;
                        }
                        wake |= failed || conflict;
                        observed.push(input);
                    }
                    if wake && urgent.is_none() {
                        let at = tokio::time::Instant::now().max(last_decision + URGENT_GAP);
                        urgent = Some(at);
                        urgent_sleep.as_mut().reset(at);
                    }
                    continue;
                }
            }
            urgent = None;
            last_decision = tokio::time::Instant::now();
            while let Ok(o) = rx.try_recv() {
                observed.push(o);
            }
            let observed = std::mem::take(&mut observed);
            match self.decide(observed).await {
                Ok(()) => {}
                Err(WatchError::Store(StoreError::LostLease { .. })) => {
                    term = Term::LostLease;
                    break;
                }
                // The store is unreachable: keep probing, try again next round; nothing is
                // lost because the next round recomputes everything from observations.
                Err(e) => tracing::error!(error = %e, "round not stored; retrying next round"),
            }
        }
        probes.shutdown().await;
        self.checks.shutdown().await;
        let _ = stop_sending.send(true);
        let _ = sender.await;
        Ok(term)
    }

    /// Load what the store knows: each node's last height (for stall timing) and the open
    /// incidents. Returns the number of open incidents resumed.
    pub async fn resume(&mut self) -> Result<usize, WatchError> {
        let names: Vec<String> = self.targets.iter().map(|t| t.name.clone()).collect();
        self.store.retain_nodes(&names).await?;
        for h in self.store.stored_heights().await? {
            self.fleet.restore(&h.node, h.height, h.since);
        }
        let open = self.store.open_incidents().await?;
        self.debouncer
            .resume(open.iter().map(|i| i.key.clone()), self.clock.now());
        // a run left `running` an hour ago belongs to a process that died (no run waits that
        // long: agent calls and verification have their own limits): nothing is lost, it
        // says so
        let before = jiff::Timestamp::from_millisecond(
            self.clock.now().as_millisecond() - INTERRUPTED_RUN_AGE.as_millis() as i64,
        )
        .unwrap_or(self.clock.now());
        let failed = self.store.fail_interrupted_runs(before).await?;
        if failed > 0 {
            tracing::warn!(
                runs = failed,
                "runbook runs left running by a stopped process marked failed"
            );
        }
        for i in &open {
            tracing::info!(incident = i.id, kind = %i.kind, severity = %i.severity, "resuming open incident");
        }
        Ok(open.len())
    }

    /// Feed the observations, detect, reconcile and store one round.
    async fn decide(&mut self, inputs: Vec<Input>) -> Result<(), WatchError> {
        for input in inputs {
            match input {
                Input::Rpc(o) => {
                    if let Err(f) = &o.outcome {
                        tracing::debug!(node = %o.node, error = %f, "probe failed");
                    }
                    self.fleet.record(o);
                }
                Input::Metrics(node, m) => self.fleet.record_metrics(&node, m),
                Input::Host(node, h) => self.fleet.record_host(&node, h),
            }
        }
        while let Some(done) = self.checks.try_join_next() {
            if let Ok(out) = done {
                self.take_check(out);
            }
        }
        let now = self.clock.now();
        self.fleet.end_round(&self.config.detect);
        let raw = detect(&self.fleet, &self.config.detect, now);
        let assessment = self.debouncer.apply(raw, &self.config.detect.debounce, now);
        self.start_check();
        // Deadlines (response target, escalation steps, update reminders, the stability
        // window) are absolute times stored with each incident; reconcile fires the ones due,
        // so after a restart a missed one fires at the first round, once: the write is
        // refused if the incident changed since it was read.
        let open = self.store.open_incidents().await?;
        let assessment = self
            .drills
            .mark(&self.store, assessment, &open, now)
            .await?;
        let silences = self.store.silences(Some(now)).await?;
        for change in reconcile(&open, &assessment, now, &self.config.response, &silences) {
            match self.store.apply(&change).await {
                Ok(incident) => self.announce(&change, incident),
                Err(StoreError::Conflict(id)) => tracing::debug!(
                    incident = id,
                    "changed meanwhile (a person acted): recomputed next round"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        self.stall_wakeup = self.stall_wakeup();
        if let Some(r) = &self.remediator {
            // runs start in the background; the round does not wait for a restart
            let open = self.store.open_incidents().await?;
            r.tick(&open, now).await;
        }
        // Node views: every round for ordinary fleets; big fleets at most every 5 s (writing
        // thousands of rows every second would cost more than watching them).
        let save_due = self.fleet.len() <= BIG_FLEET
            || self
                .last_view_save
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5));
        if save_due {
            self.store.save_nodes(&self.fleet.view(), now).await?;
            self.last_view_save = Some(std::time::Instant::now());
        }
        reviews::remind_overdue(&self.store, now).await?;
        self.route(now).await?;
        self.drills
            .remind(&self.store, &self.config, &self.outlets, now)
            .await?;
        self.rounds.send_modify(|r| *r += 1);
        Ok(())
    }

    /// Queue the messages the round's events call for (and any left by people's actions or
    /// an earlier crash): each event is routed once, in the transaction that queues them.
    async fn route(&mut self, now: jiff::Timestamp) -> Result<(), WatchError> {
        // routed even without routes: events are marked routed, so adding a route later
        // does not send the past
        if self.network.is_none() {
            self.network = self
                .fleet
                .nodes()
                .find_map(|n| n.version.as_ref().and_then(|v| v.network))
                .map(neo_ir_core::notify::network_name);
        }
        let settings = &self.config.notify;
        let network = self.network.as_deref();
        let queued = self
            .store
            .route_pending(500, now, |incident, event, id| {
                if let Some(why) = neo_ir_core::notify::drill_unsent(incident, event, settings) {
                    tracing::warn!(incident = incident.id, "{why}");
                }
                neo_ir_core::notify::route(incident, event, id, settings, network)
            })
            .await?;
        if queued > 0 {
            tracing::debug!(queued, "messages queued");
        }
        Ok(())
    }

    /// Remember the first hash seen at each recent height; true when `hash` differs from it
    /// (a fork or a corrupt node, to be confirmed by the chain check). A block landing
    /// between `getblockcount` and `getbestblockhash` of one batch can also differ: the
    /// check then finds agreement, at the cost of one comparison.
    fn hash_conflict(&mut self, height: u64, hash: &str) -> bool {
        match self.recent_hashes.get(&height) {
            Some(seen) => seen != hash,
            None => {
                self.recent_hashes.insert(height, hash.to_string());
                while self.recent_hashes.len() > 64 {
                    self.recent_hashes.pop_first();
                }
                false
            }
        }
    }

    /// The stall deadline as a tokio instant, when it is still ahead.
    fn stall_wakeup(&self) -> Option<tokio::time::Instant> {
        let at = stall_deadline(&self.fleet, &self.config.detect)?;
        let ahead = at.duration_since(self.clock.now());
        let ahead = std::time::Duration::try_from(ahead).ok()?;
        Some(tokio::time::Instant::now() + ahead)
    }

    /// After asking every probe task for a fresh probe: gather answers until every node
    /// that answered before has answered again, or half a second passes.
    async fn collect_fresh(&self, rx: &mut mpsc::Receiver<Input>, observed: &mut Vec<Input>) {
        let mut waiting: std::collections::HashSet<&str> = self
            .fleet
            .nodes()
            .filter(|n| n.answering())
            .map(|n| n.name.as_str())
            .collect();
        let limit = tokio::time::sleep(std::time::Duration::from_millis(500));
        tokio::pin!(limit);
        while !waiting.is_empty() {
            tokio::select! {
                _ = &mut limit => break,
                Some(input) = rx.recv() => {
                    if let Input::Rpc(o) = &input {
                        waiting.remove(o.node.as_str());
                    }
                    observed.push(input);
                }
            }
        }
    }

    /// Start the cross-node chain check unless one is still running.
    fn start_check(&mut self) {
        // one at a time, at most one per interval
        let due = self
            .last_check
            .is_none_or(|t| t.elapsed() >= self.config.probe.interval);
        if !self.checks.is_empty() || !(due || self.force_check) {
            return;
        }
        self.force_check = false;
        self.last_check = Some(std::time::Instant::now());
        let reachable: Vec<(NodeTarget, u64)> = self
            .fleet
            .nodes()
            .filter(|n| n.reachable())
            .filter_map(|n| {
                let t = &self.targets[*self.target_index.get(&n.name)?];
                Some((t.clone(), n.height?))
            })
            .collect();
        if reachable.is_empty() {
            return;
        }
        let best = self.fleet.best_height().unwrap_or_default();
        // a node at the best height that the last comparison put on the canonical chain
        let canonical = |name: &str| {
            self.fleet
                .fork_report()
                .is_none_or(|r| r.partitions[0].nodes.iter().any(|n| n == name))
        };
        let header_source = reachable
            .iter()
            .find(|(t, h)| *h == best && canonical(&t.name))
            .map(|(t, _)| t.clone());
        let input = chaincheck::CheckInput {
            roles: self
                .fleet
                .nodes()
                .map(|n| (n.name.clone(), n.role))
                .collect(),
            missing_headers: self.fleet.chain().missing(best, HEADER_BATCH),
            header_source,
            nodes: reachable,
            known: self.known_forks.clone(),
            state_sample: self.state_sample(),
            headers_seen: self
                .fleet
                .nodes()
                .filter_map(|n| {
                    let s = n.last.as_ref()?.status()?;
                    Some((n.name.clone(), (s.height(), s.best_hash.clone())))
                })
                .collect(),
        };
        self.checks
            .spawn(chaincheck::run(self.prober.clone(), input));
    }

    /// The nodes whose state roots the next check compares: all of a small fleet, else a
    /// window of `STATE_SAMPLE` nodes that moves on every check, so each node is covered
    /// in turn without asking thousands of nodes every second.
    fn state_sample(&mut self) -> Vec<String> {
        let names: Vec<String> = self
            .fleet
            .nodes()
            .filter(|n| n.reachable())
            .map(|n| n.name.clone())
            .collect();
        if names.len() <= STATE_SAMPLE {
            return names;
        }
        let start = self.state_offset % names.len();
        self.state_offset = start + STATE_SAMPLE;
        names
            .iter()
            .cycle()
            .skip(start)
            .take(STATE_SAMPLE)
            .cloned()
            .collect()
    }

    fn take_check(&mut self, out: chaincheck::CheckOutput) {
        for h in out.headers {
            self.fleet.record_header(h);
        }
        for (node, local, validated) in &out.state_heights {
            self.fleet.record_state_height(node, *local, *validated);
        }
        if let Some(roots) = out.state_roots {
            self.fleet.set_state_roots(roots);
        }
        if let Some(report) = out.fork {
            if report.diverged() {
                tracing::debug!(
                    partitions = report.partitions.len(),
                    height = report.height,
                    "chains differ"
                );
            }
            self.fleet.set_fork_report(report);
        }
        self.known_forks = out.known;
    }

    fn announce(&self, change: &Change, incident: Incident) {
        let events = change.events().to_vec();
        let what = match change {
            Change::Open { .. } => NoticeKind::Opened,
            Change::Update(_) if events.iter().any(|e| e.is(EventType::Resolved)) => {
                NoticeKind::Resolved
            }
            Change::Update(_) => NoticeKind::Updated,
        };
        debug_assert!(what != NoticeKind::Resolved || incident.status == Status::Resolved);
        match what {
            NoticeKind::Opened => tracing::warn!(
                incident = incident.id, kind = %incident.kind, severity = %incident.severity,
                nodes = ?incident.nodes, "incident opened: {}", incident.summary
            ),
            NoticeKind::Resolved => tracing::info!(
                incident = incident.id, kind = %incident.kind, "incident resolved: {}",
                events.last().map(|e| e.message.as_str()).unwrap_or_default()
            ),
            _ => {}
        }
        for e in events.iter().skip(usize::from(what == NoticeKind::Opened)) {
            if e.is(EventType::Escalated) || e.is(EventType::ResponseTargetBreached) {
                tracing::warn!(incident = incident.id, kind = %incident.kind, "{}", e.message);
            } else if !(what == NoticeKind::Resolved && e.is(EventType::Resolved)) {
                tracing::info!(incident = incident.id, kind = %incident.kind, "incident updated: {}", e.message);
            }
        }
        if what != NoticeKind::Updated || !events.is_empty() {
            let _ = self.notices.send(Notice {
                what,
                incident,
                events,
            });
        }
    }
}

/// One node's probe loop: probe every `interval`; after a failure re-probe at once to confirm.
/// Each probe asks for the header at the node's last known height (block time, primary).
async fn probe_node(
    prober: Prober,
    target: NodeTarget,
    schedule: NodeSchedule,
    probe_now: Arc<tokio::sync::Notify>,
    tx: mpsc::Sender<Input>,
) {
    let NodeSchedule {
        interval,
        first_after,
        headers,
    } = schedule;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first_after, interval);
    let mut round = 0u64;
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut height = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = probe_now.notified() => {}
            _ = prober.connection_closed(&target) => {
                tracing::debug!(node = %target.name, "idle connection closed: probing now");
            }
        }
        // Boxed: the in-flight probe futures are a few kilobytes and only a few dozen nodes
        // are being probed at any moment; inline they would make every node's task as big
        // (7 KB × 10,000 nodes).
        let ask = match (height, headers) {
            (None, _) => Headers::None,
            (Some(h), HeaderTurn::Always) => Headers::At(h),
            (Some(h), HeaderTurn::Every { rounds, phase }) if round % rounds == phase => {
                Headers::WithParent(h)
            }
            (Some(_), HeaderTurn::Every { .. }) => Headers::None,
        };
        round += 1;
        // Boxed in a statement of its own: a temporary lives to the end of its statement,
        // so `Box::pin(..).await` in one would keep the unboxed future in this task too.
        let probing = Box::pin(probe_hedged(&prober, &target, ask));
        let (first, mut hedged) = probing.await;
        // A failed probe is confirmed at once: by the hedge when it ran, else afresh.
        let mut next = Some(first);
        let mut confirmed = false;
        while let Some(o) = next.take() {
            if let Some(s) = o.status() {
                height = Some(s.height());
            }
            let failed = o.outcome.is_err();
            // a slot first, then the value: the observation is not held in the awaiting
            // future (which every node's task would carry)
            let Ok(slot) = tx.reserve().await else {
                return;
            };
            slot.send(Input::Rpc(o));
            if failed && !confirmed {
                confirmed = true;
                next = match hedged.take() {
                    Some(c) => Some(c),
                    None => {
                        let confirming = Box::pin(prober.probe(&target, height));
                        Some(confirming.await)
                    }
                };
            }
        }
    }
}

/// One probe; when it is still unanswered after half the timeout, also a second,
/// confirming probe at once, due when the first one is: a hung node is confirmed at the
/// timeout, not at twice the timeout. A slow answer to the first makes the second moot.
/// Returns the first probe's observation and, if the first failed, the hedge's.
async fn probe_hedged(
    prober: &Prober,
    target: &NodeTarget,
    headers: Headers,
) -> (neo_ir_core::Observation, Option<neo_ir_core::Observation>) {
    let timeout = prober.config().timeout;
    let hedge_after = timeout / 2;
    let first = prober.probe(target, headers);
    tokio::pin!(first);
    tokio::select! {
        o = &mut first => (o, None),
        _ = tokio::time::sleep(hedge_after) => {
            // boxed: made only for a slow first probe, so it does not double every probe's
            // future
            let mut second = Box::pin(confirm_within(prober, target, headers, timeout - hedge_after));
            tokio::select! {
                o = &mut first => {
                    if o.outcome.is_ok() { (o, None) } else { (o, Some(second.await)) }
                }
                c = &mut second => {
                    let o = first.await;
                    let c = if o.outcome.is_ok() { None } else { Some(c) };
                    (o, c)
                }
            }
        }
    }
}

/// A probe that must answer within `within` (shorter than the configured timeout); past
/// that it is a timeout observation like any other.
async fn confirm_within(
    prober: &Prober,
    target: &NodeTarget,
    headers: Headers,
    within: std::time::Duration,
) -> neo_ir_core::Observation {
    let at = jiff::Timestamp::now();
    match tokio::time::timeout(within, prober.probe(target, headers)).await {
        Ok(o) => o,
        Err(_) => neo_ir_core::Observation {
            node: target.name.clone(),
            at,
            latency_ms: within.as_millis() as u64,
            outcome: Err(neo_ir_core::ProbeFailure::new(
                neo_ir_core::FailureKind::Timeout,
                format!(
                    "no answer within {} ms (confirming probe)",
                    within.as_millis()
                ),
            )),
        },
    }
}

/// When a node's probe task probes, and when it asks for block headers.
struct NodeSchedule {
    interval: std::time::Duration,
    /// Delay of the first probe (a big fleet's are spread over the first interval).
    first_after: std::time::Duration,
    headers: HeaderTurn,
}

/// Which rounds ask a node for block headers.
#[derive(Clone, Copy)]
enum HeaderTurn {
    /// The newest header, every round.
    Always,
    /// The newest header and the one below it, in rounds where `round % rounds == phase`.
    Every { rounds: u64, phase: u64 },
}

/// What the per-node tasks send to the decision step.
pub(crate) enum Input {
    Rpc(neo_ir_core::Observation),
    Metrics(String, neo_ir_core::telemetry::NodeMetrics),
    Host(String, neo_ir_core::telemetry::HostSample),
}

/// Where a node's telemetry comes from besides JSON-RPC.
#[derive(Clone)]
struct TelemetrySource {
    node: String,
    metrics: Option<String>,
    /// neo-rs serves `/healthz` and `/readyz` beside `/metrics`.
    health_base: Option<String>,
    /// Agent URL and bearer token.
    agent: Option<(String, String)>,
}

/// One node's telemetry loop: scrape `/metrics` (+ health) and read the host agent every
/// `interval`, each under the hard `timeout`.
async fn telemetry_node(
    prober: Prober,
    agent_client: reqwest::Client,
    source: TelemetrySource,
    interval: std::time::Duration,
    timeout: std::time::Duration,
    tx: mpsc::Sender<Input>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let metrics = async {
            match &source.metrics {
                Some(url) => Some(prober.scrape(url, source.health_base.as_deref()).await),
                None => None,
            }
        };
        let host = async {
            let (url, token) = source.agent.as_ref()?;
            let sample = match neo_ir_agent::fetch_report(&agent_client, url, token, timeout).await
            {
                Ok(report) => neo_ir_core::telemetry::HostSample::from(&report),
                Err(e) => neo_ir_core::telemetry::HostSample {
                    at: Some(jiff::Timestamp::now()),
                    process_state: "unknown".into(),
                    error: Some(e.to_string()),
                    ..Default::default()
                },
            };
            Some(sample)
        };
        let (m, h) = tokio::join!(metrics, host);
        if let Some(m) = m {
            if tx
                .send(Input::Metrics(source.node.clone(), m))
                .await
                .is_err()
            {
                return;
            }
        }
        if let Some(h) = h {
            if tx.send(Input::Host(source.node.clone(), h)).await.is_err() {
                return;
            }
        }
    }
}

/// This process's name in the leader's lease: `host:pid:start`, unique per start.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{host}:{}:{start}", std::process::id())
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400)
}
#[cfg(test)]
mod task_size {
    /// Every node has a probe task all the time, so its future's size is paid 10,000 times
    /// in a big fleet (bench `scale`); the in-flight probe (about 5 KB) is boxed to keep it
    /// out of the task.
    #[test]
    fn a_node_task_stays_small() {
        let prober = neo_ir_probe::Prober::new(Default::default()).expect("prober");
        let t = neo_ir_probe::NodeTarget::new("a", "http://127.0.0.1:1", neo_ir_core::Role::Rpc);
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let task = super::probe_node(
            prober,
            t,
            super::NodeSchedule {
                interval: std::time::Duration::from_secs(1),
                first_after: std::time::Duration::ZERO,
                headers: super::HeaderTurn::Always,
            },
            Default::default(),
            tx,
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 3072, "probe_node's future is {size} bytes");
    }
}
