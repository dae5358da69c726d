//! Named host operations behind `POST /v1/ops/{op}`: the playbook's node-host scripts
//! (quick_recovery, emergency_cleanup, backup and restore, database check/repair/optimize,
//! block_ips and DDoS rate limiting with rollback, incident_diagnostics, service control) as
//! operations with a fixed name and validated arguments — never an arbitrary command sent
//! over the network.
//!
//! Every operation first builds a [`Plan`] of steps (argument vectors or builtin actions
//! with their exact detail). A dry run returns the plan and changes nothing; a plan with
//! destructive steps runs only with `approved_by`; one operation runs at a time per agent;
//! execution stops at the first failing step (the rest are `skipped`) unless the operation
//! says otherwise (quick_recovery goes on to its cleanup path; backup starts the node again
//! even when archiving failed). An accepted operation runs to its end in its own task, even
//! when the caller disconnects, so a half-done restore is never abandoned midway.

pub mod backup;
pub mod cleanup;
pub mod db;
pub mod diagnostics;
pub mod exec;
pub mod firewall;
pub mod fsutil;
pub mod node;
pub mod rpc;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use neo_ir_core::runbook::{Action, Plan, Step, StepResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::collect::Collector;
use crate::config::AgentConfig;
use exec::Execution;
use service::{Children, ServiceCtl};

/// `POST /v1/ops/{op}` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpRequest {
    /// The operation's arguments (an object; `null` for none).
    #[serde(default)]
    pub args: serde_json::Value,
    /// Return the plan only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Who approved the destructive steps (`alice via cli`, `auto-remediation`).
    #[serde(default)]
    pub approved_by: Option<String>,
}

/// The answer to an operation that ran (or was dry-run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpReport {
    pub op: String,
    pub plan: neo_ir_core::runbook::Plan,
    /// One per plan step, in plan order (empty for a dry run).
    pub results: Vec<neo_ir_core::runbook::StepResult>,
    /// The operation reached its goal.
    pub ok: bool,
    /// Operation-specific figures (files removed, archive name and checksum, ruleset...).
    pub report: serde_json::Value,
    /// One line for a timeline.
    pub summary: String,
}

/// The operations, with what each does.
const KNOWN_OPS: &[(&str, &str)] = &[
    (
        "service_status",
        "whether the node runs (backend, pid) and answers getblockcount",
    ),
    (
        "service_start",
        "start the node and wait until it answers getblockcount",
    ),
    ("service_stop", "stop the node (destructive)"),
    (
        "service_restart",
        "restart the node and wait until it answers getblockcount (destructive)",
    ),
    (
        "quick_recovery",
        "restart; if that fails and the node is not running, remove *.tmp and LOCK files \
         under the data dir and start again (destructive)",
    ),
    (
        "emergency_cleanup",
        "free disk: rotated logs and all but the newest 3 diagnostics archives; never chain \
         data or backups (destructive)",
    ),
    (
        "backup",
        "stop the node, archive the data dir into backup_dir with a .sha256, start it again \
         (destructive)",
    ),
    (
        "backup_verify",
        "recompute a backup's sha256, compare with its .sha256 file, count its entries",
    ),
    (
        "restore",
        "verify a backup, extract it beside the data dir, stop the node, move the data dir \
         aside (kept), swap in the backup, start (destructive)",
    ),
    (
        "db_check",
        "run the implementation's offline database check",
    ),
    (
        "db_repair",
        "stop the node, run the implementation's database repair, start it (destructive)",
    ),
    (
        "db_optimize",
        "stop the node, run the implementation's database compaction, start it (destructive)",
    ),
    (
        "firewall_apply",
        "replace the nftables table inet neo_ir: blocklist and per-IP rate limit of new \
         connections on the node's ports (destructive)",
    ),
    (
        "firewall_rollback",
        "restore the table inet neo_ir that the last firewall_apply replaced (destructive)",
    ),
    (
        "diagnostics",
        "write a redacted incident-diagnostics tar.gz (report, memory, disk, service, \
         connections, node RPC, errors, metrics, data sizes)",
    ),
];

