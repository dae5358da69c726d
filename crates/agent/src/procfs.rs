//! Pure parsers for the `/proc` files the agent reads: `/proc/meminfo`, `/proc/stat`,
//! `/proc/<pid>/stat`, `/proc/<pid>/status` and `/proc/net/tcp{,6}`. No I/O here: every
//! function takes the text of a file (or one line of it), so they are unit-tested with
//! real-format samples.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a `/proc` file could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcParseError {
    /// A field the agent needs is absent.
    #[error("{file}: missing {field}")]
    Missing {
        file: &'static str,
        field: &'static str,
    },
    /// A field is present but not in the expected format.
    #[error("{file}: invalid {field}: {value:?}")]
    Invalid {
        file: &'static str,
        field: &'static str,
        value: String,
    },
}

fn invalid(file: &'static str, field: &'static str, value: &str) -> ProcParseError {
    let mut value: String = value.chars().take(64).collect();
    value.retain(|c| !c.is_control());
    ProcParseError::Invalid { file, field, value }
}

/// The two figures of `/proc/meminfo` the agent reports, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_bytes: u64,
    /// `MemAvailable`; on kernels before 3.14 (no such line) `MemFree + Buffers + Cached`.
    pub available_bytes: u64,
}

impl MemInfo {
    /// Used memory as `free` (procps 3.3.10+) computes it: total minus available.
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// Parse `/proc/meminfo` (`Key:   value kB` lines).
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ProcParseError> {
    const FILE: &str = "meminfo";
    let (mut total, mut available, mut free, mut buffers, mut cached) =
        (None, None, None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            _ => continue,
        };
        *slot = Some(parse_kb(rest).ok_or_else(|| invalid(FILE, "value", rest.trim()))?);
    }
    let total_bytes = total.ok_or(ProcParseError::Missing {
        file: FILE,
        field: "MemTotal",
    })?;
    let available_bytes = match (available, free) {
        (Some(a), _) => a,
        (None, Some(f)) => f + buffers.unwrap_or(0) + cached.unwrap_or(0),
        (None, None) => {
            return Err(ProcParseError::Missing {
                file: FILE,
                field: "MemAvailable",
            })
        }
    };
    Ok(MemInfo {
        total_bytes,
        available_bytes,
    })
}

/// `"   123456 kB"` → bytes (a value without unit is taken as bytes).
fn parse_kb(rest: &str) -> Option<u64> {
    let mut parts = rest.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some(u) if u.eq_ignore_ascii_case("kb") => n.checked_mul(1024),
        Some(_) => None,
        None => Some(n),
    }
}

/// The aggregate `cpu` line of `/proc/stat`, in USER_HZ ticks summed over all CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// All ticks (guest time is already counted in user and nice, so it is left out).
    pub fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

/// Host-wide busy and IO-wait shares between two samples, in percent (0..=100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUsage {
    pub busy_percent: f64,
    pub iowait_percent: f64,
}

/// Busy % and iowait % between `prev` and `cur`; `None` when no tick elapsed (or the counters
/// went backwards, as after a CPU went offline).
pub fn cpu_usage(prev: &CpuTimes, cur: &CpuTimes) -> Option<CpuUsage> {
    let total = cur.total().checked_sub(prev.total())?;
    if total == 0 {
        return None;
    }
    let idle = cur.idle.saturating_sub(prev.idle);
    let iowait = cur.iowait.saturating_sub(prev.iowait);
    let busy = total.saturating_sub(idle + iowait);
    Some(CpuUsage {
        busy_percent: percent(busy, total),
        iowait_percent: percent(iowait, total),
    })
}

/// `part / whole` in percent, clamped to 0..=100 and rounded to 0.01.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    let p = (part as f64 / whole as f64 * 100.0).clamp(0.0, 100.0);
    (p * 100.0).round() / 100.0
}

