//! The agent's configuration: what to watch on this machine (systemd unit or pid file, data
//! directory, ports, log file) and the bearer token that guards the report. `Debug` never
//! shows the token.

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

/// Why a configuration cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the agent token is empty; refusing to serve an unauthenticated report")]
    EmptyToken,
    #[error("invalid systemd unit name {0:?}")]
    InvalidUnit(String),
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
        }
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
}
