//! The playbook's `incident_diagnostics.sh` as one archive, and the redaction every text in
//! it goes through first: values of keys named like passwords, secrets, tokens, private
//! keys, WIFs and `Authorization`, and the `user:pass@` part of URLs become `<redacted>`.
//!
//! `diagnostics_dir/incident-diagnostics-<UTC>.tar.gz` holds, under one directory:
//! `report.json` (the agent's report), `uptime.txt`, `meminfo.txt`, `disk.txt`,
//! `service.txt`, `connections.txt`, `node-rpc.json` (getblockcount, getversion, getpeers,
//! getconnectioncount; errors recorded), `errors.log`, `metrics.txt` (process_cpu,
//! process_resident_memory and neo_ lines), `data-sizes.txt` (`du -s` of each top-level
//! entry of the data directory) and `MANIFEST.txt`. A part that cannot be read says why in
//! its file; the archive is still written. Archives up to 4 MiB also travel in the answer
//! (base64), so the controller can attach them to the incident.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use neo_ir_core::runbook::{Plan, Step};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::exec::{run_argv, Execution};
use super::service::{blocking, write_atomic};
use super::{fsutil, rpc, Args, Ctx, Job, Outcome, Prepared, Refusal};
use crate::collect::disk;
use crate::config::Service;

/// Archive names: `incident-diagnostics-<yyyymmddThhmmssZ>.tar.gz`.
pub const ARCHIVE_PREFIX: &str = "incident-diagnostics-";
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
/// Largest archive carried in the answer as base64.
pub const MAX_INLINE_ARCHIVE: u64 = 4 << 20;
/// Error lines collected.
const ERROR_LINES: usize = 100;
const RPC_TIMEOUT: Duration = Duration::from_secs(3);
const COLLECT_TIMEOUT: Duration = Duration::from_secs(180);
/// Metric families kept from the node's Prometheus page.
const METRIC_PREFIXES: [&str; 3] = ["process_cpu", "process_resident_memory", "neo_"];

/// Key names whose values are secrets (matched case-insensitively as substrings of the key).
const SECRET_KEY_PARTS: [&str; 14] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "wif",
    "privatekey",
    "private_key",
    "private-key",
    "privkey",
    "apikey",
    "api_key",
    "api-key",
];

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// `text` with secrets replaced by `<redacted>`: the value after `key=`, `key:`,
/// `"key": "..."` or `--key VALUE` when the key names a secret (password, passwd, secret,
/// token, authorization — the whole header value —, wif, private key, api key), and the
/// user information of URLs (`http://user:pass@host` → `http://<redacted>@host`).
pub fn redact(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| redact_key_values(&redact_url_userinfo(line)))
        .collect()
}

