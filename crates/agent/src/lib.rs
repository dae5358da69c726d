//! neo-ir host agent: runs on a Neo node's machine and reports what JSON-RPC cannot see —
//! whether the node process runs (systemd or pid file), its RSS and CPU share, host memory,
//! CPU and IO wait, free disk under the data directory, established P2P/RPC connections per
//! remote IP, and the latest error lines of the node's log or journal.
//!
//! It replaces the playbook's `ss`, `free`, `df`, `journalctl` and `systemctl status` with one
//! read-only, token-guarded HTTP report (`GET /v1/report`), read from `/proc` and `statvfs`;
//! the only commands it runs are `systemctl show` and `journalctl`, with an argument vector
//! and a timeout, never through a shell.
//!
//! - [`serve`] runs the agent; [`fetch_report`] is the watcher's side.
//! - [`AgentReport`] is the JSON document; `HostSample::from(&report)` feeds the core.

pub mod client;
pub mod collect;
pub mod command;
pub mod config;
pub mod logscan;
pub mod procfs;
pub mod report;
pub mod server;

pub use client::{fetch_report, AgentError, MAX_REPORT_BYTES};
pub use collect::Collector;
pub use config::{AgentConfig, ConfigError, DEFAULT_ERROR_LINES};
pub use report::{
    AgentReport, ConnectionsReport, DiskReport, ErrorsReport, ErrorsSource, MemoryReport,
    ProcessReport, ProcessSource, ProcessState,
};
pub use server::{router, serve};
