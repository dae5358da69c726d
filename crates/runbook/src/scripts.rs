//! The playbook's scripts by name: what each does, where it runs (over JSON-RPC from here,
//! on a node's host through its agent, or locally), and the parsing of its arguments into
//! an [`Invocation`]. The same parsing serves `neo-ir run`, the API and auto-remediation,
//! so a script means the same thing wherever it is started from.

use std::path::PathBuf;

use serde_json::{json, Value};

/// Where a script runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Over JSON-RPC against the configured nodes; changes nothing.
    Network,
    /// On one node's host, as this operation of its `neo-ir agent`.
    Host(&'static str),
    /// Coordinated across validators' agents (`force_view_change`).
    Validators,
    /// On this machine (renders files).
    Local,
}

/// One script `neo-ir run` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub name: &'static str,
    pub place: Place,
    pub usage: &'static str,
    pub what: &'static str,
}

const fn s(name: &'static str, place: Place, usage: &'static str, what: &'static str) -> Script {
    Script {
        name,
        place,
        usage,
        what,
    }
}

/// Every script, in the playbook's order of use.
pub const ALL: &[Script] = &[
    s("validate_sync", Place::Network, "[--max-lag N]",
      "every node at the fleet's height with the same block hash (exit 1 when not)"),
    s("check_validator_connectivity", Place::Network, "[--lookback N]",
      "each validator reachable, its peers, its last proposed block (exit 1 when any is not)"),
    s("check_network_partitions", Place::Network, "",
      "which nodes are on which chain, bisected to the first differing block (exit 1 when more than one)"),
    s("identify_canonical_chain", Place::Network, "",
      "the chain most validators are on, and whether dBFT's M validators back it (exit 1 when not)"),
    s("performance_diagnostics", Place::Network, "",
      "response time per method and peers per node against the KPI table (exit 1 when any is off)"),
    s("incident_diagnostics", Place::Host("diagnostics"), "--node NODE",
      "uptime, memory, disk, service, connections, height, peers, errors, metrics, data sizes: one redacted archive attached to the incident"),
    s("quick_recovery", Place::Host("quick_recovery"), "--node NODE",
      "restart; if that fails and the process is not running, clear *.tmp and a stale LOCK, start again; else recommend a restore"),
    s("emergency_cleanup", Place::Host("emergency_cleanup"), "--node NODE",
      "free disk: rotated logs, temp files, old diagnostics (never chain data or backups), with the bytes freed"),
    s("check_db_integrity", Place::Host("db_check"), "--node NODE",
      "the node implementation's own database check (refused where the implementation has none)"),
    s("repair_database", Place::Host("db_repair"), "--node NODE",
      "the node implementation's own database repair, node stopped and started around it"),
    s("optimize_database", Place::Host("db_optimize"), "--node NODE",
      "the node implementation's own database compaction, node stopped and started around it"),
    s("backup", Place::Host("backup"), "--node NODE",
      "stop the node, archive its data directory with a SHA-256 checksum, start it again"),
    s("verify_backup", Place::Host("backup_verify"), "--node NODE [--latest | --name ARCHIVE]",
      "recompute a backup's checksum and compare it with the one written at backup time"),
    s("restore_backup", Place::Host("restore"), "--node NODE [--latest | --name ARCHIVE] [--verify]",
      "verify the archive, stop the node, move its data directory aside (kept), extract, start"),
    s("block_ips", Place::Host("firewall_apply"), "--node NODE FILE | --ip ADDR... | --incident ID --from-incident",
      "drop traffic from the IPs/CIDRs in FILE (or the network_attack incident's top remote IPs over the per-IP limit) with an nftables set; the dry run prints the rules"),
    s("enable_ddos_protection", Place::Host("firewall_apply"), "--node NODE [--rate PER_MINUTE]",
      "per-IP rate limit of new connections on the P2P and RPC ports, as the playbook's iptables rules"),
    s("rollback_firewall", Place::Host("firewall_rollback"), "--node NODE",
      "put back the firewall table as it was before the last block_ips/enable_ddos_protection"),
    s("restart_node", Place::Host("service_restart"), "--node NODE",
      "restart the node's service and wait for its RPC"),
    s("stop_node", Place::Host("service_stop"), "--node NODE",
      "stop the node's service (the playbook's first step on data corruption)"),
    s("start_node", Place::Host("service_start"), "--node NODE",
      "start the node's service and wait for its RPC"),
    s("force_view_change", Place::Validators, "--coordinate [--incident ID | --nodes A,B]",
      "coordinated, approved restart of the failing primaries one at a time, stopping when the chain does not advance"),
    s("deploy_node_fleet", Place::Local, "--count N --out DIR [--implementation neo-cli|neo-go|neo-rs] [--ms-per-block MS --max-traceable-blocks N]",
      "render node configs, systemd units and a load balancer for N RPC nodes; applying them is your hook"),
];

/// The script called `name`.
pub fn find(name: &str) -> Option<&'static Script> {
    ALL.iter().find(|s| s.name == name)
}