/// Parse the aggregate `cpu ` line of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Result<CpuTimes, ProcParseError> {
    const FILE: &str = "stat";
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or(ProcParseError::Missing {
            file: FILE,
            field: "cpu line",
        })?;
    let mut v = [0u64; 8];
    let mut n = 0;
    for (slot, field) in v.iter_mut().zip(line.split_whitespace().skip(1)) {
        *slot = field
            .parse()
            .map_err(|_| invalid(FILE, "cpu field", field))?;
        n += 1;
    }
    // user nice system idle are always there; iowait since 2.5.41, irq/softirq 2.6.0,
    // steal 2.6.11.
    if n < 4 {
        return Err(invalid(FILE, "cpu line", line));
    }
    Ok(CpuTimes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
    })
}

/// What the agent reads from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat {
    /// The one-letter state (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    /// utime + stime, in USER_HZ ticks.
    pub cpu_ticks: u64,
}

/// Parse `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted from the last `)`.
pub fn parse_pid_stat(text: &str) -> Result<PidStat, ProcParseError> {
    const FILE: &str = "pid stat";
    let close = text.rfind(')').ok_or(ProcParseError::Missing {
        file: FILE,
        field: "command name",
    })?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let state = fields
        .first()
        .and_then(|s| s.chars().next())
        .ok_or(ProcParseError::Missing {
            file: FILE,
            field: "state",
        })?;
    let tick = |i: usize, name: &'static str| -> Result<u64, ProcParseError> {
        let f = fields.get(i).ok_or(ProcParseError::Missing {
            file: FILE,
            field: name,
        })?;
        f.parse().map_err(|_| invalid(FILE, name, f))
    };
    Ok(PidStat {
        state,
        cpu_ticks: tick(11, "utime")? + tick(12, "stime")?,
    })
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes; `None` when absent (kernel threads, zombies).
pub fn parse_status_vmrss(text: &str) -> Result<Option<u64>, ProcParseError> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            return parse_kb(rest)
                .map(Some)
                .ok_or_else(|| invalid("pid status", "VmRSS", rest.trim()));
        }
    }
    Ok(None)
}

/// One socket line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpEntry {
    pub local_ip: IpAddr,
    pub local_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    /// The kernel's TCP state number (`0x01` = ESTABLISHED, `0x0A` = LISTEN).
    pub state: u8,
}

/// `TCP_ESTABLISHED` in the kernel's numbering.
pub const TCP_ESTABLISHED: u8 = 0x01;

impl TcpEntry {
    pub fn is_established(&self) -> bool {
        self.state == TCP_ESTABLISHED
    }
}

/// Parse one line of `/proc/net/tcp{,6}`; `Ok(None)` for the header line.
pub fn parse_tcp_line(line: &str) -> Result<Option<TcpEntry>, ProcParseError> {
    const FILE: &str = "net/tcp";
    let mut fields = line.split_whitespace();
    let Some(sl) = fields.next() else {
        return Ok(None);
    };
    if !sl.ends_with(':') {
        // the "sl local_address ..." header
        return Ok(None);
    }
    let mut next = |name: &'static str| {
        fields.next().ok_or(ProcParseError::Missing {
            file: FILE,
            field: name,
        })
    };
    let (local_ip, local_port) = parse_socket_addr(next("local_address")?)?;
    let (remote_ip, remote_port) = parse_socket_addr(next("rem_address")?)?;
    let st = next("st")?;
    let state = u8::from_str_radix(st, 16).map_err(|_| invalid(FILE, "st", st))?;
    Ok(Some(TcpEntry {
        local_ip,
        local_port,
        remote_ip,
        remote_port,
        state,
    }))
}

/// `ADDR:PORT` as the kernel prints it: the address is the raw network-order bytes printed as
/// native-endian 32-bit words (`%08X` per word: one for IPv4, four for IPv6), the port is
/// printed in host order. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) comes back as IPv4.
pub fn parse_socket_addr(s: &str) -> Result<(IpAddr, u16), ProcParseError> {
    const FILE: &str = "net/tcp";
    let (addr, port) = s
        .split_once(':')
        .ok_or_else(|| invalid(FILE, "address", s))?;
    let port = u16::from_str_radix(port, 16).map_err(|_| invalid(FILE, "port", s))?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            word(addr).ok_or_else(|| invalid(FILE, "address", s))?,
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let w = addr
                    .get(i * 8..i * 8 + 8)
                    .and_then(word)
                    .ok_or_else(|| invalid(FILE, "address", s))?;
                chunk.copy_from_slice(&w);
            }
            let v6 = Ipv6Addr::from(bytes);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return Err(invalid(FILE, "address", s)),
    };
    Ok((ip, port))
}

