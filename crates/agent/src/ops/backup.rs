//! Backups of the node's data directory — `backup`, `backup_verify`, `restore` (the
//! playbook's backup and `restore_backup.sh --latest|--verify`).
//!
//! A backup is `backup_dir/neo-data-<UTC yyyymmddThhmmssZ>.tar.gz` (written as `.partial`
//! and renamed when complete) with `<name>.sha256` in `sha256sum` format beside it; the node
//! is stopped while it is written and started again (also when archiving failed). A restore
//! verifies the checksum, extracts into a new directory beside the data directory (refusing
//! absolute paths, `..`, links that leave the tree and special files), stops the node, moves
//! the data directory aside to `<data_dir>.pre-restore-<ts>` (never deleted) and the
//! extracted tree into its place, and starts the node.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use neo_ir_core::runbook::{Plan, Step};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::exec::Execution;
use super::service::{blocking, write_atomic};
use super::{file_stamp, fsutil, Args, Ctx, Job, Outcome, Prepared, Refusal};

/// Hard limit of writing, verifying or extracting one archive.
pub const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
const PREFIX: &str = "neo-data-";
const SUFFIX: &str = ".tar.gz";

/// `backup`: where the archive goes.
pub(crate) struct BackupJob {
    name: String,
    archive: PathBuf,
}

/// `backup_verify`: which archive.
pub(crate) struct VerifyJob {
    name: String,
    archive: PathBuf,
}

/// `restore`: which archive, and the directories beside the data directory.
pub(crate) struct RestoreJob {
    name: String,
    archive: PathBuf,
    staging: PathBuf,
    aside: PathBuf,
}

/// The timestamp and the same-second counter of a backup name
/// (`neo-data-20240501T120000Z.tar.gz`, `neo-data-20240501T120000Z-2.tar.gz`).
pub fn parse_backup_name(name: &str) -> Option<(String, u32)> {
    super::parse_stamped_name(name, PREFIX, SUFFIX)
}

fn backup_dir(ctx: &Ctx) -> Result<PathBuf, Refusal> {
    ctx.cfg.backup_dir.clone().ok_or_else(|| {
        Refusal::Unsupported(
            "backups need a backup directory: start the agent with --backup-dir DIR".into(),
        )
    })
}

/// Which archive the arguments name.
enum Choice<'a> {
    Name(&'a str),
    Latest,
}

/// Read `{"name": ...}` or `{"latest": true}` (no file-system access yet).
fn choice<'a>(args: &mut Args<'a>) -> Result<Choice<'a>, Refusal> {
    let name = args.str("name")?;
    let latest = args.bool("latest")?.unwrap_or(false);
    match (name, latest) {
        (Some(_), true) => Err(Refusal::InvalidArgs(
            "give either name or latest, not both".into(),
        )),
        (None, false) => Err(Refusal::InvalidArgs(
            "missing argument: name (a backup file name) or latest: true".into(),
        )),
        (Some(n), false) if parse_backup_name(n).is_none() => Err(Refusal::InvalidArgs(format!(
            "argument name {:?} is not a backup file name \
             (neo-data-<yyyymmddThhmmssZ>.tar.gz, no directories)",
            neo_ir_core::text::clip(n, 100)
        ))),
        (Some(n), false) => Ok(Choice::Name(n)),
        (None, true) => Ok(Choice::Latest),
    }
}

/// The archive file the choice names in `dir`.
fn resolve(dir: &Path, choice: Choice<'_>) -> Result<String, Refusal> {
    match choice {
        Choice::Name(n) if dir.join(n).is_file() => Ok(n.to_string()),
        Choice::Name(n) => Err(Refusal::InvalidArgs(format!(
            "argument name: no backup {n} in {}",
            dir.display()
        ))),
        Choice::Latest => latest_backup(dir)?.ok_or_else(|| {
            Refusal::InvalidArgs(format!(
                "argument latest: there is no backup in {}",
                dir.display()
            ))
        }),
    }
}

/// The newest backup file in `dir` by the time in its name.
fn latest_backup(dir: &Path) -> Result<Option<String>, Refusal> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Refusal::Unsupported(format!(
                "the backup directory {}: {e}",
                dir.display()
            )))
        }
    };
    let mut best: Option<((String, u32), String)> = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(key) = parse_backup_name(&name) else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, name));
        }
    }
    Ok(best.map(|(_, n)| n))
}

