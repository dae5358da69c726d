//! The JSON document the agent serves at `GET /v1/report` (`AgentReport`), with stable field
//! names, and its conversion into the core's `HostSample` that the watcher consumes.
//!
//! Every part carries its own `error`/`detail`: a part that could not be read leaves its
//! figures `null` and says why, the rest of the report is still served.

use jiff::Timestamp;
use neo_ir_core::telemetry::{HostSample, RemoteConnections};
use serde::{Deserialize, Serialize};

/// One report of the host agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// When the report was taken (RFC 3339).
    pub at: Timestamp,
    /// Version of the agent that took it.
    #[serde(default)]
    pub agent_version: String,
    pub hostname: String,
    pub process: ProcessReport,
    pub memory: MemoryReport,
    /// Host-wide CPU busy share over the sampling window, percent of all CPUs (0..=100).
    pub cpu_percent: Option<f64>,
    /// Host-wide share of time spent waiting for IO over the same window (0..=100).
    pub iowait_percent: Option<f64>,
    /// Why `cpu_percent`/`iowait_percent` are missing, when they are.
    #[serde(default)]
    pub cpu_error: Option<String>,
    pub disk: DiskReport,
    pub connections: ConnectionsReport,
    pub errors: ErrorsReport,
}

/// Whether the node process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    Running,
    Stopped,
    Unknown,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Stopped => "stopped",
            ProcessState::Unknown => "unknown",
        }
    }
}

/// Where the process state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessSource {
    Systemd,
    PidFile,
    None,
}

/// The node process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub state: ProcessState,
    pub pid: Option<u32>,
    /// Resident set size (`VmRSS`), never the virtual size.
    pub rss_bytes: Option<u64>,
    /// The process's share of all CPUs over the sampling window (0..=100, comparable with the
    /// host `cpu_percent`; a process using one full core of eight shows 12.5).
    pub cpu_percent: Option<f64>,
    pub source: ProcessSource,
    /// What systemd said, or why the state is unknown.
    pub detail: Option<String>,
}

/// Host memory from `/proc/meminfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    /// total - available, as `free` computes "used".
    pub used_bytes: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The file system holding the node's data directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskReport {
    pub path: String,
    pub total_bytes: Option<u64>,
    /// Free blocks, including those reserved for root.
    pub free_bytes: Option<u64>,
    /// Free blocks usable by an unprivileged process (`df`'s "Avail").
    pub available_bytes: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Established TCP connections on the node's ports, matched by LOCAL port: inbound P2P peers
/// and RPC clients. Outbound P2P connections the node opened (local port ephemeral, remote port
/// 10333) are not counted. Read from the agent's own network namespace (`/proc/net/tcp{,6}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionsReport {
    pub p2p_port: u16,
    pub rpc_port: u16,
    pub p2p_established: Option<u32>,
    pub rpc_established: Option<u32>,
    /// Remote IPs, most connections (p2p + rpc) first, at most 50.
    pub by_remote_ip: Vec<RemoteConnections>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Where the error lines came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorsSource {
    Journal,
    File,
    None,
}

/// The latest error lines of the node's log file or journal, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorsReport {
    pub source: ErrorsSource,
    pub lines: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl From<&AgentReport> for HostSample {
    fn from(r: &AgentReport) -> Self {
        HostSample {
            at: Some(r.at),
            process_state: r.process.state.as_str().to_string(),
            process_rss_bytes: r.process.rss_bytes,
            process_cpu_percent: r.process.cpu_percent,
            cpu_percent: r.cpu_percent,
            iowait_percent: r.iowait_percent,
            memory_used_bytes: r.memory.used_bytes,
            // what the node (an unprivileged process) can still write
            disk_free_bytes: r.disk.available_bytes,
            disk_total_bytes: r.disk.total_bytes,
            p2p_established: r.connections.p2p_established,
            rpc_established: r.connections.rpc_established,
            top_remotes: r.connections.by_remote_ip.clone(),
            error_lines: r.errors.lines.clone(),
            // the agent answered; per-part failures stay in the report itself
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> AgentReport {
        AgentReport {
            at: "2024-05-01T12:00:00Z".parse().unwrap(),
            agent_version: "0.1.0".into(),
            hostname: "neo-1".into(),
            process: ProcessReport {
                state: ProcessState::Running,
                pid: Some(4242),
                rss_bytes: Some(1 << 30),
                cpu_percent: Some(12.5),
                source: ProcessSource::Systemd,
                detail: Some("ActiveState=active SubState=running".into()),
            },
            memory: MemoryReport {
                total_bytes: Some(16 << 30),
                available_bytes: Some(10 << 30),
                used_bytes: Some(6 << 30),
                error: None,
            },
            cpu_percent: Some(40.0),
            iowait_percent: Some(2.5),
            cpu_error: None,
            disk: DiskReport {
                path: "/var/neo".into(),
                total_bytes: Some(100 << 30),
                free_bytes: Some(30 << 30),
                available_bytes: Some(25 << 30),
                error: None,
            },
            connections: ConnectionsReport {
                p2p_port: 10333,
                rpc_port: 10332,
                p2p_established: Some(12),
                rpc_established: Some(3),
                by_remote_ip: vec![RemoteConnections {
                    ip: "203.0.113.9".into(),
                    p2p: 10,
                    rpc: 1,
                }],
                error: None,
            },
            errors: ErrorsReport {
                source: ErrorsSource::Journal,
                lines: vec!["ERROR: boom".into()],
                error: None,
            },
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["at"], "2024-05-01T12:00:00Z");
        assert_eq!(v["process"]["state"], "running");
        assert_eq!(v["process"]["source"], "systemd");
        assert_eq!(v["errors"]["source"], "journal");
        assert_eq!(v["connections"]["by_remote_ip"][0]["ip"], "203.0.113.9");
        assert_eq!(v["disk"]["available_bytes"], 25u64 << 30);
        assert!(v["memory"]["error"].is_null());
        let back: AgentReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample());
        let pid_file = serde_json::to_value(ProcessSource::PidFile).unwrap();
        assert_eq!(pid_file, "pid_file");
    }

    #[test]
    fn host_sample() {
        let r = sample();
        let h = HostSample::from(&r);
        assert_eq!(h.at, Some(r.at));
        assert_eq!(h.process_state, "running");
        assert_eq!(h.process_rss_bytes, Some(1 << 30));
        assert_eq!(h.process_cpu_percent, Some(12.5));
        assert_eq!(h.cpu_percent, Some(40.0));
        assert_eq!(h.iowait_percent, Some(2.5));
        assert_eq!(h.memory_used_bytes, Some(6 << 30));
        assert_eq!(h.disk_free_bytes, Some(25 << 30));
        assert_eq!(h.disk_total_bytes, Some(100 << 30));
        assert_eq!(h.p2p_established, Some(12));
        assert_eq!(h.rpc_established, Some(3));
        assert_eq!(h.top_remotes, r.connections.by_remote_ip);
        assert_eq!(h.error_lines, vec!["ERROR: boom".to_string()]);
        assert_eq!(h.error, None);
    }
}
