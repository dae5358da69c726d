//! The playbook's `emergency_cleanup.sh`: free disk without touching chain data or backups.
//!
//! Deleted: rotated logs in the node's log directory (`*.log.N`, `*.gz`, `*.old`: regular
//! files at its top level, never the active log file, never in a shared system directory)
//! and diagnostics archives beyond the newest 3. Not deleted: anything under the data
//! directory (no temp location of a node's data directory is known to be safe to clean while
//! it may run; quick_recovery removes `*.tmp` only when the node is stopped), backups. The
//! files to delete are listed in the plan and exactly those are deleted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use neo_ir_core::runbook::{Plan, Step};
use serde_json::{json, Value};

use super::diagnostics::{ARCHIVE_PREFIX, ARCHIVE_SUFFIX};
use super::exec::Execution;
use super::service::blocking;
use super::{parse_stamped_name, Args, Ctx, Job, Outcome, Prepared, Refusal};
use crate::collect::disk;

/// Diagnostics archives kept.
pub const KEEP_DIAGNOSTICS: usize = 3;
/// Directories shared with the rest of the system: their rotated files are not the node's.
const SHARED_DIRS: [&str; 10] = [
    "/", "/var", "/var/log", "/tmp", "/var/tmp", "/home", "/root", "/etc", "/usr", "/opt",
];
const TMP_NOTE: &str = "*.tmp files under the data directory are left alone: no temp location \
     of a node's data directory is known to be safe to clean while the node may run \
     (quick_recovery removes *.tmp when the node is stopped); chain data and backups are \
     never touched";

/// What `emergency_cleanup` deletes.
pub(crate) struct CleanupJob {
    rotated: Vec<PathBuf>,
    diagnostics: Vec<PathBuf>,
    skipped: Value,
}