/// Every operation's name and what it does.
pub fn known_ops() -> &'static [(&'static str, &'static str)] {
    KNOWN_OPS
}

/// Why an operation did not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    UnknownOp(String),
    #[error("{0}")]
    InvalidArgs(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the plan has destructive steps and needs approved_by")]
    ApprovalRequired(Plan),
    #[error("another operation is running on this agent")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::UnknownOp(_) => 404,
            Refusal::InvalidArgs(_) => 400,
            Refusal::Unsupported(_) => 422,
            Refusal::ApprovalRequired(_) | Refusal::Busy => 409,
            Refusal::Internal(_) => 500,
        }
    }

    /// The error code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownOp(_) => "unknown_op",
            Refusal::InvalidArgs(_) => "invalid_args",
            Refusal::Unsupported(_) => "unsupported",
            Refusal::ApprovalRequired(_) => "approval_required",
            Refusal::Busy => "busy",
            Refusal::Internal(_) => "internal",
        }
    }
}

/// What operations share: the configuration, an HTTP client for the local node, the node
/// processes this agent started, and the report collector.
pub struct Ctx {
    pub cfg: Arc<AgentConfig>,
    pub http: reqwest::Client,
    pub children: Children,
    pub collector: Arc<Collector>,
    /// The implementation last learned from the node's `getversion` (kept: database tools
    /// run while the node is down).
    pub detected: std::sync::Mutex<Option<String>>,
}

impl Ctx {
    /// The node's implementation: `--implementation`, else what its `getversion` says (now,
    /// or the last time it answered: database tools run while the node is down).
    pub async fn implementation(&self) -> Result<String, String> {
        if let Some(i) = &self.cfg.implementation {
            return Ok(i.clone());
        }
        let asked = rpc::call(
            &self.http,
            self.cfg.rpc_port,
            "getversion",
            serde_json::json!([]),
            Duration::from_secs(2),
        )
        .await;
        let remembered = self.detected.lock().ok().and_then(|d| d.clone());
        let v = match (asked, remembered) {
            (Ok(v), _) => v,
            (Err(_), Some(known)) => return Ok(known),
            (Err(e), None) => {
                return Err(format!(
                    "getversion on 127.0.0.1:{}: {e}",
                    self.cfg.rpc_port
                ))
            }
        };
        let ua = v.get("useragent").and_then(Value::as_str).unwrap_or("");
        let found = rpc::implementation_from_user_agent(ua).ok_or_else(|| {
            format!(
                "the node's user agent {:?} names no known implementation",
                neo_ir_core::text::clip(ua, 60)
            )
        })?;
        if let Ok(mut d) = self.detected.lock() {
            *d = Some(found.to_string());
        }
        Ok(found.to_string())
    }

    /// Learn the implementation while the node answers, when it is not known yet.
    async fn learn_implementation(&self) {
        let known =
            self.cfg.implementation.is_some() || self.detected.lock().is_ok_and(|d| d.is_some());
        if !known {
            let _ = self.implementation().await;
        }
    }

    /// The node's service, or why operations on it are unsupported.
    pub fn service(&self) -> Result<ServiceCtl<'_>, Refusal> {
        let service = self.cfg.effective_service().ok_or_else(|| {
            Refusal::Unsupported(
                "no node service is configured: start the agent with --unit UNIT (systemd) \
                 or --process-pid-file FILE -- <node command...> (process)"
                    .into(),
            )
        })?;
        Ok(ServiceCtl {
            cfg: &self.cfg,
            service,
            http: &self.http,
            children: &self.children,
        })
    }
}

/// A planned operation, ready to run.
pub struct Prepared {
    pub plan: Plan,
    /// What a dry run's report carries (e.g. the firewall ruleset); `null` for most.
    pub preview: Value,
    pub(crate) job: Job,
}

