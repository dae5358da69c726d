//! The playbook's `block_ips.sh` and `enable_ddos_protection.sh` (its `iptables -m recent
//! --hitcount 10 --seconds 60` rate limit) as one nftables table the agent owns,
//! `table inet neo_ir`, replaced as a whole on every `firewall_apply` (never duplicated),
//! and `firewall_rollback` to the table it replaced (or none).
//!
//! Every blocklist entry must parse as an IP address or a CIDR network (the whole request is
//! refused otherwise, naming the entry and its index); the ruleset is rendered by a pure
//! function, checked with `nft -c -f` and applied with `nft -f`, atomically.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use neo_ir_core::runbook::{Plan, Step};
use serde_json::{json, Value};

use super::exec::{run_argv, Execution};
use super::service::{blocking, write_atomic};
use super::{Args, Ctx, Job, Outcome, Prepared, Refusal};

/// Most blocklist entries in one request.
pub const MAX_BLOCKLIST: usize = 65_536;
/// Most ports rate-limited.
pub const MAX_PORTS: usize = 64;
/// The shortest prefixes accepted (a wider block would cut off whole regions, or this
/// operator's own access).
pub const MIN_PREFIX_V4: u8 = 8;
pub const MIN_PREFIX_V6: u8 = 16;
/// The table the agent owns.
pub const TABLE: &str = "inet neo_ir";
const PREVIOUS: &str = "firewall-previous.nft";
const APPLY: &str = "firewall-apply.nft";
const ROLLBACK: &str = "firewall-rollback.nft";
/// What the rollback file holds when there was no table before.
const NO_TABLE: &str = "# neo-ir: there was no table inet neo_ir before firewall_apply\n";
const NFT_TIMEOUT: Duration = Duration::from_secs(60);

/// One blocked address or network, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Net {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Net::V4(a, 32) => write!(f, "{a}"),
            Net::V4(a, p) => write!(f, "{a}/{p}"),
            Net::V6(a, 128) => write!(f, "{a}"),
            Net::V6(a, p) => write!(f, "{a}/{p}"),
        }
    }
}

/// Parse `1.2.3.4`, `10.0.0.0/24`, `2001:db8::1`, `2001:db8::/32` — nothing else. Host bits
/// of a network are cleared; loopback, unspecified and too-wide networks are refused.
pub fn parse_net(s: &str) -> Result<Net, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("not an IP address or CIDR network".into());
            }
            (
                a,
                Some(p.parse::<u8>().map_err(|_| "invalid prefix length")?),
            )
        }
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| "not an IP address or CIDR network".to_string())?;
    let net = match ip {
        IpAddr::V4(a) => {
            let p = prefix.unwrap_or(32);
            if p > 32 {
                return Err("an IPv4 prefix is at most 32".into());
            }
            if p < MIN_PREFIX_V4 {
                return Err(format!("networks wider than /{MIN_PREFIX_V4} are refused"));
            }
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            let a = Ipv4Addr::from(u32::from(a) & mask);
            if a.is_unspecified() || a.octets()[0] == 127 {
                return Err("loopback and unspecified addresses are refused".into());
            }
            Net::V4(a, p)
        }
        IpAddr::V6(a) => {
            let p = prefix.unwrap_or(128);
            if p > 128 {
                return Err("an IPv6 prefix is at most 128".into());
            }
            if p < MIN_PREFIX_V6 {
                return Err(format!("networks wider than /{MIN_PREFIX_V6} are refused"));
            }
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            let a = Ipv6Addr::from(u128::from(a) & mask);
            if a.is_unspecified() || (u128::from(Ipv6Addr::LOCALHOST) & mask) == u128::from(a) {
                return Err("loopback and unspecified addresses are refused".into());
            }
            Net::V6(a, p)
        }
    };
    Ok(net)
}

/// What `firewall_apply` installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    /// Sorted, without duplicates.
    pub blocklist: Vec<Net>,
    /// New connections per source IP per minute on `ports`, beyond which they are dropped.
    pub rate_limit_per_minute: Option<u32>,
    /// Sorted, without duplicates.
    pub ports: Vec<u16>,
}

fn elements(out: &mut String, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str("\t\telements = {\n");
    for (i, chunk) in items.chunks(8).enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str("\t\t\t");
        out.push_str(&chunk.join(", "));
    }
    out.push_str("\n\t\t}\n");
}

