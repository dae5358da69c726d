//! Taking one `AgentReport`: locate the node process (systemd or pid file), read memory,
//! CPU, disk, connections and error lines. Every part fails on its own, into the report.
//!
//! CPU figures are deltas: the collector keeps the previous report's counters and computes
//! the shares since then; on the first report (or when the previous one is too recent, too
//! old, or of another pid) it samples twice, `CPU_WINDOW` apart.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use neo_ir_core::telemetry::RemoteConnections;

use crate::command::{self, parse_systemctl_show, SystemdStatus};
use crate::config::AgentConfig;
use crate::logscan;
use crate::procfs::{self, CpuTimes, TcpEntry};
use crate::report::{
    AgentReport, ConnectionsReport, DiskReport, ErrorsReport, ErrorsSource, MemoryReport,
    ProcessReport, ProcessSource, ProcessState,
};

/// The sampling window of a first report's CPU figures.
pub const CPU_WINDOW: Duration = Duration::from_millis(100);
/// A previous sample older than this is not used (the average would say little about now).
pub const MAX_SAMPLE_AGE: Duration = Duration::from_secs(600);
/// Most remote IPs listed in `connections.by_remote_ip`.
pub const TOP_REMOTES: usize = 50;

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    at: Instant,
    host: Option<CpuTimes>,
    pid: Option<u32>,
    proc_ticks: Option<u64>,
}

/// Takes reports; one at a time (a second request waits for the first).
#[derive(Debug)]
pub struct Collector {
    cfg: Arc<AgentConfig>,
    prev: tokio::sync::Mutex<Option<CpuSnapshot>>,
}