/// The parsed arguments of each operation, for its execution.
pub(crate) enum Job {
    ServiceStatus,
    ServiceStart,
    ServiceStop,
    ServiceRestart,
    QuickRecovery,
    Backup(backup::BackupJob),
    BackupVerify(backup::VerifyJob),
    Restore(backup::RestoreJob),
    Db(db::DbJob),
    FirewallApply(firewall::ApplyJob),
    FirewallRollback(firewall::RollbackJob),
    EmergencyCleanup(cleanup::CleanupJob),
    Diagnostics(diagnostics::DiagJob),
}

/// How an executed operation ended.
pub struct Outcome {
    pub ok: bool,
    pub report: Value,
    pub summary: String,
}

impl Outcome {
    pub fn new(ok: bool, report: Value, summary: impl Into<String>) -> Self {
        Outcome {
            ok,
            report,
            summary: summary.into(),
        }
    }
}

/// Plan `op` with `args` (nothing changes).
pub async fn prepare(ctx: &Ctx, op: &str, args: &Value) -> Result<Prepared, Refusal> {
    match op {
        "service_status" => node::prepare_status(ctx, args),
        "service_start" => node::prepare_start(ctx, args),
        "service_stop" => node::prepare_stop(ctx, args),
        "service_restart" => node::prepare_restart(ctx, args),
        "quick_recovery" => node::prepare_quick_recovery(ctx, args),
        "backup" => backup::prepare_backup(ctx, args),
        "backup_verify" => backup::prepare_verify(ctx, args),
        "restore" => backup::prepare_restore(ctx, args),
        "db_check" | "db_repair" | "db_optimize" => db::prepare(ctx, op, args).await,
        "firewall_apply" => firewall::prepare_apply(ctx, args),
        "firewall_rollback" => firewall::prepare_rollback(ctx, args),
        "emergency_cleanup" => cleanup::prepare(ctx, args),
        "diagnostics" => diagnostics::prepare(ctx, args),
        _ => Err(unknown_op(op)),
    }
}

/// Run the planned job (each operation's future on the heap: they are large).
async fn execute(ctx: &Ctx, job: Job, exec: &mut Execution) -> Outcome {
    match job {
        Job::ServiceStatus => Box::pin(node::status(ctx, exec)).await,
        Job::ServiceStart => Box::pin(node::start(ctx, exec)).await,
        Job::ServiceStop => Box::pin(node::stop(ctx, exec)).await,
        Job::ServiceRestart => Box::pin(node::restart(ctx, exec)).await,
        Job::QuickRecovery => Box::pin(node::quick_recovery(ctx, exec)).await,
        Job::Backup(j) => Box::pin(backup::backup(ctx, j, exec)).await,
        Job::BackupVerify(j) => Box::pin(backup::verify(ctx, j, exec)).await,
        Job::Restore(j) => Box::pin(backup::restore(ctx, j, exec)).await,
        Job::Db(j) => Box::pin(db::execute(ctx, j, exec)).await,
        Job::FirewallApply(j) => Box::pin(firewall::apply(ctx, j, exec)).await,
        Job::FirewallRollback(j) => Box::pin(firewall::rollback(ctx, j, exec)).await,
        Job::EmergencyCleanup(j) => Box::pin(cleanup::execute(ctx, j, exec)).await,
        Job::Diagnostics(j) => Box::pin(diagnostics::execute(ctx, j, exec)).await,
    }
}

fn unknown_op(op: &str) -> Refusal {
    let names: Vec<&str> = KNOWN_OPS.iter().map(|(n, _)| *n).collect();
    Refusal::UnknownOp(format!(
        "unknown operation {:?}; known: {}",
        neo_ir_core::text::clip(op, 64),
        names.join(", ")
    ))
}

/// Most characters of `approved_by`.
pub const MAX_APPROVER_CHARS: usize = 200;

/// The approver, checked: `None` when absent or blank; an error when too long or holding
/// control characters (it goes into logs and timelines).
fn approver(a: Option<String>) -> Result<Option<String>, Refusal> {
    let Some(a) = a else { return Ok(None) };
    let a = a.trim();
    if a.is_empty() {
        return Ok(None);
    }
    if a.chars().count() > MAX_APPROVER_CHARS || a.chars().any(char::is_control) {
        return Err(Refusal::InvalidArgs(format!(
            "approved_by must be at most {MAX_APPROVER_CHARS} characters without control \
             characters"
        )));
    }
    Ok(Some(a.to_string()))
}

