//! emergency_cleanup and diagnostics: exactly the listed rotated logs and old archives go,
//! chain data, temp files and backups stay; the diagnostics archive holds every file, with
//! the stand-in node's secrets redacted.

use std::io::Read;

use base64::Engine as _;
use serde_json::json;
use sha2::Digest;

use super::*;
use crate::Agent;

fn write(p: &Path, bytes: usize) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, vec![b'x'; bytes]).unwrap();
}

#[tokio::test]
async fn emergency_cleanup_frees_only_what_it_may() {
    let site = Site::new();
    let logs = site.path("logs");
    write(&site.log, 100);
    write(&logs.join("node.log.1"), 1000);
    write(&logs.join("node.log.2.gz"), 2000);
    write(&logs.join("node.log.old"), 500);
    write(&logs.join("notes.txt"), 10);
    std::fs::create_dir_all(logs.join("keep.gz")).unwrap();
    std::os::unix::fs::symlink(logs.join("notes.txt"), logs.join("link.log.3")).unwrap();
    write(&site.data.join("chain/blocks.dat"), 4000);
    write(&site.data.join("chain/000.tmp"), 10);
    write(&site.path("backups/neo-data-20240101T000000Z.tar.gz"), 10);
    let diag = site.path("diag");
    for d in 1..=5 {
        write(
            &diag.join(format!("incident-diagnostics-2024010{d}T000000Z.tar.gz")),
            300,
        );
    }
    let mut cfg = site.config();
    cfg.diagnostics_dir = Some(diag.clone());
    cfg.backup_dir = Some(site.path("backups"));
    let agent = Agent::start(cfg).await;

    let r = dry_run(&agent, "emergency_cleanup", json!(null)).await;
    assert!(r.plan.destructive());
    let text = r.plan.describe();
    assert!(
        text.contains(&format!(
            "[destructive] rotated_logs: (delete) delete 3 rotated logs (*.log.N, *.gz, *.old) in {}: {}, {}, {}",
            logs.display(),
            logs.join("node.log.1").display(),
            logs.join("node.log.2.gz").display(),
            logs.join("node.log.old").display()
        )),
        "{text}"
    );
    assert!(
        text.contains("delete 2 diagnostics archives older than the newest 3"),
        "{text}"
    );
    assert!(text.contains("note: *.tmp files under the data directory are left alone"));
    assert!(
        logs.join("node.log.1").exists(),
        "a dry run deletes nothing"
    );
    let (status, _) = post(&agent, "emergency_cleanup", json!({})).await;
    assert_eq!(status, 409);

    let r = approved(&agent, "emergency_cleanup", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec![
            "disk_before=ok",
            "rotated_logs=ok",
            "diagnostics_archives=ok",
            "disk_after=ok"
        ]
    );
    assert_eq!(r.report["freed"]["rotated_logs"]["bytes"], 3500);
    assert_eq!(r.report["freed"]["diagnostics_archives"]["bytes"], 600);
    assert_eq!(r.report["total_bytes_freed"], 4100);
    assert!(r.report["disk_before"]["available_bytes"].as_u64().unwrap() > 0);
    assert!(r.report["disk_after"]["available_bytes"].as_u64().unwrap() > 0);
    assert!(
        r.summary.starts_with(
            "freed 4100 bytes (rotated logs 3500, diagnostics archives 600); available disk"
        ),
        "{}",
        r.summary
    );
    assert!(output(&r, "rotated_logs").contains("node.log.2.gz (2000 bytes)"));
    for gone in ["node.log.1", "node.log.2.gz", "node.log.old"] {
        assert!(!logs.join(gone).exists(), "{gone}");
    }
    for kept in ["node.log", "notes.txt", "keep.gz", "link.log.3"] {
        assert!(
            std::fs::symlink_metadata(logs.join(kept)).is_ok(),
            "{kept} kept"
        );
    }
    assert_eq!(tree(&site.data), vec!["chain/000.tmp", "chain/blocks.dat"]);
    assert!(site
        .path("backups/neo-data-20240101T000000Z.tar.gz")
        .exists());
    let left: Vec<String> = tree(&diag);
    assert_eq!(
        left,
        vec![
            "incident-diagnostics-20240103T000000Z.tar.gz",
            "incident-diagnostics-20240104T000000Z.tar.gz",
            "incident-diagnostics-20240105T000000Z.tar.gz"
        ]
    );

    // nothing left to delete: the plan is not destructive and runs without approval
    let (status, v) = post(&agent, "emergency_cleanup", json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["report"]["total_bytes_freed"], 0);
    agent.stop().await;

    // a shared system directory is never cleaned; a missing one is a clear refusal
    let mut cfg = site.config();
    cfg.log_dir = Some("/var/log".into());
    let agent = Agent::start(cfg).await;
    let r = dry_run(&agent, "emergency_cleanup", json!(null)).await;
    assert!(!r.plan.destructive());
    let why = r.report["skipped"]["rotated_logs"].as_str().unwrap();
    assert!(why.contains("shared system directory"), "{why}");
    agent.stop().await;
    let mut cfg = site.config();
    cfg.log_dir = Some(site.path("no-such-logs"));
    let agent = Agent::start(cfg).await;
    let (status, v) = post(&agent, "emergency_cleanup", json!({"dry_run": true})).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("log directory"));
    agent.stop().await;
}

/// The files of a diagnostics archive, by name.
fn unpack(bytes: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut text = String::new();
        e.read_to_string(&mut text).unwrap();
        out.push((path, text));
    }
    out
}