fn sums_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn partial_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// `<data_dir>.<what>-<stamp>` beside the data directory, with `-2`, `-3`... when taken.
fn beside(data_dir: &Path, what: &str, stamp: &str) -> Result<PathBuf, Refusal> {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Refusal::Unsupported(format!(
                "the data directory {} has no name to put a directory beside",
                data_dir.display()
            ))
        })?;
    for n in 1..1000 {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let p = data_dir.with_file_name(format!("{name}.{what}-{stamp}{suffix}"));
        if std::fs::symlink_metadata(&p).is_err() {
            return Ok(p);
        }
    }
    Err(Refusal::Unsupported(format!(
        "too many {what} directories beside {}",
        data_dir.display()
    )))
}

pub(crate) fn prepare_backup(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let dir = backup_dir(ctx)?;
    let svc = ctx.service()?;
    let data = &ctx.cfg.data_dir;
    if dir.starts_with(data) || fsutil::is_within(data, &dir) {
        return Err(Refusal::Unsupported(format!(
            "the backup directory {} is inside the data directory {}: choose another \
             --backup-dir",
            dir.display(),
            data.display()
        )));
    }
    let name = super::fresh_stamped_name(&dir, PREFIX, SUFFIX);
    let archive = dir.join(&name);
    let steps = vec![
        svc.status_step("status"),
        svc.stop_step("stop"),
        Step::builtin(
            "archive",
            "archive",
            format!(
                "tar.gz {} into {} (written as {}.partial, renamed when complete; links \
                 stored as links, LOCK files and special files left out)",
                data.display(),
                archive.display(),
                name
            ),
            ARCHIVE_TIMEOUT,
            false,
        ),
        Step::builtin(
            "checksum",
            "write",
            format!("write {} (sha256sum format)", sums_path(&archive).display()),
            Duration::from_secs(30),
            false,
        ),
        svc.start_step("start"),
        svc.wait_step("wait_running"),
    ];
    let notes = vec![
        "stop runs only when the node runs; start and wait_running only when it ran before — \
         also when the archive failed, so a failed backup never leaves the node down"
            .to_string(),
    ];
    Ok(Prepared {
        plan: Plan { steps, notes },
        preview: json!({"name": name, "path": archive.display().to_string()}),
        job: Job::Backup(BackupJob { name, archive }),
    })
}

pub(crate) fn prepare_verify(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    let dir = backup_dir(ctx)?;
    let mut a = Args::new(args)?;
    let choice = choice(&mut a)?;
    a.done()?;
    let name = resolve(&dir, choice)?;
    let archive = dir.join(&name);
    let steps = vec![verify_step(&archive)];
    Ok(Prepared {
        plan: Plan {
            steps,
            notes: vec![],
        },
        preview: json!({"name": name}),
        job: Job::BackupVerify(VerifyJob { name, archive }),
    })
}

fn verify_step(archive: &Path) -> Step {
    Step::builtin(
        "verify",
        "verify",
        format!(
            "recompute the sha256 of {} and compare it with {}; count the archive's entries",
            archive.display(),
            sums_path(archive).display()
        ),
        ARCHIVE_TIMEOUT,
        false,
    )
}

pub(crate) fn prepare_restore(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    let dir = backup_dir(ctx)?;
    let mut a = Args::new(args)?;
    let choice = choice(&mut a)?;
    // the playbook's --verify: the checksum is always verified first
    let _verify = a.bool("verify")?;
    a.done()?;
    let name = resolve(&dir, choice)?;
    let svc = ctx.service()?;
    let data = ctx.cfg.data_dir.clone();
    let stamp = file_stamp(jiff::Timestamp::now());
    let staging = beside(&data, "restore", &stamp)?;
    let aside = beside(&data, "pre-restore", &stamp)?;
    let archive = dir.join(&name);
    let steps = vec![
        verify_step(&archive),
        Step::builtin(
            "extract",
            "extract",
            format!(
                "extract {} into {} (entries with absolute paths or .., links leaving the \
                 tree, hard links and special files are refused)",
                archive.display(),
                staging.display()
            ),
            ARCHIVE_TIMEOUT,
            false,
        ),
        svc.status_step("status"),
        svc.stop_step("stop"),
        Step::builtin(
            "swap",
            "move",
            format!(
                "move {} aside to {} (kept, never deleted), then {} to {}",
                data.display(),
                aside.display(),
                staging.display(),
                data.display()
            ),
            Duration::from_secs(60),
            true,
        ),
        svc.start_step("start"),
        svc.wait_step("wait_running"),
    ];
    let notes = vec![
        format!(
            "the current data directory is kept at {}; delete it yourself once the node is \
             verified",
            aside.display()
        ),
        "stop runs only when the node runs".to_string(),
    ];
    Ok(Prepared {
        plan: Plan { steps, notes },
        preview: json!({"name": name, "aside": aside.display().to_string()}),
        job: Job::Restore(RestoreJob {
            name,
            archive,
            staging,
            aside,
        }),
    })
}

