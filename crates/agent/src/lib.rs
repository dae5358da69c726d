//! neo-ir host agent: runs on a Neo node's machine and reports what JSON-RPC cannot see —
//! whether the node process runs (systemd or pid file), its RSS and CPU share, host memory,
//! CPU and IO wait, free disk under the data directory, established P2P/RPC connections per
//! remote IP, and the latest error lines of the node's log or journal — and runs the
//! playbook's node-host scripts as named operations.
//!
//! - `GET /v1/report` replaces the playbook's `ss`, `free`, `df`, `journalctl` and
//!   `systemctl status` with one read-only report, read from `/proc` and `statvfs`.
//! - `POST /v1/ops/{op}` runs a named operation ([`known_ops`]): service control,
//!   quick_recovery, emergency_cleanup, backup/backup_verify/restore, db_check/repair/optimize,
//!   firewall_apply/rollback, diagnostics. Never an arbitrary command: each operation builds a
//!   plan of argument-vector or builtin steps from validated arguments; a dry run returns the
//!   plan and changes nothing; destructive plans need `approved_by`; one operation runs at a
//!   time. Commands run with an argument vector and a hard timeout, never through a shell.
//!
//! Both endpoints are guarded by the same bearer token.
//!
//! - [`serve`] runs the agent; [`fetch_report`] and [`run_op`] are the callers' side.
//! - [`AgentReport`] is the report; `HostSample::from(&report)` feeds the core.
//! - [`OpRequest`]/[`OpReport`] are an operation's request and answer.

pub mod client;
pub mod collect;
pub mod command;
pub mod config;
pub mod logscan;
pub mod ops;
pub mod procfs;
pub mod report;
pub mod server;

pub use client::{
    fetch_report, known_ops, run_op, AgentError, OpError, MAX_OP_REPORT_BYTES, MAX_REPORT_BYTES,
};
pub use collect::Collector;
pub use config::{
    AgentConfig, ConfigError, Service, DEFAULT_ERROR_LINES, DEFAULT_START_WAIT,
    DEFAULT_STOP_TIMEOUT, IMPLEMENTATIONS,
};
pub use ops::diagnostics::redact;
pub use ops::{OpReport, OpRequest};
pub use report::{
    AgentReport, ConnectionsReport, DiskReport, ErrorsReport, ErrorsSource, MemoryReport,
    ProcessReport, ProcessSource, ProcessState,
};
pub use server::{router, serve};