/// The list for errors and `--help`.
pub fn listing() -> String {
    ALL.iter()
        .map(|s| format!("  {} {}\n      {}", s.name, s.usage, s.what))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The script list for `neo-ir run --help`.
pub fn help() -> String {
    format!("Scripts:\n{}", listing())
}

/// Why a script cannot be started as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("no script {0:?}; neo-ir runs:\n{list}", list = listing())]
    Unknown(String),
    #[error("{script}: {message} (usage: {script} {usage})")]
    Usage {
        script: &'static str,
        usage: &'static str,
        message: String,
    },
}

/// A script with its arguments checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    ValidateSync {
        max_lag: Option<u64>,
    },
    ValidatorConnectivity {
        lookback: u64,
    },
    Partitions,
    CanonicalChain,
    Performance,
    /// An agent operation with its JSON arguments.
    Host {
        op: &'static str,
        args: Value,
    },
    /// `block_ips FILE`: the file is read (and every line checked) when the run is planned.
    BlockIps {
        file: Option<PathBuf>,
        ips: Vec<String>,
        /// The remote IPs over the per-IP limit in the network_attack incident's evidence.
        from_incident: bool,
    },
    ForceViewChange {
        nodes: Vec<String>,
    },
    DeployFleet {
        count: u32,
        out: PathBuf,
        implementation: String,
        /// A private network past HF_Echidna: its configured block time and traceable blocks.
        timing: Option<crate::fleet::GenesisTiming>,
    },
}

