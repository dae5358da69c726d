//! Runbooks as data: the shape every runbook run shares (a [`Plan`] of [`Step`]s, each with
//! its argv, timeout, expected exit codes and whether it is destructive; the [`StepResult`]s
//! of running it; the [`Run`] record kept in the store and on the incident timeline), the
//! playbook's procedures per incident kind as checklists ([`checklist`]), and the
//! auto-remediation decision with its circuit breaker ([`decide_remediation`]).
//!
//! Pure: the agent executes steps, the runbook crate orchestrates runs, the store keeps them;
//! all of them speak these types.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::incident::{Incident, IncidentKind, Status};
use crate::observation::Role;

/// What one step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Run a program with this argument vector (never a shell string).
    Exec { argv: Vec<String> },
    /// An operation neo-ir does itself (delete these files, write this archive, call this
    /// RPC); `detail` says exactly what, so a dry run shows it.
    Builtin { op: String, detail: String },
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Short name, unique in its plan (`stop`, `archive`, `verify`).
    pub name: String,
    pub action: Action,
    /// Hard limit; the step is killed and failed after it.
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Exit codes that count as success (for `Exec`; `[0]` by default).
    #[serde(default = "default_expect")]
    pub expect_exit: Vec<i32>,
    /// Changes or removes something that cannot be taken back by itself (stopping a node,
    /// deleting files, replacing a data directory, firewall rules): needs an approval.
    pub destructive: bool,
}

fn default_expect() -> Vec<i32> {
    vec![0]
}

impl Step {
    /// An `Exec` step expecting exit code 0.
    pub fn exec(name: &str, argv: &[&str], timeout: Duration, destructive: bool) -> Step {
        Step {
            name: name.to_string(),
            action: Action::Exec {
                argv: argv.iter().map(|s| s.to_string()).collect(),
            },
            timeout,
            expect_exit: default_expect(),
            destructive,
        }
    }

    /// A `Builtin` step.
    pub fn builtin(
        name: &str,
        op: &str,
        detail: impl Into<String>,
        timeout: Duration,
        destructive: bool,
    ) -> Step {
        Step {
            name: name.to_string(),
            action: Action::Builtin {
                op: op.to_string(),
                detail: detail.into(),
            },
            timeout,
            expect_exit: default_expect(),
            destructive,
        }
    }

    /// One line for a dry run: `[destructive] name: argv...` with arguments quoted when
    /// they hold spaces or quotes.
    pub fn describe(&self) -> String {
        let what = match &self.action {
            Action::Exec { argv } => argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            Action::Builtin { op, detail } => format!("({op}) {detail}"),
        };
        let flag = if self.destructive {
            "[destructive] "
        } else {
            ""
        };
        format!(
            "{flag}{}: {what}  (timeout {}s)",
            self.name,
            self.timeout.as_secs()
        )
    }
}

fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// What a run will do, in order. A dry run prints it and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What the operator should know before approving (e.g. "applying units is your hook").
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Plan {
    pub fn destructive(&self) -> bool {
        self.steps.iter().any(|s| s.destructive)
    }

    /// The dry-run text: one numbered line per step, then the notes.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.steps.iter().enumerate() {
            out.push_str(&format!("{:>2}. {}\n", i + 1, s.describe()));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Failed,
    TimedOut,
    /// Not run: an earlier step failed, or a condition made it unnecessary.
    Skipped,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub status: StepStatus,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Output (stdout, then stderr), clipped to [`MAX_STEP_OUTPUT`] characters.
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub duration_ms: u64,
}

/// Most characters of a step's output kept in a run record.
pub const MAX_STEP_OUTPUT: usize = 16 * 1024;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Printed, nothing changed.
    DryRun,
    /// Has destructive steps and waits for `neo-ir approve RUN`.
    AwaitingApproval,
    Running,
    Succeeded,
    Failed,
    /// Refused before anything ran (unsupported implementation, invalid argument, breaker).
    Refused,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::DryRun => "dry_run",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "dry_run" => RunStatus::DryRun,
            "awaiting_approval" => RunStatus::AwaitingApproval,
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "refused" => RunStatus::Refused,
            _ => return None,
        })
    }

    /// No more change will come.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::DryRun | RunStatus::Succeeded | RunStatus::Failed | RunStatus::Refused
        )
    }
}

