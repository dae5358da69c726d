//! The node's service as operations — `service_status`, `service_start`, `service_stop`,
//! `service_restart` — and the playbook's `quick_recovery.sh`: restart and wait until the
//! node answers; else, only when the node process is not running, remove `*.tmp` and `LOCK`
//! files under the data directory and start again; else point at restoring a backup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use neo_ir_core::runbook::{Plan, Step};
use serde_json::{json, Value};

use super::exec::Execution;
use super::service::{blocking, ServiceCtl};
use super::{fsutil, rpc, Args, Ctx, Job, Outcome, Prepared, Refusal};
use crate::config::Service;

/// What quick_recovery says when nothing brought the node back.
pub const RESTORE_HINT: &str =
    "restart failed; restore from backup: neo-ir run restore_backup --latest";
/// How long the removal of `*.tmp`/`LOCK` may walk the data directory.
const CLEAR_TIMEOUT: Duration = Duration::from_secs(300);

fn plan(steps: Vec<Step>, notes: Vec<String>) -> Plan {
    Plan { steps, notes }
}

fn prepared(steps: Vec<Step>, notes: Vec<String>, job: Job) -> Prepared {
    Prepared {
        plan: plan(steps, notes),
        preview: Value::Null,
        job,
    }
}

fn rpc_step(ctx: &Ctx, name: &str) -> Step {
    Step::builtin(
        name,
        "rpc",
        format!(
            "ask 127.0.0.1:{} for getblockcount (1 s timeout)",
            ctx.cfg.rpc_port
        ),
        Duration::from_secs(5),
        false,
    )
}

pub(crate) fn prepare_status(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let svc = ctx.service()?;
    let mut steps = Vec::new();
    if let Service::Systemd { unit } = &svc.service {
        let mut s = Step::exec(
            "is_active",
            &["systemctl", "is-active", unit],
            Duration::from_secs(15),
            false,
        );
        // 3: inactive, failed or activating — an answer, not a failure
        s.expect_exit = vec![0, 3];
        steps.push(s);
    }
    steps.push(svc.status_step("status"));
    steps.push(rpc_step(ctx, "rpc"));
    Ok(prepared(steps, vec![], Job::ServiceStatus))
}

pub(crate) fn prepare_start(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let svc = ctx.service()?;
    let steps = vec![
        svc.status_step("status"),
        svc.start_step("start"),
        svc.wait_step("wait_running"),
    ];
    let notes = vec!["start is skipped when the node already runs".to_string()];
    Ok(prepared(steps, notes, Job::ServiceStart))
}

pub(crate) fn prepare_stop(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let svc = ctx.service()?;
    Ok(prepared(
        vec![svc.stop_step("stop")],
        vec![],
        Job::ServiceStop,
    ))
}

pub(crate) fn prepare_restart(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let svc = ctx.service()?;
    let steps = vec![svc.restart_step("restart"), svc.wait_step("wait_running")];
    Ok(prepared(steps, vec![], Job::ServiceRestart))
}

pub(crate) fn prepare_quick_recovery(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let svc = ctx.service()?;
    let data = ctx.cfg.data_dir.display();
    let steps = vec![
        svc.restart_step("restart"),
        svc.wait_step("wait_restarted"),
        Step::builtin(
            "check_stopped",
            "status",
            "confirm the node process is not running (a running node's files are left alone)",
            Duration::from_secs(15),
            false,
        ),
        Step::builtin(
            "clear_files",
            "delete",
            format!(
                "delete *.tmp and LOCK files under {data} (recursively, only files and links, \
                 links not followed, nothing outside {data})"
            ),
            CLEAR_TIMEOUT,
            true,
        ),
        svc.start_step("start"),
        svc.wait_step("wait_started"),
    ];
    let notes = vec![
        "check_stopped, clear_files, start and wait_started run only when the restart does \
         not bring the node back"
            .to_string(),
        format!("if the node still does not answer: {RESTORE_HINT}"),
    ];
    Ok(prepared(steps, notes, Job::QuickRecovery))
}

