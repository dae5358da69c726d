//! `neo-ir agent`: the host agent, run on a Neo node's machine. It reports process state,
//! memory, CPU, IO wait, disk, connections per remote IP and recent error lines over HTTP,
//! and runs the playbook's node-host scripts as named operations (`POST /v1/ops/{op}`:
//! service control, quick recovery, cleanup, backup/restore, database tools, firewall,
//! diagnostics), both behind the bearer token. It reads /proc and runs commands with
//! argument vectors, never a shell.
//!
//! Rights: the report needs none unless the node's journal requires them; operations need
//! what they touch — the node's data, backup and log directories, `systemctl` on the unit
//! (or signalling the node process it started), and CAP_NET_ADMIN for `nft`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use neo_ir_agent::{AgentConfig, Service};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  NEO_IR_AGENT_TOKEN=... neo-ir agent --unit neo-node --data-dir /var/neo/data \\
      --backup-dir /var/backups/neo --diagnostics-dir /var/lib/neo-ir/diagnostics \\
      --state-dir /var/lib/neo-ir/agent --implementation neo-go
  NEO_IR_AGENT_TOKEN=... neo-ir agent --data-dir /srv/neo/data --rpc-port 20332 \\
      --process-pid-file /srv/neo/node.pid --log-file /srv/neo/node.log \\
      --implementation neo-ir-sim --db-tool /usr/local/bin/neo-ir,sim,db \\
      -- /usr/local/bin/neo-ir sim node --listen 127.0.0.1:20332 --data-dir /srv/neo/data")]
pub struct AgentArgs {
    /// Address to listen on (the watcher and the runbook runner connect here).
    #[arg(long, default_value = "127.0.0.1:9798")]
    listen: String,
    /// Environment variable that holds the bearer token callers send.
    #[arg(long, default_value = "NEO_IR_AGENT_TOKEN")]
    token_env: String,
    /// systemd unit of the Neo node (process state, journal; operations use systemctl).
    #[arg(long)]
    unit: Option<String>,
    /// PID file of the Neo node, when it does not run under systemd (report only).
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// PID file the agent writes for the node it starts itself; selects the process backend
    /// and needs the node's command after `--`.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "unit",
        requires = "node_command"
    )]
    process_pid_file: Option<PathBuf>,
    /// The node's data directory (free disk is measured there; backups archive it).
    #[arg(long)]
    data_dir: PathBuf,
    /// The node's P2P port (MainNet 10333, TestNet 20333).
    #[arg(long, default_value_t = 10333)]
    p2p_port: u16,
    /// The node's RPC port (MainNet 10332, TestNet 20332); a started node must answer
    /// getblockcount on 127.0.0.1 here.
    #[arg(long, default_value_t = 10332)]
    rpc_port: u16,
    /// The node's log file (else the journal of --unit); the process backend appends the
    /// node's output to it.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// How many recent error lines to report.
    #[arg(long, default_value_t = neo_ir_agent::DEFAULT_ERROR_LINES)]
    error_lines: usize,
    /// What operations act on (boxed: the flags are many and the CLI's command enum
    /// stays small).
    #[command(flatten)]
    ops: Box<OpsArgs>,
    /// The node's command, after `--`, for the process backend (with --process-pid-file).
    #[arg(
        last = true,
        value_name = "NODE_COMMAND",
        requires = "process_pid_file"
    )]
    node_command: Vec<String>,
}

/// The flags of `POST /v1/ops/{op}`: how the node is started and stopped, where backups,
/// diagnostics, rotated logs and firewall state are, the implementation and its tools.
#[derive(clap::Args)]
struct OpsArgs {
    /// How long a started node has to run and answer getblockcount.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    start_wait: Duration,
    /// How long a stopped node has to exit after SIGTERM before SIGKILL (process backend).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    stop_timeout: Duration,
    /// Directory of backups (`backup`, `backup_verify`, `restore`).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Directory of diagnostics archives (`diagnostics`).
    #[arg(long)]
    diagnostics_dir: Option<PathBuf>,
    /// Directory of the node's rotated logs for `emergency_cleanup` (default: the log
    /// file's directory).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// The node implementation (default: from its getversion user agent).
    #[arg(long, value_parser = neo_ir_agent::IMPLEMENTATIONS)]
    implementation: Option<String>,
    /// Argument vector that runs nftables, comma-separated (e.g. `nsenter,--net=/run/netns/x,nft`).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "nft"
    )]
    nft: Vec<String>,
    /// Directory where firewall operations keep the applied ruleset and the table it
    /// replaced (for `firewall_rollback`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Argument vector of the implementation's database tool, comma-separated (for
    /// neo-ir-sim: `/usr/local/bin/neo-ir,sim,db`).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    db_tool: Vec<String>,
    /// The node's Prometheus endpoint for diagnostics (default
    /// http://127.0.0.1:<rpc-port>/metrics).
    #[arg(long)]
    metrics_url: Option<String>,
}

