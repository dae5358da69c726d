//! `neo-ir-bench detection`: the fault schedule and its measurements.
//!
//! One simulated network (4 validators + 3 RPC nodes, 1000 ms blocks) is watched by one
//! neo-ir watcher in this process (1 s probe interval, 2 s timeout, `clear_for` 1 s, SQLite in
//! a temporary directory) and, when installed, by a tuned Prometheus + Alertmanager at the
//! same time ([`crate::prom`]). Each fault kind is injected `--iterations` times:
//!
//! 1. inject (on `rpc-1..3` in turn; the stall is chain-wide);
//! 2. wait for neo-ir's expected incident to open, and for Prometheus's page when Prometheus
//!    runs and has a rule for the kind (30 s deadline each; a miss is counted and printed).
//!    The slow fault is held at least 5 s so that a false `node_down` has time to show;
//! 3. recover, wait for neo-ir to resolve the incident, then let the fleet settle: every node
//!    answers, no incident is open, no Prometheus alert fires (stable for 1.5 s).
//!
//! Latency is measured from the injection, except for the stall, from the last block's own
//! time (`getblockheader [height, true]`'s `time`, read once both watchers have paged), and
//! for the fork, from the time of the first diverging block: the fork is injected at the
//! NEXT height (`Fork { height: current + 1 }`), so the diverging block appears as a new block
//! about a second later. (Forking at the current height would rewrite a block the node has
//! already served, which neo-ir rightly reports as a second incident,
//! `data_corruption:chain:<node>`, a broken link in the node's own chain.) Every incident opened (or alert paged) that is not the expected one for the current
//! fault, at any phase, counts as false for that kind. All times are wall-clock milliseconds
//! taken in this process (notice arrival, webhook arrival, injection).

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use neo_ir_core::config::Config;
use neo_ir_core::incident::{Incident, IncidentKind};
use neo_ir_sim::{Fault, SimConfig, SimNetwork};
use neo_ir_store::Store;
use neo_ir_watch::{Notice, NoticeKind, Watcher};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::prom::{self, Page, Prom};
use crate::stats::{now_ms, secs, summarize, Table};

const MSPERBLOCK: u64 = 1000;
const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(2);
const SLOW_MS: u64 = 1500;
const DETECT_DEADLINE: Duration = Duration::from_secs(30);
const RESOLVE_DEADLINE: Duration = Duration::from_secs(30);
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
const SETTLE_STABLE: Duration = Duration::from_millis(1500);
const SLOW_MIN_HOLD: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct Args {
    /// Injections per fault kind.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Fault kinds to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "crash,hang,stall,fork,slow"
    )]
    kinds: Vec<Kind>,
    /// Do not run Prometheus + Alertmanager even when installed.
    #[arg(long)]
    no_prometheus: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    Crash,
    Hang,
    Stall,
    Fork,
    Slow,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Crash => "crash",
            Kind::Hang => "hang",
            Kind::Stall => "stall",
            Kind::Fork => "fork",
            Kind::Slow => "slow 1.5 s",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Crash | Kind::Hang => "node_down",
            Kind::Stall => "consensus_failure",
            Kind::Fork => "data_corruption",
            Kind::Slow => "performance_degradation",
        }
    }

    /// The Prometheus alert that detects this kind, if any rule can.
    fn prom_alert(self) -> Option<&'static str> {
        match self {
            Kind::Crash | Kind::Hang => Some("NodeDown"),
            Kind::Stall => Some("ChainStall"),
            Kind::Fork | Kind::Slow => None,
        }
    }

    fn target(self) -> Target {
        let interval = INTERVAL.as_millis() as f64;
        match self {
            Kind::Crash => Target::P95(300.0),
            Kind::Hang => Target::Max(TIMEOUT.as_millis() as f64 + interval),
            Kind::Stall => Target::P95(2.0 * MSPERBLOCK as f64 + 1000.0),
            Kind::Fork => Target::Max(interval),
            Kind::Slow => Target::NoFalseNodeDown,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    P95(f64),
    Max(f64),
    NoFalseNodeDown,
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::P95(ms) => format!("p95 <= {}", secs(ms)),
            Target::Max(ms) => format!("max <= {}", secs(ms)),
            Target::NoFalseNodeDown => "0 false node_down".into(),
        }
    }
}