/// A run of one script, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub script: String,
    /// The script's arguments as given (`["--latest"]`, `["blocklist.txt"]`).
    pub args: Vec<String>,
    /// The node it acts on (`None` for network-wide scripts).
    pub node: Option<String>,
    pub incident_id: Option<i64>,
    pub status: RunStatus,
    /// Who asked for it: a person (`alice via cli`) or `auto-remediation`.
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub plan: Plan,
    pub results: Vec<StepResult>,
    /// The script's report (JSON), e.g. bytes freed, partitions, checksum.
    pub report: serde_json::Value,
    /// A one-line outcome for the timeline and lists.
    pub summary: String,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Started by an auto-remediation policy.
    pub automatic: bool,
}

/// One item of an incident kind's checklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChecklistItem {
    /// Stable key, recorded when the step is done (`restart`, `check_logs`).
    pub key: &'static str,
    pub text: &'static str,
    /// The neo-ir script that does it, when there is one.
    pub script: Option<&'static str>,
}

/// A checklist item literal (a struct expression, so the arrays below are promoted to
/// statics).
macro_rules! item {
    ($key:expr, $text:expr, $script:expr) => {
        ChecklistItem {
            key: $key,
            text: $text,
            script: $script,
        }
    };
}

/// The playbook's procedure for an incident kind, as a checklist (immediate actions, then
/// resolution steps).
pub fn checklist(kind: IncidentKind) -> &'static [ChecklistItem] {
    match kind {
        IncidentKind::NodeDown => &[
            item!(
                "diagnostics",
                "Collect diagnostics before touching the node",
                Some("incident_diagnostics")
            ),
            item!(
                "service_status",
                "Check the node service status and recent error log lines",
                None
            ),
            item!(
                "quick_recovery",
                "Restart; clear *.tmp and a stale LOCK only if the process is not running; restart",
                Some("quick_recovery")
            ),
            item!(
                "disk",
                "If the disk is full: emergency cleanup (never the chain data)",
                Some("emergency_cleanup")
            ),
            item!(
                "restore",
                "If the data is corrupt: restore the latest backup",
                Some("restore_backup")
            ),
            item!(
                "verify",
                "Verify the node is back at the fleet height with matching hashes",
                Some("validate_sync")
            ),
        ],
        IncidentKind::SyncFailure => &[
            item!(
                "validate_sync",
                "Compare height and hashes with the fleet",
                Some("validate_sync")
            ),
            item!(
                "peers",
                "Check the node's peers and P2P connectivity",
                Some("performance_diagnostics")
            ),
            item!(
                "diagnostics",
                "Collect diagnostics",
                Some("incident_diagnostics")
            ),
            item!("restart", "Restart the node", Some("quick_recovery")),
            item!("verify", "Verify the node caught up", Some("validate_sync")),
        ],
        IncidentKind::ConsensusFailure => &[
            item!(
                "connectivity",
                "Check every validator: reachable, peers, last proposed block",
                Some("check_validator_connectivity")
            ),
            item!(
                "isolated",
                "If one validator is isolated: restart its consensus service",
                Some("quick_recovery")
            ),
            item!(
                "view_change",
                "If widespread: coordinated, approved restart of the failing primaries",
                Some("force_view_change")
            ),
            item!(
                "verify",
                "Verify blocks are produced again at the target interval",
                Some("validate_sync")
            ),
        ],
        IncidentKind::DataCorruption => &[
            item!(
                "stop",
                "Stop the node so the corruption does not spread",
                None
            ),
            item!(
                "backup",
                "Back up the current (corrupt) state",
                Some("backup")
            ),
            item!(
                "integrity",
                "Run the implementation's integrity check",
                Some("check_db_integrity")
            ),
            item!(
                "repair",
                "Option 1: repair the database",
                Some("repair_database")
            ),
            item!(
                "restore",
                "Option 2: restore a verified backup",
                Some("restore_backup")
            ),
            item!(
                "resync",
                "Option 3 (last resort): resync from genesis",
                None
            ),
            item!(
                "verify",
                "Verify the node is back at the fleet height with matching hashes",
                Some("validate_sync")
            ),
        ],
        IncidentKind::NetworkAttack => &[
            item!(
                "connections",
                "Count connections per remote IP on the P2P and RPC ports",
                Some("incident_diagnostics")
            ),
            item!(
                "rate_limit",
                "Enable per-IP connection rate limiting",
                Some("enable_ddos_protection")
            ),
            item!("block", "Block the attacking IPs", Some("block_ips")),
            item!(
                "scale",
                "Scale out RPC nodes behind a load balancer",
                Some("deploy_node_fleet")
            ),
            item!(
                "verify",
                "Verify response times are back within the KPI table",
                Some("performance_diagnostics")
            ),
        ],
        IncidentKind::SplitBrain => &[
            item!(
                "partitions",
                "Identify the partitions",
                Some("check_network_partitions")
            ),
            item!(
                "canonical",
                "Identify the canonical chain (the partition with dBFT's M validators)",
                Some("identify_canonical_chain")
            ),
            item!(
                "resync",
                "Resync the minority partition's nodes from a backup or from genesis",
                Some("restore_backup")
            ),
            item!(
                "verify",
                "Verify every node is on one chain",
                Some("validate_sync")
            ),
        ],
        IncidentKind::PerformanceDegradation => &[
            item!(
                "diagnostics",
                "Measure response times and KPI values per node",
                Some("performance_diagnostics")
            ),
            item!(
                "host",
                "Check CPU, memory and IO on the host",
                Some("incident_diagnostics")
            ),
            item!(
                "optimize",
                "If IO bound: optimize the database",
                Some("optimize_database")
            ),
            item!(
                "cleanup",
                "If the disk is nearly full: emergency cleanup",
                Some("emergency_cleanup")
            ),
            item!(
                "verify",
                "Verify response times are back within the KPI table",
                Some("performance_diagnostics")
            ),
        ],
    }
}

