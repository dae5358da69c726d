//! The comparison: a tuned Prometheus + Alertmanager (Debian's packages) started as child
//! processes on free loopback ports with temporary data directories, scraping every simulated
//! node's `/metrics`, and a webhook receiver in this process that timestamps every alert
//! Alertmanager delivers.
//!
//! Tuning (the configuration the issue measured, made as fast as Prometheus goes):
//! scrape and evaluation every 1 s, scrape timeout 900 ms, every rule `for: 0s`, Alertmanager
//! `group_by: ['...']` (one group per alert, so no alert waits for another), `group_wait: 0s`,
//! `group_interval: 1s`. Rules:
//!
//! - `NodeDown`: `up{job="neo"} == 0`: the scrape failed (refused, timed out, bad body).
//! - `ChainStall`: `max(changes(neo_node_ledger_height[3s])) == 0`: no node's height changed
//!   within the last 3 s, i.e. in the last 3-4 scrapes of every node (the shortest window
//!   that never fires on a healthy 1 s-block chain scraped every 1 s with scrape jitter, and
//!   comparable to neo-ir's own 2 × msperblock + 0.8 s).
//!
//! Children are killed when their guard drops (end of run, error or Ctrl-C).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::stats::now_ms;

/// The rule expressions, printed with the results.
pub const NODE_DOWN_EXPR: &str = "up{job=\"neo\"} == 0";
pub const CHAIN_STALL_EXPR: &str = "max(changes(neo_node_ledger_height[3s])) == 0";

/// One alert as delivered by Alertmanager to the webhook.
#[derive(Debug, Clone)]
pub struct Page {
    /// When the webhook received it (ms since the epoch).
    pub at_ms: f64,
    pub alertname: String,
    /// The `node` label (NodeDown), if any.
    pub node: Option<String>,
    pub firing: bool,
    /// `startsAt`: with the labels, identifies one firing of one alert.
    pub starts_at: String,
}

/// Where Debian (or anyone) installed the two binaries, if both are on PATH.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| -> Option<PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    let prometheus = find("prometheus")?;
    let alertmanager = find("prometheus-alertmanager").or_else(|| find("alertmanager"))?;
    Some((prometheus, alertmanager))
}

/// Kills and reaps a child process when dropped.
struct ChildGuard {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child, log })
    }

    /// The end of the child's log, for error messages.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}):\n{}", self.name, self.tail());
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, read, released; the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Running Prometheus + Alertmanager.
pub struct Prom {
    pub prometheus_url: String,
    pub alertmanager_url: String,
    http: reqwest::Client,
    // dropped in order: children first, then their data directory
    children: Vec<ChildGuard>,
    _dir: tempfile::TempDir,
}