pub(crate) async fn backup(ctx: &Ctx, job: BackupJob, exec: &mut Execution) -> Outcome {
    let fail = |msg: &str| Outcome::new(false, json!({"name": job.name}), msg);
    let svc = match ctx.service() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let Ok(st) = svc.run_status(exec, "status").await else {
        return fail("could not tell whether the node runs; nothing was changed");
    };
    if !st.running {
        exec.skip("stop", "not needed: the node does not run");
    } else if svc.run_stop(exec, "stop").await.is_err() {
        exec.skip("archive", "not run: the node could not be stopped");
        exec.skip("checksum", "not run: the node could not be stopped");
        return restart_after(
            &svc,
            exec,
            st.running,
            fail("the node could not be stopped; no backup"),
        )
        .await;
    }
    let (data, archive) = (ctx.cfg.data_dir.clone(), job.archive.clone());
    let written = exec
        .builtin("archive", async move {
            blocking(move || write_archive(&data, &archive)).await?
        })
        .await;
    let outcome = match written {
        Ok(info) => {
            let (archive, name, hex) = (job.archive.clone(), job.name.clone(), info.sha256.clone());
            let sums = exec
                .builtin("checksum", async move {
                    let path = sums_path(&archive);
                    let line = format!("{hex}  {name}\n");
                    let text = line.clone();
                    blocking(move || write_atomic(&path, text.as_bytes()))
                        .await?
                        .map_err(|e| format!("writing the checksum file: {e}"))?;
                    Ok(((), line.trim_end().to_string()))
                })
                .await;
            let report = json!({
                "name": job.name,
                "path": job.archive.display().to_string(),
                "bytes": info.bytes,
                "sha256": info.sha256,
                "entries": info.entries,
                "was_running": st.running,
            });
            match sums {
                Ok(()) => Outcome::new(
                    true,
                    report,
                    format!(
                        "backup {} written ({} bytes, sha256 {})",
                        job.name,
                        info.bytes,
                        &info.sha256[..12]
                    ),
                ),
                Err(_) => Outcome::new(false, report, "the checksum file could not be written"),
            }
        }
        Err(_) => {
            exec.skip("checksum", "not run: the archive failed");
            fail("the archive could not be written; no backup")
        }
    };
    restart_after(&svc, exec, st.running, outcome).await
}

/// Start the node again when it ran before the operation; a failed start fails the outcome.
async fn restart_after(
    svc: &super::service::ServiceCtl<'_>,
    exec: &mut Execution,
    was_running: bool,
    mut outcome: Outcome,
) -> Outcome {
    if !was_running {
        exec.skip("start", "not needed: the node did not run before");
        exec.skip("wait_running", "not needed: the node did not run before");
        return outcome;
    }
    let started = match svc.run_start(exec, "start").await {
        Ok(()) => svc.run_wait(exec, "wait_running").await.is_ok(),
        Err(_) => false,
    };
    if !started {
        outcome.ok = false;
        outcome.summary = format!("{}; the node did not come back up", outcome.summary);
    }
    outcome
}

pub(crate) async fn verify(_ctx: &Ctx, job: VerifyJob, exec: &mut Execution) -> Outcome {
    let (archive, name) = (job.archive.clone(), job.name.clone());
    let checked = exec
        .builtin("verify", async move {
            blocking(move || verify_archive(&archive, &name)).await?
        })
        .await;
    match checked {
        Ok(v) => Outcome::new(
            true,
            json!({"name": job.name, "sha256": v.sha256, "expected": v.sha256, "match": true,
                   "bytes": v.bytes, "entries": v.entries}),
            format!(
                "backup {} verified: sha256 matches, {} entries",
                job.name, v.entries
            ),
        ),
        Err(_) => Outcome::new(
            false,
            json!({"name": job.name, "match": false}),
            format!("backup {} failed verification", job.name),
        ),
    }
}

