//! The playbook's scripts, made real: each is a neo-ir command (`neo-ir run <name>`) with
//! a typed report and an exit code that says whether the check passed.
//!
//! Built so far: the network-wide checks over JSON-RPC that change nothing
//! ([`validate_sync`], [`performance_diagnostics`]). Still to come (issue 6): the node-host scripts through
//! `neo-ir agent` (diagnostics, recovery, backup and restore, DDoS rules) with dry-run,
//! approvals for destructive steps and records on the incident timeline.

pub mod blocklist;
pub mod checklist;
pub mod connectivity;
pub mod fleet;
pub mod partitions;
pub mod perf;
pub mod remediate;
pub mod runner;
pub mod scripts;
pub mod sync;
pub mod viewchange;

pub use blocklist::{parse_blocklist, BlocklistError};
pub use connectivity::{
    check_validator_connectivity, check_validators, validator_indexes, ConnectivityReport,
    ValidatorConnectivity, ValidatorVerdict,
};
pub use fleet::{
    apply_commands, fetch_protocol, render_fleet, write_fleet, FleetError, FleetSpec,
    GenesisTiming, Implementation, Network, Protocol, RenderedFile,
};
pub use partitions::{check_network_partitions, PartitionReport};
pub use perf::{performance_diagnostics, Level, PerfReport};
pub use sync::{validate_sync, NodeSync, SyncReport, Verdict};
pub use viewchange::{
    coordinate_restarts, failing_primaries, NodeControl, NodeRestart, RestartStatus,
    ViewChangeReport,
};

/// The scripts `neo-ir run` knows, with what each does (for `--help` and errors).
pub const SCRIPTS: &[(&str, &str)] = &[
    (
        "validate_sync",
        "every node at the fleet's height with the same block hash (exit 1 when not)",
    ),
    (
        "check_network_partitions",
        "which nodes are on which chain, bisected to the first differing block (exit 1 when more than one)",
    ),
    (
        "identify_canonical_chain",
        "the chain most validators are on, and whether dBFT's M validators back it (exit 1 when not)",
    ),
    (
        "performance_diagnostics",
        "response time per method and peers per node against the KPI table (exit 1 when any is off)",
    ),
    (
        "check_validator_connectivity",
        "every validator reachable, with peers, proposing in the last blocks; missed turns named (exit 1 when not)",
    ),
    (
        "force_view_change",
        "--coordinate: approved restart of the failing primaries one at a time, stopping when the chain does not advance (Neo has no view-change RPC)",
    ),
    (
        "deploy_node_fleet",
        "--count N: render N RPC node configs, systemd units and an nginx upstream; applying them is the operator's step",
    ),
];
