//! The agent's configuration: what to watch on this machine (systemd unit or pid file, data
//! directory, ports, log file), the bearer token that guards the report and the operations,
//! and what the operations may act on (how the node is started and stopped, where backups,
//! diagnostics archives and firewall rollback files go, the implementation's database tool,
//! the nftables program). `Debug` never shows the token.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default number of error lines in a report.
pub const DEFAULT_ERROR_LINES: usize = 50;
/// Upper bound on `error_lines`, so a report (lines are clipped to `MAX_LINE_CHARS`) stays far
/// below the client's 1 MiB body limit.
pub const MAX_ERROR_LINES: usize = 500;
/// Default hard timeout of one `systemctl`/`journalctl` run.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time a started node has to run and answer `getblockcount`.
pub const DEFAULT_START_WAIT: Duration = Duration::from_secs(30);
/// Default time a stopped node has to exit after SIGTERM (or `systemctl stop`) before SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The node implementations the agent knows by name (`--implementation`).
pub const IMPLEMENTATIONS: [&str; 4] = ["neo-cli", "neo-go", "neo-rs", "neo-ir-sim"];

/// How the agent starts, stops and checks the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A systemd unit: `systemctl start|stop|restart|is-active UNIT`.
    Systemd { unit: String },
    /// A process the agent starts itself: `argv` spawned detached in its own process group,
    /// stdin null, stdout and stderr appended to `log_file` (else discarded), its pid written
    /// to `pid_file`; stopped with SIGTERM (SIGKILL after the stop timeout), only when
    /// `/proc/<pid>/cmdline` still names `argv[0]`'s program.
    Process {
        argv: Vec<String>,
        pid_file: PathBuf,
        log_file: Option<PathBuf>,
    },
}

impl Service {
    /// `systemd` or `process`.
    pub fn backend(&self) -> &'static str {
        match self {
            Service::Systemd { .. } => "systemd",
            Service::Process { .. } => "process",
        }
    }
}

/// Why a configuration cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the agent token is empty; refusing to serve an unauthenticated report")]
    EmptyToken,
    #[error("invalid systemd unit name {0:?}")]
    InvalidUnit(String),
    #[error("the process service needs a command to run (the node's argv is empty)")]
    EmptyProcessArgv,
    #[error("unknown implementation {0:?}; known: neo-cli, neo-go, neo-rs, neo-ir-sim")]
    UnknownImplementation(String),
    #[error("{0} is an empty argument vector")]
    EmptyArgv(&'static str),
}

/// What the agent watches and how it guards the report.
#[derive(Clone)]
pub struct AgentConfig {
    /// Bearer token required by `GET /v1/report` (the caller reads it from an env var).
    pub token: String,
    /// systemd unit of the node, e.g. `neo-node`.
    pub unit: Option<String>,
    /// A file holding the node's pid (used when there is no unit, or systemd cannot answer).
    pub pid_file: Option<PathBuf>,
    /// The node's data directory; the disk figures are those of its file system.
    pub data_dir: PathBuf,
    /// The node's P2P port (10333 on MainNet).
    pub p2p_port: u16,
    /// The node's RPC port (10332 on MainNet).
    pub rpc_port: u16,
    /// The node's log file; preferred over the journal for error lines.
    pub log_file: Option<PathBuf>,
    /// How many error lines a report carries (clamped to `MAX_ERROR_LINES`).
    pub error_lines: usize,
    /// Root of procfs, `/proc`; tests may point it at a fake tree.
    pub proc_root: PathBuf,
    /// Hard timeout of one `systemctl`/`journalctl` run.
    pub command_timeout: Duration,
    /// How operations start and stop the node; `None` with `unit` set means systemd.
    pub service: Option<Service>,
    /// How long a started node has to run and answer `getblockcount` on 127.0.0.1:`rpc_port`.
    pub start_wait: Duration,
    /// How long a stopped node has to exit before it is killed (process backend) or the stop
    /// step fails (systemd).
    pub stop_timeout: Duration,
    /// Where `backup` writes archives and `restore` reads them (`None`: backups unsupported).
    pub backup_dir: Option<PathBuf>,
    /// Where `diagnostics` writes its archives (`None`: diagnostics unsupported).
    pub diagnostics_dir: Option<PathBuf>,
    /// Where the node's rotated logs are (default: the log file's directory).
    pub log_dir: Option<PathBuf>,
    /// `neo-cli`, `neo-go`, `neo-rs` or `neo-ir-sim`; `None`: from the node's `getversion`.
    pub implementation: Option<String>,
    /// Argument-vector prefix that runs nftables (`["nft"]`; tests put `nsenter ...` first).
    pub nft: Vec<String>,
    /// Where firewall operations keep the ruleset they applied and the table they replaced.
    pub state_dir: Option<PathBuf>,
    /// Argument-vector prefix of the implementation's database tool (for neo-ir-sim:
    /// `["/usr/local/bin/neo-ir", "sim", "db"]`).
    pub db_tool: Option<Vec<String>>,
    /// The node's Prometheus endpoint for diagnostics (default
    /// `http://127.0.0.1:<rpc_port>/metrics`).
    pub metrics_url: Option<String>,
}