pub(crate) async fn restore(ctx: &Ctx, job: RestoreJob, exec: &mut Execution) -> Outcome {
    let report = |aside: Option<&Path>| json!({"name": job.name, "aside": aside.map(|p| p.display().to_string())});
    let svc = match ctx.service() {
        Ok(s) => s,
        Err(e) => return Outcome::new(false, report(None), e.to_string()),
    };
    let (archive, name) = (job.archive.clone(), job.name.clone());
    let verified = exec
        .builtin("verify", async move {
            blocking(move || verify_archive(&archive, &name)).await?
        })
        .await;
    if verified.is_err() {
        return Outcome::new(
            false,
            report(None),
            format!(
                "backup {} failed verification; nothing was changed",
                job.name
            ),
        );
    }
    let (archive, staging) = (job.archive.clone(), job.staging.clone());
    let extracted = exec
        .builtin("extract", async move {
            blocking(move || extract_archive(&archive, &staging)).await?
        })
        .await;
    if extracted.is_err() {
        return Outcome::new(
            false,
            report(None),
            format!(
                "backup {} could not be extracted; nothing was changed",
                job.name
            ),
        );
    }
    let discard_staging = |staging: PathBuf| async move {
        let _ = blocking(move || std::fs::remove_dir_all(staging)).await;
    };
    let Ok(st) = svc.run_status(exec, "status").await else {
        discard_staging(job.staging.clone()).await;
        return Outcome::new(
            false,
            report(None),
            "could not tell whether the node runs; nothing was changed",
        );
    };
    if !st.running {
        exec.skip("stop", "not needed: the node does not run");
    } else if svc.run_stop(exec, "stop").await.is_err() {
        discard_staging(job.staging.clone()).await;
        return Outcome::new(
            false,
            report(None),
            "the node could not be stopped; nothing was changed",
        );
    }
    let (data, staging, aside) = (
        ctx.cfg.data_dir.clone(),
        job.staging.clone(),
        job.aside.clone(),
    );
    let swapped = exec
        .builtin("swap", async move {
            blocking(move || swap_in(&data, &staging, &aside)).await?
        })
        .await;
    let aside = match swapped {
        Ok(a) => a,
        Err(_) => {
            discard_staging(job.staging.clone()).await;
            return Outcome::new(
                false,
                report(None),
                "the restored tree could not be moved into place; the data directory is \
                 unchanged and the node stopped",
            );
        }
    };
    let r = report(aside.as_deref());
    if svc.run_start(exec, "start").await.is_err() {
        return Outcome::new(
            false,
            r,
            format!(
                "backup {} restored but the node could not be started",
                job.name
            ),
        );
    }
    match svc.run_wait(exec, "wait_running").await {
        Ok(h) => {
            let mut r = r;
            r["block_count"] = json!(h);
            let kept = match &aside {
                Some(a) => format!("; previous data kept at {}", a.display()),
                None => String::new(),
            };
            Outcome::new(
                true,
                r,
                format!(
                    "backup {} restored, node answers at block count {h}{kept}",
                    job.name
                ),
            )
        }
        Err(_) => Outcome::new(
            false,
            r,
            format!("backup {} restored but the node does not come up", job.name),
        ),
    }
}

/// Counts bytes and hashes what passes through.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What an archive holds.
#[derive(Debug, Clone)]
struct ArchiveInfo {
    bytes: u64,
    sha256: String,
    entries: u64,
}

/// Write `data_dir` as a tar.gz to `archive` (through `archive.partial`).
fn write_archive(data_dir: &Path, archive: &Path) -> Result<(ArchiveInfo, String), String> {
    let deadline = Instant::now() + ARCHIVE_TIMEOUT;
    if let Some(dir) = archive.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating the backup directory {}: {e}", dir.display()))?;
    }
    let partial = partial_path(archive);
    let result = write_tar_gz(data_dir, &partial, deadline);
    let (info, skipped) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, archive).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("renaming {} into place: {e}", partial.display())
    })?;
    let mut out = format!(
        "wrote {} ({} bytes, {} entries, sha256 {})",
        archive.display(),
        info.bytes,
        info.entries,
        info.sha256
    );
    for s in skipped {
        out.push_str(&format!("\nleft out {s}"));
    }
    Ok((info, out))
}