fn is_secret_key(key: &str) -> bool {
    let k = key.trim_start_matches('-').to_ascii_lowercase();
    k == "pass" || k == "pwd" || SECRET_KEY_PARTS.iter().any(|p| k.contains(p))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

fn redact_url_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(k) = rest.find("://") {
        let start = k + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| c.is_whitespace() || "/?#\"'<>".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn redact_key_values(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let (mut i, mut copied) = (0usize, 0usize);
    while i < b.len() {
        if !is_key_byte(b[i]) || (i > 0 && is_key_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_key_byte(b[i]) {
            i += 1;
        }
        let key = &line[start..i];
        if !is_secret_key(key) {
            continue;
        }
        let flag = key.starts_with('-');
        let mut p = i;
        if p < b.len() && (b[p] == b'"' || b[p] == b'\'') {
            p += 1;
        }
        let before_space = p;
        while p < b.len() && (b[p] == b' ' || b[p] == b'\t') {
            p += 1;
        }
        if p < b.len() && (b[p] == b'=' || b[p] == b':') {
            p += 1;
        } else if !(flag && p > before_space) {
            // `--password VALUE` needs the space; anything else needs `=` or `:`
            continue;
        }
        while p < b.len() && (b[p] == b' ' || b[p] == b'\t') {
            p += 1;
        }
        if p >= b.len() {
            continue;
        }
        let (vs, ve) = if b[p] == b'"' || b[p] == b'\'' {
            let q = b[p];
            let mut e = p + 1;
            while e < b.len() && b[e] != q {
                e += if b[e] == b'\\' { 2 } else { 1 };
            }
            (p + 1, e.min(b.len()))
        } else if key.to_ascii_lowercase().contains("authorization") {
            // `Authorization: Bearer xyz`: the scheme and the credentials, up to the end of
            // the line or a quote or backslash (the end of the string the header sits in:
            // `-H 'Authorization: ...'`, a JSON string)
            let end = b[p..]
                .iter()
                .position(|c| b"\"'\\\r\n".contains(c))
                .map_or(b.len(), |k| p + k);
            (p, end)
        } else {
            let mut e = p;
            while e < b.len() && !(b[e].is_ascii_whitespace() || b",;&)}]\"'".contains(&b[e])) {
                e += 1;
            }
            (p, e)
        };
        if ve <= vs || &line[vs..ve] == REDACTED {
            i = i.max(p);
            continue;
        }
        out.push_str(&line[copied..vs]);
        out.push_str(REDACTED);
        copied = ve;
        i = ve;
    }
    out.push_str(&line[copied..]);
    out
}

/// `diagnostics`: where the archive goes.
pub(crate) struct DiagJob {
    dir: PathBuf,
    name: String,
}

pub(crate) fn prepare(ctx: &Ctx, args: &Value) -> Result<Prepared, Refusal> {
    Args::new(args)?.done()?;
    let dir = ctx.cfg.diagnostics_dir.clone().ok_or_else(|| {
        Refusal::Unsupported(
            "diagnostics need a directory for the archive: start the agent with \
             --diagnostics-dir DIR"
                .into(),
        )
    })?;
    let name = super::fresh_stamped_name(&dir, ARCHIVE_PREFIX, ARCHIVE_SUFFIX);
    let cfg = &ctx.cfg;
    let service = match cfg.effective_service() {
        Some(Service::Systemd { unit }) => format!("systemctl status {unit} --no-pager"),
        Some(Service::Process { pid_file, .. }) => {
            format!("the pid in {} and /proc/<pid>", pid_file.display())
        }
        None => "no service configured".to_string(),
    };
    let steps = vec![
        Step::builtin(
            "collect",
            "collect",
            format!(
                "collect report.json (the agent's report), uptime.txt, meminfo.txt, disk.txt \
                 ({data} and {diag}), service.txt ({service}), connections.txt, node-rpc.json \
                 (getblockcount, getversion, getpeers, getconnectioncount from 127.0.0.1:{port}), \
                 errors.log (last {ERROR_LINES} error lines), metrics.txt ({metrics}, \
                 process_cpu, process_resident_memory and neo_ lines), data-sizes.txt (each \
                 top-level entry of {data}), MANIFEST.txt; secrets redacted in every file",
                data = cfg.data_dir.display(),
                diag = dir.display(),
                port = cfg.rpc_port,
                metrics = metrics_url(ctx),
            ),
            COLLECT_TIMEOUT,
            false,
        ),
        Step::builtin(
            "archive",
            "archive",
            format!("write {} (tar.gz)", dir.join(&name).display()),
            Duration::from_secs(60),
            false,
        ),
    ];
    Ok(Prepared {
        plan: Plan {
            steps,
            notes: vec![],
        },
        preview: json!({"name": name}),
        job: Job::Diagnostics(DiagJob { dir, name }),
    })
}

fn metrics_url(ctx: &Ctx) -> String {
    ctx.cfg
        .metrics_url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}/metrics", ctx.cfg.rpc_port))
}

/// One file of the archive.
struct Part {
    name: &'static str,
    text: String,
}

pub(crate) async fn execute(ctx: &Ctx, job: DiagJob, exec: &mut Execution) -> Outcome {
    let collected = exec
        .builtin("collect", async {
            let parts = collect(ctx).await;
            let out = parts
                .iter()
                .map(|p| format!("{} ({} bytes)", p.name, p.text.len()))
                .collect::<Vec<_>>()
                .join("\n");
            Ok((parts, out))
        })
        .await;
    let Ok(parts) = collected else {
        return Outcome::new(
            false,
            json!({"name": job.name}),
            "diagnostics could not be collected",
        );
    };
    let files: Vec<String> = parts.iter().map(|p| p.name.to_string()).collect();
    let (dir, name) = (job.dir.clone(), job.name.clone());
    let written = exec
        .builtin("archive", async move {
            blocking(move || write_archive(&dir, &name, parts)).await?
        })
        .await;
    match written {
        Ok(w) => {
            let bytes = w.bytes;
            let mut report = json!({
                "name": job.name,
                "path": job.dir.join(&job.name).display().to_string(),
                "bytes": bytes,
                "sha256": w.sha256,
                "files": files,
            });
            if let Some(b64) = w.inline {
                report["archive_base64"] = json!(b64);
            }
            Outcome::new(
                true,
                report,
                format!(
                    "diagnostics archive {} written ({bytes} bytes, {} files)",
                    job.name,
                    files.len()
                ),
            )
        }
        Err(_) => Outcome::new(
            false,
            json!({"name": job.name, "files": files}),
            "the diagnostics archive could not be written",
        ),
    }
}

/// Every file's text, redacted. Parts fail on their own, into their file.
async fn collect(ctx: &Ctx) -> Vec<Part> {
    let cfg = ctx.cfg.clone();
    let report = ctx.collector.report().await;
    let mut parts = Vec::new();
    let report_json = serde_json::to_string_pretty(&report).unwrap_or_default();
    parts.push(Part {
        name: "report.json",
        text: report_json,
    });

    let root = cfg.proc_root.clone();
    let read = |rel: &str| {
        std::fs::read_to_string(root.join(rel))
            .unwrap_or_else(|e| format!("(reading /proc/{rel}: {e})\n"))
    };
    let uptime = read("uptime");
    let secs = uptime
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|s| s as u64);
    let mut up = match secs {
        Some(s) => format!(
            "up {}d {}h {}m ({s} s)\n",
            s / 86_400,
            s % 86_400 / 3600,
            s % 3600 / 60
        ),
        None => format!("uptime: {uptime}"),
    };
    up.push_str(&format!("load average: {}", read("loadavg")));
    parts.push(Part {
        name: "uptime.txt",
        text: up,
    });
    parts.push(Part {
        name: "meminfo.txt",
        text: read("meminfo"),
    });

    let diag = ctx.cfg.diagnostics_dir.clone().unwrap_or_default();
    let mut disk_text = String::new();
    for d in [disk(&cfg.data_dir), disk(&diag)] {
        disk_text.push_str(&match (d.total_bytes, d.available_bytes, d.free_bytes) {
            (Some(t), Some(a), Some(f)) => format!(
                "{}: total {t} bytes, available {a} bytes, free {f} bytes ({:.1}% used)\n",
                d.path,
                if t > 0 {
                    100.0 * (t - f) as f64 / t as f64
                } else {
                    0.0
                }
            ),
            _ => format!("{}: {}\n", d.path, d.error.unwrap_or_default()),
        });
    }
    parts.push(Part {
        name: "disk.txt",
        text: disk_text,
    });

    parts.push(Part {
        name: "service.txt",
        text: service_text(ctx).await,
    });

    let c = &report.connections;
    let mut conn = format!(
        "p2p port {}: {} established\nrpc port {}: {} established\n",
        c.p2p_port,
        opt(c.p2p_established),
        c.rpc_port,
        opt(c.rpc_established)
    );
    if let Some(e) = &c.error {
        conn.push_str(&format!("error: {e}\n"));
    }
    conn.push_str("\ntop remote IPs (p2p rpc):\n");
    for r in &c.by_remote_ip {
        conn.push_str(&format!("{} {} {}\n", r.ip, r.p2p, r.rpc));
    }
    parts.push(Part {
        name: "connections.txt",
        text: conn,
    });

    let mut answers = serde_json::Map::new();
    for method in [
        "getblockcount",
        "getversion",
        "getpeers",
        "getconnectioncount",
    ] {
        let a = match rpc::call(&ctx.http, cfg.rpc_port, method, json!([]), RPC_TIMEOUT).await {
            Ok(v) => json!({"result": v}),
            Err(e) => json!({"error": e}),
        };
        answers.insert(method.into(), a);
    }
    parts.push(Part {
        name: "node-rpc.json",
        text: serde_json::to_string_pretty(&Value::Object(answers)).unwrap_or_default(),
    });

    parts.push(Part {
        name: "errors.log",
        text: error_lines(ctx, &report).await,
    });

    let url = metrics_url(ctx);
    let metrics = match rpc::get_text(&ctx.http, &url, RPC_TIMEOUT).await {
        Ok(t) => {
            let kept: Vec<&str> = t
                .lines()
                .filter(|l| METRIC_PREFIXES.iter().any(|p| l.starts_with(p)))
                .collect();
            format!("{}\n", kept.join("\n"))
        }
        Err(e) => format!("(metrics unavailable: {e})\n"),
    };
    parts.push(Part {
        name: "metrics.txt",
        text: metrics,
    });

    let data = cfg.data_dir.clone();
    let sizes = blocking(move || data_sizes(&data))
        .await
        .unwrap_or_else(|e| format!("({e})\n"));
    parts.push(Part {
        name: "data-sizes.txt",
        text: sizes,
    });

    for p in &mut parts {
        p.text = redact(&p.text);
    }
    let mut manifest = format!(
        "neo-ir incident diagnostics\nhost: {}\ntaken: {}\nagent: {}\nsecrets: values of \
         password, passwd, secret, token, authorization, wif, private key and api key entries \
         and URL credentials are replaced by {REDACTED}\n\nfile\tbytes\tsha256\n",
        report.hostname, report.at, report.agent_version
    );
    for p in &parts {
        manifest.push_str(&format!(
            "{}\t{}\t{}\n",
            p.name,
            p.text.len(),
            hex::encode(Sha256::digest(p.text.as_bytes()))
        ));
    }
    parts.push(Part {
        name: "MANIFEST.txt",
        text: redact(&manifest),
    });
    parts
}

fn opt(v: Option<u32>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "unknown".into())
}