impl Collector {
    pub fn new(cfg: AgentConfig) -> Self {
        Collector {
            cfg: Arc::new(cfg),
            prev: tokio::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    /// Take one report. Never fails as a whole: each part says what went wrong.
    pub async fn report(&self) -> AgentReport {
        let mut prev = self.prev.lock().await;
        let at = Timestamp::now();
        let mut process = self.locate_process().await;
        let pid = match process.state {
            ProcessState::Running => process.pid,
            _ => None,
        };

        let cfg = self.cfg.clone();
        let host_parts = blocking(move || HostParts::read(&cfg, pid));
        let cpu = self.cpu(prev.take(), pid);
        let errors = self.errors();
        let (host_parts, (cpu, snapshot), errors) = tokio::join!(host_parts, cpu, errors);
        *prev = Some(snapshot);
        drop(prev);

        let host_parts = host_parts.unwrap_or_else(|e| HostParts::failed(&self.cfg, &e));
        process.rss_bytes = host_parts.rss_bytes;
        process.cpu_percent = cpu.process_percent;
        if let Some(e) = host_parts.rss_error {
            append_detail(&mut process.detail, &format!("rss: {e}"));
        }
        AgentReport {
            at,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: host_parts.hostname,
            process,
            memory: host_parts.memory,
            cpu_percent: cpu.host.map(|u| u.busy_percent),
            iowait_percent: cpu.host.map(|u| u.iowait_percent),
            cpu_error: cpu.error,
            disk: host_parts.disk,
            connections: host_parts.connections,
            errors,
        }
    }

    /// Where the process state comes from: systemd first, then the pid file.
    async fn locate_process(&self) -> ProcessReport {
        let cfg = &self.cfg;
        let mut systemd_failure = None;
        if let Some(unit) = &cfg.unit {
            match self.systemd_status(unit).await {
                Ok(report) => return report,
                Err(e) if cfg.pid_file.is_some() => systemd_failure = Some(e),
                Err(e) => {
                    return ProcessReport {
                        state: ProcessState::Unknown,
                        pid: None,
                        rss_bytes: None,
                        cpu_percent: None,
                        source: ProcessSource::Systemd,
                        detail: Some(e),
                    }
                }
            }
        }
        if let Some(pid_file) = &cfg.pid_file {
            let (pid_file, root) = (pid_file.clone(), cfg.proc_root.clone());
            let mut report = blocking(move || process_from_pid_file(&pid_file, &root))
                .await
                .unwrap_or_else(|e| ProcessReport {
                    state: ProcessState::Unknown,
                    pid: None,
                    rss_bytes: None,
                    cpu_percent: None,
                    source: ProcessSource::PidFile,
                    detail: Some(e.to_string()),
                });
            if let Some(e) = systemd_failure {
                append_detail(&mut report.detail, &format!("systemd: {e}"));
            }
            return report;
        }
        ProcessReport {
            state: ProcessState::Unknown,
            pid: None,
            rss_bytes: None,
            cpu_percent: None,
            source: ProcessSource::None,
            detail: Some("no systemd unit or pid file configured".into()),
        }
    }

    async fn systemd_status(&self, unit: &str) -> Result<ProcessReport, String> {
        let mut report = systemd_show(unit, self.cfg.command_timeout).await?;
        if let (ProcessState::Running, Some(pid)) = (report.state, report.pid) {
            if !self.cfg.proc_root.join(pid.to_string()).exists() {
                append_detail(
                    &mut report.detail,
                    &format!("pid {pid} not visible in {}", self.cfg.proc_root.display()),
                );
                report.pid = None;
            }
        }
        Ok(report)
    }

    /// Host and process CPU shares, and the snapshot to keep for the next report.
    async fn cpu(&self, prev: Option<CpuSnapshot>, pid: Option<u32>) -> (CpuFigures, CpuSnapshot) {
        let root = self.cfg.proc_root.clone();
        let (now, err) = cpu_snapshot(&root, pid).await;
        let usable = prev.filter(|p| {
            let age = now.at.saturating_duration_since(p.at);
            p.pid == pid
                && (CPU_WINDOW..=MAX_SAMPLE_AGE).contains(&age)
                && matches!((p.host, now.host), (Some(a), Some(b)) if b.total() > a.total())
        });
        let (first, second, err) = match usable {
            Some(p) => (p, now, err),
            None if now.host.is_none() => (now, now, err),
            None => {
                tokio::time::sleep(CPU_WINDOW).await;
                let (second, err2) = cpu_snapshot(&root, pid).await;
                (now, second, err.or(err2))
            }
        };
        let host = match (first.host, second.host) {
            (Some(a), Some(b)) => procfs::cpu_usage(&a, &b),
            _ => None,
        };
        let process_percent = match (first.proc_ticks, second.proc_ticks, first.host, second.host) {
            (Some(p1), Some(p2), Some(h1), Some(h2)) if h2.total() > h1.total() => Some(
                procfs::percent(p2.saturating_sub(p1), h2.total() - h1.total()),
            ),
            _ => None,
        };
        let error = match (host, err) {
            (Some(_), _) => None,
            (None, Some(e)) => Some(e),
            (None, None) => Some("no CPU time elapsed between the two samples".into()),
        };
        (
            CpuFigures {
                host,
                process_percent,
                error,
            },
            second,
        )
    }

    async fn errors(&self) -> ErrorsReport {
        let n = self.cfg.effective_error_lines();
        if let Some(path) = &self.cfg.log_file {
            let path = path.clone();
            let res = blocking(move || logscan::log_file_errors(&path, n))
                .await
                .and_then(|r| r);
            return match res {
                Ok(lines) => ErrorsReport {
                    source: ErrorsSource::File,
                    lines,
                    error: None,
                },
                Err(e) => ErrorsReport {
                    source: ErrorsSource::File,
                    lines: Vec::new(),
                    error: Some(format!("reading the log file: {e}")),
                },
            };
        }
        if let Some(unit) = &self.cfg.unit {
            if !crate::config::valid_unit_name(unit) {
                return ErrorsReport {
                    source: ErrorsSource::Journal,
                    lines: Vec::new(),
                    error: Some(format!("invalid systemd unit name {unit:?}")),
                };
            }
            let n_arg = n.to_string();
            let res = command::run(
                "journalctl",
                &[
                    "-u",
                    unit,
                    "-p",
                    "err",
                    "-n",
                    &n_arg,
                    "--no-pager",
                    "-o",
                    "cat",
                ],
                self.cfg.command_timeout,
            )
            .await;
            return match res {
                Ok(out) => ErrorsReport {
                    source: ErrorsSource::Journal,
                    lines: logscan::last_lines(out.lines(), n),
                    error: None,
                },
                Err(e) => ErrorsReport {
                    source: ErrorsSource::Journal,
                    lines: Vec::new(),
                    error: Some(e.to_string()),
                },
            };
        }
        ErrorsReport {
            source: ErrorsSource::None,
            lines: Vec::new(),
            error: None,
        }
    }
}

/// The process state `systemctl show UNIT` gives (the report's and the operations' view).
pub(crate) async fn systemd_show(unit: &str, timeout: Duration) -> Result<ProcessReport, String> {
    if !crate::config::valid_unit_name(unit) {
        return Err(format!("invalid systemd unit name {unit:?}"));
    }
    let out = command::run(
        "systemctl",
        &[
            "show",
            unit,
            "--property=LoadState,MainPID,ActiveState,SubState",
            "--no-pager",
        ],
        timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    let status = parse_systemctl_show(&out);
    if status.active_state.is_none() {
        return Err("systemctl show gave no ActiveState".into());
    }
    Ok(process_from_systemd(&status))
}

/// Run blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("collector task failed: {e}")))
}

fn append_detail(detail: &mut Option<String>, more: &str) {
    match detail {
        Some(d) => {
            d.push_str("; ");
            d.push_str(more);
        }
        None => *detail = Some(more.to_string()),
    }
}

#[derive(Debug)]
struct CpuFigures {
    host: Option<procfs::CpuUsage>,
    process_percent: Option<f64>,
    error: Option<String>,
}

async fn cpu_snapshot(root: &Path, pid: Option<u32>) -> (CpuSnapshot, Option<String>) {
    let root = root.to_path_buf();
    let res = blocking(move || {
        let host = read_proc(&root, "stat").and_then(|t| {
            procfs::parse_proc_stat(&t).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        });
        let proc_ticks = pid.and_then(|pid| {
            read_proc(&root, &format!("{pid}/stat"))
                .ok()
                .and_then(|t| procfs::parse_pid_stat(&t).ok())
                .map(|s| s.cpu_ticks)
        });
        (host, proc_ticks)
    })
    .await;
    let at = Instant::now();
    match res {
        Ok((Ok(host), proc_ticks)) => (
            CpuSnapshot {
                at,
                host: Some(host),
                pid,
                proc_ticks,
            },
            None,
        ),
        Ok((Err(e), _)) | Err(e) => (
            CpuSnapshot {
                at,
                host: None,
                pid,
                proc_ticks: None,
            },
            Some(format!("reading /proc/stat: {e}")),
        ),
    }
}

fn read_proc(root: &Path, rel: &str) -> io::Result<String> {
    std::fs::read_to_string(root.join(rel))
}

/// The process state systemd reports. `activating` without a main pid (e.g. the
/// `auto-restart` sub-state after a crash) counts as stopped.
fn process_from_systemd(s: &SystemdStatus) -> ProcessReport {
    let active = s.active_state.as_deref().unwrap_or("");
    let state = if s.load_state.as_deref() == Some("not-found") {
        ProcessState::Unknown
    } else {
        match active {
            "active" | "reloading" => ProcessState::Running,
            "activating" | "deactivating" if s.main_pid.is_some() => ProcessState::Running,
            "activating" | "deactivating" | "inactive" | "failed" => ProcessState::Stopped,
            _ => ProcessState::Unknown,
        }
    };
    let mut detail = format!(
        "ActiveState={active} SubState={}",
        s.sub_state.as_deref().unwrap_or("")
    );
    if let Some(load) = &s.load_state {
        detail = format!("LoadState={load} {detail}");
    }
    ProcessReport {
        state,
        pid: if state == ProcessState::Running {
            s.main_pid
        } else {
            None
        },
        rss_bytes: None,
        cpu_percent: None,
        source: ProcessSource::Systemd,
        detail: Some(detail),
    }
}

/// The process state from a pid file: running when `/proc/<pid>` exists and is no zombie.
fn process_from_pid_file(pid_file: &Path, proc_root: &Path) -> ProcessReport {
    let mut r = ProcessReport {
        state: ProcessState::Unknown,
        pid: None,
        rss_bytes: None,
        cpu_percent: None,
        source: ProcessSource::PidFile,
        detail: None,
    };
    let text = match std::fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            r.state = ProcessState::Stopped;
            r.detail = Some(format!("pid file {} not found", pid_file.display()));
            return r;
        }
        Err(e) => {
            r.detail = Some(format!("reading pid file {}: {e}", pid_file.display()));
            return r;
        }
    };
    let first = text.lines().next().unwrap_or("").trim();
    let pid = match first.parse::<u32>() {
        Ok(p) if p > 0 => p,
        _ => {
            r.detail = Some(format!(
                "pid file {} does not hold a pid",
                pid_file.display()
            ));
            return r;
        }
    };
    let dir = proc_root.join(pid.to_string());
    if !dir.exists() {
        r.state = ProcessState::Stopped;
        r.detail = Some(format!("pid {pid} from the pid file is not running"));
        return r;
    }
    match read_proc(proc_root, &format!("{pid}/stat")).map(|t| procfs::parse_pid_stat(&t)) {
        Ok(Ok(s)) if s.state == 'Z' || s.state == 'X' => {
            r.state = ProcessState::Stopped;
            r.detail = Some(format!("pid {pid} is a zombie (exited, not reaped)"));
        }
        _ => {
            r.state = ProcessState::Running;
            r.pid = Some(pid);
        }
    }
    r
}