/// Eight hex digits → the four bytes in memory (network) order.
fn word(hex: &str) -> Option<[u8; 4]> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real lines (x86_64, little-endian) from /proc/net/tcp.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:4E3D 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31218 1 0000000000000000 100 0 0 10 0
   1: 0100007F:4E3D 0100007F:D6A2 01 00000000:00000000 00:00000000 00000000  1000        0 31890 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D6A2 0100007F:4E3D 01 00000000:00000000 00:00000000 00000000  1000        0 31889 1 0000000000000000 20 4 30 10 -1
   3: 0A00000A:4E3D 6401A8C0:C35A 01 00000000:00000000 02:000A7B2B 00000000  1000        0 41234 2 0000000000000000 22 4 29 10 7
   4: 0A00000A:4E3C 6401A8C0:C35B 06 00000000:00000000 03:00001680 00000000     0        0 0 3 0000000000000000
";

    // Real lines from /proc/net/tcp6: a LISTEN on [::]:20333, an IPv4-mapped peer
    // (::ffff:192.168.1.100) and a native IPv6 peer (2001:db8::1) on [2001:db8::5]:20333.
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:4F6D 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 22801 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000A00000A:4F6D 0000000000000000FFFF00006401A8C0:E4C2 01 00000000:00000000 02:00000E5A 00000000  1000        0 24588 2 0000000000000000 21 4 30 10 -1
   2: B80D0120000000000000000005000000:4F6D B80D0120000000000000000001000000:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 24590 1 0000000000000000 21 4 30 10 -1
