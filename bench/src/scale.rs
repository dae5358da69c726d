//! `neo-ir-bench scale`: one watcher over N lightweight JSON-RPC endpoints at a 1 s interval;
//! prints the watcher process's CPU % of one core and its peak RSS.
//!
//! The endpoints run in a child process (this binary re-executed as `serve-endpoints`, see
//! [`crate::endpoints`]), so this process holds only the watcher: its CPU is the utime +
//! stime delta of `/proc/self/stat` over the measured window (after a warm-up), its peak RSS
//! is `VmHWM` of `/proc/self/status`. The store is SQLite in a temporary file, as in
//! production. Each node keeps one connection open (the probe's keep-alive connection, which
//! is also its crash sentinel), so RLIMIT_NOFILE is raised to its hard limit first and
//! reported when it is too low for N endpoints.
//!
//! After the watcher, two baselines send the same requests with no neo-ir logic (a bare
//! hyper connection per endpoint, as the prober uses, and a bare reqwest client), so the
//! watcher's CPU is also printed as a ratio of the HTTP floor measured in the same run.

use std::io::BufRead;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use neo_ir_core::config::{Config, NodeConfig};
use neo_ir_core::Role;
use neo_ir_store::Store;
use neo_ir_watch::{NoticeKind, Watcher};
use serde_json::Value;
use tokio::time::Instant;

use crate::stats::Table;

const TARGET_CPU_PERCENT: f64 = 50.0;
const TARGET_RSS_MB: f64 = 200.0;

#[derive(clap::Args)]
pub struct Args {
    /// Number of simulated RPC endpoints.
    #[arg(long, default_value_t = 10_000)]
    endpoints: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds of warm-up before measuring (first probes, getversion, connections).
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Endpoints per listener in the endpoint process.
    #[arg(long, default_value_t = 500)]
    per_listener: usize,
    /// The watcher's `probe.max_concurrency` (requests in flight across all nodes).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Skip the baseline (a bare HTTP client sending the same requests, no neo-ir).
    #[arg(long)]
    no_baseline: bool,
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit. Returns (soft, hard) afterwards.
pub fn raise_nofile() -> (Option<u64>, Option<u64>) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let want = Rlimit {
        current: cur.maximum,
        maximum: cur.maximum,
    };
    if cur.current != cur.maximum {
        let _ = setrlimit(Resource::Nofile, want);
    }
    let now = getrlimit(Resource::Nofile);
    (now.current, now.maximum)
}

/// Kills the endpoint process when dropped.
struct EndpointProcess(Child);