fn service_or_fail<'a>(ctx: &'a Ctx) -> Result<ServiceCtl<'a>, Outcome> {
    ctx.service()
        .map_err(|e| Outcome::new(false, Value::Null, e.to_string()))
}

pub(crate) async fn status(ctx: &Ctx, exec: &mut Execution) -> Outcome {
    let svc = match service_or_fail(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let mut is_active = Value::Null;
    if let Service::Systemd { .. } = &svc.service {
        match exec.exec("is_active").await {
            Ok(out) => is_active = json!(out.stdout.trim()),
            Err(_) => {
                return Outcome::new(
                    false,
                    json!({"backend": svc.backend()}),
                    "systemctl is-active could not tell whether the node runs",
                )
            }
        }
    }
    let Ok(st) = svc.run_status(exec, "status").await else {
        return Outcome::new(
            false,
            json!({"backend": svc.backend()}),
            "could not tell whether the node runs",
        );
    };
    let port = ctx.cfg.rpc_port;
    let height = exec
        .builtin("rpc", async {
            Ok(
                match rpc::block_count(&ctx.http, port, Duration::from_secs(1)).await {
                    Ok(h) => (Some(h), format!("getblockcount answered {h}")),
                    Err(e) => (None, format!("no answer: {e}")),
                },
            )
        })
        .await
        .ok()
        .flatten();
    let mut report = st.to_json(svc.backend());
    report["is_active"] = is_active;
    report["rpc_answers"] = json!(height.is_some());
    report["block_count"] = json!(height);
    let summary = match (st.running, st.pid, height) {
        (true, Some(pid), Some(h)) => format!("node running (pid {pid}), block count {h}"),
        (true, None, Some(h)) => format!("node running, block count {h}"),
        (true, _, None) => "node running but RPC does not answer".to_string(),
        (false, _, _) => format!("node not running: {}", st.detail),
    };
    Outcome::new(true, report, summary)
}

pub(crate) async fn start(ctx: &Ctx, exec: &mut Execution) -> Outcome {
    let svc = match service_or_fail(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let backend = json!({"backend": svc.backend()});
    let Ok(st) = svc.run_status(exec, "status").await else {
        return Outcome::new(false, backend, "could not tell whether the node runs");
    };
    if st.running {
        exec.skip("start", "not needed: the node already runs");
    } else if svc.run_start(exec, "start").await.is_err() {
        return Outcome::new(false, backend, "the node could not be started");
    }
    match svc.run_wait(exec, "wait_running").await {
        Ok(h) => Outcome::new(
            true,
            json!({"backend": svc.backend(), "was_running": st.running, "block_count": h}),
            if st.running {
                format!("node already running, block count {h}")
            } else {
                format!("node started, block count {h}")
            },
        ),
        Err(_) => Outcome::new(
            false,
            backend,
            "the node did not come up: it does not run or does not answer RPC",
        ),
    }
}

pub(crate) async fn stop(ctx: &Ctx, exec: &mut Execution) -> Outcome {
    let svc = match service_or_fail(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    match svc.run_stop(exec, "stop").await {
        Ok(()) => Outcome::new(true, json!({"backend": svc.backend()}), "node stopped"),
        Err(_) => Outcome::new(
            false,
            json!({"backend": svc.backend()}),
            "the node could not be stopped",
        ),
    }
}

pub(crate) async fn restart(ctx: &Ctx, exec: &mut Execution) -> Outcome {
    let svc = match service_or_fail(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let backend = json!({"backend": svc.backend()});
    if svc.run_restart(exec, "restart").await.is_err() {
        return Outcome::new(false, backend, "the node could not be restarted");
    }
    match svc.run_wait(exec, "wait_running").await {
        Ok(h) => Outcome::new(
            true,
            json!({"backend": svc.backend(), "block_count": h}),
            format!("node restarted, block count {h}"),
        ),
        Err(_) => Outcome::new(
            false,
            backend,
            "the node did not come back after the restart",
        ),
    }
}

pub(crate) async fn quick_recovery(ctx: &Ctx, exec: &mut Execution) -> Outcome {
    let svc = match service_or_fail(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // 1. restart and wait
    if svc.run_restart(exec, "restart").await.is_ok() {
        if let Ok(h) = svc.run_wait(exec, "wait_restarted").await {
            for s in ["check_stopped", "clear_files", "start", "wait_started"] {
                exec.skip(s, "not needed: the node restarted");
            }
            return Outcome::new(
                true,
                json!({"path": "restart", "removed": [], "block_count": h}),
                "node restarted",
            );
        }
    } else {
        exec.skip("wait_restarted", "not run: the restart failed");
    }
    let failed = |removed: &[PathBuf]| {
        Outcome::new(
            false,
            json!({"path": "failed", "removed": paths_json(removed)}),
            RESTORE_HINT,
        )
    };
    // 2. only when the node process is not running: clear *.tmp and LOCK
    let checked = exec
        .builtin("check_stopped", async {
            let st = svc.status().await?;
            if st.running {
                return Err(format!(
                    "the node process runs ({}) but does not answer; its files are left alone",
                    st.detail
                ));
            }
            Ok(((), format!("not running: {}", st.detail)))
        })
        .await;
    if checked.is_err() {
        return failed(&[]);
    }
    let data_dir = ctx.cfg.data_dir.clone();
    let Ok(removed) = exec
        .builtin("clear_files", async move {
            blocking(move || clear_tmp_and_lock(&data_dir)).await?
        })
        .await
    else {
        return failed(&[]);
    };
    // 3. start again
    if svc.run_start(exec, "start").await.is_err() {
        exec.skip("wait_started", "not run: the start failed");
        return failed(&removed);
    }
    match svc.run_wait(exec, "wait_started").await {
        Ok(h) => Outcome::new(
            true,
            json!({"path": "cleanup", "removed": paths_json(&removed), "block_count": h}),
            "node started after cleanup",
        ),
        Err(_) => failed(&removed),
    }
}

fn paths_json(paths: &[PathBuf]) -> Value {
    json!(paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>())
}

/// Delete `*.tmp` and `LOCK` files (and links with those names, not their targets) under
/// `data_dir`; the paths removed, listed in the output.
fn clear_tmp_and_lock(data_dir: &Path) -> Result<(Vec<PathBuf>, String), String> {
    let deadline = Instant::now() + CLEAR_TIMEOUT;
    let found = fsutil::find(
        data_dir,
        &|name, meta| !meta.is_dir() && (name == "LOCK" || name.ends_with(".tmp")),
        deadline,
    )
    .map_err(|e| format!("walking {}: {e}", data_dir.display()))?;
    let mut removed = Vec::new();
    let mut out = String::new();
    for path in found {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                out.push_str(&format!("removed {}\n", path.display()));
                removed.push(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{out}removing {}: {e}", path.display())),
        }
    }
    if removed.is_empty() {
        out.push_str("no *.tmp or LOCK files found");
    }
    Ok((removed, out.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clears_only_tmp_and_lock_inside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("LOCK"), "").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("chain")).unwrap();
        std::fs::write(d.join("LOCK"), "").unwrap();
        std::fs::write(d.join("chain/000.tmp"), "x").unwrap();
        std::fs::write(d.join("chain/000.ldb"), "x").unwrap();
        std::fs::create_dir(d.join("dir.tmp")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.join("elsewhere")).unwrap();
        let (removed, out) = clear_tmp_and_lock(d).unwrap();
        assert_eq!(removed, vec![d.join("LOCK"), d.join("chain/000.tmp")]);
        assert!(out.contains("removed") && out.contains("000.tmp"), "{out}");
        assert!(d.join("chain/000.ldb").exists() && d.join("dir.tmp").is_dir());
        assert!(outside.path().join("LOCK").exists());
        let (removed, out) = clear_tmp_and_lock(d).unwrap();
        assert!(removed.is_empty() && out.contains("no *.tmp"), "{out}");
    }
}
