//! The stage the demo and the drills play on: a simulated Neo N3 network in-process, a store,
//! the watcher and the API with the runbook runner, all with short intervals so a story takes
//! seconds. `Stage::stop` shuts everything down in order and closes the store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use neo_ir_core::config::{Config, NodeConfig};
use neo_ir_runbook::runner::Runner;
use neo_ir_sim::{SimConfig, SimNetwork};
use neo_ir_store::Store;
use neo_ir_watch::{WatchHandle, Watcher};

/// What is running.
pub struct Stage {
    pub net: SimNetwork,
    pub store: Store,
    pub runner: Arc<Runner>,
    pub handle: WatchHandle,
    pub addr: std::net::SocketAddr,
    stop_tx: tokio::sync::watch::Sender<bool>,
    watching: tokio::task::JoinHandle<Result<(), neo_ir_watch::WatchError>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// How to set it up.
pub struct StageOptions<'a> {
    pub store_url: &'a str,
    /// API address; a free port when taken.
    pub listen: &'a str,
    pub msperblock: u64,
    /// How long a cleared incident is monitored before it resolves.
    pub stability: Duration,
}

impl Stage {
    pub async fn start(o: StageOptions<'_>) -> anyhow::Result<Stage> {
        Stage::start_with(o, |_| {}).await
    }

    /// [`Stage::start`], with `tune` adjusting the configuration last (the demo adds its
    /// notification channel).
    pub async fn start_with(
        o: StageOptions<'_>,
        tune: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Stage> {
        let net = SimNetwork::start(SimConfig {
            validators: 4,
            rpc: 3,
            msperblock: o.msperblock,
            ..SimConfig::default()
        })
        .await
        .context("starting the simulated network")?;
        let nodes: Vec<NodeConfig> = neo_ir_watch::simulated_nodes(&net);
        let store = Store::open(o.store_url)
            .await
            .with_context(|| format!("opening the store {}", o.store_url))?;
        let (listener, addr) = match neo_ir_server::bind(o.listen).await {
            Ok(b) => b,
            Err(_) => neo_ir_server::bind("127.0.0.1:0")
                .await
                .context("binding the API")?,
        };
        let mut config = Config::with_defaults(nodes, o.store_url.to_string());
        config.probe.interval = Duration::from_millis(500);
        config.probe.timeout = Duration::from_secs(1);
        // hysteresis: a condition must stay clear this long before its incident counts as clear
        config.detect.debounce.clear_for = Duration::from_secs(2);
        // then it is monitored this long before it resolves (the playbook's 30 min, shortened)
        config.response.stability_window = o.stability;
        config.server.listen = addr.to_string();
        tune(&mut config);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let runner = Arc::new(
            Runner::new(
                store.clone(),
                Arc::new(config.clone()),
                Arc::new(neo_ir_core::SystemClock),
            )
            .map_err(|e| anyhow::anyhow!("runbooks: {e}"))?,
        );
        let server = tokio::spawn(neo_ir_server::serve_full(
            listener,
            store.clone(),
            neo_ir_server::Auth::default(),
            config.response.clone(),
            Some(runner.clone()),
            stopped(stop_rx.clone()),
        ));
        let watcher = Watcher::new(config, store.clone())?;
        let handle = watcher.handle();
        let watching = tokio::spawn(watcher.run(stopped(stop_rx.clone())));
        Ok(Stage {
            net,
            store,
            runner,
            handle,
            addr,
            stop_tx,
            watching,
            server,
        })
    }

    /// Stop the watcher and the API, then the network; the store stays open for a summary.
    pub async fn stop(self) -> Store {
        let _ = self.stop_tx.send(true);
        let _ = self.watching.await;
        let _ = self.server.await;
        self.net.shutdown().await;
        self.store
    }
}

/// How long a drill waits for a leading watcher to read it before it gives up.
pub const DRILL_SEEN_WITHIN: Duration = Duration::from_secs(30);

/// Record `new` in `store` and wait until a leading watcher on that store has read it
/// (`seen_at`), so the incidents of a fault injected next are marked from the first round
/// (`drill:` key, `evidence.drill`; a drill with no `nodes` covers the whole network). A
/// drill no watcher reads within [`DRILL_SEEN_WITHIN`] is aborted. End it with
/// `store.finish_drill` (the score) or `store.abort_drill`.
pub async fn start_drill(
    store: &Store,
    new: &neo_ir_store::NewDrill,
) -> anyhow::Result<neo_ir_store::StoredDrill> {
    let drill = store.start_drill(new).await?;
    let deadline = tokio::time::Instant::now() + DRILL_SEEN_WITHIN;
    loop {
        if let Some(d) = store.drill(drill.id).await? {
            if d.seen_at.is_some() {
                return Ok(d);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let why = format!(
                "no leading neo-ir watcher read the drill within {}: is one running on this store?",
                humantime::format_duration(DRILL_SEEN_WITHIN)
            );
            let _ = store
                .abort_drill(drill.id, &why, jiff::Timestamp::now())
                .await;
            anyhow::bail!("drill {} aborted: {why}", drill.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `f` every 100 ms until it gives a value, or `None` after `limit` (the demo's and the
/// drills' way to wait for the real pipeline without assuming a fast machine).
pub async fn poll<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
