//! The implementation's own database tools — `db_check` (the playbook's
//! `check_db_integrity.sh`), `db_repair` (`repair_database.sh`), `db_optimize`
//! (`optimize_database.sh`). The agent never edits a node's database itself: it runs the
//! tool the implementation ships, offline (repair and optimize stop the node first and start
//! it after), and refuses implementations that have no such tool.
//!
//! Supported: neo-ir-sim (`<db_tool> check|repair|optimize --data-dir DATA --json`; check
//! exits 0 healthy, 1 corrupt). Refused, with the reason: neo-cli (no offline database
//! command), neo-go (`neo-go db` has dump, restore and reset, no check, repair or
//! compaction), neo-rs (no offline database command).

use std::time::Duration;

use neo_ir_core::runbook::{Plan, Step};
use serde_json::{json, Value};

use super::exec::Execution;
use super::{Args, Ctx, Job, Outcome, Prepared, Refusal};

/// Hard limit of one run of a database tool (a repair or compaction of a large chain is
/// long).
pub const DB_TOOL_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbOp {
    Check,
    Repair,
    Optimize,
}

impl DbOp {
    fn sub(self) -> &'static str {
        match self {
            DbOp::Check => "check",
            DbOp::Repair => "repair",
            DbOp::Optimize => "optimize",
        }
    }

    fn what(self) -> &'static str {
        match self {
            DbOp::Check => "integrity check",
            DbOp::Repair => "repair",
            DbOp::Optimize => "compaction",
        }
    }
}

/// A planned database tool run.
pub(crate) struct DbJob {
    op: DbOp,
    implementation: String,
    /// A service is configured: the node's state is checked (and changed) around the tool.
    with_service: bool,
}

/// Why an implementation has no database tool the agent can run, and what to do instead.
fn refusal_for(implementation: &str, op: DbOp) -> Option<String> {
    let what = op.what();
    let why = match implementation {
        "neo-ir-sim" => return None,
        "neo-cli" => "neo-cli has no offline database command".to_string(),
        "neo-go" => "neo-go's `neo-go db` has dump, restore and reset --height, but no \
                     check, repair or compaction"
            .to_string(),
        "neo-rs" => "neo-rs has no offline database command".to_string(),
        other => format!("{other} is not a known implementation"),
    };
    Some(format!(
        "no offline database {what} for {implementation}: {why}; supported: neo-ir-sim. For \
         {implementation}, restore a verified backup (restore) or resync from genesis"
    ))
}

/// The implementation, or why it is unknown.
async fn implementation(ctx: &Ctx) -> Result<String, Refusal> {
    ctx.implementation().await.map_err(|e| {
        Refusal::Unsupported(format!(
            "the node implementation is unknown ({e}); start the agent with \
             --implementation neo-cli|neo-go|neo-rs|neo-ir-sim"
        ))
    })
}

pub(crate) async fn prepare(ctx: &Ctx, op: &str, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let op = match op {
        "db_check" => DbOp::Check,
        "db_repair" => DbOp::Repair,
        _ => DbOp::Optimize,
    };
    let implementation = implementation(ctx).await?;
    if let Some(why) = refusal_for(&implementation, op) {
        return Err(Refusal::Unsupported(why));
    }
    let tool = ctx.cfg.db_tool.clone().ok_or_else(|| {
        Refusal::Unsupported(
            "the database tool is not configured: start the agent with --db-tool \
             (for neo-ir-sim: /path/to/neo-ir,sim,db)"
                .into(),
        )
    })?;
    let mut argv = tool;
    argv.extend([
        op.sub().to_string(),
        "--data-dir".to_string(),
        ctx.cfg.data_dir.display().to_string(),
        "--json".to_string(),
    ]);
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    let svc = ctx.service().ok();
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    match (op, &svc) {
        (DbOp::Check, Some(_)) => steps.push(Step::builtin(
            "check_stopped",
            "status",
            "confirm the node is stopped (the tool needs the database unlocked)",
            Duration::from_secs(15),
            false,
        )),
        (DbOp::Check, None) => {}
        (_, Some(svc)) => {
            steps.push(svc.status_step("status"));
            steps.push(svc.stop_step("stop"));
            notes.push(
                "stop runs only when the node runs; start and wait_running only when it ran \
                 before and the tool succeeded"
                    .to_string(),
            );
        }
        (_, None) => notes.push(
            "no node service is configured: stop the node yourself first (the tool refuses a \
             locked database)"
                .to_string(),
        ),
    }
    let mut tool_step = Step::exec(op.sub(), &argv_ref, DB_TOOL_TIMEOUT, op != DbOp::Check);
    if op == DbOp::Check {
        // 1: the check ran and found corruption
        tool_step.expect_exit = vec![0, 1];
    }
    steps.push(tool_step);
    if let (DbOp::Repair | DbOp::Optimize, Some(svc)) = (op, &svc) {
        steps.push(svc.start_step("start"));
        steps.push(svc.wait_step("wait_running"));
    }
    Ok(Prepared {
        plan: Plan { steps, notes },
        preview: json!({"implementation": implementation}),
        job: Job::Db(DbJob {
            op,
            implementation,
            with_service: svc.is_some(),
        }),
    })
}