/// Runs operations, one at a time.
pub struct Ops {
    ctx: Arc<Ctx>,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Ops {
    pub fn new(collector: Arc<Collector>) -> Self {
        let cfg = Arc::new(collector.config().clone());
        Ops {
            ctx: Arc::new(Ctx {
                cfg,
                http: rpc::local_client(),
                children: Children::default(),
                collector,
                detected: std::sync::Mutex::new(None),
            }),
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Plan, check and run `op`. A dry run only plans; otherwise the operation runs in its
    /// own task (a disconnecting caller does not cancel it) while holding the agent's
    /// one-operation lock.
    pub async fn run(&self, op: &str, req: OpRequest) -> Result<OpReport, Refusal> {
        let Some(&(name, _)) = KNOWN_OPS.iter().find(|(n, _)| *n == op) else {
            return Err(unknown_op(op));
        };
        let approved_by = approver(req.approved_by)?;
        if req.dry_run {
            let p = prepare(&self.ctx, name, &req.args).await?;
            let n = p.plan.steps.len();
            return Ok(OpReport {
                op: name.to_string(),
                plan: p.plan,
                results: Vec::new(),
                ok: true,
                report: p.preview,
                summary: format!("dry run: {n} steps"),
            });
        }
        let guard = self
            .running
            .clone()
            .try_lock_owned()
            .map_err(|_| Refusal::Busy)?;
        let ctx = self.ctx.clone();
        let args = req.args;
        let task = tokio::spawn(async move {
            let _guard = guard;
            let p = prepare(&ctx, name, &args).await?;
            if p.plan.destructive() && approved_by.is_none() {
                return Err(Refusal::ApprovalRequired(p.plan));
            }
            let approver = approved_by.as_deref().unwrap_or("(not needed)");
            tracing::info!(
                op = name,
                approved_by = approver,
                steps = p.plan.steps.len(),
                "agent operation started"
            );
            let mut exec = Execution::new(&p.plan);
            let out = execute(&ctx, p.job, &mut exec).await;
            let results: Vec<StepResult> = exec.finish();
            ctx.learn_implementation().await;
            if out.ok {
                tracing::info!(op = name, approved_by = approver, summary = %out.summary, "agent operation succeeded");
            } else {
                tracing::warn!(op = name, approved_by = approver, summary = %out.summary, "agent operation failed");
            }
            Ok(OpReport {
                op: name.to_string(),
                plan: p.plan,
                results,
                ok: out.ok,
                report: out.report,
                summary: out.summary,
            })
        });
        task.await
            .map_err(|e| Refusal::Internal(format!("operation task failed: {e}")))?
    }
}

/// An argument vector as the plan prints it (quoted where needed).
pub fn argv_text(argv: &[String]) -> String {
    let step = Step {
        name: String::new(),
        action: Action::Exec {
            argv: argv.to_vec(),
        },
        timeout: Duration::ZERO,
        expect_exit: vec![0],
        destructive: false,
    };
    let d = step.describe();
    d.strip_prefix(": ")
        .unwrap_or(&d)
        .strip_suffix("  (timeout 0s)")
        .unwrap_or(&d)
        .to_string()
}

/// A timestamp in file names: `20240501T120000Z` (UTC).
pub fn file_stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// The timestamp and same-second counter of `<prefix><yyyymmddThhmmssZ>[-N]<suffix>`, a
/// plain file name (so a name from a request can never leave its directory).
pub fn parse_stamped_name(name: &str, prefix: &str, suffix: &str) -> Option<(String, u32)> {
    if !fsutil::plain_file_name(name) {
        return None;
    }
    let core = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let (stamp, n) = match core.split_once('-') {
        Some((s, n)) => {
            if n.is_empty() || n.len() > 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (s, n.parse::<u32>().ok().filter(|n| *n >= 2)?)
        }
        None => (core, 1),
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    shape.then(|| (stamp.to_string(), n))
}

/// A name `<prefix><stamp><suffix>` not yet taken in `dir` (`-2`, `-3`... within a second).
pub fn fresh_stamped_name(dir: &std::path::Path, prefix: &str, suffix: &str) -> String {
    let stamp = file_stamp(jiff::Timestamp::now());
    let mut name = format!("{prefix}{stamp}{suffix}");
    for n in 2..1000 {
        if std::fs::symlink_metadata(dir.join(&name)).is_err() {
            break;
        }
        name = format!("{prefix}{stamp}-{n}{suffix}");
    }
    name
}

/// The arguments of one operation: an object (or `null`), read key by key; keys never read
/// are refused by [`Args::done`].
pub(crate) struct Args<'a> {
    map: Option<&'a Map<String, Value>>,
    read: Vec<&'static str>,
}

impl<'a> Args<'a> {
    pub fn new(v: &'a Value) -> Result<Self, Refusal> {
        match v {
            Value::Null => Ok(Args {
                map: None,
                read: Vec::new(),
            }),
            Value::Object(m) => Ok(Args {
                map: Some(m),
                read: Vec::new(),
            }),
            _ => Err(Refusal::InvalidArgs(
                "args must be a JSON object (or null)".into(),
            )),
        }
    }

    /// The value of `key`; `None` when absent or null.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.read.push(key);
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub fn bool(&mut self, key: &'static str) -> Result<Option<bool>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Refusal::InvalidArgs(format!(
                "argument {key} must be true or false"
            ))),
        }
    }

    pub fn str(&mut self, key: &'static str) -> Result<Option<&'a str>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Refusal::InvalidArgs(format!(
                "argument {key} must be a string"
            ))),
        }
    }

    /// Refuse keys the operation does not take.
    pub fn done(self) -> Result<(), Refusal> {
        let Some(m) = self.map else { return Ok(()) };
        if let Some(k) = m.keys().find(|k| !self.read.contains(&k.as_str())) {
            let expected = if self.read.is_empty() {
                "this operation takes no arguments".to_string()
            } else {
                format!("expected: {}", self.read.join(", "))
            };
            return Err(Refusal::InvalidArgs(format!(
                "unknown argument {:?}; {expected}",
                neo_ir_core::text::clip(k, 64)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_are_strict() {
        let v = json!({"name": "x", "latest": true, "bogus": 1});
        let mut a = Args::new(&v).unwrap();
        assert_eq!(a.str("name").unwrap(), Some("x"));
        assert_eq!(a.bool("latest").unwrap(), Some(true));
        let e = a.done().unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        assert_eq!(e.code(), "invalid_args");

        let v = json!({"latest": "yes"});
        let mut a = Args::new(&v).unwrap();
        assert!(a.bool("latest").unwrap_err().to_string().contains("latest"));
        assert!(Args::new(&json!([1])).is_err());
        assert!(Args::new(&Value::Null).unwrap().done().is_ok());
        let v = json!({"x": 1});
        assert!(Args::new(&v)
            .unwrap()
            .done()
            .unwrap_err()
            .to_string()
            .contains("takes no arguments"));
    }

    #[test]
    fn approvers_and_names() {
        assert_eq!(approver(None).unwrap(), None);
        assert_eq!(approver(Some("  ".into())).unwrap(), None);
        assert_eq!(
            approver(Some(" alice via cli ".into())).unwrap(),
            Some("alice via cli".into())
        );
        assert!(approver(Some("a\nb".into())).is_err());
        assert!(approver(Some("x".repeat(201))).is_err());
        let e = unknown_op("rm -rf /");
        assert_eq!(e.status(), 404);
        assert!(e.to_string().contains("quick_recovery"), "{e}");
        assert_eq!(
            argv_text(&["nft".into(), "-f".into(), "a b".into()]),
            "nft -f 'a b'"
        );
        assert_eq!(
            file_stamp("2024-05-01T12:03:04.5Z".parse().unwrap()),
            "20240501T120304Z"
        );
        let mut names: Vec<&str> = known_ops().iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), known_ops().len());
    }
}