/// `*.log.N`, `*.gz` or `*.old`.
pub fn is_rotated_log(name: &str) -> bool {
    if name.ends_with(".gz") || name.ends_with(".old") {
        return true;
    }
    match name.rsplit_once(".log.") {
        Some((stem, n)) => {
            !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Rotated logs in `dir` (top level, regular files), never `active`.
fn rotated_logs(dir: &Path, active: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    let active = active.and_then(|a| a.canonicalize().ok());
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading the log directory: {e}"))?;
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if !is_file || !is_rotated_log(&name) {
            continue;
        }
        if active
            .as_ref()
            .is_some_and(|a| path.canonicalize().ok().as_ref() == Some(a))
        {
            continue;
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

/// Diagnostics archives in `dir` beyond the newest `keep`.
fn old_diagnostics(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading the diagnostics directory: {e}")),
    };
    let mut found: Vec<((String, u32), PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = parse_stamped_name(&name, ARCHIVE_PREFIX, ARCHIVE_SUFFIX)?;
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            is_file.then(|| (key, e.path()))
        })
        .collect();
    found.sort();
    let n = found.len().saturating_sub(keep);
    Ok(found.into_iter().take(n).map(|(_, p)| p).collect())
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn prepare(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let cfg = &ctx.cfg;
    let mut skipped = serde_json::Map::new();
    skipped.insert("tmp_files".into(), json!(TMP_NOTE));
    let active = match &cfg.service {
        Some(crate::config::Service::Process {
            log_file: Some(l), ..
        }) => Some(l.clone()),
        _ => cfg.log_file.clone(),
    };
    let rotated = match cfg.effective_log_dir() {
        None => {
            skipped.insert(
                "rotated_logs".into(),
                json!("no log directory: set --log-dir or --log-file"),
            );
            Vec::new()
        }
        Some(dir) => {
            let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
            if SHARED_DIRS.iter().any(|s| canonical == Path::new(s)) {
                skipped.insert(
                    "rotated_logs".into(),
                    json!(format!(
                        "{} is a shared system directory, not the node's own: set --log-dir \
                         to the node's log directory",
                        dir.display()
                    )),
                );
                Vec::new()
            } else {
                rotated_logs(&dir, active.as_deref()).map_err(Refusal::Unsupported)?
            }
        }
    };
    let diagnostics = match &cfg.diagnostics_dir {
        Some(d) => old_diagnostics(d, KEEP_DIAGNOSTICS).map_err(Refusal::Unsupported)?,
        None => {
            skipped.insert(
                "diagnostics_archives".into(),
                json!("no diagnostics directory configured"),
            );
            Vec::new()
        }
    };
    let data = cfg.data_dir.display().to_string();
    let mut steps = vec![Step::builtin(
        "disk_before",
        "statvfs",
        format!("free disk of the file system holding {data}"),
        Duration::from_secs(10),
        false,
    )];
    let log_dir = cfg
        .effective_log_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let delete_step = |name: &str, paths: &[PathBuf], what: String, none: String| {
        let detail = if paths.is_empty() {
            format!("nothing to delete: {none}")
        } else {
            format!("delete {} {what}: {}", paths.len(), list(paths))
        };
        Step::builtin(
            name,
            "delete",
            detail,
            Duration::from_secs(120),
            !paths.is_empty(),
        )
    };
    steps.push(delete_step(
        "rotated_logs",
        &rotated,
        format!("rotated logs (*.log.N, *.gz, *.old) in {log_dir}"),
        "no rotated logs".into(),
    ));
    steps.push(delete_step(
        "diagnostics_archives",
        &diagnostics,
        format!("diagnostics archives older than the newest {KEEP_DIAGNOSTICS}"),
        format!("at most {KEEP_DIAGNOSTICS} diagnostics archives"),
    ));
    steps.push(Step::builtin(
        "disk_after",
        "statvfs",
        format!("free disk of the file system holding {data}"),
        Duration::from_secs(10),
        false,
    ));
    Ok(Prepared {
        plan: Plan {
            steps,
            notes: vec![TMP_NOTE.to_string()],
        },
        preview: json!({
            "rotated_logs": rotated.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "diagnostics_archives":
                diagnostics.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "skipped": skipped,
        }),
        job: Job::EmergencyCleanup(CleanupJob {
            rotated,
            diagnostics,
            skipped: Value::Object(skipped),
        }),
    })
}

/// Delete `paths` that are still regular files; bytes freed and the paths removed.
fn delete_files(paths: Vec<PathBuf>) -> Result<((u64, Vec<String>), String), String> {
    let (mut bytes, mut removed, mut out) = (0u64, Vec::new(), String::new());
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        match std::fs::remove_file(&p) {
            Ok(()) => {
                bytes += meta.len();
                out.push_str(&format!("removed {} ({} bytes)\n", p.display(), meta.len()));
                removed.push(p.display().to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{out}removing {}: {e}", p.display())),
        }
    }
    if removed.is_empty() {
        out.push_str("nothing removed");
    }
    Ok(((bytes, removed), out.trim_end().to_string()))
}

async fn disk_step(exec: &mut Execution, name: &str, data: PathBuf) -> Value {
    exec.builtin(name, async move {
        let d = blocking(move || disk(&data)).await?;
        let text = match (d.available_bytes, &d.error) {
            (Some(a), _) => format!("{a} bytes available on the file system of {}", d.path),
            (None, Some(e)) => format!("unknown: {e}"),
            (None, None) => "unknown".to_string(),
        };
        Ok((json!(d), text))
    })
    .await
    .unwrap_or(Value::Null)
}

pub(crate) async fn execute(ctx: &Ctx, job: CleanupJob, exec: &mut Execution) -> Outcome {
    let data = ctx.cfg.data_dir.clone();
    let before = disk_step(exec, "disk_before", data.clone()).await;
    let mut freed = serde_json::Map::new();
    let mut total = 0u64;
    let mut ok = true;
    for (step, paths) in [
        ("rotated_logs", job.rotated),
        ("diagnostics_archives", job.diagnostics),
    ] {
        let r = exec
            .builtin(
                step,
                async move { blocking(move || delete_files(paths)).await? },
            )
            .await;
        match r {
            Ok((bytes, files)) => {
                total += bytes;
                freed.insert(step.into(), json!({"bytes": bytes, "files": files}));
            }
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    let after = if ok {
        disk_step(exec, "disk_after", data).await
    } else {
        Value::Null
    };
    let avail = |v: &Value| v["available_bytes"].as_u64();
    let disk = match (avail(&before), avail(&after)) {
        (Some(b), Some(a)) => format!("; available disk {b} → {a} bytes"),
        _ => String::new(),
    };
    let part = |k: &str| freed.get(k).and_then(|v| v["bytes"].as_u64()).unwrap_or(0);
    let summary = if ok {
        format!(
            "freed {total} bytes (rotated logs {}, diagnostics archives {}){disk}",
            part("rotated_logs"),
            part("diagnostics_archives")
        )
    } else {
        format!("cleanup stopped on an error after freeing {total} bytes")
    };
    Outcome::new(
        ok,
        json!({
            "freed": freed,
            "total_bytes_freed": total,
            "disk_before": before,
            "disk_after": after,
            "skipped": job.skipped,
        }),
        summary,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names() {
        for yes in [
            "node.log.1",
            "node.log.12",
            "node.log.2.gz",
            "neo-2024-05-01.log.gz",
            "node.log.old",
        ] {
            assert!(is_rotated_log(yes), "{yes}");
        }
        for no in [
            "node.log",
            "node.log.",
            "node.log.1a",
            ".log.1",
            "blocks.dat",
            "LOCK",
        ] {
            assert!(!is_rotated_log(no), "{no}");
        }
    }

    #[test]
    fn finds_only_rotated_files_and_old_archives() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "node.log",
            "node.log.1",
            "node.log.2.gz",
            "x.old",
            "notes.txt",
        ] {
            std::fs::write(d.join(f), "12345").unwrap();
        }
        std::fs::create_dir(d.join("sub.gz")).unwrap();
        std::os::unix::fs::symlink(d.join("notes.txt"), d.join("link.log.3")).unwrap();
        let found = rotated_logs(d, Some(&d.join("node.log"))).unwrap();
        assert_eq!(
            found,
            vec![
                d.join("node.log.1"),
                d.join("node.log.2.gz"),
                d.join("x.old")
            ]
        );
        // an active log with a rotated-looking name is still never deleted
        let found = rotated_logs(d, Some(&d.join("node.log.1"))).unwrap();
        assert!(!found.contains(&d.join("node.log.1")));

        for s in [
            "20240101T000000Z",
            "20240102T000000Z",
            "20240103T000000Z",
            "20240104T000000Z",
            "20240105T000000Z",
        ] {
            std::fs::write(d.join(format!("incident-diagnostics-{s}.tar.gz")), "x").unwrap();
        }
        std::fs::write(d.join("incident-diagnostics-x.tar.gz"), "x").unwrap();
        let old = old_diagnostics(d, 3).unwrap();
        assert_eq!(
            old,
            vec![
                d.join("incident-diagnostics-20240101T000000Z.tar.gz"),
                d.join("incident-diagnostics-20240102T000000Z.tar.gz")
            ]
        );
        assert!(old_diagnostics(&d.join("none"), 3).unwrap().is_empty());
        let ((bytes, removed), out) = delete_files(old).unwrap();
        assert_eq!((bytes, removed.len()), (2, 2));
        assert!(out.contains("removed"), "{out}");
    }
}