/// The nftables file that replaces `table inet neo_ir` as a whole: blocklist sets (with
/// `flags interval`) whose sources are dropped, and per-source-IP meters that drop NEW
/// connections to `ports` beyond the rate. Starts by declaring and deleting the table, so
/// applying it twice replaces instead of duplicating; `nft -f` applies it atomically.
pub fn render_ruleset(spec: &FirewallSpec) -> String {
    let v4: Vec<String> = spec
        .blocklist
        .iter()
        .filter(|n| matches!(n, Net::V4(..)))
        .map(Net::to_string)
        .collect();
    let v6: Vec<String> = spec
        .blocklist
        .iter()
        .filter(|n| matches!(n, Net::V6(..)))
        .map(Net::to_string)
        .collect();
    let mut out = String::new();
    out.push_str("# neo-ir firewall_apply: replaces table inet neo_ir as a whole\n");
    out.push_str("table inet neo_ir\ndelete table inet neo_ir\ntable inet neo_ir {\n");
    for (name, ty, items) in [
        ("blocklist4", "ipv4_addr", &v4),
        ("blocklist6", "ipv6_addr", &v6),
    ] {
        let _ = writeln!(
            out,
            "\tset {name} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\tauto-merge"
        );
        elements(&mut out, items);
        out.push_str("\t}\n");
    }
    let limited = spec
        .rate_limit_per_minute
        .filter(|_| !spec.ports.is_empty());
    if limited.is_some() {
        for (name, ty) in [("ratelimit4", "ipv4_addr"), ("ratelimit6", "ipv6_addr")] {
            let _ = writeln!(
                out,
                "\tset {name} {{\n\t\ttype {ty}\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\
                 \t\ttimeout 1m\n\t}}"
            );
        }
    }
    out.push_str("\tchain input {\n\t\ttype filter hook input priority -5; policy accept;\n");
    out.push_str("\t\tip saddr @blocklist4 drop\n\t\tip6 saddr @blocklist6 drop\n");
    if let Some(rate) = limited {
        let ports = spec
            .ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        for (set, addr) in [("ratelimit4", "ip saddr"), ("ratelimit6", "ip6 saddr")] {
            let _ = writeln!(
                out,
                "\t\ttcp dport {{ {ports} }} ct state new update @{set} \
                 {{ {addr} limit rate over {rate}/minute burst {rate} packets }} drop"
            );
        }
    }
    out.push_str("\t}\n}\n");
    out
}

/// Read the request's `blocklist`, `rate_limit_per_minute` and `ports`.
fn spec_from_args(args: &Value, default_ports: &[u16]) -> Result<FirewallSpec, Refusal> {
    let bad = |m: String| Refusal::InvalidArgs(m);
    let mut a = Args::new(args)?;
    let list = match a.get("blocklist") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(bad("argument blocklist must be an array of strings".into())),
    };
    if list.len() > MAX_BLOCKLIST {
        return Err(bad(format!(
            "argument blocklist has {} entries; at most {MAX_BLOCKLIST}",
            list.len()
        )));
    }
    let mut blocklist = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Some(s) = item.as_str() else {
            return Err(bad(format!("blocklist[{i}] must be a string")));
        };
        let net = parse_net(s).map_err(|why| {
            bad(format!(
                "blocklist[{i}] {:?}: {why}",
                neo_ir_core::text::clip(s, 80)
            ))
        })?;
        blocklist.push(net);
    }
    blocklist.sort_unstable();
    blocklist.dedup();
    let rate = match a.get("rate_limit_per_minute") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100_000) => Some(n as u32),
            _ => {
                return Err(bad(
                    "argument rate_limit_per_minute must be an integer from 1 to 100000 \
                     (or null: no rate limit)"
                        .into(),
                ))
            }
        },
    };
    let mut ports = match a.get("ports") {
        None => default_ports.to_vec(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_PORTS {
                return Err(bad(format!("argument ports: at most {MAX_PORTS} ports")));
            }
            let mut ports = Vec::new();
            for (i, p) in items.iter().enumerate() {
                match p.as_u64() {
                    Some(n @ 1..=65_535) => ports.push(n as u16),
                    _ => return Err(bad(format!("ports[{i}] must be a port from 1 to 65535"))),
                }
            }
            ports
        }
        Some(_) => return Err(bad("argument ports must be an array of ports".into())),
    };
    a.done()?;
    ports.sort_unstable();
    ports.dedup();
    if rate.is_some() && ports.is_empty() {
        return Err(bad(
            "argument ports is empty: the rate limit needs at least one port".into(),
        ));
    }
    if blocklist.is_empty() && rate.is_none() {
        return Err(bad(
            "nothing to apply: give a blocklist, a rate_limit_per_minute, or both (to remove \
             the rules, use firewall_rollback)"
                .into(),
        ));
    }
    Ok(FirewallSpec {
        blocklist,
        rate_limit_per_minute: rate,
        ports,
    })
}