async fn service_text(ctx: &Ctx) -> String {
    let Ok(svc) = ctx.service() else {
        return "no node service configured\n".into();
    };
    let mut text = match svc.status().await {
        Ok(st) => format!(
            "backend: {}\nrunning: {}\npid: {}\ndetail: {}\n",
            svc.backend(),
            st.running,
            st.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            st.detail
        ),
        Err(e) => format!("backend: {}\nstatus unknown: {e}\n", svc.backend()),
    };
    if let Service::Systemd { unit } = &svc.service {
        let argv: Vec<String> = ["systemctl", "status", unit, "--no-pager"]
            .map(String::from)
            .to_vec();
        text.push_str("\n$ systemctl status --no-pager\n");
        match run_argv(&argv, Duration::from_secs(10)).await {
            Ok(out) => text.push_str(&out.combined()),
            Err(e) => text.push_str(&e.to_string()),
        }
        text.push('\n');
    }
    text
}

async fn error_lines(ctx: &Ctx, report: &crate::report::AgentReport) -> String {
    let cfg = &ctx.cfg;
    let lines = if let Some(path) = cfg.log_file.clone() {
        blocking(move || {
            crate::logscan::log_file_errors(&path, ERROR_LINES).map_err(|e| e.to_string())
        })
        .await
        .and_then(|r| r)
    } else if let Some(Service::Systemd { unit }) = cfg.effective_service() {
        let argv: Vec<String> = [
            "journalctl",
            "-u",
            &unit,
            "-p",
            "err",
            "-n",
            "100",
            "--no-pager",
            "-o",
            "cat",
        ]
        .map(String::from)
        .to_vec();
        run_argv(&argv, Duration::from_secs(10))
            .await
            .map(|o| crate::logscan::last_lines(o.stdout.lines(), ERROR_LINES))
            .map_err(|e| e.to_string())
    } else {
        Ok(report.errors.lines.clone())
    };
    match lines {
        Ok(l) if l.is_empty() => "(no error lines)\n".into(),
        Ok(l) => format!("{}\n", l.join("\n")),
        Err(e) => format!("(error lines unavailable: {e})\n"),
    }
}