pub(crate) async fn execute(ctx: &Ctx, job: DbJob, exec: &mut Execution) -> Outcome {
    let base = json!({"implementation": job.implementation});
    let svc = if job.with_service {
        match ctx.service() {
            Ok(s) => Some(s),
            Err(e) => return Outcome::new(false, base, e.to_string()),
        }
    } else {
        None
    };
    let mut was_running = false;
    if let Some(svc) = &svc {
        if job.op == DbOp::Check {
            let checked = exec
                .builtin("check_stopped", async {
                    let st = svc.status().await?;
                    if st.running {
                        return Err(format!(
                            "the node runs ({}); the check needs it stopped: run service_stop \
                             first",
                            st.detail
                        ));
                    }
                    Ok(((), format!("not running: {}", st.detail)))
                })
                .await;
            if checked.is_err() {
                return Outcome::new(false, base, "the node runs; stop it before the check");
            }
        } else {
            let Ok(st) = svc.run_status(exec, "status").await else {
                return Outcome::new(false, base, "could not tell whether the node runs");
            };
            was_running = st.running;
            if !st.running {
                exec.skip("stop", "not needed: the node does not run");
            } else if svc.run_stop(exec, "stop").await.is_err() {
                return Outcome::new(false, base, "the node could not be stopped");
            }
        }
    }
    let out = match exec.exec(job.op.sub()).await {
        Ok(out) => out,
        Err(_) => {
            let left = if was_running {
                "; the node is left stopped"
            } else {
                ""
            };
            return Outcome::new(
                false,
                base,
                format!(
                    "the database {} failed (see the tool's output){left}",
                    job.op.what()
                ),
            );
        }
    };
    let result: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|_| json!(neo_ir_core::text::clip(out.stdout.trim(), 4000)));
    let mut report = json!({
        "implementation": job.implementation,
        "exit_code": out.exit_code,
        "result": result,
    });
    let (ok, mut summary) = match job.op {
        DbOp::Check => {
            let healthy = out.exit_code == Some(0);
            report["healthy"] = json!(healthy);
            let summary = if healthy {
                match result["blocks"].as_u64() {
                    Some(n) => format!("database healthy: {n} blocks verified"),
                    None => "database healthy".to_string(),
                }
            } else {
                let bad = &result["first_bad"];
                match (bad["index"].as_u64(), bad["reason"].as_str()) {
                    (Some(i), Some(r)) => format!(
                        "database corrupt at block {i}: {}",
                        neo_ir_core::text::clip(r, 200)
                    ),
                    _ => "database corrupt (see the tool's report)".to_string(),
                }
            };
            (healthy, summary)
        }
        DbOp::Repair => (
            true,
            match (result["dropped"].as_u64(), result["blocks"].as_u64()) {
                (Some(d), Some(b)) => {
                    format!("database repaired: {d} blocks dropped, {b} intact")
                }
                _ => "database repaired".to_string(),
            },
        ),
        DbOp::Optimize => (
            true,
            match (
                result["bytes_before"].as_u64(),
                result["bytes_after"].as_u64(),
            ) {
                (Some(a), Some(b)) => format!("database optimized: {a} bytes to {b}"),
                _ => "database optimized".to_string(),
            },
        ),
    };
    if let (Some(svc), DbOp::Repair | DbOp::Optimize) = (&svc, job.op) {
        if !was_running {
            exec.skip("start", "not needed: the node did not run before");
            exec.skip("wait_running", "not needed: the node did not run before");
        } else {
            let up = match svc.run_start(exec, "start").await {
                Ok(()) => svc.run_wait(exec, "wait_running").await.ok(),
                Err(_) => None,
            };
            match up {
                Some(h) => report["block_count"] = json!(h),
                None => {
                    summary = format!("{summary}; the node did not come back up");
                    return Outcome::new(false, report, summary);
                }
            }
        }
    }
    Outcome::new(ok, report, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_simulator_has_a_tool() {
        assert_eq!(refusal_for("neo-ir-sim", DbOp::Check), None);
        let m = refusal_for("neo-cli", DbOp::Check).unwrap();
        assert!(
            m.contains("integrity check") && m.contains("supported: neo-ir-sim"),
            "{m}"
        );
        assert!(m.contains("restore a verified backup"), "{m}");
        let m = refusal_for("neo-go", DbOp::Optimize).unwrap();
        assert!(
            m.contains("compaction") && m.contains("reset --height"),
            "{m}"
        );
        assert!(refusal_for("neo-rs", DbOp::Repair)
            .unwrap()
            .contains("repair"));
    }
}