impl Prom {
    /// Start both, scraping `targets` (`(node name, port)`), alerting to `webhook`.
    pub async fn start(
        bins: &(PathBuf, PathBuf),
        targets: &[(String, u16)],
        webhook: &str,
    ) -> anyhow::Result<Prom> {
        let dir = tempfile::Builder::new()
            .prefix("neo-ir-bench-prom")
            .tempdir()?;
        let (prom_port, am_port) = (free_port()?, free_port()?);
        write_configs(dir.path(), targets, am_port, webhook)?;
        let am_data = dir.path().join("am-data");
        let prom_data = dir.path().join("prom-data");
        std::fs::create_dir_all(&am_data)?;
        std::fs::create_dir_all(&prom_data)?;
        let am = ChildGuard::spawn(
            "alertmanager",
            Command::new(&bins.1)
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("alertmanager.yml").display()
                ))
                .arg(format!("--storage.path={}", am_data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
                // no cluster: no gossip port, no waiting for peers before notifying
                .arg("--cluster.listen-address="),
            dir.path().join("alertmanager.log"),
        )?;
        let prom = ChildGuard::spawn(
            "prometheus",
            Command::new(&bins.0)
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ))
                .arg(format!("--storage.tsdb.path={}", prom_data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
            dir.path().join("prometheus.log"),
        )?;
        let mut p = Prom {
            prometheus_url: format!("http://127.0.0.1:{prom_port}"),
            alertmanager_url: format!("http://127.0.0.1:{am_port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()?,
            children: vec![am, prom],
            _dir: dir,
        };
        for url in [p.alertmanager_url.clone(), p.prometheus_url.clone()] {
            p.wait_ready(&url).await?;
        }
        Ok(p)
    }

    async fn wait_ready(&mut self, base: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            for c in &mut self.children {
                c.check_running()?;
            }
            if let Ok(r) = self.http.get(format!("{base}/-/ready")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                let logs: Vec<String> = self.children.iter().map(|c| c.tail()).collect();
                bail!("{base} not ready after 30 s:\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fails if a child died.
    pub fn check(&mut self) -> anyhow::Result<()> {
        for c in &mut self.children {
            c.check_running()?;
        }
        Ok(())
    }

    /// Alerts Prometheus has firing now.
    pub async fn firing(&self) -> anyhow::Result<Vec<String>> {
        let v: Value = self
            .http
            .get(format!("{}/api/v1/alerts", self.prometheus_url))
            .send()
            .await?
            .json()
            .await?;
        let alerts = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
        Ok(alerts
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                let l = &a["labels"];
                match l["node"].as_str() {
                    Some(n) => format!("{}{{node={n}}}", l["alertname"].as_str().unwrap_or("?")),
                    None => l["alertname"].as_str().unwrap_or("?").to_string(),
                }
            })
            .collect())
    }

    /// Scrape targets whose last scrape succeeded.
    pub async fn targets_up(&self) -> anyhow::Result<usize> {
        let v: Value = self
            .http
            .get(format!("{}/api/v1/targets", self.prometheus_url))
            .send()
            .await?
            .json()
            .await?;
        let targets = v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(targets.iter().filter(|t| t["health"] == "up").count())
    }
}

fn write_configs(
    dir: &Path,
    targets: &[(String, u16)],
    am_port: u16,
    webhook: &str,
) -> anyhow::Result<()> {
    let mut scrape = String::new();
    for (name, port) in targets {
        scrape.push_str(&format!(
            "      - targets: ['127.0.0.1:{port}']\n        labels: {{node: '{name}'}}\n"
        ));
    }
    let prometheus = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
         rule_files: ['{rules}']\n\
         scrape_configs:\n  - job_name: neo\n    metrics_path: /metrics\n    static_configs:\n{scrape}",
        rules = dir.join("rules.yml").display(),
    );
    let rules = format!(
        "groups:\n  - name: neo\n    interval: 1s\n    rules:\n\
         \x20     - alert: NodeDown\n        expr: '{NODE_DOWN_EXPR}'\n        for: 0s\n\
         \x20     - alert: ChainStall\n        expr: '{CHAIN_STALL_EXPR}'\n        for: 0s\n"
    );
    let alertmanager = format!(
        "route:\n  receiver: bench\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\n\
         receivers:\n  - name: bench\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
    );
    std::fs::write(dir.join("prometheus.yml"), prometheus)?;
    std::fs::write(dir.join("rules.yml"), rules)?;
    std::fs::write(dir.join("alertmanager.yml"), alertmanager)?;
    Ok(())
}

/// Serve the Alertmanager webhook on a loopback port 0; every alert of every delivery is
/// timestamped on arrival and sent to `tx`. Returns the URL.
pub async fn webhook(tx: mpsc::UnboundedSender<Page>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/alert", post(receive)).with_state(tx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/alert"))
}

async fn receive(State(tx): State<mpsc::UnboundedSender<Page>>, body: axum::body::Bytes) {
    let at_ms = now_ms();
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return;
    };
    for a in v["alerts"].as_array().into_iter().flatten() {
        let l = &a["labels"];
        let _ = tx.send(Page {
            at_ms,
            alertname: l["alertname"].as_str().unwrap_or_default().to_string(),
            node: l["node"].as_str().map(str::to_string),
            firing: a["status"] == "firing",
            starts_at: a["startsAt"].as_str().unwrap_or_default().to_string(),
        });
    }
}