/// `du -s`-like sizes of the data directory's top-level entries.
fn data_sizes(data: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let entries = match std::fs::read_dir(data) {
        Ok(e) => e,
        Err(e) => return format!("({}: {e})\n", data.display()),
    };
    let mut rows: Vec<(String, String)> = entries
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let size = match fsutil::size_of(&e.path(), deadline) {
                Ok(b) => b.to_string(),
                Err(err) => format!("? ({err})"),
            };
            (name, size)
        })
        .collect();
    rows.sort();
    let mut out = format!("bytes\tentry of {}\n", data.display());
    for (name, size) in rows {
        out.push_str(&format!("{size}\t{name}\n"));
    }
    out
}

/// A written archive: its size, sha256, and base64 when small enough.
struct Written {
    bytes: u64,
    sha256: String,
    inline: Option<String>,
}

/// Write the tar.gz.
fn write_archive(
    dir: &std::path::Path,
    name: &str,
    parts: Vec<Part>,
) -> Result<(Written, String), String> {
    let folder = name.trim_end_matches(ARCHIVE_SUFFIX);
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for p in &parts {
        let mut h = tar::Header::new_gnu();
        h.set_size(p.text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(now);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{folder}/{}", p.name), p.text.as_bytes())
            .map_err(|e| format!("archiving {}: {e}", p.name))?;
    }
    let bytes = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| format!("compressing: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(name);
    write_atomic(&path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let n = bytes.len() as u64;
    let inline = (n <= MAX_INLINE_ARCHIVE).then(|| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    });
    let out = format!("wrote {} ({n} bytes, sha256 {sha})", path.display());
    Ok((
        Written {
            bytes: n,
            sha256: sha,
            inline,
        },
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        let cases = [
            ("password=hunter2", "password=<redacted>"),
            (
                "db_password = hunter2 next",
                "db_password = <redacted> next",
            ),
            (
                r#"{"Password": "hun\"ter2", "user": "bob"}"#,
                r#"{"Password": "<redacted>", "user": "bob"}"#,
            ),
            ("RPC_TOKEN: abc123", "RPC_TOKEN: <redacted>"),
            ("Authorization: Bearer abc.def", "Authorization: <redacted>"),
            (
                r#"  "ERROR auth: Authorization: Bearer abc", "#,
                r#"  "ERROR auth: Authorization: <redacted>", "#,
            ),
            (
                "curl -H 'authorization: Basic dTpw' x",
                "curl -H 'authorization: <redacted>' x",
            ),
            (
                "node --password hunter2 --port 1",
                "node --password <redacted> --port 1",
            ),
            (
                "wif=KxDgvEKzgSBPPfuVfw67oPQBSjidEiqTHURKSDL1R7yGaGYAeYnr",
                "wif=<redacted>",
            ),
            ("private_key: 0xdeadbeef", "private_key: <redacted>"),
            (
                "GET /x?access_token=abc&page=2",
                "GET /x?access_token=<redacted>&page=2",
            ),
            ("secret=a,secret2=b", "secret=<redacted>,secret2=<redacted>"),
            (
                "connect http://u:pw@host:8080/rpc failed",
                "connect http://<redacted>@host:8080/rpc failed",
            ),
            (
                "postgres://neo:s3cr3t@db/neo and https://h/ok",
                "postgres://<redacted>@db/neo and https://h/ok",
            ),
            (
                "ERROR block 5 failed: bad hash",
                "ERROR block 5 failed: bad hash",
            ),
            ("public key: 02abc", "public key: 02abc"),
            ("password=<redacted>", "password=<redacted>"),
            ("password:", "password:"),
            ("keypassword=é1 ü", "keypassword=<redacted> ü"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
        let multi = "a password=x\nb token=y\n";
        assert_eq!(redact(multi), "a password=<redacted>\nb token=<redacted>\n");
    }
}
