//! neo-ir's pure core: the domain types (nodes, observations, incidents), the `Clock`,
//! the cross-node fleet view, the detectors and the incident state machine.
//!
//! Nothing in this crate does I/O: every function takes plain data and a time, so the whole
//! detection and response logic is unit-tested with simulated time (see `clock::ManualClock`).

pub mod chain;
pub mod clock;
pub mod config;
pub mod debounce;
pub mod detect;
pub mod drill;
pub mod fleet;
pub mod fork;
pub mod incident;
pub mod kpis;
pub mod lifecycle;
pub mod notify;
pub mod observation;
pub mod oncall;
pub mod respond;
pub mod review;
pub mod runbook;
pub mod telemetry;
pub mod text;

pub use clock::{Clock, ManualClock, SystemClock};
pub use observation::{
    ChainStatus, FailureKind, HeaderInfo, NodeVersion, Observation, ProbeFailure, Role,
};