impl AgentArgs {
    /// The agent configuration these flags describe.
    fn config(self, token: String) -> AgentConfig {
        let mut cfg = AgentConfig::new(token, self.data_dir);
        cfg.unit = self.unit;
        cfg.pid_file = self.pid_file;
        cfg.p2p_port = self.p2p_port;
        cfg.rpc_port = self.rpc_port;
        cfg.log_file = self.log_file;
        cfg.error_lines = self.error_lines;
        if let Some(pid_file) = self.process_pid_file {
            cfg.service = Some(Service::Process {
                argv: self.node_command,
                pid_file,
                log_file: cfg.log_file.clone(),
            });
        }
        let ops = *self.ops;
        cfg.start_wait = ops.start_wait;
        cfg.stop_timeout = ops.stop_timeout;
        cfg.backup_dir = ops.backup_dir;
        cfg.diagnostics_dir = ops.diagnostics_dir;
        cfg.log_dir = ops.log_dir;
        cfg.implementation = ops.implementation;
        cfg.nft = ops.nft;
        cfg.state_dir = ops.state_dir;
        cfg.db_tool = (!ops.db_tool.is_empty()).then_some(ops.db_tool);
        cfg.metrics_url = ops.metrics_url;
        cfg.normalized()
    }
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
    let listen = args.listen.clone();
    let cfg = args.config(token);
    cfg.validate()
        .map_err(|e| neo_ir_core::config::ConfigError {
            file: PathBuf::from("(command line)"),
            line: None,
            key: None,
            message: e.to_string(),
        })?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding the agent to {listen}"))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        service = cfg.effective_service().map(|s| s.backend()).unwrap_or("none"),
        "neo-ir agent serving /v1/report and /v1/ops"
    );
    neo_ir_agent::serve(cfg, listener, crate::run::shutdown_signal())
        .await
        .context("agent server")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(args: &[&str]) -> Result<AgentConfig, clap::Error> {
        let mut v = vec!["agent"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map(|c| c.agent.config("t".into()))
    }

    #[test]
    fn flags_build_the_config() {
        let c = parse(&["--data-dir", "/d", "--unit", "neo-node"]).unwrap();
        assert_eq!(
            c.effective_service(),
            Some(Service::Systemd {
                unit: "neo-node".into()
            })
        );
        assert_eq!(c.nft, vec!["nft"]);
        assert_eq!(c.db_tool, None);
        assert_eq!(c.start_wait, Duration::from_secs(30));

        let c = parse(&[
            "--data-dir",
            "/d",
            "--process-pid-file",
            "/run/n.pid",
            "--log-file",
            "/var/log/n/node.log",
            "--start-wait",
            "5s",
            "--nft",
            "nsenter,--net=/run/netns/x,nft",
            "--db-tool",
            "/usr/bin/neo-ir,sim,db",
            "--implementation",
            "neo-ir-sim",
            "--",
            "/usr/bin/neo-ir",
            "sim",
            "node",
            "--listen",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(
            c.effective_service(),
            Some(Service::Process {
                argv: ["/usr/bin/neo-ir", "sim", "node", "--listen", "127.0.0.1:1"]
                    .map(String::from)
                    .to_vec(),
                pid_file: "/run/n.pid".into(),
                log_file: Some("/var/log/n/node.log".into()),
            })
        );
        assert_eq!(c.pid_file, Some("/run/n.pid".into()));
        assert_eq!(c.nft, vec!["nsenter", "--net=/run/netns/x", "nft"]);
        assert_eq!(
            c.db_tool,
            Some(vec!["/usr/bin/neo-ir".into(), "sim".into(), "db".into()])
        );
        assert_eq!(c.start_wait, Duration::from_secs(5));
        assert_eq!(c.validate(), Ok(()));

        // the process backend needs both the pid file and the command, and no unit
        assert!(parse(&["--data-dir", "/d", "--process-pid-file", "/p"]).is_err());
        assert!(parse(&["--data-dir", "/d", "--", "/bin/node"]).is_err());
        assert!(parse(&[
            "--data-dir",
            "/d",
            "--unit",
            "u",
            "--process-pid-file",
            "/p",
            "--",
            "/bin/node"
        ])
        .is_err());
        assert!(parse(&["--data-dir", "/d", "--implementation", "geth"]).is_err());
    }
}