fn state_dir(ctx: &Ctx) -> Result<PathBuf, Refusal> {
    ctx.cfg.state_dir.clone().ok_or_else(|| {
        Refusal::Unsupported(
            "firewall operations need a state directory for the rollback file: start the \
             agent with --state-dir DIR"
                .into(),
        )
    })
}

fn nft_step(ctx: &Ctx, name: &str, args: &[&str], destructive: bool) -> Step {
    let mut argv: Vec<&str> = ctx.cfg.nft.iter().map(String::as_str).collect();
    argv.extend_from_slice(args);
    Step::exec(name, &argv, NFT_TIMEOUT, destructive)
}

/// `firewall_apply`: the file to write and the ruleset.
pub(crate) struct ApplyJob {
    state: PathBuf,
    ruleset: String,
    spec: FirewallSpec,
}

/// `firewall_rollback`: the file to write and what it restores.
pub(crate) struct RollbackJob {
    state: PathBuf,
    content: String,
    had_table: bool,
}

pub(crate) fn prepare_apply(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    let default_ports = [ctx.cfg.p2p_port, ctx.cfg.rpc_port];
    let spec = spec_from_args(args, &default_ports)?;
    let state = state_dir(ctx)?;
    let ruleset = render_ruleset(&spec);
    let file = state.join(APPLY);
    let file_s = file.display().to_string();
    let nft = super::argv_text(&ctx.cfg.nft);
    let steps = vec![
        Step::builtin(
            "save",
            "save",
            format!(
                "{nft} -s list table {TABLE} > {} (or record that there is no such table), \
                 for firewall_rollback",
                state.join(PREVIOUS).display()
            ),
            NFT_TIMEOUT,
            false,
        ),
        Step::builtin(
            "write",
            "write",
            format!("write {file_s}:\n{ruleset}"),
            Duration::from_secs(30),
            false,
        ),
        nft_step(ctx, "check", &["-c", "-f", &file_s], false),
        nft_step(ctx, "apply", &["-f", &file_s], true),
    ];
    let notes = vec![format!(
        "the ruleset replaces table {TABLE} as a whole; firewall_rollback restores the table \
         it replaced"
    )];
    Ok(Prepared {
        plan: Plan { steps, notes },
        preview: json!({"ruleset": ruleset}),
        job: Job::FirewallApply(ApplyJob {
            state,
            ruleset,
            spec,
        }),
    })
}

pub(crate) fn prepare_rollback(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let state = state_dir(ctx)?;
    let saved_path = state.join(PREVIOUS);
    let saved = match std::fs::read_to_string(&saved_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Refusal::Unsupported(format!(
                "nothing to roll back: no firewall_apply saved a previous table in {}",
                state.display()
            )))
        }
        Err(e) => {
            return Err(Refusal::Unsupported(format!(
                "reading {}: {e}",
                saved_path.display()
            )))
        }
    };
    let had_table = saved != NO_TABLE;
    if had_table && !saved.trim_start().starts_with("table inet neo_ir {") {
        return Err(Refusal::Unsupported(format!(
            "{} does not hold a saved table inet neo_ir; refusing to load it",
            saved_path.display()
        )));
    }
    let mut content = format!("table {TABLE}\ndelete table {TABLE}\n");
    if had_table {
        content.push_str(&saved);
    }
    let file = state.join(ROLLBACK);
    let file_s = file.display().to_string();
    let what = if had_table {
        format!("restore the table saved in {}", saved_path.display())
    } else {
        format!("delete table {TABLE} (there was none before)")
    };
    let steps = vec![
        Step::builtin(
            "write",
            "write",
            format!("write {file_s} to {what}:\n{content}"),
            Duration::from_secs(30),
            false,
        ),
        nft_step(ctx, "check", &["-c", "-f", &file_s], false),
        nft_step(ctx, "apply", &["-f", &file_s], true),
    ];
    Ok(Prepared {
        plan: Plan {
            steps,
            notes: vec![],
        },
        preview: json!({"restores_previous_table": had_table, "ruleset": content}),
        job: Job::FirewallRollback(RollbackJob {
            state,
            content,
            had_table,
        }),
    })
}

