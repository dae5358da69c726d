//! Starting, stopping and checking the node, for both backends: a systemd unit
//! (`systemctl start|stop|restart|is-active UNIT` as argument vectors) or a process the agent
//! starts itself (spawned detached in its own process group, its pid in a pid file, stopped
//! with SIGTERM then SIGKILL — and only when `/proc/<pid>/cmdline` still names the node's
//! program, so a pid reused by another process is never signalled).
//!
//! "Running" is waitable: after a start the node must run AND answer `getblockcount` on
//! 127.0.0.1:`rpc_port` within `start_wait`; a node that exits during startup fails the wait
//! at once, with the tail of its log.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neo_ir_core::runbook::Step;
use serde_json::{json, Value};

use super::exec::{Execution, StepFailed};
use crate::command;
use crate::config::{AgentConfig, Service};
use crate::ops::rpc;
use crate::report::ProcessState;

/// Hard limit of one `systemctl start|stop|restart`.
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(150);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);
/// Lines of the node's log quoted when a start fails.
const LOG_TAIL_LINES: usize = 20;

/// The node processes this agent started: those still running (not yet reaped, so their
/// pid cannot have been reused) and how the others exited (filled by their reaper task, so a
/// start can tell at once that the node exited).
#[derive(Debug, Clone, Default)]
pub struct Children(Arc<Mutex<ChildTable>>);

#[derive(Debug, Default)]
struct ChildTable {
    live: HashSet<u32>,
    exited: HashMap<u32, String>,
}

impl Children {
    fn spawned(&self, pid: u32) {
        if let Ok(mut t) = self.0.lock() {
            t.exited.remove(&pid);
            t.live.insert(pid);
        }
    }

    fn record(&self, pid: u32, status: String) {
        if let Ok(mut t) = self.0.lock() {
            t.live.remove(&pid);
            t.exited.insert(pid, status);
        }
    }

    /// How the child `pid` exited, if it was ours and has exited.
    pub fn exit_of(&self, pid: u32) -> Option<String> {
        self.0.lock().ok().and_then(|t| t.exited.get(&pid).cloned())
    }

    /// `pid` is a child of this agent that has not been reaped: it is the node we started
    /// (its `/proc/<pid>/cmdline` may still be empty right after the spawn).
    pub fn is_live(&self, pid: u32) -> bool {
        self.0.lock().is_ok_and(|t| t.live.contains(&pid))
    }
}

/// Whether the node runs, as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub running: bool,
    pub pid: Option<u32>,
    /// What systemd said, or what the pid file and `/proc` said.
    pub detail: String,
}

impl Status {
    pub fn to_json(&self, backend: &str) -> Value {
        json!({"running": self.running, "pid": self.pid, "backend": backend, "detail": self.detail})
    }
}

/// The node's service, as configured.
pub struct ServiceCtl<'a> {
    pub cfg: &'a AgentConfig,
    pub service: Service,
    pub http: &'a reqwest::Client,
    pub children: &'a Children,
}