impl Drop for EndpointProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unreadable stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after the command: state is field 3, utime 14, stime 15
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// A `kB` line of /proc/self/status, in MB.
fn status_mb(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let n = args.endpoints;
    let (soft, hard) = raise_nofile();
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
    // one connection per node, the rare calls' pool, SQLite, the runtime
    let need = n as u64 + args.concurrency as u64 + 256;
    let fd_note = match soft {
        Some(s) if s < need => format!(
            "INSUFFICIENT: {s} < {need} needed (one connection per endpoint): raise the hard limit (ulimit -Hn)"
        ),
        _ => "enough".into(),
    };
    println!(
        "open-file limit  soft {} / hard {} ({fd_note})",
        show(soft),
        show(hard)
    );

    let genesis_ms = crate::stats::now_ms() as u64 - 1000 * crate::endpoints::MSPERBLOCK;
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut child = EndpointProcess(
        Command::new(exe)
            .args([
                "serve-endpoints",
                "--endpoints",
                &n.to_string(),
                "--per-listener",
                &args.per_listener.to_string(),
                "--genesis-ms",
                &genesis_ms.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the endpoint process")?,
    );
    let child_pid = child.0.id().to_string();
    let stdout = child.0.stdout.take().context("endpoint stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), line)
        .await
        .context("the endpoint process did not start within 30 s")???;
    let v: Value = serde_json::from_str(&line).context("endpoint process output")?;
    let ports: Vec<u16> = v["ports"]
        .as_array()
        .context("no ports")?
        .iter()
        .filter_map(|p| p.as_u64().map(|p| p as u16))
        .collect();
    if ports.is_empty() {
        bail!("the endpoint process reported no ports");
    }
    let per = args.per_listener.max(1);
    let nodes: Vec<NodeConfig> = (0..n)
        .map(|i| {
            NodeConfig::new(
                format!("ep-{i}"),
                format!("http://127.0.0.1:{}/n/{i}", ports[i / per]),
                Role::Rpc,
            )
        })
        .collect();
    println!(
        "endpoints        {n} on {} listeners in process {child_pid} (path /n/{{i}}), {} ms blocks",
        ports.len(),
        crate::endpoints::MSPERBLOCK
    );

    let dir = tempfile::Builder::new()
        .prefix("neo-ir-bench-scale")
        .tempdir()?;
    let store_url = format!("sqlite://{}", dir.path().join("scale.db").display());
    let store = Store::open(&store_url).await.context("opening the store")?;
    let mut config = Config::with_defaults(nodes, store_url);
    config.probe.interval = Duration::from_secs(1);
    config.probe.timeout = Duration::from_secs(2);
    config.probe.max_concurrency = args.concurrency;
    println!(
        "watcher          probe interval 1 s, timeout 2 s, max_concurrency {}, SQLite in {}",
        args.concurrency,
        dir.path().display()
    );
    let watcher = Watcher::new(config, store.clone())?;
    let handle = watcher.handle();
    let mut notices = handle.subscribe();
    let rounds = handle.rounds();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let watching = tokio::spawn(watcher.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let opened = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let counting = {
        let opened = opened.clone();
        tokio::spawn(async move {
            while let Ok(n) = notices.recv().await {
                if n.what == NoticeKind::Opened {
                    opened
                        .lock()
                        .expect("lock")
                        .push(format!("{} {}", n.incident.key, n.incident.summary));
                }
            }
        })
    };

    let http = reqwest::Client::builder().no_proxy().build()?;
    let stats_url = format!("http://127.0.0.1:{}/stats", ports[0]);
    let stats = || async {
        let v: Value = http.get(&stats_url).send().await?.json().await?;
        anyhow::Ok((
            v["batches"].as_u64().unwrap_or(0),
            v["singles"].as_u64().unwrap_or(0),
        ))
    };
    let tck = rustix::param::clock_ticks_per_second() as f64;
    let me = std::process::id().to_string();

    println!("warming up {} s ...", args.warmup);
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let (r0, c0, k0, s0, t0) = (
        *rounds.borrow(),
        cpu_ticks(&me)?,
        cpu_ticks(&child_pid)?,
        stats().await?,
        Instant::now(),
    );
    let opened0 = opened.lock().expect("lock").len();
    println!("measuring {} s ...", args.seconds);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (r1, c1, k1, s1, wall) = (
        *rounds.borrow(),
        cpu_ticks(&me)?,
        cpu_ticks(&child_pid)?,
        stats().await?,
        t0.elapsed().as_secs_f64(),
    );
    let fds = open_fds();
    let hwm = status_mb("VmHWM:").unwrap_or(f64::NAN);
    let rss = status_mb("VmRSS:").unwrap_or(f64::NAN);

    let _ = stop_tx.send(true);
    let stopped = tokio::time::timeout(Duration::from_secs(10), watching).await;
    counting.abort();
    store.close().await;

    let mut baselines = Vec::new();
    if !args.no_baseline {
        let urls: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}/n/{i}", ports[i / per]))
            .collect();
        for client in [BareClient::HyperConnection, BareClient::Reqwest] {
            println!(
                "baseline: {}, same requests, {} s warm-up + {} s ...",
                client.describe(),
                args.warmup.min(5),
                args.seconds
            );
            let b = bare_client(
                client,
                urls.clone(),
                args.concurrency,
                Duration::from_secs(args.warmup.min(5)),
                Duration::from_secs(args.seconds),
                &stats,
            )
            .await?;
            baselines.push((client, b));
        }
    }
    drop(child);

    let cpu = (c1 - c0) as f64 / tck / wall * 100.0;
    let child_cpu = (k1 - k0) as f64 / tck / wall * 100.0;
    let probes_per_s = (s1.0 - s0.0) as f64 / wall;
    let singles_per_s = (s1.1 - s0.1) as f64 / wall;
    let rounds_per_s = (r1 - r0) as f64 / wall;
    let opened = opened.lock().expect("lock").clone();

    println!(
        "\nscale: {n} endpoints, 1 s interval, measured over {wall:.1} s after {} s warm-up",
        args.warmup
    );
    let mut t = Table::new(&["measure", "value", "target", "met?"]);
    let yes = |b: bool| if b { "yes" } else { "NO" }.to_string();
    t.row(vec![
        "watcher CPU (% of one core)".into(),
        format!("{cpu:.1} %"),
        format!("< {TARGET_CPU_PERCENT:.0} %"),
        yes(cpu < TARGET_CPU_PERCENT),
    ]);
    for (client, b) in &baselines {
        t.row(vec![
            format!("  baseline: {}", client.describe()),
            format!(
                "{:.1} % ({:.0} req/s); watcher = {:.2} x this",
                b.cpu,
                b.per_s,
                cpu / b.cpu
            ),
            String::new(),
            String::new(),
        ]);
    }
    t.row(vec![
        "watcher peak RSS (VmHWM)".into(),
        format!("{hwm:.1} MB"),
        format!("< {TARGET_RSS_MB:.0} MB"),
        yes(hwm < TARGET_RSS_MB),
    ]);
    t.row(vec![
        "probes answered / s (batched POSTs)".into(),
        format!(
            "{probes_per_s:.0} ({:.0} % of {n})",
            probes_per_s / n as f64 * 100.0
        ),
        format!("{n} (one per endpoint per second)"),
        yes(probes_per_s >= 0.95 * n as f64),
    ]);
    t.row(vec![
        "decision rounds / s".into(),
        format!("{rounds_per_s:.2}"),
        ">= 1".into(),
        yes(rounds_per_s >= 0.9),
    ]);
    t.row(vec![
        "chain-check calls / s (getblockhash ...)".into(),
        format!("{singles_per_s:.0}"),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "endpoint process CPU (not counted)".into(),
        format!("{child_cpu:.1} %"),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "watcher RSS at end / open fds".into(),
        format!("{rss:.1} MB / {fds}"),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "incidents opened (all endpoints healthy)".into(),
        format!(
            "{} ({} during the window)",
            opened.len(),
            opened.len() - opened0
        ),
        "0".into(),
        yes(opened.is_empty()),
    ]);
    t.print();
    for o in opened.iter().take(5) {
        println!("  opened: {o}");
    }
    if stopped.is_err() {
        println!("  note: the watcher did not stop within 10 s");
    }
    Ok(ExitCode::SUCCESS)
}

/// CPU of the measured window of [`bare_client`].
struct Baseline {
    /// % of one core.
    cpu: f64,
    /// Requests answered per second.
    per_s: f64,
}

/// The HTTP client of a baseline run.
#[derive(Clone, Copy)]
enum BareClient {
    /// One keep-alive connection per endpoint on hyper's connection API, driven in the
    /// endpoint's task: the transport the prober uses (crates/probe/src/link.rs).
    HyperConnection,
    /// The shared reqwest client (pool, tower layers), as built for the rare calls.
    Reqwest,
}

impl BareClient {
    fn describe(self) -> &'static str {
        match self {
            BareClient::HyperConnection => "bare hyper connection per endpoint",
            BareClient::Reqwest => "bare reqwest client",
        }
    }
}

/// The floor under the watcher: every endpoint gets the probe's steady-state batch once a
/// second (`getblockcount`, `getbestblockhash`, `getconnectioncount`, and every 10th
/// second also two verbose `getblockheader`s, as a fleet over 500 nodes asks), under the
/// same concurrency bound, and the answer is read without being parsed. No sentinel, no
/// decisions, no store. The watcher's CPU divided by this is what neo-ir's own work costs
/// on top of HTTP.
async fn bare_client<F, Fut>(
    client: BareClient,
    urls: Vec<String>,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    stats: &F,
) -> anyhow::Result<Baseline>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u64, u64)>>,
{
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    const BODY: &str = concat!(
        r#"[{"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]},"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"getbestblockhash","params":[]},"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"getconnectioncount","params":[]}]"#
    );
    const BODY_WITH_HEADERS: &str = concat!(
        r#"[{"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]},"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"getbestblockhash","params":[]},"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"getconnectioncount","params":[]},"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"getblockheader","params":[2,true]},"#,
        r#"{"jsonrpc":"2.0","id":5,"method":"getblockheader","params":[1,true]}]"#
    );
    let shared = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(15))
        .build()?;
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let n = urls.len().max(1) as u64;
    for (i, url) in urls.into_iter().enumerate() {
        let (shared, permits) = (shared.clone(), permits.clone());
        let uri: hyper::Uri = url.parse()?;
        let addr = format!(
            "{}:{}",
            uri.host().context("host")?,
            uri.port_u16().context("port")?
        );
        tasks.spawn(async move {
            // spread over the second, as the watcher spreads a big fleet
            let first = Duration::from_micros(i as u64 * 1_000_000 / n);
            let mut tick = tokio::time::interval_at(Instant::now() + first, Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut idle: Option<tokio::net::TcpStream> = None;
            for round in 0u64.. {
                tick.tick().await;
                let _permit = permits.acquire().await;
                let body = if round % 10 == i as u64 % 10 {
                    BODY_WITH_HEADERS
                } else {
                    BODY
                };
                match client {
                    BareClient::Reqwest => {
                        let sent = shared
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await;
                        if let Ok(r) = sent {
                            let _ = r.bytes().await;
                        }
                    }
                    BareClient::HyperConnection => {
                        let stream = match idle.take() {
                            Some(s) => s,
                            None => match tokio::net::TcpStream::connect(&addr).await {
                                Ok(s) => s,
                                Err(_) => continue,
                            },
                        };
                        let _ = stream.set_nodelay(true);
                        let Ok((mut send, mut conn)) =
                            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
                                hyper_util::rt::TokioIo::new(stream),
                            )
                            .await
                        else {
                            continue;
                        };
                        let req = hyper::Request::post(uri.path())
                            .header("host", addr.as_str())
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(body.as_bytes())));
                        let Ok(req) = req else { continue };
                        let work = async {
                            let r = send.send_request(req).await.ok()?;
                            r.into_body().collect().await.ok().map(|b| b.to_bytes())
                        };
                        let done = tokio::select! {
                            biased;
                            r = work => r.is_some(),
                            _ = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => false,
                        };
                        drop(send);
                        if done
                            && std::future::poll_fn(|cx| conn.poll_without_shutdown(cx))
                                .await
                                .is_ok()
                        {
                            idle = Some(conn.into_parts().io.into_inner());
                        }
                    }
                }
            }
        });
    }
    tokio::time::sleep(warmup).await;
    let me = std::process::id().to_string();
    let tck = rustix::param::clock_ticks_per_second() as f64;
    let (c0, s0, t0) = (cpu_ticks(&me)?, stats().await?, Instant::now());
    tokio::time::sleep(window).await;
    let (c1, s1, wall) = (cpu_ticks(&me)?, stats().await?, t0.elapsed().as_secs_f64());
    tasks.shutdown().await;
    Ok(Baseline {
        cpu: (c1 - c0) as f64 / tck / wall * 100.0,
        per_s: (s1.0 - s0.0) as f64 / wall,
    })
}
