//! The plain subcommands: `watch`, `sim`, `incidents`, `incident show`, `check-config`.
//! (What people do to incidents is in `people`.)

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use neo_ir_core::config::{self, Config, DEFAULT_STORE_URL};
use neo_ir_sim::{SimConfig, SimNetwork};
use neo_ir_store::{ListFilter, Store};
use neo_ir_watch::Watcher;

use crate::output;

/// Where the incidents are: `--store URL`, else the store of `--config`, else the default.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Store URL, e.g. sqlite://neo-ir.db or postgres://USER@HOST:5432/DB (overrides the config file's store.url).
    #[arg(long)]
    store: Option<String>,
    /// Configuration file to read store.url from.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl StoreArgs {
    /// The configuration file given or found (`None`: there is none).
    fn load(&self) -> anyhow::Result<Option<Config>> {
        Ok(self
            .config
            .clone()
            .or_else(find_config)
            .map(|p| config::load(&p))
            .transpose()?)
    }

    /// Open the store `--store` names, else the configuration's, else the default.
    async fn open_from(&self, cfg: Option<&Config>) -> anyhow::Result<Store> {
        let url = match (&self.store, cfg) {
            (Some(url), _) => url.clone(),
            (None, Some(c)) => c.store.url.clone(),
            (None, None) => DEFAULT_STORE_URL.to_string(),
        };
        Store::open(&url)
            .await
            .with_context(|| format!("opening the store {url}"))
    }

    pub async fn open(&self) -> anyhow::Result<Store> {
        // with --store, no configuration file is read
        let cfg = match &self.store {
            Some(_) => None,
            None => self.load()?,
        };
        self.open_from(cfg.as_ref()).await
    }

    /// The store, and the response settings (escalation, update intervals) of the
    /// configuration file when there is one (else the playbook's).
    pub async fn open_with_response(
        &self,
    ) -> anyhow::Result<(Store, neo_ir_core::oncall::ResponseConfig)> {
        let cfg = self.load()?;
        let store = self.open_from(cfg.as_ref()).await?;
        Ok((store, cfg.map(|c| c.response).unwrap_or_default()))
    }
}

/// The default configuration file: ./neo-ir.toml, then /etc/neo-ir/neo-ir.toml.
fn find_config() -> Option<PathBuf> {
    ["neo-ir.toml", "/etc/neo-ir/neo-ir.toml"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub fn load_config(path: Option<PathBuf>) -> anyhow::Result<(PathBuf, Config)> {
    let path = match path.or_else(find_config) {
        Some(p) => p,
        None => {
            return Err(config::ConfigError {
                file: PathBuf::from("neo-ir.toml"),
                line: None,
                key: None,
                message: "no configuration file: pass --config FILE or create ./neo-ir.toml".into(),
            }
            .into())
        }
    };
    let cfg = config::load(&path)?;
    Ok((path, cfg))
}

pub async fn watch(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (path, cfg) = load_config(config_path)?;
    let store = Store::open(&cfg.store.url)
        .await
        .with_context(|| format!("opening the store {}", cfg.store.url))?;
    let listen = cfg.server.listen.clone();
    let store_url = cfg.store.url.clone();
    let auth = api_auth(&path, &cfg.server)?;
    let response = cfg.response.clone();
    // built first: a missing password stops the start before anything listens
    let runner = Arc::new(
        neo_ir_runbook::runner::Runner::new(
            store.clone(),
            Arc::new(cfg.clone()),
            Arc::new(neo_ir_core::SystemClock),
        )
        .map_err(|e| anyhow::anyhow!("runbooks: {e}"))?,
    );
    let watcher = Watcher::new(cfg, store.clone())?.with_runner(runner.clone());
    let (listener, addr) = neo_ir_server::bind(&listen)
        .await
        .with_context(|| format!("binding the API to {listen}"))?;
    tracing::info!(config = %path.display(), api = %format!("http://{addr}"), store = %store_url, "neo-ir watch starting");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut rx = stop_rx.clone();
        tokio::spawn(neo_ir_server::serve_full(
            listener,
            store.clone(),
            auth,
            response,
            Some(runner),
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ))
    };
    let mut rx = stop_rx.clone();
    let watching = tokio::spawn(watcher.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));

    // The watcher only ends by itself on an error it cannot go on from: then the process
    // exits with it, so a supervisor restarts it, rather than serving a silent API.
    let mut watching = watching;
    tokio::select! {
        _ = shutdown_signal() => {}
        r = &mut watching => {
            let _ = stop_tx.send(true);
            let _ = server.await;
            r.context("watcher task")??;
            anyhow::bail!("the watcher stopped by itself");
        }
    }
    tracing::info!("stopping: finishing the current round (a second signal exits at once)");
    let _ = stop_tx.send(true);
    tokio::select! {
        r = watching => { r.context("watcher task")??; }
        _ = shutdown_signal() => { eprintln!("second signal: exiting now"); return Ok(ExitCode::from(130)); }
    }
    let _ = server.await;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `neo-ir sim` alone starts a network; `neo-ir sim node` / `neo-ir sim db` run one
/// standalone node or its database tools (the network's flags do not go with those).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    command: Option<crate::simnode::SimCommand>,
    /// Number of validators (consensus nodes).
    #[arg(long, default_value_t = 4)]
    validators: u32,
    /// Number of RPC nodes.
    #[arg(long, default_value_t = 3)]
    rpc: u32,
    /// Target block time in milliseconds (served in getversion).
    #[arg(long, default_value_t = 1000)]
    msperblock: u64,
    /// First port: node i listens on base-port + i, the control API after the last node.
    /// 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    base_port: u16,
}