/// `[[remediation]]`: run a script automatically for a kind of incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemediationPolicy {
    pub kind: IncidentKind,
    /// Only on nodes of these roles (empty: any role).
    pub roles: Vec<Role>,
    /// The script, e.g. `quick_recovery`; its destructive steps are allowed by this policy.
    pub script: String,
    /// Circuit breaker: at most this many automatic runs per node per `window`.
    pub max_runs: u32,
    pub window: Duration,
    /// Wait this long after the incident opened before acting (a blip clears by itself).
    pub delay: Duration,
}

/// One earlier automatic run, for the circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRun {
    pub node: String,
    pub at: Timestamp,
    /// The run or its verification failed.
    pub failed: bool,
}

/// What auto-remediation does for one incident and node now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemediationDecision {
    Run,
    /// Not yet (delay), or not applicable; nothing to record.
    Wait,
    /// The breaker is open: record once on the timeline and leave it to people.
    Tripped(String),
}

/// Decide whether `policy` runs for `incident` on `node` at `now`, given the automatic runs
/// already made on that node (any incident). Never on a resolved or reviewed incident; at
/// most `max_runs` per `window`; never again after a failed run or verification in the window.
pub fn decide_remediation(
    policy: &RemediationPolicy,
    incident: &Incident,
    node: &str,
    node_role: Option<Role>,
    past: &[PastRun],
    now: Timestamp,
) -> RemediationDecision {
    if policy.kind != incident.kind
        || matches!(incident.status, Status::Resolved | Status::Reviewed)
        || incident.cleared_at.is_some()
    {
        return RemediationDecision::Wait;
    }
    if !policy.roles.is_empty() && !node_role.is_some_and(|r| policy.roles.contains(&r)) {
        return RemediationDecision::Wait;
    }
    let since = now.as_millisecond() - policy.window.as_millis() as i64;
    let recent: Vec<&PastRun> = past
        .iter()
        .filter(|p| p.node == node && p.at.as_millisecond() > since)
        .collect();
    if let Some(f) = recent.iter().find(|p| p.failed) {
        return RemediationDecision::Tripped(format!(
            "auto-remediation stopped for {node}: the {} run at {} failed its verification; \
             people take over",
            policy.script, f.at
        ));
    }
    if recent.len() as u32 >= policy.max_runs {
        return RemediationDecision::Tripped(format!(
            "auto-remediation stopped for {node}: {} automatic {} runs within {} (limit {}); \
             a crash loop needs people",
            recent.len(),
            policy.script,
            humantime::format_duration(policy.window),
            policy.max_runs
        ));
    }
    if now.as_millisecond() - incident.opened_at.as_millisecond() < policy.delay.as_millis() as i64
    {
        return RemediationDecision::Wait;
    }
    RemediationDecision::Run
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_description_quotes_and_flags() {
        let s = Step::exec(
            "stop",
            &["systemctl", "stop", "neo node", "it's"],
            Duration::from_secs(30),
            true,
        );
        assert_eq!(
            s.describe(),
            "[destructive] stop: systemctl stop 'neo node' 'it'\\''s'  (timeout 30s)"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["timeout"], 30_000);
        assert_eq!(json["action"]["type"], "exec");
        let back: Step = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn every_kind_has_a_checklist_with_known_scripts() {
        for kind in IncidentKind::ALL {
            let list = checklist(kind);
            assert!(list.len() >= 4, "{kind}");
            let mut keys: Vec<_> = list.iter().map(|i| i.key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), list.len(), "duplicate keys in {kind}");
        }
    }

    fn incident(kind: IncidentKind, opened: i64) -> Incident {
        let mut i = crate::lifecycle::open(
            &crate::incident::Finding {
                key: "k".into(),
                kind,
                severity: crate::incident::Severity::P2,
                nodes: vec!["rpc-1".into()],
                summary: "s".into(),
                evidence: serde_json::json!({}),
            },
            Timestamp::from_second(opened).unwrap(),
            &crate::oncall::ResponseConfig::default(),
        );
        i.id = 1;
        i
    }

    fn policy() -> RemediationPolicy {
        RemediationPolicy {
            kind: IncidentKind::NodeDown,
            roles: vec![Role::Rpc],
            script: "quick_recovery".into(),
            max_runs: 2,
            window: Duration::from_secs(3600),
            delay: Duration::from_secs(30),
        }
    }

    #[test]
    fn remediation_waits_runs_and_trips() {
        let p = policy();
        let inc = incident(IncidentKind::NodeDown, 1000);
        let at = |s| Timestamp::from_second(s).unwrap();
        let d = |past: &[PastRun], now| {
            decide_remediation(&p, &inc, "rpc-1", Some(Role::Rpc), past, at(now))
        };
        assert_eq!(d(&[], 1010), RemediationDecision::Wait, "within the delay");
        assert_eq!(d(&[], 1030), RemediationDecision::Run);
        // a validator is not covered by an RPC-only policy
        assert_eq!(
            decide_remediation(&p, &inc, "rpc-1", Some(Role::Validator), &[], at(1030)),
            RemediationDecision::Wait
        );
        let ok = |s| PastRun {
            node: "rpc-1".into(),
            at: at(s),
            failed: false,
        };
        assert_eq!(d(&[ok(100)], 1030), RemediationDecision::Run);
        assert!(matches!(
            d(&[ok(900), ok(950)], 1030),
            RemediationDecision::Tripped(m) if m.contains("crash loop")
        ));
        // runs older than the window do not count
        assert_eq!(d(&[ok(900), ok(950)], 950 + 3601), RemediationDecision::Run);
        let failed = PastRun {
            failed: true,
            ..ok(1000)
        };
        assert!(matches!(
            d(&[failed], 1030),
            RemediationDecision::Tripped(m) if m.contains("verification")
        ));
        // other nodes' runs do not count
        let other = PastRun {
            node: "rpc-2".into(),
            ..ok(1000)
        };
        assert_eq!(d(&[other.clone(), other], 1030), RemediationDecision::Run);
    }

    #[test]
    fn never_on_a_resolved_incident_or_another_kind() {
        let p = policy();
        let at = Timestamp::from_second(5000).unwrap();
        let mut inc = incident(IncidentKind::NodeDown, 1000);
        inc.status = Status::Resolved;
        assert_eq!(
            decide_remediation(&p, &inc, "rpc-1", Some(Role::Rpc), &[], at),
            RemediationDecision::Wait
        );
        let inc = incident(IncidentKind::SyncFailure, 1000);
        assert_eq!(
            decide_remediation(&p, &inc, "rpc-1", Some(Role::Rpc), &[], at),
            RemediationDecision::Wait
        );
    }
}
