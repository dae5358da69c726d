//! The plain subcommands: `watch`, `sim`, `incidents`, `incident show`, `check-config`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    async fn open(&self) -> anyhow::Result<Store> {
        let url = match (&self.store, &self.config) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => config::load(path)?.store.url,
            (None, None) => match find_config() {
                Some(path) => config::load(&path)?.store.url,
                None => DEFAULT_STORE_URL.to_string(),
            },
        };
        Store::open(&url)
            .await
            .with_context(|| format!("opening the store {url}"))
    }
}

/// The default configuration file: ./neo-ir.toml, then /etc/neo-ir/neo-ir.toml.
fn find_config() -> Option<PathBuf> {
    ["neo-ir.toml", "/etc/neo-ir/neo-ir.toml"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<(PathBuf, Config)> {
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
    // built first: a missing password stops the start before anything listens
    let watcher = Watcher::new(cfg, store.clone())?;
    let (listener, addr) = neo_ir_server::bind(&listen)
        .await
        .with_context(|| format!("binding the API to {listen}"))?;
    tracing::info!(config = %path.display(), api = %format!("http://{addr}"), store = %store_url, "neo-ir watch starting");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut rx = stop_rx.clone();
        tokio::spawn(neo_ir_server::serve_with(
            listener,
            store.clone(),
            auth,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ))
    };
    let mut rx = stop_rx.clone();
    let watching = tokio::spawn(watcher.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));

    shutdown_signal().await;
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

#[derive(clap::Args)]
pub struct SimArgs {
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

/// The person running the CLI, for the audit trail.
fn cli_actor() -> neo_ir_core::incident::Actor {
    let who = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    neo_ir_core::incident::Actor {
        who,
        from: "cli".into(),
    }
}

/// `neo-ir ack ID`: exit 0 when acknowledged (now or earlier), 1 when the incident does not
/// exist or is resolved.
pub async fn ack(id: i64, store: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = store.open().await?;
    let actor = cli_actor();
    let code = match store.acknowledge(id, &actor, jiff::Timestamp::now()).await {
        Ok(neo_ir_store::Ack::Done(i)) => {
            let late = match (i.acked_at, i.ack_due_at) {
                (Some(at), Some(due)) if at > due => " (after its response target)",
                _ => "",
            };
            println!(
                "acknowledged incident #{} ({} {}) as {}{late}",
                i.id, i.severity, i.kind, actor.who
            );
            ExitCode::SUCCESS
        }
        Ok(neo_ir_store::Ack::Already(i)) => {
            println!(
                "incident #{} was already acknowledged by {}",
                i.id,
                i.acked_by.as_deref().unwrap_or("someone")
            );
            ExitCode::SUCCESS
        }
        Ok(neo_ir_store::Ack::Resolved(i)) => {
            eprintln!(
                "error: incident {} is resolved; there is nothing to acknowledge",
                i.id
            );
            ExitCode::from(1)
        }
        Err(neo_ir_store::StoreError::NoSuchIncident(_)) => no_such_incident(id),
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    Ok(code)
}

/// The message and exit code (1) of a command given an incident id that does not exist.
fn no_such_incident(id: i64) -> ExitCode {
    eprintln!("error: incident {id} does not exist");
    ExitCode::from(1)
}

/// `neo-ir note ID TEXT`: exit 0 when added, 1 when the incident does not exist, 2 for an
/// empty or too long note.
pub async fn note(id: i64, text: &str, store: StoreArgs) -> anyhow::Result<ExitCode> {
    let actor = cli_actor();
    let event = match neo_ir_core::incident::note_event(text, &actor, jiff::Timestamp::now()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let store = store.open().await?;
    let code = match store.add_event(id, &event).await {
        Ok(()) => {
            println!("note added to incident #{id} as {}", actor.who);
            ExitCode::SUCCESS
        }
        Err(neo_ir_store::StoreError::NoSuchIncident(_)) => no_such_incident(id),
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    Ok(code)
}

/// `neo-ir declare`: a person's incident, stored with who declared it (the OS user).
pub async fn declare(
    severity: &str,
    kind: &str,
    summary: &str,
    nodes: Vec<String>,
    json: bool,
    store: StoreArgs,
) -> anyhow::Result<ExitCode> {
    use neo_ir_core::incident::{declare, IncidentKind, Severity};
    let kind: IncidentKind = match kind.parse() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: --kind: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let severity: Severity = match severity.parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --severity: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let actor = cli_actor();
    let change = match declare(
        kind,
        severity,
        summary,
        nodes,
        &actor,
        jiff::Timestamp::now(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: --{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let store = store.open().await?;
    let incident = store.apply(&change).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&incident)?);
    } else {
        println!(
            "declared incident #{}: {} {} by {}: {}",
            incident.id, incident.severity, incident.kind, actor.who, incident.summary
        );
    }
    store.close().await;
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
        return Ok(no_such_incident(id));
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
