//! `neo-ir agent`: the host agent, run on a Neo node's machine. It reports process state,
//! memory, CPU, IO wait, disk, connections per remote IP and recent error lines over HTTP,
//! to the watcher only (bearer token). It reads /proc and runs `systemctl`/`journalctl`
//! with argument vectors; it needs no root unless the node's journal requires it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use neo_ir_agent::AgentConfig;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// Address to listen on (the watcher connects here).
    #[arg(long, default_value = "127.0.0.1:9798")]
    listen: String,
    /// Environment variable that holds the bearer token the watcher sends.
    #[arg(long, default_value = "NEO_IR_AGENT_TOKEN")]
    token_env: String,
    /// systemd unit of the Neo node (process state and journal).
    #[arg(long)]
    unit: Option<String>,
    /// PID file of the Neo node, when it does not run under systemd.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// The node's data directory (free disk is measured there).
    #[arg(long)]
    data_dir: PathBuf,
    /// The node's P2P port (MainNet 10333, TestNet 20333).
    #[arg(long, default_value_t = 10333)]
    p2p_port: u16,
    /// The node's RPC port (MainNet 10332, TestNet 20332).
    #[arg(long, default_value_t = 10332)]
    rpc_port: u16,
    /// The node's log file (else the journal of --unit).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// How many recent error lines to report.
    #[arg(long, default_value_t = neo_ir_agent::DEFAULT_ERROR_LINES)]
    error_lines: usize,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let token = std::env::var(&args.token_env).map_err(|_| neo_ir_core::config::ConfigError {
        file: PathBuf::from("(command line)"),
        line: None,
        key: Some("--token-env".into()),
        message: format!(
            "environment variable {} is not set: the agent needs a bearer token",
            args.token_env
        ),
    })?;
    let mut cfg = AgentConfig::new(token, args.data_dir);
    cfg.unit = args.unit;
    cfg.pid_file = args.pid_file;
    cfg.p2p_port = args.p2p_port;
    cfg.rpc_port = args.rpc_port;
    cfg.log_file = args.log_file;
    cfg.error_lines = args.error_lines;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding the agent to {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "neo-ir agent serving /v1/report");
    neo_ir_agent::serve(cfg, listener, crate::run::shutdown_signal())
        .await
        .context("agent server")?;
    Ok(ExitCode::SUCCESS)
}