async fn write_file(path: PathBuf, text: String) -> Result<((), String), String> {
    let shown = path.display().to_string();
    let n = text.len();
    blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_atomic(&path, text.as_bytes())
    })
    .await?
    .map_err(|e| format!("writing {shown}: {e}"))?;
    Ok(((), format!("wrote {shown} ({n} bytes)")))
}

/// Where loading a ruleset stopped.
enum Load {
    /// Not written, or refused by `nft -c`: nothing changed.
    NotAccepted,
    /// `nft -f` failed (it applies all or nothing).
    NotApplied,
}

/// The `write`, `check` and `apply` steps: write `text` to `path`, `nft -c -f` it, `nft -f` it.
async fn load(exec: &mut Execution, path: PathBuf, text: String) -> Result<(), Load> {
    if exec.builtin("write", write_file(path, text)).await.is_err()
        || exec.exec("check").await.is_err()
    {
        return Err(Load::NotAccepted);
    }
    exec.exec("apply")
        .await
        .map(|_| ())
        .map_err(|_| Load::NotApplied)
}

pub(crate) async fn apply(ctx: &Ctx, job: ApplyJob, exec: &mut Execution) -> Outcome {
    let mut report = json!({
        "ruleset": job.ruleset,
        "blocked": job.spec.blocklist.len(),
        "rate_limit_per_minute": job.spec.rate_limit_per_minute,
        "ports": job.spec.ports,
        "file": job.state.join(APPLY).display().to_string(),
    });
    let (state, nft) = (job.state.clone(), ctx.cfg.nft.clone());
    let saved = exec
        .builtin("save", async move {
            let mut argv = nft;
            argv.extend(["-s", "list", "table", "inet", "neo_ir"].map(String::from));
            let out = run_argv(&argv, NFT_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let (had, text) = match out.exit_code {
                Some(0) => (true, out.stdout.clone()),
                // nft says "No such file or directory" for a missing table
                Some(1) if out.stderr.contains("No such file or directory") => {
                    (false, NO_TABLE.to_string())
                }
                _ => {
                    return Err(format!(
                        "{} -s list table {TABLE} failed: {}",
                        argv[0],
                        out.combined()
                    ))
                }
            };
            write_file(state.join(PREVIOUS), text).await?;
            let what = if had {
                "saved the current table"
            } else {
                "there is no table yet; recorded that"
            };
            Ok((had, format!("{what} in {}", state.join(PREVIOUS).display())))
        })
        .await;
    let Ok(had_table) = saved else {
        return Outcome::new(
            false,
            report,
            "the current rules could not be saved; nothing applied",
        );
    };
    report["replaced_table"] = json!(had_table);
    match load(exec, job.state.join(APPLY), job.ruleset.clone()).await {
        Ok(()) => {}
        Err(Load::NotAccepted) => {
            return Outcome::new(
                false,
                report,
                "the ruleset was not accepted; nothing applied",
            )
        }
        Err(Load::NotApplied) => {
            return Outcome::new(false, report, "nft could not apply the ruleset")
        }
    }
    let rate = match job.spec.rate_limit_per_minute {
        Some(r) => format!(
            "; new connections limited to {r}/minute per IP on ports {}",
            job.spec
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    Outcome::new(
        true,
        report,
        format!(
            "firewall applied: {} addresses or networks blocked{rate}",
            job.spec.blocklist.len()
        ),
    )
}

pub(crate) async fn rollback(_ctx: &Ctx, job: RollbackJob, exec: &mut Execution) -> Outcome {
    let report = json!({"restored_previous_table": job.had_table, "ruleset": job.content});
    match load(exec, job.state.join(ROLLBACK), job.content.clone()).await {
        Ok(()) => {}
        Err(Load::NotAccepted) => {
            return Outcome::new(
                false,
                report,
                "the rollback file was not accepted; nothing changed",
            )
        }
        Err(Load::NotApplied) => {
            return Outcome::new(false, report, "nft could not apply the rollback")
        }
    }
    let summary = if job.had_table {
        "firewall rolled back to the table before the last firewall_apply"
    } else {
        "firewall rolled back: table inet neo_ir removed"
    };
    Outcome::new(true, report, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_networks_only() {
        assert_eq!(parse_net("1.2.3.4"), Ok(Net::V4([1, 2, 3, 4].into(), 32)));
        assert_eq!(
            parse_net("10.0.0.77/24"),
            Ok(Net::V4([10, 0, 0, 0].into(), 24))
        );
        assert_eq!(
            parse_net("2001:db8::1").map(|n| n.to_string()),
            Ok("2001:db8::1".into())
        );
        assert_eq!(
            parse_net("2001:db8:ffff::1/32").map(|n| n.to_string()),
            Ok("2001:db8::/32".into())
        );
        for bad in [
            "1.2.3.4; rm -rf /",
            "$(id)",
            "999.1.1.1",
            "-f",
            "",
            " 1.2.3.4",
            "1.2.3.4/",
            "1.2.3.4/33",
            "1.2.3.4/+8",
            "1.2.3.4/24/1",
            "0.0.0.0/0",
            "1.0.0.0/7",
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "::/0",
            "::",
            "example.com",
            "1.2.3.4\n",
        ] {
            assert!(parse_net(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ruleset_snapshot() {
        let spec = spec_from_args(
            &json!({
                "blocklist": ["10.0.0.9/24", "1.2.3.4", "2001:db8::1", "1.2.3.4",
                              "5.5.5.5", "6.6.6.6", "7.7.7.7", "8.8.8.8", "9.9.9.9",
                              "11.1.1.1", "12.1.1.1"],
                "rate_limit_per_minute": 10
            }),
            &[20333, 20332],
        )
        .unwrap();
        assert_eq!(
            render_ruleset(&spec),
            "# neo-ir firewall_apply: replaces table inet neo_ir as a whole
table inet neo_ir
delete table inet neo_ir
table inet neo_ir {
\tset blocklist4 {
\t\ttype ipv4_addr
\t\tflags interval
\t\tauto-merge
\t\telements = {
\t\t\t1.2.3.4, 5.5.5.5, 6.6.6.6, 7.7.7.7, 8.8.8.8, 9.9.9.9, 10.0.0.0/24, 11.1.1.1,
\t\t\t12.1.1.1
\t\t}
\t}
\tset blocklist6 {
\t\ttype ipv6_addr
\t\tflags interval
\t\tauto-merge
\t\telements = {
\t\t\t2001:db8::1
\t\t}
\t}
\tset ratelimit4 {
\t\ttype ipv4_addr
\t\tsize 65535
\t\tflags dynamic,timeout
\t\ttimeout 1m
\t}
\tset ratelimit6 {
\t\ttype ipv6_addr
\t\tsize 65535
\t\tflags dynamic,timeout
\t\ttimeout 1m
\t}
\tchain input {
\t\ttype filter hook input priority -5; policy accept;
\t\tip saddr @blocklist4 drop
\t\tip6 saddr @blocklist6 drop
\t\ttcp dport { 20332, 20333 } ct state new update @ratelimit4 { ip saddr limit rate over 10/minute burst 10 packets } drop
\t\ttcp dport { 20332, 20333 } ct state new update @ratelimit6 { ip6 saddr limit rate over 10/minute burst 10 packets } drop
\t}
}
"
        );
        // a blocklist only: no meters
        let spec = spec_from_args(&json!({"blocklist": ["1.2.3.4"]}), &[1]).unwrap();
        let r = render_ruleset(&spec);
        assert!(!r.contains("ratelimit") && r.contains("1.2.3.4"), "{r}");
        assert!(!r.contains(
            "blocklist6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements"
        ));
    }

    #[test]
    fn refuses_bad_requests_naming_the_entry() {
        let e = |v: Value| spec_from_args(&v, &[1]).unwrap_err().to_string();
        let m = e(json!({"blocklist": ["1.2.3.4", "1.2.3.4; rm -rf /"]}));
        assert!(m.contains("blocklist[1]") && m.contains("rm -rf"), "{m}");
        assert!(e(json!({"blocklist": [1]})).contains("blocklist[0] must be a string"));
        assert!(e(json!({"blocklist": "1.2.3.4"})).contains("array"));
        assert!(e(json!({})).contains("nothing to apply"));
        assert!(e(json!({"rate_limit_per_minute": 0})).contains("rate_limit_per_minute"));
        assert!(e(json!({"rate_limit_per_minute": 5, "ports": []})).contains("ports"));
        assert!(e(json!({"rate_limit_per_minute": 5, "ports": [70000]})).contains("ports[0]"));
        assert!(e(json!({"blocklist": ["1.2.3.4"], "table": "filter"})).contains("\"table\""));
        let many: Vec<String> = (0..=MAX_BLOCKLIST)
            .map(|i| format!("10.{}.{}.1", i / 256 % 256, i % 256))
            .collect();
        assert!(e(json!({"blocklist": many})).contains("at most 65536"));
    }
}