impl ServiceCtl<'_> {
    pub fn backend(&self) -> &'static str {
        self.service.backend()
    }

    fn start_detail(&self, argv: &[String], pid_file: &Path, log: &Option<PathBuf>) -> String {
        let out = match log {
            Some(l) => format!("output appended to {}", l.display()),
            None => "output discarded".to_string(),
        };
        format!(
            "start: {} (own process group, stdin null, {out}, pid file {})",
            super::argv_text(argv),
            pid_file.display()
        )
    }

    fn stop_detail(&self, argv: &[String], pid_file: &Path) -> String {
        let prog = program_name(&argv[0]);
        format!(
            "stop: SIGTERM to the pid in {} (only if /proc/<pid>/cmdline names {prog}), \
             SIGKILL after {}s",
            pid_file.display(),
            self.cfg.stop_timeout.as_secs()
        )
    }

    /// Start the node (not destructive).
    pub fn start_step(&self, name: &str) -> Step {
        match &self.service {
            Service::Systemd { unit } => Step::exec(
                name,
                &["systemctl", "start", unit],
                SYSTEMCTL_TIMEOUT,
                false,
            ),
            Service::Process {
                argv,
                pid_file,
                log_file,
            } => Step::builtin(
                name,
                "start",
                self.start_detail(argv, pid_file, log_file),
                Duration::from_secs(30),
                false,
            ),
        }
    }

    /// Stop the node (destructive).
    pub fn stop_step(&self, name: &str) -> Step {
        match &self.service {
            Service::Systemd { unit } => {
                Step::exec(name, &["systemctl", "stop", unit], SYSTEMCTL_TIMEOUT, true)
            }
            Service::Process { argv, pid_file, .. } => Step::builtin(
                name,
                "stop",
                self.stop_detail(argv, pid_file),
                self.cfg.stop_timeout + Duration::from_secs(15),
                true,
            ),
        }
    }

    /// Restart the node (destructive).
    pub fn restart_step(&self, name: &str) -> Step {
        match &self.service {
            Service::Systemd { unit } => Step::exec(
                name,
                &["systemctl", "restart", unit],
                SYSTEMCTL_TIMEOUT,
                true,
            ),
            Service::Process {
                argv,
                pid_file,
                log_file,
            } => Step::builtin(
                name,
                "restart",
                format!(
                    "{}; then {}",
                    self.stop_detail(argv, pid_file),
                    self.start_detail(argv, pid_file, log_file)
                ),
                self.cfg.stop_timeout + Duration::from_secs(45),
                true,
            ),
        }
    }

    /// Wait until the node runs and answers RPC (not destructive).
    pub fn wait_step(&self, name: &str) -> Step {
        Step::builtin(
            name,
            "wait_running",
            format!(
                "wait up to {}s until the node runs and 127.0.0.1:{} answers getblockcount",
                self.cfg.start_wait.as_secs(),
                self.cfg.rpc_port
            ),
            self.cfg.start_wait + Duration::from_secs(5),
            false,
        )
    }

    /// Check whether the node runs (not destructive).
    pub fn status_step(&self, name: &str) -> Step {
        let detail = match &self.service {
            Service::Systemd { unit } => {
                format!("systemctl show {unit} --property=LoadState,MainPID,ActiveState,SubState")
            }
            Service::Process { argv, pid_file, .. } => format!(
                "read the pid in {} and check /proc/<pid> runs {} (not a zombie)",
                pid_file.display(),
                program_name(&argv[0])
            ),
        };
        Step::builtin(name, "status", detail, Duration::from_secs(15), false)
    }

    /// Run step `name`: its argv for systemd, `process` for the process backend.
    async fn run_action<F: Future<Output = Result<String, String>>>(
        &self,
        exec: &mut Execution,
        name: &str,
        process: impl FnOnce() -> F,
    ) -> Result<(), StepFailed> {
        match &self.service {
            Service::Systemd { .. } => exec.exec(name).await.map(|_| ()),
            Service::Process { .. } => {
                exec.builtin(name, async { process().await.map(|o| ((), o)) })
                    .await
            }
        }
    }

    /// Run the start step `name` of this backend.
    pub async fn run_start(&self, exec: &mut Execution, name: &str) -> Result<(), StepFailed> {
        self.run_action(exec, name, || self.process_start()).await
    }

    /// Run the stop step `name` of this backend.
    pub async fn run_stop(&self, exec: &mut Execution, name: &str) -> Result<(), StepFailed> {
        self.run_action(exec, name, || self.process_stop()).await
    }

    /// Run the restart step `name` of this backend.
    pub async fn run_restart(&self, exec: &mut Execution, name: &str) -> Result<(), StepFailed> {
        self.run_action(exec, name, || async {
            let stopped = self.process_stop().await?;
            let started = self.process_start().await?;
            Ok(format!("{stopped}\n{started}"))
        })
        .await
    }

    /// Run the wait step `name`; the block count the node answered.
    pub async fn run_wait(&self, exec: &mut Execution, name: &str) -> Result<u64, StepFailed> {
        exec.builtin(name, self.wait_ready()).await
    }

    /// Run the status step `name`.
    pub async fn run_status(&self, exec: &mut Execution, name: &str) -> Result<Status, StepFailed> {
        exec.builtin(name, async {
            let st = self.status().await?;
            let text = match (st.running, st.pid) {
                (true, Some(pid)) => format!("running (pid {pid}): {}", st.detail),
                (true, None) => format!("running: {}", st.detail),
                (false, _) => format!("not running: {}", st.detail),
            };
            Ok((st, text))
        })
        .await
    }

    /// Whether the node runs now. Errors when the backend cannot tell (systemd unreachable,
    /// unreadable pid file).
    pub async fn status(&self) -> Result<Status, String> {
        match &self.service {
            Service::Systemd { unit } => {
                let r = crate::collect::systemd_show(unit, self.cfg.command_timeout).await?;
                if r.state == ProcessState::Unknown {
                    return Err(format!(
                        "systemd cannot tell: {}",
                        r.detail.unwrap_or_default()
                    ));
                }
                Ok(Status {
                    running: r.state == ProcessState::Running,
                    pid: r.pid,
                    detail: r.detail.unwrap_or_default(),
                })
            }
            Service::Process { argv, pid_file, .. } => {
                let (argv0, pid_file, root) = (
                    argv[0].clone(),
                    pid_file.clone(),
                    self.cfg.proc_root.clone(),
                );
                let children = self.children.clone();
                blocking(move || {
                    process_status(&pid_file, &root, &argv0, &|pid| children.is_live(pid))
                })
                .await?
            }
        }
    }

    /// Spawn the node (process backend) unless it already runs.
    async fn process_start(&self) -> Result<String, String> {
        let Service::Process {
            argv,
            pid_file,
            log_file,
        } = &self.service
        else {
            return Err("not a process service".into());
        };
        let st = self.status().await?;
        if st.running {
            return Ok(format!(
                "already running (pid {})",
                st.pid.map(|p| p.to_string()).unwrap_or_default()
            ));
        }
        let (stdout, stderr) = match log_file {
            Some(path) => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("opening the log file {}: {e}", path.display()))?;
                let f2 = f
                    .try_clone()
                    .map_err(|e| format!("opening the log file {}: {e}", path.display()))?;
                (Stdio::from(f), Stdio::from(f2))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| format!("{} could not be started: {e}", argv[0]))?;
        let Some(pid) = child.id() else {
            return Err(format!("{} exited before it got a pid", argv[0]));
        };
        self.children.spawned(pid);
        let children = self.children.clone();
        // the reaper: no zombie is left, and a start can see an early exit at once
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown ({e})"),
            };
            children.record(pid, status);
        });
        let (pf, text) = (pid_file.clone(), format!("{pid}\n"));
        let written = blocking(move || write_atomic(&pf, text.as_bytes()))
            .await
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = written {
            // a node nobody could stop later must not be left running
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            return Err(format!(
                "writing the pid file {}: {e}; the node just started (pid {pid}) was killed",
                pid_file.display()
            ));
        }
        Ok(format!(
            "started pid {pid}: {} (pid file {})",
            super::argv_text(argv),
            pid_file.display()
        ))
    }

    /// SIGTERM the node (process backend), wait, SIGKILL after the stop timeout.
    async fn process_stop(&self) -> Result<String, String> {
        let Service::Process { pid_file, .. } = &self.service else {
            return Err("not a process service".into());
        };
        let st = self.status().await?;
        let Some(pid) = st.pid.filter(|_| st.running) else {
            return Ok(format!("not running: {}", st.detail));
        };
        let Some(rpid) = rustix::process::Pid::from_raw(pid as i32) else {
            return Err(format!("invalid pid {pid}"));
        };
        let started = Instant::now();
        rustix::process::kill_process(rpid, rustix::process::Signal::TERM)
            .map_err(|e| format!("SIGTERM to pid {pid}: {}", std::io::Error::from(e)))?;
        let mut how = "exited after SIGTERM";
        if !self.wait_gone(pid, self.cfg.stop_timeout).await {
            how = "killed with SIGKILL";
            let _ = rustix::process::kill_process(rpid, rustix::process::Signal::KILL);
            if !self.wait_gone(pid, Duration::from_secs(10)).await {
                return Err(format!("pid {pid} still runs after SIGKILL"));
            }
        }
        // the pid file no longer names a live node
        let pf = pid_file.clone();
        let _ = blocking(move || {
            if read_pid_file(&pf).ok().flatten() == Some(pid) {
                let _ = std::fs::remove_file(&pf);
            }
        })
        .await;
        Ok(format!(
            "stopped pid {pid}: {how} in {} ms",
            started.elapsed().as_millis()
        ))
    }

    /// Whether `pid` is gone (or a zombie) within `limit`.
    async fn wait_gone(&self, pid: u32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !pid_alive(&self.cfg.proc_root, pid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Poll until the node runs and answers `getblockcount`, up to `start_wait`.
    pub async fn wait_ready(&self) -> Result<(u64, String), String> {
        let started = Instant::now();
        let deadline = started + self.cfg.start_wait;
        let mut problem;
        loop {
            match self.status().await {
                Ok(st) if st.running => {
                    match rpc::block_count(self.http, self.cfg.rpc_port, Duration::from_secs(1))
                        .await
                    {
                        Ok(h) => {
                            return Ok((
                                h,
                                format!(
                                    "running (pid {}), getblockcount answered {h} after {} ms",
                                    st.pid.map(|p| p.to_string()).unwrap_or_default(),
                                    started.elapsed().as_millis()
                                ),
                            ))
                        }
                        Err(e) => problem = format!("runs but RPC does not answer: {e}"),
                    }
                }
                Ok(st) => {
                    problem = format!("not running: {}", st.detail);
                    // a process of ours that is gone will not come back by itself (the
                    // spawn returned after exec, so a started node is visible at once)
                    if let Service::Process { pid_file, .. } = &self.service {
                        let pid = read_pid_file(pid_file).ok().flatten();
                        let why = match pid.and_then(|p| self.children.exit_of(p)) {
                            Some(exit) => format!("the node exited during startup ({exit})"),
                            None => format!("the node is not running ({})", st.detail),
                        };
                        return Err(format!("{why}; last log lines:\n{}", self.log_tail().await));
                    }
                }
                Err(e) => problem = e,
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready after {}s: {problem}; last log lines:\n{}",
                    self.cfg.start_wait.as_secs(),
                    self.log_tail().await
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last lines of the node's log (file, else journal), secrets redacted.
    pub async fn log_tail(&self) -> String {
        let file = match &self.service {
            Service::Process {
                log_file: Some(l), ..
            } => Some(l.clone()),
            _ => self.cfg.log_file.clone(),
        };
        let text = if let Some(path) = file {
            let p = path.clone();
            let read = blocking(move || {
                crate::logscan::read_tail(&p, 64 * 1024).map_err(|e| e.to_string())
            })
            .await;
            match read.and_then(|r| r) {
                Ok(t) => t,
                Err(e) => return format!("(reading {}: {e})", path.display()),
            }
        } else if let Service::Systemd { unit } = &self.service {
            match command::run(
                "journalctl",
                &["-u", unit, "-n", "20", "--no-pager", "-o", "cat"],
                self.cfg.command_timeout,
            )
            .await
            {
                Ok(t) => t,
                Err(e) => return format!("(journalctl: {e})"),
            }
        } else {
            return "(no log file configured)".into();
        };
        let lines = crate::logscan::last_lines(text.lines(), LOG_TAIL_LINES);
        if lines.is_empty() {
            return "(log is empty)".into();
        }
        super::diagnostics::redact(&lines.join("\n"))
    }
}

/// Run blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("internal task failed: {e}"))
}

/// The file name of a program path (`/usr/bin/neo-go` → `neo-go`).
pub fn program_name(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

/// The pid in a pid file; `None` when there is no file.
fn read_pid_file(path: &Path) -> Result<Option<u32>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => match t.lines().next().unwrap_or("").trim().parse::<u32>() {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(format!("pid file {} does not hold a pid", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading pid file {}: {e}", path.display())),
    }
}

/// `/proc/<pid>` exists and is not a zombie.
fn pid_alive(proc_root: &Path, pid: u32) -> bool {
    match std::fs::read_to_string(proc_root.join(format!("{pid}/stat"))) {
        Ok(t) => match crate::procfs::parse_pid_stat(&t) {
            Ok(s) => s.state != 'Z' && s.state != 'X',
            Err(_) => true,
        },
        Err(_) => false,
    }
}

/// The process backend's view: pid file, `/proc/<pid>`, not a zombie, and either our own
/// unreaped child or a process whose cmdline's program is `argv0`'s.
fn process_status(
    pid_file: &Path,
    proc_root: &Path,
    argv0: &str,
    ours: &dyn Fn(u32) -> bool,
) -> Result<Status, String> {
    let not = |detail: String| Status {
        running: false,
        pid: None,
        detail,
    };
    let Some(pid) = read_pid_file(pid_file)? else {
        return Ok(not(format!("no pid file {}", pid_file.display())));
    };
    if !pid_alive(proc_root, pid) {
        let zombie = proc_root.join(pid.to_string()).exists();
        return Ok(not(if zombie {
            format!("pid {pid} is a zombie (exited)")
        } else {
            format!("pid {pid} from {} is not running", pid_file.display())
        }));
    }
    let want = program_name(argv0);
    if ours(pid) {
        return Ok(Status {
            running: true,
            pid: Some(pid),
            detail: format!("pid {pid} runs {want} (started by this agent)"),
        });
    }
    let cmdline = std::fs::read(proc_root.join(format!("{pid}/cmdline"))).unwrap_or_default();
    let first = cmdline.split(|b| *b == 0).next().unwrap_or(&[]);
    let first = String::from_utf8_lossy(first);
    if program_name(&first) != want {
        return Ok(not(format!(
            "pid {pid} from {} runs {:?}, not {want} (stale pid file; not signalled)",
            pid_file.display(),
            neo_ir_core::text::clip(&first, 80)
        )));
    }
    Ok(Status {
        running: true,
        pid: Some(pid),
        detail: format!("pid {pid} runs {want}"),
    })
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.{}.tmp-neo-ir", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_status_checks_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("n.pid");
        let root = Path::new("/proc");
        let no = |_: u32| false;
        let st = process_status(&pf, root, "/usr/bin/whatever", &no).unwrap();
        assert!(!st.running && st.detail.contains("no pid file"), "{st:?}");
        // this test process runs, but it is not "neo-node": never ours
        std::fs::write(&pf, format!("{}\n", std::process::id())).unwrap();
        let st = process_status(&pf, root, "/opt/neo/neo-node", &no).unwrap();
        assert!(
            !st.running && st.detail.contains("stale pid file"),
            "{st:?}"
        );
        // unless it is a child this agent started and has not reaped
        let st = process_status(&pf, root, "/opt/neo/neo-node", &|_| true).unwrap();
        assert!(st.running, "{st:?}");
        let me = std::fs::read(format!("/proc/{}/cmdline", std::process::id())).unwrap();
        let me = String::from_utf8_lossy(me.split(|b| *b == 0).next().unwrap()).into_owned();
        let st = process_status(&pf, root, &me, &no).unwrap();
        assert!(st.running, "{st:?}");
        assert_eq!(st.pid, Some(std::process::id()));
        std::fs::write(&pf, "garbage").unwrap();
        assert!(process_status(&pf, root, &me, &no).is_err());
        std::fs::write(&pf, "999999999").unwrap();
        assert!(!process_status(&pf, root, &me, &|_| true).unwrap().running);
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        write_atomic(&p, b"1\n").unwrap();
        write_atomic(&p, b"2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(program_name("/usr/bin/neo-go"), "neo-go");
        assert_eq!(program_name("python3"), "python3");
    }
}