impl AgentConfig {
    /// A configuration with the defaults: MainNet ports, no unit/pid file/log file, 50 error
    /// lines, `/proc`, 3 s command timeout.
    pub fn new(token: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            token: token.into(),
            unit: None,
            pid_file: None,
            data_dir: data_dir.into(),
            p2p_port: 10333,
            rpc_port: 10332,
            log_file: None,
            error_lines: DEFAULT_ERROR_LINES,
            proc_root: PathBuf::from("/proc"),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            service: None,
            start_wait: DEFAULT_START_WAIT,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            backup_dir: None,
            diagnostics_dir: None,
            log_dir: None,
            implementation: None,
            nft: vec!["nft".to_string()],
            state_dir: None,
            db_tool: None,
            metrics_url: None,
        }
    }

    /// The service backend operations use: `service`, else systemd when `unit` is set.
    pub fn effective_service(&self) -> Option<Service> {
        match (&self.service, &self.unit) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(unit)) => Some(Service::Systemd { unit: unit.clone() }),
            (None, None) => None,
        }
    }

    /// Fill what the report reads (`unit`, `pid_file`, `log_file`) from `service` when they
    /// are not set, so a process started by the agent is also the one it reports on.
    pub fn normalized(mut self) -> Self {
        match &self.service {
            Some(Service::Systemd { unit }) if self.unit.is_none() => {
                self.unit = Some(unit.clone());
            }
            Some(Service::Process {
                pid_file, log_file, ..
            }) => {
                if self.pid_file.is_none() {
                    self.pid_file = Some(pid_file.clone());
                }
                if self.log_file.is_none() {
                    self.log_file = log_file.clone();
                }
            }
            _ => {}
        }
        self
    }

    /// The directory of rotated logs: `log_dir`, else the log file's directory.
    pub fn effective_log_dir(&self) -> Option<PathBuf> {
        self.log_dir.clone().or_else(|| {
            let log = match &self.service {
                Some(Service::Process {
                    log_file: Some(l), ..
                }) => Some(l),
                _ => self.log_file.as_ref(),
            }?;
            log.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.to_path_buf())
        })
    }

    /// Check what `serve` needs: a non-empty token and a plausible unit name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.token.trim().is_empty() {
            return Err(ConfigError::EmptyToken);
        }
        if let Some(unit) = &self.unit {
            if !valid_unit_name(unit) {
                return Err(ConfigError::InvalidUnit(unit.clone()));
            }
        }
        match &self.service {
            Some(Service::Systemd { unit }) if !valid_unit_name(unit) => {
                return Err(ConfigError::InvalidUnit(unit.clone()));
            }
            Some(Service::Process { argv, .. }) if argv.is_empty() || argv[0].is_empty() => {
                return Err(ConfigError::EmptyProcessArgv);
            }
            _ => {}
        }
        if let Some(i) = &self.implementation {
            if !IMPLEMENTATIONS.contains(&i.as_str()) {
                return Err(ConfigError::UnknownImplementation(i.clone()));
            }
        }
        if self.nft.first().is_none_or(|p| p.is_empty()) {
            return Err(ConfigError::EmptyArgv("nft"));
        }
        if let Some(t) = &self.db_tool {
            if t.first().is_none_or(|p| p.is_empty()) {
                return Err(ConfigError::EmptyArgv("db_tool"));
            }
        }
        Ok(())
    }

    /// `error_lines` within `1..=MAX_ERROR_LINES`.
    pub(crate) fn effective_error_lines(&self) -> usize {
        self.error_lines.clamp(1, MAX_ERROR_LINES)
    }
}