pub async fn sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    if let Some(cmd) = args.command {
        return crate::simnode::run(cmd).await;
    }
    let net = SimNetwork::start(SimConfig {
        validators: args.validators,
        rpc: args.rpc,
        msperblock: args.msperblock,
        base_port: args.base_port,
        ..SimConfig::default()
    })
    .await
    .context("starting the simulated network")?;
    println!(
        "simulated Neo N3 network: {} validators, {} RPC nodes, {} ms blocks",
        args.validators, args.rpc, args.msperblock
    );
    println!(
        "control API: {}  (see crates/sim/CONTROL_API.md)",
        net.control_url()
    );
    println!("\n# a neo-ir.toml for this network:");
    for n in net.nodes() {
        let role = match n.role {
            neo_ir_sim::SimRole::Validator => "validator",
            neo_ir_sim::SimRole::Rpc => "rpc",
        };
        println!(
            "[[nodes]]\nname = \"{}\"\nrpc = \"{}\"\nrole = \"{role}\"\n",
            n.name, n.rpc_url
        );
    }
    println!("# example fault: curl -X POST {}/nodes/rpc-1/fault -d '{{\"fault\":\"crash\"}}' -H 'content-type: application/json'", net.control_url());
    println!("# Ctrl-C stops the network.");
    shutdown_signal().await;
    net.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The API's tokens with their secrets, read from the environment or from files. A token
/// whose secret is missing stops the start (exit 2), naming the file and the key.
fn api_auth(
    path: &std::path::Path,
    server: &neo_ir_core::config::ServerSettings,
) -> Result<neo_ir_server::Auth, config::ConfigError> {
    use neo_ir_core::config::SecretSource;
    let mut tokens = Vec::new();
    for t in &server.tokens {
        let missing = |message: String| config::ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: Some(format!("server.tokens ({})", t.name)),
            message,
        };
        let secret = match &t.source {
            SecretSource::Env(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| missing(format!("environment variable {var} is not set")))?,
            SecretSource::File(file) => std::fs::read_to_string(file)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| missing(format!("cannot read a token from {}", file.display())))?,
        };
        tokens.push(neo_ir_server::Token {
            name: t.name.clone(),
            secret: secret.trim().to_string(),
            access: t.access,
        });
    }
    Ok(neo_ir_server::Auth {
        tokens,
        protect_reads: server.protect_reads,
    })
}

pub async fn incidents(all: bool, json: bool, store: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    let list = store
        .list_incidents(ListFilter {
            all,
            limit: 1000,
            before_id: None,
        })
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"incidents": list, "next_cursor": null})
            )?
        );
    } else {
        print!("{}", output::incident_table(&list));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn incident_show(id: i64, json: bool, store: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    let Some((incident, timeline)) = store.incident(id).await? else {
        return Ok(crate::people::no_such_incident(id));
    };
    if json {
        let mut v = serde_json::to_value(&incident)?;
        v["timeline"] = serde_json::to_value(&timeline)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", output::incident_detail(&incident, &timeline));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    let cfg = config::load(file)?;
    for n in &cfg.nodes {
        for (key, var) in [
            ("auth_password_env", &n.auth_password_env),
            ("agent_token_env", &n.agent_token_env),
        ] {
            if let Some(var) = var {
                if std::env::var_os(var).is_none() {
                    eprintln!(
                        "warning: node {}: environment variable {var} ({key}) is not set here; `watch` needs it",
                        n.name
                    );
                }
            }
        }
    }
    // the API tokens' secrets, read the way `watch` reads them
    if let Err(e) = api_auth(file, &cfg.server) {
        eprintln!(
            "warning: {}: {}; `watch` needs it",
            e.key.as_deref().unwrap_or("server.tokens"),
            e.message
        );
    }
    // the channels as `watch` builds them: secrets read, templates loaded and checked
    if let Err(e) = neo_ir_watch::dispatch::Outlets::build(&cfg.notify) {
        eprintln!("warning: {e}; `watch` stops on it");
    }
    let unpaged: Vec<&str> = [
        neo_ir_core::incident::Severity::P1,
        neo_ir_core::incident::Severity::P2,
        neo_ir_core::incident::Severity::P3,
        neo_ir_core::incident::Severity::P4,
    ]
    .into_iter()
    .filter(|s| cfg.response.policy_for(*s).is_none())
    .map(|s| s.as_str())
    .collect();
    if !unpaged.is_empty() {
        eprintln!(
            "warning: no [[escalation]] policy lists {}: incidents of that severity page nobody",
            unpaged.join(", ")
        );
    }
    let validators = cfg
        .nodes
        .iter()
        .filter(|n| n.role == neo_ir_core::Role::Validator)
        .count();
    println!(
        "{}: ok ({} nodes: {} validators, {} RPC; probe every {:?}, timeout {:?}; store {}; API {})",
        file.display(),
        cfg.nodes.len(),
        validators,
        cfg.nodes.len() - validators,
        cfg.probe.interval,
        cfg.probe.timeout,
        cfg.store.url,
        cfg.server.listen
    );
    Ok(ExitCode::SUCCESS)
}