#[tokio::test]
async fn diagnostics_archive_is_complete_and_redacted() {
    let site = Site::new();
    write(&site.data.join("chain/blocks.dat"), 4000);
    let mut cfg = site.config();
    cfg.diagnostics_dir = Some(site.path("diag"));
    let agent = Agent::start(cfg).await;
    start_node(&agent).await;
    // more secrets in the node's log
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&site.log)
        .unwrap();
    std::io::Write::write_all(
        &mut log,
        b"ERROR rpc auth failed: Authorization: Bearer s3cr3t-b3arer\nERROR wif=KxDgvEKzgSBPPfuVfw67oPQBSjidEiqTHURKSDL1R7yGaGYAeYnr bad\n",
    )
    .unwrap();

    let r = dry_run(&agent, "diagnostics", json!(null)).await;
    assert!(!r.plan.destructive());
    let text = r.plan.describe();
    assert!(
        text.contains("collect: (collect) collect report.json"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "metrics.txt (http://127.0.0.1:{}/metrics",
            site.port
        )),
        "{text}"
    );
    assert!(!site.path("diag").exists(), "a dry run writes nothing");

    // not destructive: no approval needed
    let (status, v) = post(&agent, "diagnostics", json!({})).await;
    assert_eq!(status, 200, "{v}");
    let r: neo_ir_agent::OpReport = serde_json::from_value(v).unwrap();
    assert!(r.ok, "{r:#?}");
    let name = r.report["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("incident-diagnostics-") && name.ends_with("Z.tar.gz"));
    let on_disk = std::fs::read(site.path("diag").join(&name)).unwrap();
    let inline = base64::engine::general_purpose::STANDARD
        .decode(r.report["archive_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(inline, on_disk);
    assert_eq!(r.report["bytes"], on_disk.len());
    assert_eq!(
        r.report["sha256"],
        hex::encode(sha2::Sha256::digest(&on_disk)).as_str()
    );

    let files = unpack(&on_disk);
    let folder = name.trim_end_matches(".tar.gz");
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.strip_prefix(&format!("{folder}/")).unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "report.json",
            "uptime.txt",
            "meminfo.txt",
            "disk.txt",
            "service.txt",
            "connections.txt",
            "node-rpc.json",
            "errors.log",
            "metrics.txt",
            "data-sizes.txt",
            "MANIFEST.txt"
        ]
    );
    let listed: Vec<String> = serde_json::from_value(r.report["files"].clone()).unwrap();
    assert_eq!(listed, names);
    let file = |n: &str| {
        &files
            .iter()
            .find(|(p, _)| p.ends_with(&format!("/{n}")))
            .unwrap()
            .1
    };
    for (path, text) in &files {
        for secret in ["hunter2", "u:pw@", "s3cr3t-b3arer", "KxDgvEKzgSBPPfuVfw67"] {
            assert!(!text.contains(secret), "{secret} in {path}:\n{text}");
        }
    }
    let errors = file("errors.log");
    assert!(errors.contains("password=<redacted>"), "{errors}");
    assert!(
        errors.contains("http://<redacted>@seed1.example:10333"),
        "{errors}"
    );
    assert!(errors.contains("Authorization: <redacted>"), "{errors}");
    let report: serde_json::Value = serde_json::from_str(file("report.json")).unwrap();
    assert_eq!(report["process"]["state"], "running");
    let rpc: serde_json::Value = serde_json::from_str(file("node-rpc.json")).unwrap();
    assert_eq!(rpc["getblockcount"]["result"], 100);
    assert_eq!(
        rpc["getversion"]["result"]["useragent"],
        "/neo-ir-sim:0.1.0/"
    );
    assert_eq!(rpc["getconnectioncount"]["result"], 1);
    let metrics = file("metrics.txt");
    assert!(
        metrics.contains("process_cpu_seconds_total 1.5")
            && metrics.contains("neo_block_height 100")
            && !metrics.contains("go_goroutines")
            && !metrics.contains("# HELP"),
        "{metrics}"
    );
    assert!(file("service.txt").contains("running: true"));
    assert!(file("meminfo.txt").contains("MemTotal"));
    assert!(file("uptime.txt").contains("load average"));
    assert!(file("disk.txt").contains(&site.data.display().to_string()));
    assert!(
        file("data-sizes.txt").contains("4000\tchain"),
        "{}",
        file("data-sizes.txt")
    );
    assert!(file("connections.txt").contains(&format!("rpc port {}", site.port)));
    let manifest = file("MANIFEST.txt");
    assert!(
        manifest.contains("errors.log\t") && manifest.contains("<redacted>"),
        "{manifest}"
    );
    stop_node(&agent).await;

    // the node down: still an archive, the RPC errors recorded in it
    let r = approved(&agent, "diagnostics", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    let name2 = r.report["name"].as_str().unwrap();
    assert_ne!(name2, name);
    let files = unpack(&std::fs::read(site.path("diag").join(name2)).unwrap());
    let rpc = &files
        .iter()
        .find(|(p, _)| p.ends_with("/node-rpc.json"))
        .unwrap()
        .1;
    let rpc: serde_json::Value = serde_json::from_str(rpc).unwrap();
    assert!(rpc["getblockcount"]["error"].is_string(), "{rpc}");
    agent.stop().await;

    // no directory for it: unsupported
    let agent = Agent::start(site.config()).await;
    let (status, v) = post(&agent, "diagnostics", json!({})).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--diagnostics-dir"));
    agent.stop().await;
}