/// The parts read from files in one blocking task.
struct HostParts {
    hostname: String,
    memory: MemoryReport,
    disk: DiskReport,
    connections: ConnectionsReport,
    rss_bytes: Option<u64>,
    rss_error: Option<String>,
}

impl HostParts {
    fn read(cfg: &AgentConfig, pid: Option<u32>) -> Self {
        let root = &cfg.proc_root;
        let (rss_bytes, rss_error) = match pid {
            None => (None, None),
            Some(pid) => match read_proc(root, &format!("{pid}/status"))
                .map(|t| procfs::parse_status_vmrss(&t))
            {
                Ok(Ok(rss)) => (rss, None),
                Ok(Err(e)) => (None, Some(e.to_string())),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        HostParts {
            hostname: hostname(root),
            memory: memory(root),
            disk: disk(&cfg.data_dir),
            connections: connections(root, cfg.p2p_port, cfg.rpc_port),
            rss_bytes,
            rss_error,
        }
    }

    /// Placeholder parts when the blocking task itself failed.
    fn failed(cfg: &AgentConfig, e: &io::Error) -> Self {
        let error = Some(e.to_string());
        HostParts {
            hostname: hostname(&cfg.proc_root),
            memory: MemoryReport {
                error: error.clone(),
                ..Default::default()
            },
            disk: DiskReport {
                path: cfg.data_dir.display().to_string(),
                error: error.clone(),
                ..Default::default()
            },
            connections: ConnectionsReport {
                p2p_port: cfg.p2p_port,
                rpc_port: cfg.rpc_port,
                error: error.clone(),
                ..Default::default()
            },
            rss_bytes: None,
            rss_error: error,
        }
    }
}

fn hostname(proc_root: &Path) -> String {
    if let Ok(h) = read_proc(proc_root, "sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return h.to_string();
        }
    }
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn memory(proc_root: &Path) -> MemoryReport {
    match read_proc(proc_root, "meminfo").map(|t| procfs::parse_meminfo(&t)) {
        Ok(Ok(m)) => MemoryReport {
            total_bytes: Some(m.total_bytes),
            available_bytes: Some(m.available_bytes),
            used_bytes: Some(m.used_bytes()),
            error: None,
        },
        Ok(Err(e)) => MemoryReport {
            error: Some(e.to_string()),
            ..Default::default()
        },
        Err(e) => MemoryReport {
            error: Some(format!("reading meminfo: {e}")),
            ..Default::default()
        },
    }
}

/// `statvfs` of the data directory.
pub fn disk(data_dir: &Path) -> DiskReport {
    let mut r = DiskReport {
        path: data_dir.display().to_string(),
        ..Default::default()
    };
    match rustix::fs::statvfs(data_dir) {
        Ok(s) => {
            let frsize = if s.f_frsize > 0 {
                s.f_frsize
            } else {
                s.f_bsize
            };
            r.total_bytes = Some(s.f_blocks.saturating_mul(frsize));
            r.free_bytes = Some(s.f_bfree.saturating_mul(frsize));
            r.available_bytes = Some(s.f_bavail.saturating_mul(frsize));
        }
        Err(e) => r.error = Some(format!("statvfs: {}", io::Error::from(e))),
    }
    r
}

/// Established connections on the node's ports, from `net/tcp` and `net/tcp6`.
fn connections(proc_root: &Path, p2p_port: u16, rpc_port: u16) -> ConnectionsReport {
    let mut report = ConnectionsReport {
        p2p_port,
        rpc_port,
        ..Default::default()
    };
    let mut counter = ConnectionCounter::new(p2p_port, rpc_port);
    let mut errors: Vec<String> = Vec::new();
    let mut read_any = false;
    for file in ["net/tcp", "net/tcp6"] {
        let path: PathBuf = proc_root.join(file);
        match scan_tcp_file(&path, &mut counter) {
            Ok(bad) => {
                read_any = true;
                if let Some(bad) = bad {
                    errors.push(format!("{file}: {bad}"));
                }
            }
            // no IPv6 in this kernel / namespace
            Err(e) if e.kind() == io::ErrorKind::NotFound && file == "net/tcp6" => {}
            Err(e) => errors.push(format!("reading {file}: {e}")),
        }
    }
    if read_any {
        let (p2p, rpc, by_ip) = counter.finish(TOP_REMOTES);
        report.p2p_established = Some(p2p);
        report.rpc_established = Some(rpc);
        report.by_remote_ip = by_ip;
    }
    if !errors.is_empty() {
        report.error = Some(errors.join("; "));
    }
    report
}

/// Feed every line of one file to the counter; the first unparsable line is returned (the
/// others are skipped too).
fn scan_tcp_file(path: &Path, counter: &mut ConnectionCounter) -> io::Result<Option<String>> {
    use std::io::BufRead;
    let f = std::fs::File::open(path)?;
    let mut first_bad = None;
    let mut bad = 0usize;
    for line in io::BufReader::new(f).lines() {
        match procfs::parse_tcp_line(&line?) {
            Ok(Some(e)) => counter.add(&e),
            Ok(None) => {}
            Err(e) => {
                bad += 1;
                first_bad.get_or_insert(e.to_string());
            }
        }
    }
    Ok(first_bad.map(|e| format!("{bad} unparsable line(s), first: {e}")))
}

/// Counts ESTABLISHED sockets whose local port is the P2P or RPC port, per remote IP.
#[derive(Debug)]
pub struct ConnectionCounter {
    p2p_port: u16,
    rpc_port: u16,
    p2p: u32,
    rpc: u32,
    by_ip: HashMap<IpAddr, (u32, u32)>,
}

impl ConnectionCounter {
    pub fn new(p2p_port: u16, rpc_port: u16) -> Self {
        ConnectionCounter {
            p2p_port,
            rpc_port,
            p2p: 0,
            rpc: 0,
            by_ip: HashMap::new(),
        }
    }

    pub fn add(&mut self, e: &TcpEntry) {
        if !e.is_established() {
            return;
        }
        let slot = self.by_ip.entry(e.remote_ip);
        if e.local_port == self.p2p_port {
            self.p2p += 1;
            slot.or_default().0 += 1;
        } else if e.local_port == self.rpc_port {
            self.rpc += 1;
            slot.or_default().1 += 1;
        }
    }

    /// Totals and the `top` remote IPs, most connections first (ties by IP).
    pub fn finish(self, top: usize) -> (u32, u32, Vec<RemoteConnections>) {
        let mut v: Vec<(IpAddr, (u32, u32))> = self.by_ip.into_iter().collect();
        v.sort_by(|(ip_a, (p_a, r_a)), (ip_b, (p_b, r_b))| {
            (p_b + r_b).cmp(&(p_a + r_a)).then(ip_a.cmp(ip_b))
        });
        let list = v
            .into_iter()
            .take(top)
            .map(|(ip, (p2p, rpc))| RemoteConnections {
                ip: ip.to_string(),
                p2p,
                rpc,
            })
            .collect();
        (self.p2p, self.rpc, list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(remote: [u8; 4], local_port: u16, state: u8) -> TcpEntry {
        TcpEntry {
            local_ip: IpAddr::from([10, 0, 0, 1]),
            local_port,
            remote_ip: IpAddr::from(remote),
            remote_port: 40000,
            state,
        }
    }

    #[test]
    fn counts_by_local_port_and_remote() {
        let mut c = ConnectionCounter::new(10333, 10332);
        for _ in 0..3 {
            c.add(&entry([1, 1, 1, 1], 10333, 1));
        }
        c.add(&entry([1, 1, 1, 1], 10332, 1));
        c.add(&entry([2, 2, 2, 2], 10332, 1));
        c.add(&entry([2, 2, 2, 2], 10332, 1));
        c.add(&entry([3, 3, 3, 3], 10333, 0x0A)); // LISTEN
        c.add(&entry([4, 4, 4, 4], 22, 1)); // another service
        c.add(&entry([5, 5, 5, 5], 10333, 6)); // TIME_WAIT
        let (p2p, rpc, by_ip) = c.finish(50);
        assert_eq!((p2p, rpc), (3, 3));
        assert_eq!(
            by_ip,
            vec![
                RemoteConnections {
                    ip: "1.1.1.1".into(),
                    p2p: 3,
                    rpc: 1
                },
                RemoteConnections {
                    ip: "2.2.2.2".into(),
                    p2p: 0,
                    rpc: 2
                },
            ]
        );
    }

    #[test]
    fn top_is_bounded() {
        let mut c = ConnectionCounter::new(10333, 10332);
        for i in 0..=200u8 {
            for _ in 0..(i % 7) {
                c.add(&entry([10, 1, 0, i], 10333, 1));
            }
        }
        let (_, _, by_ip) = c.finish(TOP_REMOTES);
        assert_eq!(by_ip.len(), TOP_REMOTES);
        assert!(by_ip.windows(2).all(|w| w[0].p2p >= w[1].p2p));
        assert_eq!(by_ip[0].p2p, 6);
    }

    #[test]
    fn systemd_states() {
        let s = |active: &str, sub: &str, pid: Option<u32>| SystemdStatus {
            load_state: Some("loaded".into()),
            main_pid: pid,
            active_state: Some(active.into()),
            sub_state: Some(sub.into()),
        };
        let r = process_from_systemd(&s("active", "running", Some(42)));
        assert_eq!((r.state, r.pid), (ProcessState::Running, Some(42)));
        assert_eq!(
            r.detail.as_deref(),
            Some("LoadState=loaded ActiveState=active SubState=running")
        );
        let r = process_from_systemd(&s("activating", "auto-restart", None));
        assert_eq!((r.state, r.pid), (ProcessState::Stopped, None));
        let r = process_from_systemd(&s("failed", "failed", None));
        assert_eq!(r.state, ProcessState::Stopped);
        let r = process_from_systemd(&s("inactive", "dead", Some(7)));
        assert_eq!((r.state, r.pid), (ProcessState::Stopped, None));
        let mut nf = s("inactive", "dead", None);
        nf.load_state = Some("not-found".into());
        assert_eq!(process_from_systemd(&nf).state, ProcessState::Unknown);
        assert_eq!(
            process_from_systemd(&s("weird", "x", None)).state,
            ProcessState::Unknown
        );
    }

    #[test]
    fn pid_file_states() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proc");
        std::fs::create_dir_all(root.join("77")).unwrap();
        std::fs::write(
            root.join("77/stat"),
            "77 (neo) S 1 77 77 0 -1 0 0 0 0 0 10 5 0 0",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("78")).unwrap();
        std::fs::write(
            root.join("78/stat"),
            "78 (neo) Z 1 78 78 0 -1 0 0 0 0 0 10 5 0 0",
        )
        .unwrap();
        let pf = dir.path().join("neo.pid");

        let r = process_from_pid_file(&pf, &root);
        assert_eq!(r.state, ProcessState::Stopped);
        assert!(r.detail.unwrap().contains("not found"));

        std::fs::write(&pf, "77\n").unwrap();
        let r = process_from_pid_file(&pf, &root);
        assert_eq!((r.state, r.pid), (ProcessState::Running, Some(77)));

        std::fs::write(&pf, "78").unwrap();
        assert_eq!(
            process_from_pid_file(&pf, &root).state,
            ProcessState::Stopped
        );
        std::fs::write(&pf, "79").unwrap();
        assert_eq!(
            process_from_pid_file(&pf, &root).state,
            ProcessState::Stopped
        );
        std::fs::write(&pf, "not a pid").unwrap();
        assert_eq!(
            process_from_pid_file(&pf, &root).state,
            ProcessState::Unknown
        );
    }
}