fn write_tar_gz(
    data_dir: &Path,
    partial: &Path,
    deadline: Instant,
) -> Result<(ArchiveInfo, Vec<String>), String> {
    let io_err = |what: &str, e: io::Error| format!("{what}: {e}");
    let entries = fsutil::find(data_dir, &|_, _| true, deadline)
        .map_err(|e| io_err(&format!("reading {}", data_dir.display()), e))?;
    let file = File::create_new(partial)
        .map_err(|e| io_err(&format!("creating {}", partial.display()), e))?;
    let gz = GzEncoder::new(
        Hashing::new(BufWriter::new(file)),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut count = 0u64;
    let mut skipped = Vec::new();
    for path in entries {
        if Instant::now() > deadline {
            return Err("archiving took too long".into());
        }
        let Ok(rel) = path.strip_prefix(data_dir) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let t = meta.file_type();
        let is_lock = path.file_name().is_some_and(|n| n == "LOCK");
        if t.is_dir() {
            tar.append_dir(rel, &path)
        } else if (t.is_file() || t.is_symlink()) && !is_lock {
            tar.append_path_with_name(&path, rel)
        } else {
            skipped.push(rel.display().to_string());
            continue;
        }
        .map_err(|e| io_err(&format!("archiving {}", path.display()), e))?;
        count += 1;
    }
    let gz = tar
        .into_inner()
        .map_err(|e| io_err("finishing the tar stream", e))?;
    let mut hashing = gz
        .finish()
        .map_err(|e| io_err("finishing the gzip stream", e))?;
    hashing.flush().map_err(|e| io_err("writing", e))?;
    let file = hashing
        .inner
        .into_inner()
        .map_err(|e| io_err("writing", e.into_error()))?;
    file.sync_all().map_err(|e| io_err("syncing", e))?;
    Ok((
        ArchiveInfo {
            bytes: hashing.bytes,
            sha256: hex::encode(hashing.hasher.finalize()),
            entries: count,
        },
        skipped,
    ))
}

/// The expected sha256 from `<archive>.sha256` (`HEX  NAME` or `HEX *NAME`).
fn expected_sha256(sums: &Path, name: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(sums)
        .map_err(|e| format!("reading the checksum file {}: {e}", sums.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    let (hex, file) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("{} is not in sha256sum format", sums.display()))?;
    let file = file.trim_start().trim_start_matches('*');
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{} holds no sha256", sums.display()));
    }
    if file != name {
        return Err(format!(
            "{} names {:?}, not {name}",
            sums.display(),
            neo_ir_core::text::clip(file, 100)
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// Recompute the archive's sha256 (one pass, while counting its entries) and compare.
fn verify_archive(archive: &Path, name: &str) -> Result<(ArchiveInfo, String), String> {
    let deadline = Instant::now() + ARCHIVE_TIMEOUT;
    let expected = expected_sha256(&sums_path(archive), name)?;
    let file = File::open(archive).map_err(|e| format!("opening {}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(Hashing::new(BufReader::new(file))));
    let mut count = 0u64;
    let listed: Result<(), String> = (|| {
        for entry in tar.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            io::copy(&mut entry, &mut io::sink()).map_err(|e| e.to_string())?;
            count += 1;
            if Instant::now() > deadline {
                return Err("verifying took too long".into());
            }
        }
        Ok(())
    })();
    // hash what the archive reader did not need (gzip trailer, padding, or all of a broken
    // file)
    let mut rest = tar.into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| format!("reading {}: {e}", archive.display()))?;
    let actual = hex::encode(rest.hasher.finalize());
    if actual != expected {
        return Err(format!(
            "checksum mismatch: {} says {expected}, the archive is {actual}",
            sums_path(archive).display()
        ));
    }
    listed.map_err(|e| format!("the checksum matches but the archive is unreadable: {e}"))?;
    Ok((
        ArchiveInfo {
            bytes: rest.bytes,
            sha256: actual.clone(),
            entries: count,
        },
        format!(
            "sha256 {actual} matches; {count} entries, {} bytes",
            rest.bytes
        ),
    ))
}

/// Whether an archive path stays inside the tree: only plain components.
fn safe_relative(p: &Path) -> bool {
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && p.components().any(|c| matches!(c, Component::Normal(_)))
}

/// Extract `archive` into the new directory `staging`; removed again on any refusal.
fn extract_archive(archive: &Path, staging: &Path) -> Result<(u64, String), String> {
    std::fs::create_dir(staging).map_err(|e| format!("creating {}: {e}", staging.display()))?;
    let r = extract_into(archive, staging);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(staging);
    }
    r
}

fn extract_into(archive: &Path, staging: &Path) -> Result<(u64, String), String> {
    let deadline = Instant::now() + ARCHIVE_TIMEOUT;
    let file = File::open(archive).map_err(|e| format!("opening {}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    tar.set_preserve_permissions(false);
    tar.set_overwrite(true);
    let mut count = 0u64;
    for (i, entry) in tar.entries().map_err(|e| e.to_string())?.enumerate() {
        let mut entry = entry.map_err(|e| format!("entry {i}: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("entry {i}: {e}"))?
            .into_owned();
        let shown = neo_ir_core::text::clip(&path.display().to_string(), 200);
        if !safe_relative(&path) {
            return Err(format!(
                "entry {i} {shown:?}: absolute paths and .. are refused; nothing was restored"
            ));
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Directory => {}
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| format!("entry {i}: {e}"))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if !safe_relative(&target) {
                    return Err(format!(
                        "entry {i} {shown:?}: a link to {:?} would leave the tree; nothing was \
                         restored",
                        neo_ir_core::text::clip(&target.display().to_string(), 200)
                    ));
                }
            }
            other => {
                return Err(format!(
                    "entry {i} {shown:?}: {other:?} entries are refused; nothing was restored"
                ))
            }
        }
        let inside = entry
            .unpack_in(staging)
            .map_err(|e| format!("entry {i} {shown:?}: {e}"))?;
        if !inside {
            return Err(format!(
                "entry {i} {shown:?} would be written outside the tree; nothing was restored"
            ));
        }
        count += 1;
        if Instant::now() > deadline {
            return Err("extracting took too long".into());
        }
    }
    Ok((
        count,
        format!("extracted {count} entries into {}", staging.display()),
    ))
}

/// Move `data` aside (when it exists) and `staging` into its place; on a failed second move
/// the first is undone. The aside path, when something was moved aside.
fn swap_in(data: &Path, staging: &Path, aside: &Path) -> Result<(Option<PathBuf>, String), String> {
    let had_data = std::fs::symlink_metadata(data).is_ok();
    if had_data {
        std::fs::rename(data, aside).map_err(|e| {
            format!(
                "moving {} aside to {}: {e}",
                data.display(),
                aside.display()
            )
        })?;
    }
    if let Err(e) = std::fs::rename(staging, data) {
        let undo = if had_data {
            match std::fs::rename(aside, data) {
                Ok(()) => format!("; {} is back in place", data.display()),
                Err(u) => format!(
                    "; moving it back failed too ({u}): the data is at {}",
                    aside.display()
                ),
            }
        } else {
            String::new()
        };
        return Err(format!(
            "moving {} to {}: {e}{undo}",
            staging.display(),
            data.display()
        ));
    }
    let out = if had_data {
        format!(
            "moved {} aside to {}; {} is now {}",
            data.display(),
            aside.display(),
            staging.display(),
            data.display()
        )
    } else {
        format!(
            "{} did not exist; {} is now {}",
            data.display(),
            staging.display(),
            data.display()
        )
    };
    Ok((had_data.then(|| aside.to_path_buf()), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names() {
        assert_eq!(
            parse_backup_name("neo-data-20240501T120000Z.tar.gz"),
            Some(("20240501T120000Z".into(), 1))
        );
        assert_eq!(
            parse_backup_name("neo-data-20240501T120000Z-12.tar.gz"),
            Some(("20240501T120000Z".into(), 12))
        );
        for bad in [
            "../neo-data-20240501T120000Z.tar.gz",
            "/etc/passwd",
            "neo-data-20240501T120000Z.tar.gz/..",
            "neo-data-2024050XT120000Z.tar.gz",
            "neo-data-20240501T120000Z-1.tar.gz",
            "neo-data-20240501T120000Z-.tar.gz",
            "neo-data-20240501T120000Z.tar",
            "neo-data-20240501T1200Z.tar.gz",
            "..",
            "",
        ] {
            assert_eq!(parse_backup_name(bad), None, "{bad}");
        }
        // the same second: -2 sorts after the first
        assert!(
            parse_backup_name("neo-data-20240501T120000Z-2.tar.gz")
                > parse_backup_name("neo-data-20240501T120000Z.tar.gz")
        );
    }

    #[test]
    fn archive_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("chain/sub")).unwrap();
        std::fs::write(data.join("chain/blocks.dat"), vec![7u8; 100_000]).unwrap();
        std::fs::write(data.join("chain/sub/x"), "x").unwrap();
        std::fs::write(data.join("LOCK"), "123").unwrap();
        std::os::unix::fs::symlink("chain/blocks.dat", data.join("current")).unwrap();
        let archive = dir.path().join("b/neo-data-20240501T120000Z.tar.gz");
        let (info, out) = write_archive(&data, &archive).unwrap();
        assert!(out.contains("wrote"), "{out}");
        // chain, chain/blocks.dat, chain/sub, chain/sub/x, current; LOCK left out
        assert_eq!(info.entries, 5);
        assert!(!partial_path(&archive).exists());
        std::fs::write(
            sums_path(&archive),
            format!("{}  neo-data-20240501T120000Z.tar.gz\n", info.sha256),
        )
        .unwrap();
        let (v, _) = verify_archive(&archive, "neo-data-20240501T120000Z.tar.gz").unwrap();
        assert_eq!(
            (v.sha256, v.entries, v.bytes),
            (info.sha256.clone(), 5, info.bytes)
        );

        let staging = dir.path().join("data.restore-x");
        let (n, _) = extract_archive(&archive, &staging).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            std::fs::read(staging.join("chain/blocks.dat")).unwrap(),
            vec![7u8; 100_000]
        );
        assert!(!staging.join("LOCK").exists());
        assert_eq!(
            std::fs::read_link(staging.join("current")).unwrap(),
            PathBuf::from("chain/blocks.dat")
        );

        // one flipped byte
        let mut bytes = std::fs::read(&archive).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&archive, &bytes).unwrap();
        let e = verify_archive(&archive, "neo-data-20240501T120000Z.tar.gz").unwrap_err();
        assert!(e.contains("checksum mismatch"), "{e}");
        let e = verify_archive(&archive, "neo-data-20240501T120001Z.tar.gz").unwrap_err();
        assert!(e.contains("names"), "{e}");
    }

    #[test]
    fn hostile_archives_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind, link) in [
            ("../evil", tar::EntryType::Regular, None),
            ("/etc/evil", tar::EntryType::Regular, None),
            ("ok/../../evil", tar::EntryType::Regular, None),
            ("link", tar::EntryType::Symlink, Some("/etc")),
            ("link", tar::EntryType::Symlink, Some("../..")),
            ("hard", tar::EntryType::Link, Some("x")),
            ("fifo", tar::EntryType::Fifo, None),
        ] {
            let archive = dir.path().join("evil.tar.gz");
            let gz = GzEncoder::new(File::create(&archive).unwrap(), Default::default());
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_gnu();
            h.set_path("fine.txt").unwrap();
            h.set_size(2);
            h.set_cksum();
            b.append(&h, &b"ok"[..]).unwrap();
            let mut h = tar::Header::new_old();
            // raw name bytes: the builder itself refuses `..`
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(kind);
            if let Some(l) = link {
                h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            h.set_size(0);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
            b.into_inner().unwrap().finish().unwrap();
            let staging = dir.path().join("staging");
            let e = extract_archive(&archive, &staging).unwrap_err();
            assert!(e.contains("entry 1"), "{name}: {e}");
            assert!(!staging.exists(), "{name}: the staging tree is removed");
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn swap_keeps_the_old_tree() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let staging = dir.path().join("data.restore-1");
        let aside = dir.path().join("data.pre-restore-1");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("old"), "").unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("new"), "").unwrap();
        let (a, _) = swap_in(&data, &staging, &aside).unwrap();
        assert_eq!(a, Some(aside.clone()));
        assert!(data.join("new").exists() && aside.join("old").exists());
        // a staging tree that is gone: the data directory goes back in place
        let e = swap_in(&data, &staging, &dir.path().join("data.pre-restore-2")).unwrap_err();
        assert!(e.contains("back in place"), "{e}");
        assert!(data.join("new").exists());
        assert_eq!(
            beside(&data, "pre-restore", "1").unwrap(),
            dir.path().join("data.pre-restore-1-2")
        );
    }
}