/// Parse `args` of `script` (everything after the script name except `--node`, `--dry-run`,
/// `--incident` and `--json`, which the caller takes).
pub fn parse(script: &str, args: &[String]) -> Result<(&'static Script, Invocation), ScriptError> {
    let sc = find(script).ok_or_else(|| ScriptError::Unknown(script.to_string()))?;
    let usage = |message: String| ScriptError::Usage {
        script: sc.name,
        usage: sc.usage,
        message,
    };
    let mut a = Args::new(args);
    let inv = match sc.name {
        "validate_sync" => Invocation::ValidateSync {
            max_lag: a.number("--max-lag").map_err(usage)?,
        },
        "check_validator_connectivity" => Invocation::ValidatorConnectivity {
            lookback: a
                .number("--lookback")
                .map_err(usage)?
                .unwrap_or(50)
                .clamp(1, 1000),
        },
        "check_network_partitions" => Invocation::Partitions,
        "identify_canonical_chain" => Invocation::CanonicalChain,
        "performance_diagnostics" => Invocation::Performance,
        "verify_backup" | "restore_backup" => {
            let latest = a.flag("--latest");
            let name = a.value("--name").map_err(usage)?;
            let verify = sc.name == "restore_backup" && a.flag("--verify");
            if latest && name.is_some() {
                return Err(usage("--latest and --name exclude each other".into()));
            }
            let Place::Host(op) = sc.place else {
                unreachable!("backup scripts run on a host")
            };
            let mut args = match name {
                Some(n) => json!({"name": n}),
                None => json!({"latest": true}),
            };
            if sc.name == "restore_backup" {
                args["verify"] = json!(verify);
            }
            Invocation::Host { op, args }
        }
        "block_ips" => {
            let mut ips = Vec::new();
            while let Some(ip) = a.value("--ip").map_err(usage)? {
                ips.push(ip);
            }
            let from_incident = a.flag("--from-incident");
            let file = a.positional().map(PathBuf::from);
            if file.is_none() && ips.is_empty() && !from_incident {
                return Err(usage(
                    "needs a FILE of IPs/CIDRs, --ip ADDR, or --from-incident".into(),
                ));
            }
            Invocation::BlockIps {
                file,
                ips,
                from_incident,
            }
        }
        "enable_ddos_protection" => {
            let rate = a.number("--rate").map_err(usage)?.unwrap_or(10);
            if !(1..=100_000).contains(&rate) {
                return Err(usage(
                    "--rate is new connections per minute per IP, 1 to 100000".into(),
                ));
            }
            Invocation::Host {
                op: "firewall_apply",
                args: json!({"rate_limit_per_minute": rate}),
            }
        }
        "force_view_change" => {
            if !a.flag("--coordinate") {
                return Err(usage(
                    "Neo has no RPC to force a view change; --coordinate restarts the failing primaries one at a time, with approval".into(),
                ));
            }
            let nodes = a
                .value("--nodes")
                .map_err(usage)?
                .map(|v| {
                    v.split(',')
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            Invocation::ForceViewChange { nodes }
        }
        "deploy_node_fleet" => {
            let count = a
                .number("--count")
                .map_err(usage)?
                .ok_or_else(|| usage("needs --count N".into()))?;
            if !(1..=64).contains(&count) {
                return Err(usage("--count is 1 to 64".into()));
            }
            let out = a
                .value("--out")
                .map_err(usage)?
                .ok_or_else(|| usage("needs --out DIR (where the files are written)".into()))?;
            let implementation = a
                .value("--implementation")
                .map_err(usage)?
                .unwrap_or_else(|| "neo-cli".into());
            let ms = a.number("--ms-per-block").map_err(usage)?;
            let traceable = a.number("--max-traceable-blocks").map_err(usage)?;
            let timing = match (ms, traceable) {
                (None, None) => None,
                (Some(ms), Some(t)) if ms > 0 && t > 0 && t <= u64::from(u32::MAX) => {
                    Some(crate::fleet::GenesisTiming {
                        ms_per_block: ms,
                        max_traceable_blocks: t as u32,
                    })
                }
                _ => {
                    return Err(usage(
                        "--ms-per-block and --max-traceable-blocks go together (a private network past HF_Echidna)".into(),
                    ))
                }
            };
            Invocation::DeployFleet {
                count: count as u32,
                out: PathBuf::from(out),
                implementation,
                timing,
            }
        }
        _ => match sc.place {
            Place::Host(op) => Invocation::Host {
                op,
                args: json!({}),
            },
            _ => unreachable!("every network script is matched above"),
        },
    };
    if let Some(extra) = a.rest() {
        return Err(usage(format!("unexpected argument {extra:?}")));
    }
    Ok((sc, inv))
}

/// A tiny argument reader: `--flag`, `--key value`, `--key=value`, one positional.
struct Args {
    items: Vec<Option<String>>,
}

impl Args {
    fn new(args: &[String]) -> Self {
        Args {
            items: args.iter().cloned().map(Some).collect(),
        }
    }

    fn flag(&mut self, name: &str) -> bool {
        for it in &mut self.items {
            if it.as_deref() == Some(name) {
                *it = None;
                return true;
            }
        }
        false
    }

    /// The first `--key value` or `--key=value` (taken).
    fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        let prefix = format!("{name}=");
        for i in 0..self.items.len() {
            let Some(it) = self.items[i].clone() else {
                continue;
            };
            if let Some(v) = it.strip_prefix(&prefix) {
                self.items[i] = None;
                return Ok(Some(v.to_string()));
            }
            if it == name {
                self.items[i] = None;
                return match self.items.get_mut(i + 1).and_then(Option::take) {
                    Some(v) if !v.starts_with("--") => Ok(Some(v)),
                    _ => Err(format!("{name} needs a value")),
                };
            }
        }
        Ok(None)
    }

    fn number(&mut self, name: &str) -> Result<Option<u64>, String> {
        self.value(name)?
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{name} expects a whole number, got {v:?}"))
            })
            .transpose()
    }

    fn positional(&mut self) -> Option<String> {
        let i = self
            .items
            .iter()
            .position(|it| it.as_deref().is_some_and(|v| !v.starts_with("--")))?;
        self.items[i].take()
    }

    fn rest(&self) -> Option<String> {
        self.items.iter().flatten().next().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(script: &str, args: &[&str]) -> Result<Invocation, ScriptError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(script, &args).map(|(_, i)| i)
    }

    #[test]
    fn every_playbook_script_is_known() {
        for name in [
            "incident_diagnostics",
            "validate_sync",
            "emergency_cleanup",
            "restore_backup",
            "check_validator_connectivity",
            "force_view_change",
            "check_db_integrity",
            "repair_database",
            "block_ips",
            "enable_ddos_protection",
            "deploy_node_fleet",
            "check_network_partitions",
            "identify_canonical_chain",
            "performance_diagnostics",
            "optimize_database",
            "quick_recovery",
        ] {
            assert!(find(name).is_some(), "{name}");
        }
    }

    #[test]
    fn arguments() {
        assert_eq!(
            p("restore_backup", &["--verify"]).unwrap(),
            Invocation::Host {
                op: "restore",
                args: json!({"latest": true, "verify": true})
            }
        );
        assert_eq!(
            p("restore_backup", &["--name=neo-data-1.tar.gz"]).unwrap(),
            Invocation::Host {
                op: "restore",
                args: json!({"name": "neo-data-1.tar.gz", "verify": false})
            }
        );
        assert!(p("restore_backup", &["--latest", "--name", "x"]).is_err());
        assert_eq!(
            p("block_ips", &["ips.txt", "--ip", "1.2.3.4"]).unwrap(),
            Invocation::BlockIps {
                file: Some("ips.txt".into()),
                ips: vec!["1.2.3.4".into()],
                from_incident: false,
            }
        );
        assert!(p("block_ips", &[]).is_err());
        assert!(p("force_view_change", &[])
            .unwrap_err()
            .to_string()
            .contains("no RPC"));
        assert_eq!(
            p(
                "force_view_change",
                &["--coordinate", "--nodes", "validator-2, validator-3"]
            )
            .unwrap(),
            Invocation::ForceViewChange {
                nodes: vec!["validator-2".into(), "validator-3".into()]
            }
        );
        assert!(p("deploy_node_fleet", &["--count", "0", "--out", "x"]).is_err());
        assert!(p("deploy_node_fleet", &["--count", "3"]).is_err());
        assert!(p("validate_sync", &["--max-lag", "x"]).is_err());
        assert!(p("quick_recovery", &["--force"])
            .unwrap_err()
            .to_string()
            .contains("--force"));
        assert!(matches!(p("rm_rf", &[]), Err(ScriptError::Unknown(_))));
    }
}