/// What happened during one injection.
#[derive(Debug, Default)]
struct Track {
    node: String,
    /// Reference time of the latency (injection, or the block's time for stall and fork).
    inject_ms: f64,
    /// The reference minus the injection time, when they differ (stall, fork).
    ref_offset_ms: Option<f64>,
    /// Where the iteration is, for false incidents: "fault", "recovery", "settle".
    phase: &'static str,
    neo_at: Option<f64>,
    neo_id: Option<i64>,
    neo_resolved: bool,
    prom_at: Option<f64>,
    neo_false: Vec<String>,
    neo_false_node_down: usize,
    prom_false: Vec<String>,
    prom_false_node_down: usize,
    settled: bool,
}

/// Results of one kind.
#[derive(Default)]
struct KindResult {
    neo: Vec<f64>,
    prom: Vec<f64>,
    neo_misses: usize,
    prom_misses: usize,
    neo_false: usize,
    neo_false_node_down: usize,
    prom_false: usize,
    prom_false_node_down: usize,
    unresolved: usize,
    unsettled: usize,
}

enum Event {
    Neo(f64, Box<Notice>),
    Prom(Page),
}

struct Ctx {
    net: SimNetwork,
    store: Store,
    prom: Option<Prom>,
    rx: mpsc::UnboundedReceiver<Event>,
    /// Prometheus firings already seen (alert, node, startsAt): Alertmanager repeats an alert
    /// in later deliveries of its group.
    seen_pages: HashSet<(String, Option<String>, String)>,
    http: reqwest::Client,
    started: Instant,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let net = SimNetwork::start(SimConfig {
        validators: 4,
        rpc: 3,
        msperblock: MSPERBLOCK,
        ..SimConfig::default()
    })
    .await
    .context("starting the simulated network")?;
    let dir = tempfile::Builder::new().prefix("neo-ir-bench").tempdir()?;
    let store_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&store_url).await.context("opening the store")?;
    let mut config = Config::with_defaults(neo_ir_watch::simulated_nodes(&net), store_url);
    config.probe.interval = INTERVAL;
    config.probe.timeout = TIMEOUT;
    config.detect.debounce.clear_for = Duration::from_secs(1);
    // the playbook's 30 min stability window, shortened: the bench measures detection
    config.response.stability_window = Duration::from_millis(500);

    let (tx, rx) = mpsc::unbounded_channel();
    let prom = match (args.no_prometheus, prom::binaries()) {
        (true, _) => {
            println!("prometheus comparison skipped: --no-prometheus");
            None
        }
        (false, None) => {
            println!(
                "prometheus comparison skipped: install prometheus prometheus-alertmanager (bench/run.sh --install)"
            );
            None
        }
        (false, Some(bins)) => {
            let (ptx, mut prx) = mpsc::unbounded_channel();
            let hook = prom::webhook(ptx).await?;
            let fwd = tx.clone();
            tokio::spawn(async move {
                while let Some(p) = prx.recv().await {
                    if fwd.send(Event::Prom(p)).is_err() {
                        return;
                    }
                }
            });
            let targets: Vec<(String, u16)> =
                net.nodes().into_iter().map(|n| (n.name, n.port)).collect();
            let p = Prom::start(&bins, &targets, &hook)
                .await
                .context("starting prometheus + alertmanager")?;
            println!(
                "prometheus  {} ({}), alertmanager {} ({})",
                p.prometheus_url,
                bins.0.display(),
                p.alertmanager_url,
                bins.1.display()
            );
            Some(p)
        }
    };

    let watcher = Watcher::new(config, store.clone())?;
    let handle = watcher.handle();
    let mut notices = handle.subscribe();
    let rounds = handle.rounds();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let watching = tokio::spawn(watcher.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    tokio::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(n) => {
                    if tx.send(Event::Neo(now_ms(), Box::new(n))).is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    eprintln!("warning: {k} incident notices lost (receiver lagged)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });

    println!(
        "neo-ir      4 validators + 3 RPC nodes, {MSPERBLOCK} ms blocks; probe interval {} s, timeout {} s, clear_for 1 s",
        INTERVAL.as_secs(),
        TIMEOUT.as_secs()
    );
    println!(
        "schedule    {} x {} (deadline {} s per detection)\n",
        args.iterations,
        args.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", "),
        DETECT_DEADLINE.as_secs()
    );

    let mut ctx = Ctx {
        net,
        store,
        prom,
        rx,
        seen_pages: HashSet::new(),
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()?,
        started,
    };
    let result = schedule(&mut ctx, &args, rounds).await;

    let _ = stop_tx.send(true);
    let _ = watching.await;
    ctx.net.clone().shutdown().await;
    ctx.store.close().await;
    drop(ctx.prom.take());
    let results = result?;
    report(&args, &results);
    println!("\ntotal time {:.0} s", ctx.started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

async fn schedule(
    ctx: &mut Ctx,
    args: &Args,
    mut rounds: tokio::sync::watch::Receiver<u64>,
) -> anyhow::Result<Vec<(Kind, KindResult, bool)>> {
    // warm-up: the watcher knows the fleet, Prometheus has > 3 s of samples of every node
    rounds
        .wait_for(|r| *r >= 5)
        .await
        .context("watcher stopped")?;
    let warm = Instant::now() + Duration::from_secs(6);
    let mut scratch = Track {
        phase: "warm-up",
        ..Track::default()
    };
    while Instant::now() < warm {
        pump(ctx, None, &mut scratch, Duration::from_millis(200)).await;
    }
    if let Some(p) = &ctx.prom {
        let up = p.targets_up().await.unwrap_or(0);
        println!(
            "[{:>6.1}s] warm-up done; prometheus targets up: {up}/7",
            ctx.started.elapsed().as_secs_f64()
        );
    }
    settle(ctx, None, &mut scratch).await;
    if !scratch.neo_false.is_empty() || !scratch.prom_false.is_empty() {
        println!(
            "           during warm-up (not counted): neo-ir {:?}, prometheus {:?}",
            scratch.neo_false, scratch.prom_false
        );
    }

    let mut out = Vec::new();
    for &kind in &args.kinds {
        let mut r = KindResult::default();
        for i in 0..args.iterations {
            if let Some(p) = &mut ctx.prom {
                p.check()?;
            }
            let t = iteration(ctx, kind, i).await?;
            let prom_on = ctx.prom.is_some() && kind.prom_alert().is_some();
            let neo = t.neo_at.map(|at| at - t.inject_ms);
            let prom = t.prom_at.map(|at| at - t.inject_ms);
            let line = format!(
                "[{:>6.1}s] {:<10} {:>2}/{} {:<6} neo-ir {}{}{}{}{}",
                ctx.started.elapsed().as_secs_f64(),
                kind.name(),
                i + 1,
                args.iterations,
                if kind == Kind::Stall {
                    "chain"
                } else {
                    t.node.as_str()
                },
                match neo {
                    Some(ms) => format!("{} {}", kind.expected(), secs(ms)),
                    None => format!("MISSED {}", kind.expected()),
                },
                match (kind, t.ref_offset_ms) {
                    (Kind::Stall, Some(off)) =>
                        format!(" (last block {:+.3} s from the stall)", off / 1000.0),
                    (Kind::Fork, Some(off)) => format!(
                        " (diverging block {:+.3} s from the injection)",
                        off / 1000.0
                    ),
                    _ => String::new(),
                },
                if prom_on {
                    match prom {
                        Some(ms) => format!(
                            ", prometheus {} {}",
                            kind.prom_alert().unwrap_or_default(),
                            secs(ms)
                        ),
                        None => format!(
                            ", prometheus MISSED {}",
                            kind.prom_alert().unwrap_or_default()
                        ),
                    }
                } else {
                    String::new()
                },
                if t.neo_false.is_empty() {
                    String::new()
                } else {
                    format!("; neo-ir false: {}", t.neo_false.join(", "))
                },
                if t.prom_false.is_empty() {
                    String::new()
                } else {
                    format!("; prometheus false: {}", t.prom_false.join(", "))
                },
            );
            println!("{line}");
            match neo {
                Some(ms) => r.neo.push(ms),
                None => r.neo_misses += 1,
            }
            if prom_on {
                match prom {
                    Some(ms) => r.prom.push(ms),
                    None => r.prom_misses += 1,
                }
            }
            r.neo_false += t.neo_false.len();
            r.neo_false_node_down += t.neo_false_node_down;
            r.prom_false += t.prom_false.len();
            r.prom_false_node_down += t.prom_false_node_down;
            r.unresolved += usize::from(t.neo_id.is_some() && !t.neo_resolved);
            r.unsettled += usize::from(!t.settled);
        }
        out.push((kind, r, ctx.prom.is_some()));
    }
    Ok(out)
}

/// One injection: detect, recover, resolve, settle.
async fn iteration(ctx: &mut Ctx, kind: Kind, i: usize) -> anyhow::Result<Track> {
    let node = format!("rpc-{}", i % 3 + 1);
    let mut t = Track {
        node: node.clone(),
        phase: "fault",
        ..Track::default()
    };
    let injected = Instant::now();
    t.inject_ms = now_ms();
    let mut fork_height = None;
    match kind {
        Kind::Crash => ctx.net.inject(&node, Fault::Crash).await?,
        Kind::Hang => ctx.net.inject(&node, Fault::Hang).await?,
        Kind::Slow => ctx.net.inject(&node, Fault::Slow { ms: SLOW_MS }).await?,
        Kind::Fork => {
            // the next block diverges: forking at the current height would rewrite a block
            // the node has already served (a broken link, a second incident of its own)
            let height = ctx.net.height() + 1;
            fork_height = Some(height);
            ctx.net
                .inject(
                    &node,
                    Fault::Fork {
                        height,
                        branch: None,
                    },
                )
                .await?
        }
        Kind::Stall => ctx.net.stall(),
    }

    // detection (both watchers), the slow fault held at least SLOW_MIN_HOLD
    let prom_wanted = ctx.prom.is_some() && kind.prom_alert().is_some();
    let deadline = injected + DETECT_DEADLINE;
    loop {
        let hold = kind == Kind::Slow && injected.elapsed() < SLOW_MIN_HOLD;
        let done = t.neo_at.is_some() && (!prom_wanted || t.prom_at.is_some()) && !hold;
        if done || Instant::now() >= deadline {
            break;
        }
        pump(ctx, Some(kind), &mut t, Duration::from_millis(100)).await;
    }

    let node_url = ctx
        .net
        .nodes()
        .into_iter()
        .find(|n| n.name == node)
        .map(|n| n.rpc_url)
        .context("no such node")?;
    match (kind, fork_height) {
        // the latency counts from the last block's own time
        (Kind::Stall, _) => {
            let ms = block_ms(ctx, &node_url, None)
                .await
                .context("reading the last block's time")?;
            t.ref_offset_ms = Some(ms - t.inject_ms);
            t.inject_ms = ms
        }
        // ... and from the diverging block's own time
        (Kind::Fork, Some(h)) => match block_ms(ctx, &node_url, Some(h)).await {
            Ok(ms) => {
                t.ref_offset_ms = Some(ms - t.inject_ms);
                t.inject_ms = ms
            }
            Err(e) => println!("           cannot read block {h} of {node}: {e:#}"),
        },
        _ => {}
    }

    match kind {
        Kind::Stall => ctx.net.resume(),
        _ => ctx.net.recover_node(&node).await?,
    }
    t.phase = "recovery";

    if t.neo_id.is_some() {
        let deadline = Instant::now() + RESOLVE_DEADLINE;
        while !t.neo_resolved && Instant::now() < deadline {
            pump(ctx, Some(kind), &mut t, Duration::from_millis(100)).await;
        }
    }
    t.phase = "settle";
    settle(ctx, Some(kind), &mut t).await;
    Ok(t)
}

/// Wait until every node answers, no incident is open and no Prometheus alert fires, for
/// SETTLE_STABLE in a row (deadline SETTLE_DEADLINE). Events seen meanwhile are classified.
async fn settle(ctx: &mut Ctx, kind: Option<Kind>, t: &mut Track) {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut stable_since: Option<Instant> = None;
    let mut why = String::new();
    while Instant::now() < deadline {
        pump(ctx, kind, t, Duration::from_millis(250)).await;
        match quiet(ctx).await {
            Ok(()) => {
                let since = *stable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLE_STABLE {
                    t.settled = true;
                    return;
                }
            }
            Err(e) => {
                why = e;
                stable_since = None;
            }
        }
    }
    println!(
        "           fleet did not settle within {} s: {why}",
        SETTLE_DEADLINE.as_secs()
    );
}

/// `Ok` when the fleet is quiet, else what is not.
async fn quiet(ctx: &Ctx) -> Result<(), String> {
    if ctx.net.is_stalled() {
        return Err("chain stalled".into());
    }
    let calls = ctx.net.nodes().into_iter().map(|n| {
        let http = ctx.http.clone();
        async move {
            let ok = rpc(
                &http,
                &n.rpc_url,
                json!([{"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]}]),
            )
            .await
            .is_ok();
            (n.name, ok)
        }
    });
    let silent: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();
    if !silent.is_empty() {
        return Err(format!("not answering: {}", silent.join(", ")));
    }
    let open = ctx
        .store
        .open_incidents()
        .await
        .map_err(|e| e.to_string())?;
    if !open.is_empty() {
        let keys: Vec<&str> = open.iter().map(|i| i.key.as_str()).collect();
        return Err(format!("neo-ir incidents open: {}", keys.join(", ")));
    }
    if let Some(p) = &ctx.prom {
        let firing = p.firing().await.map_err(|e| e.to_string())?;
        if !firing.is_empty() {
            return Err(format!("prometheus alerts firing: {}", firing.join(", ")));
        }
    }
    Ok(())
}

/// One JSON-RPC POST; the parsed answer.
async fn rpc(http: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    Ok(http
        .post(url)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// `time` (ms) of block `height` (default: the newest) as the node at `url` has it.
async fn block_ms(ctx: &Ctx, url: &str, height: Option<u64>) -> anyhow::Result<f64> {
    let height = match height {
        Some(h) => h,
        None => {
            let count = rpc(
                &ctx.http,
                url,
                json!({"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]}),
            )
            .await?["result"]
                .as_u64()
                .context("getblockcount")?;
            count.saturating_sub(1)
        }
    };
    let header = rpc(
        &ctx.http,
        url,
        json!({"jsonrpc":"2.0","id":1,"method":"getblockheader","params":[height, true]}),
    )
    .await?;
    header["result"]["time"]
        .as_u64()
        .map(|t| t as f64)
        .with_context(|| format!("no block {height}: {header}"))
}

/// Take events for up to `wait` and classify them against the current fault.
async fn pump(ctx: &mut Ctx, kind: Option<Kind>, t: &mut Track, wait: Duration) {
    let until = Instant::now() + wait;
    loop {
        let ev = match tokio::time::timeout_at(until, ctx.rx.recv()).await {
            Ok(Some(ev)) => ev,
            _ => return,
        };
        match ev {
            Event::Neo(at, n) => classify_neo(kind, t, at, &n),
            Event::Prom(p) => {
                if !p.firing {
                    continue;
                }
                let key = (p.alertname.clone(), p.node.clone(), p.starts_at.clone());
                if ctx.seen_pages.insert(key) {
                    classify_prom(kind, t, &p);
                }
            }
        }
    }
}

fn neo_expected(kind: Kind, node: &str, i: &Incident) -> bool {
    match kind {
        Kind::Crash | Kind::Hang => i.key == format!("node_down:{node}"),
        Kind::Stall => i.key == "consensus_failure",
        Kind::Fork => i.key == format!("data_corruption:divergent:{node}"),
        Kind::Slow => i.key == format!("performance_degradation:{node}"),
    }
}

fn classify_neo(kind: Option<Kind>, t: &mut Track, at: f64, n: &Notice) {
    let i = &n.incident;
    match n.what {
        NoticeKind::Opened => {
            let expected = kind.is_some_and(|k| neo_expected(k, &t.node, i));
            if expected && t.neo_at.is_none() {
                t.neo_at = Some(at);
                t.neo_id = Some(i.id);
            } else {
                t.neo_false
                    .push(format!("{} ({}, {})", i.key, i.severity, t.phase));
                if i.kind == IncidentKind::NodeDown {
                    t.neo_false_node_down += 1;
                }
            }
        }
        NoticeKind::Resolved if Some(i.id) == t.neo_id => t.neo_resolved = true,
        _ => {}
    }
}

fn classify_prom(kind: Option<Kind>, t: &mut Track, p: &Page) {
    let expected = match kind {
        Some(Kind::Crash | Kind::Hang) => {
            p.alertname == "NodeDown" && p.node.as_deref() == Some(t.node.as_str())
        }
        Some(Kind::Stall) => p.alertname == "ChainStall",
        _ => false,
    };
    if expected && t.prom_at.is_none() {
        t.prom_at = Some(p.at_ms);
    } else {
        t.prom_false.push(match &p.node {
            Some(n) => format!("{}{{node={n}}} ({})", p.alertname, t.phase),
            None => format!("{} ({})", p.alertname, t.phase),
        });
        if p.alertname == "NodeDown" {
            t.prom_false_node_down += 1;
        }
    }
}

fn report(args: &Args, results: &[(Kind, KindResult, bool)]) {
    let prom_ran = results.iter().any(|(_, _, prom)| *prom);
    println!(
        "\nneo-ir detection latency (fault injected -> incident opened; stall: from the last block's time; fork: from the diverging block's time), {} iterations per kind",
        args.iterations
    );
    let mut table = Table::new(&[
        "kind",
        "expects",
        "n",
        "p50",
        "p95",
        "max",
        "target",
        "met?",
        "false incidents",
    ]);
    for (kind, r, _) in results {
        let s = summarize(&r.neo);
        let cell =
            |f: fn(&crate::stats::Summary) -> f64| s.as_ref().map_or("-".into(), |s| secs(f(s)));
        let met = match (kind.target(), &s) {
            (Target::NoFalseNodeDown, _) => r.neo_false_node_down == 0,
            (_, None) => false,
            (Target::P95(ms), Some(s)) => r.neo_misses == 0 && s.p95 <= ms,
            (Target::Max(ms), Some(s)) => r.neo_misses == 0 && s.max <= ms,
        };
        let n = if r.neo_misses > 0 {
            format!(
                "{}/{} ({} missed)",
                r.neo.len(),
                args.iterations,
                r.neo_misses
            )
        } else {
            format!("{}/{}", r.neo.len(), args.iterations)
        };
        let mut falses = format!("{}", r.neo_false);
        if *kind == Kind::Slow || r.neo_false_node_down > 0 {
            falses.push_str(&format!(" ({} node_down)", r.neo_false_node_down));
        }
        table.row(vec![
            kind.name().into(),
            kind.expected().into(),
            n,
            cell(|s| s.p50),
            cell(|s| s.p95),
            cell(|s| s.max),
            kind.target().text(),
            if met { "yes" } else { "NO" }.into(),
            falses,
        ]);
    }
    table.print();
    let trouble: Vec<String> = results
        .iter()
        .filter(|(_, r, _)| r.unresolved + r.unsettled > 0)
        .map(|(k, r, _)| {
            format!(
                "{}: {} not resolved, {} not settled",
                k.name(),
                r.unresolved,
                r.unsettled
            )
        })
        .collect();
    if !trouble.is_empty() {
        println!("  note: {}", trouble.join("; "));
    }

    if !prom_ran {
        return;
    }
    println!("\nprometheus + alertmanager, same faults at the same time (scrape 1 s, timeout 900 ms, eval 1 s, for: 0s, group_wait 0s, group_interval 1s)");
    println!("  NodeDown:   {}", prom::NODE_DOWN_EXPR);
    println!("  ChainStall: {}", prom::CHAIN_STALL_EXPR);
    let mut table = Table::new(&[
        "kind",
        "alert",
        "n",
        "p50",
        "p95",
        "max",
        "neo-ir/prom p50",
        "neo-ir/prom p95",
        "false pages neo-ir",
        "false pages prom",
    ]);
    for (kind, r, _) in results {
        let neo = summarize(&r.neo);
        let prom = summarize(&r.prom);
        let ratio = |f: fn(&crate::stats::Summary) -> f64| match (&neo, &prom) {
            (Some(a), Some(b)) if f(b) > 0.0 => {
                let r = f(a) / f(b);
                if r < 0.1 {
                    format!("{r:.3}x")
                } else {
                    format!("{r:.2}x")
                }
            }
            _ => "-".into(),
        };
        let cell =
            |f: fn(&crate::stats::Summary) -> f64| prom.as_ref().map_or("-".into(), |s| secs(f(s)));
        let (alert, n) = match kind.prom_alert() {
            Some(a) => (
                a.to_string(),
                if r.prom_misses > 0 {
                    format!(
                        "{}/{} ({} missed)",
                        r.prom.len(),
                        args.iterations,
                        r.prom_misses
                    )
                } else {
                    format!("{}/{}", r.prom.len(), args.iterations)
                },
            ),
            None => ("(no rule)".into(), "-".into()),
        };
        table.row(vec![
            kind.name().into(),
            alert,
            n,
            cell(|s| s.p50),
            cell(|s| s.p95),
            cell(|s| s.max),
            ratio(|s| s.p50),
            ratio(|s| s.p95),
            format!("{} ({} node_down)", r.neo_false, r.neo_false_node_down),
            format!("{} ({} NodeDown)", r.prom_false, r.prom_false_node_down),
        ]);
    }
    table.print();
}