";

    fn entries(text: &str) -> Vec<TcpEntry> {
        text.lines()
            .filter_map(|l| parse_tcp_line(l).unwrap())
            .collect()
    }

    #[test]
    fn tcp_v4_lines() {
        let e = entries(TCP);
        assert_eq!(e.len(), 5);
        // LISTEN on 0.0.0.0:20029 must not count as established
        assert_eq!(e[0].state, 0x0A);
        assert!(!e[0].is_established());
        assert_eq!(e[0].local_port, 20029);
        assert_eq!(e[0].local_ip, IpAddr::from([0, 0, 0, 0]));
        // server side of a loopback connection
        assert!(e[1].is_established());
        assert_eq!(e[1].local_ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!((e[1].local_port, e[1].remote_port), (20029, 54946));
        // the remote of a LAN peer: 6401A8C0 is 192.168.1.100
        assert_eq!(e[3].local_ip, IpAddr::from([10, 0, 0, 10]));
        assert_eq!(e[3].remote_ip, IpAddr::from([192, 168, 1, 100]));
        assert_eq!(e[3].remote_port, 0xC35A);
        // TIME_WAIT
        assert_eq!(e[4].state, 0x06);
        assert!(!e[4].is_established());
    }

    #[test]
    fn tcp_v6_lines() {
        let e = entries(TCP6);
        assert_eq!(e.len(), 3);
        assert!(!e[0].is_established());
        assert_eq!(e[0].local_ip, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(e[0].local_port, 20333);
        // IPv4-mapped becomes plain IPv4
        assert!(e[1].is_established());
        assert_eq!(e[1].remote_ip, IpAddr::from([192, 168, 1, 100]));
        assert_eq!(e[1].local_ip, IpAddr::from([10, 0, 0, 10]));
        assert_eq!(e[1].remote_ip.to_string(), "192.168.1.100");
        // native IPv6
        assert_eq!(
            e[2].remote_ip,
            "2001:db8::1".parse::<IpAddr>().unwrap(),
            "{}",
            e[2].remote_ip
        );
        assert_eq!(e[2].local_ip, "2001:db8::5".parse::<IpAddr>().unwrap());
        assert_eq!(e[2].remote_port, 40000);
        // loopback ::1 is 00000000 00000000 00000000 01000000
        let (ip, port) = parse_socket_addr("00000000000000000000000001000000:1111").unwrap();
        assert_eq!((ip, port), (IpAddr::V6(Ipv6Addr::LOCALHOST), 0x1111));
    }

    #[test]
    fn tcp_garbage_is_an_error() {
        assert!(parse_tcp_line("   0: 0100007F 0100007F:D6A2 01").is_err());
        assert!(parse_tcp_line("   0: 0100007G:4E3D 0100007F:D6A2 01").is_err());
        assert!(parse_tcp_line("   0: 0100007F:4E3D 0100007F:D6A2 ZZ").is_err());
        assert!(parse_tcp_line("   0: 0100007F:4E3D").is_err());
        assert!(parse_tcp_line("   0: 0100:4E3D 0100007F:D6A2 01").is_err());
        assert_eq!(parse_tcp_line("").unwrap(), None);
    }

    #[test]
    fn proc_stat() {
        let text = "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0
intr 1462898 0 0 0
ctxt 115315
btime 1700000000
";
        let t = parse_proc_stat(text).unwrap();
        assert_eq!(t.user, 10132153);
        assert_eq!(t.idle, 46828483);
        assert_eq!(t.iowait, 16683);
        assert_eq!(t.softirq, 25195);
        assert_eq!(
            t.total(),
            10132153 + 290696 + 3084719 + 46828483 + 16683 + 25195
        );
        let next = CpuTimes {
            user: t.user + 50,
            system: t.system + 10,
            idle: t.idle + 30,
            iowait: t.iowait + 10,
            ..t
        };
        let u = cpu_usage(&t, &next).unwrap();
        assert_eq!(u.busy_percent, 60.0);
        assert_eq!(u.iowait_percent, 10.0);
        assert_eq!(cpu_usage(&t, &t), None);
        assert_eq!(cpu_usage(&next, &t), None);
        // an old kernel with four fields
        let old = parse_proc_stat("cpu 1 2 3 4\n").unwrap();
        assert_eq!((old.idle, old.iowait), (4, 0));
        assert!(parse_proc_stat("cpu0 1 2 3 4\n").is_err());
        assert!(parse_proc_stat("cpu 1 2 x 4\n").is_err());
        assert!(parse_proc_stat("cpu 1 2\n").is_err());
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       16318412 kB
MemFree:          469144 kB
MemAvailable:    9871780 kB
Buffers:          512000 kB
Cached:          8651208 kB
SwapCached:            0 kB
HugePages_Total:       0
";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total_bytes, 16318412 * 1024);
        assert_eq!(m.available_bytes, 9871780 * 1024);
        assert_eq!(m.used_bytes(), (16318412 - 9871780) * 1024);
        // no MemAvailable (kernel < 3.14)
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n";
        assert_eq!(parse_meminfo(old).unwrap().available_bytes, 420 * 1024);
        assert!(matches!(
            parse_meminfo("MemFree: 1 kB\n"),
            Err(ProcParseError::Missing {
                field: "MemTotal",
                ..
            })
        ));
        assert!(parse_meminfo("MemTotal: lots kB\nMemAvailable: 1 kB\n").is_err());
    }

    #[test]
    fn pid_stat_and_status() {
        // a command name with a space and a parenthesis
        let stat = "4242 (neo node) x) S 1 4242 4242 0 -1 4194560 123 0 0 0 1500 250 0 0 20 0 42 0 9999 2147483648 51200 18446744073709551615";
        let s = parse_pid_stat(stat).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.cpu_ticks, 1750);
        let z = parse_pid_stat("7 (x) Z 1 7 7 0 -1 0 0 0 0 0 3 4 0 0").unwrap();
        assert_eq!((z.state, z.cpu_ticks), ('Z', 7));
        assert!(parse_pid_stat("7 (x) S 1 2").is_err());
        assert!(parse_pid_stat("garbage").is_err());

        let status = "Name:\tneo-node\nState:\tS (sleeping)\nVmPeak:\t 9000000 kB\nVmSize:\t 8000000 kB\nVmRSS:\t  524288 kB\nThreads:\t42\n";
        assert_eq!(parse_status_vmrss(status).unwrap(), Some(524288 * 1024));
        assert_eq!(parse_status_vmrss("Name:\tkthreadd\n").unwrap(), None);
        assert!(parse_status_vmrss("VmRSS:\tmany kB\n").is_err());
    }
}