/// A systemd unit name: no leading `-` (it would read as an option), only the characters
/// systemd allows (`[A-Za-z0-9:_.@\-\\]`), at most 255 bytes.
pub fn valid_unit_name(unit: &str) -> bool {
    !unit.is_empty()
        && unit.len() <= 255
        && !unit.starts_with('-')
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.@-\\".contains(&b))
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("token", &"<redacted>")
            .field("unit", &self.unit)
            .field("pid_file", &self.pid_file)
            .field("data_dir", &self.data_dir)
            .field("p2p_port", &self.p2p_port)
            .field("rpc_port", &self.rpc_port)
            .field("log_file", &self.log_file)
            .field("error_lines", &self.error_lines)
            .field("proc_root", &self.proc_root)
            .field("command_timeout", &self.command_timeout)
            .field("service", &self.service)
            .field("start_wait", &self.start_wait)
            .field("stop_timeout", &self.stop_timeout)
            .field("backup_dir", &self.backup_dir)
            .field("diagnostics_dir", &self.diagnostics_dir)
            .field("log_dir", &self.log_dir)
            .field("implementation", &self.implementation)
            .field("nft", &self.nft)
            .field("state_dir", &self.state_dir)
            .field("db_tool", &self.db_tool)
            .field("metrics_url", &self.metrics_url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_token() {
        let mut c = AgentConfig::new("s3cr3t-t0ken", "/var/neo");
        c.unit = Some("neo-node".into());
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-t0ken"), "{d}");
        assert!(d.contains("<redacted>") && d.contains("neo-node"), "{d}");
    }

    #[test]
    fn validation() {
        let mut c = AgentConfig::new("t", "/var/neo");
        assert_eq!(c.validate(), Ok(()));
        c.token = "  ".into();
        assert_eq!(c.validate(), Err(ConfigError::EmptyToken));
        c.token = "t".into();
        for bad in ["-H", "neo node", "neo;rm", "", "a/b"] {
            c.unit = Some(bad.into());
            assert!(c.validate().is_err(), "{bad}");
        }
        for good in ["neo-node", "neo-node.service", "neo@1.service", "a\\x2db"] {
            c.unit = Some(good.into());
            assert_eq!(c.validate(), Ok(()), "{good}");
        }
        c.error_lines = 0;
        assert_eq!(c.effective_error_lines(), 1);
        c.error_lines = 10_000;
        assert_eq!(c.effective_error_lines(), MAX_ERROR_LINES);
    }

    #[test]
    fn service_backends_and_their_validation() {
        let mut c = AgentConfig::new("t", "/var/neo");
        assert_eq!(c.effective_service(), None);
        c.unit = Some("neo-node".into());
        assert_eq!(
            c.effective_service(),
            Some(Service::Systemd {
                unit: "neo-node".into()
            })
        );
        c.unit = None;
        c.service = Some(Service::Process {
            argv: vec![],
            pid_file: "/run/neo.pid".into(),
            log_file: Some("/var/log/neo/node.log".into()),
        });
        assert_eq!(c.validate(), Err(ConfigError::EmptyProcessArgv));
        c.service = Some(Service::Process {
            argv: vec!["/usr/bin/neo-go".into(), "node".into()],
            pid_file: "/run/neo.pid".into(),
            log_file: Some("/var/log/neo/node.log".into()),
        });
        assert_eq!(c.validate(), Ok(()));
        let n = c.clone().normalized();
        assert_eq!(
            n.pid_file.as_deref(),
            Some(std::path::Path::new("/run/neo.pid"))
        );
        assert_eq!(
            n.effective_log_dir().as_deref(),
            Some(std::path::Path::new("/var/log/neo"))
        );
        c.implementation = Some("geth".into());
        assert!(matches!(
            c.validate(),
            Err(ConfigError::UnknownImplementation(_))
        ));
        c.implementation = Some("neo-go".into());
        c.nft = vec![];
        assert_eq!(c.validate(), Err(ConfigError::EmptyArgv("nft")));
        c.nft = vec!["nft".into()];
        c.db_tool = Some(vec![String::new()]);
        assert_eq!(c.validate(), Err(ConfigError::EmptyArgv("db_tool")));
        c.service = Some(Service::Systemd {
            unit: "-bad".into(),
        });
        c.db_tool = None;
        assert!(matches!(c.validate(), Err(ConfigError::InvalidUnit(_))));
    }
}
