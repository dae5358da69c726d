//! backup, backup_verify and restore with a real stand-in node: a backup while the node
//! runs, altered data restored, the old tree kept aside, tampered archives and hostile names
//! and entries refused with nothing changed.

use std::io::Write;

use serde_json::json;

use super::*;
use crate::Agent;

fn backup_site() -> (Site, AgentConfig) {
    let site = Site::new();
    std::fs::write(site.data.join("chain/height"), "42").unwrap();
    std::fs::write(site.data.join("chain/blocks.dat"), vec![3u8; 50_000]).unwrap();
    let mut cfg = site.config();
    cfg.backup_dir = Some(site.path("backups"));
    (site, cfg)
}

fn sha256sum_check(dir: &Path, name: &str) -> bool {
    std::process::Command::new("sha256sum")
        .args(["-c", &format!("{name}.sha256")])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn backup_alter_restore_round_trip() {
    let (site, cfg) = backup_site();
    let agent = Agent::start(cfg).await;
    start_node(&agent).await;
    let pid = site.pid().unwrap();

    let r = dry_run(&agent, "backup", json!(null)).await;
    let text = r.plan.describe();
    let name = r.report["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("neo-data-") && name.ends_with("Z.tar.gz"),
        "{name}"
    );
    assert!(
        text.contains("[destructive] stop: (stop) stop: SIGTERM"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "archive: (archive) tar.gz {} into {}",
            site.data.display(),
            site.path("backups").join(&name).display()
        )),
        "{text}"
    );
    assert!(text.contains(".sha256 (sha256sum format)"), "{text}");
    assert!(!site.path("backups").exists(), "a dry run writes nothing");
    let (status, v) = post(&agent, "backup", json!({})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("approval_required"))
    );

    let r = approved(&agent, "backup", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec![
            "status=ok",
            "stop=ok",
            "archive=ok",
            "checksum=ok",
            "start=ok",
            "wait_running=ok"
        ]
    );
    let name = r.report["name"].as_str().unwrap().to_string();
    let backups = site.path("backups");
    assert!(backups.join(&name).is_file());
    assert!(
        sha256sum_check(&backups, &name),
        "sha256sum -c accepts the checksum file"
    );
    let sha = r.report["sha256"].as_str().unwrap();
    assert!(
        r.summary.contains(&name) && r.summary.contains(&sha[..12]),
        "{}",
        r.summary
    );
    assert_eq!(
        r.report["bytes"].as_u64().unwrap(),
        std::fs::metadata(backups.join(&name)).unwrap().len()
    );
    let pid2 = site.pid().unwrap();
    assert_ne!(pid, pid2, "stopped for the backup and started again");
    assert!(alive(pid2));

    let r = approved(&agent, "backup_verify", json!({"latest": true})).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.report["name"], name.as_str());
    // chain, chain/blocks.dat, chain/height (the stopped node removed its LOCK)
    assert_eq!(r.report["entries"], 3, "{r:#?}");

    // the data changes (a bad sync, a corrupted file)
    std::fs::write(site.data.join("chain/height"), "555").unwrap();
    std::fs::write(site.data.join("chain/junk"), "junk").unwrap();

    let r = dry_run(&agent, "restore", json!({"latest": true, "verify": true})).await;
    let aside = r.report["aside"].as_str().unwrap().to_string();
    let text = r.plan.describe();
    assert!(
        text.contains(&format!(
            "[destructive] swap: (move) move {} aside to {aside} (kept, never deleted)",
            site.data.display()
        )),
        "{text}"
    );
    let (status, _) = post(&agent, "restore", json!({"args": {"latest": true}})).await;
    assert_eq!(status, 409);
    assert!(
        site.data.join("chain/junk").exists(),
        "nothing changed without approval"
    );

    let r = approved(&agent, "restore", json!({"latest": true, "verify": true})).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec![
            "verify=ok",
            "extract=ok",
            "status=ok",
            "stop=ok",
            "swap=ok",
            "start=ok",
            "wait_running=ok"
        ]
    );
    assert_eq!(r.report["name"], name.as_str());
    assert_eq!(
        r.report["block_count"], 42,
        "the restored node answers the old height"
    );
    let aside = PathBuf::from(r.report["aside"].as_str().unwrap());
    assert!(aside.starts_with(site.dir.path()));
    assert_eq!(
        std::fs::read_to_string(site.data.join("chain/height")).unwrap(),
        "42"
    );
    assert!(!site.data.join("chain/junk").exists());
    assert_eq!(
        std::fs::read(site.data.join("chain/blocks.dat")).unwrap(),
        vec![3u8; 50_000]
    );
    // the previous tree is kept
    assert_eq!(
        std::fs::read_to_string(aside.join("chain/height")).unwrap(),
        "555"
    );
    assert!(aside.join("chain/junk").exists());
    assert!(r.summary.contains("previous data kept at"), "{}", r.summary);
    stop_node(&agent).await;
    agent.stop().await;
}

#[tokio::test]
async fn a_stopped_node_stays_stopped_and_tampering_is_caught() {
    let (site, cfg) = backup_site();
    let agent = Agent::start(cfg).await;
    let r = approved(&agent, "backup", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec![
            "status=ok",
            "stop=skipped",
            "archive=ok",
            "checksum=ok",
            "start=skipped",
            "wait_running=skipped"
        ]
    );
    assert_eq!(
        site.pid(),
        None,
        "the node was not running and is not started"
    );
    let name = r.report["name"].as_str().unwrap().to_string();
    let archive = site.path("backups").join(&name);

    // one more byte at the end: the gzip stream still reads, the checksum does not match
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&archive)
        .unwrap();
    f.write_all(b"x").unwrap();
    drop(f);
    let r = approved(&agent, "backup_verify", json!({"name": name})).await;
    assert!(!r.ok);
    assert_eq!(statuses(&r), vec!["verify=failed"]);
    assert!(output(&r, "verify").contains("checksum mismatch"), "{r:#?}");
    assert_eq!(r.report["match"], false);

    // a restore of a tampered backup changes nothing
    std::fs::write(site.data.join("chain/height"), "7").unwrap();
    let before = tree(&site.data);
    let r = approved(&agent, "restore", json!({"name": name})).await;
    assert!(!r.ok);
    assert_eq!(
        statuses(&r),
        vec![
            "verify=failed",
            "extract=skipped",
            "status=skipped",
            "stop=skipped",
            "swap=skipped",
            "start=skipped",
            "wait_running=skipped"
        ]
    );
    assert!(r.summary.contains("nothing was changed"), "{}", r.summary);
    assert_eq!(tree(&site.data), before);
    assert_eq!(
        std::fs::read_to_string(site.data.join("chain/height")).unwrap(),
        "7"
    );
    agent.stop().await;
}

#[tokio::test]
async fn an_archive_with_dotdot_entries_is_refused_on_restore() {
    let (site, cfg) = backup_site();
    let agent = Agent::start(cfg).await;
    start_node(&agent).await;
    let pid = site.pid().unwrap();
    let backups = site.path("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let name = "neo-data-20240101T000000Z.tar.gz";
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(backups.join(name)).unwrap(),
            flate2::Compression::default(),
        );
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_old();
        let evil = b"../../escaped";
        h.as_old_mut().name[..evil.len()].copy_from_slice(evil);
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let sum = std::process::Command::new("sha256sum")
        .arg(name)
        .current_dir(&backups)
        .output()
        .unwrap();
    std::fs::write(backups.join(format!("{name}.sha256")), sum.stdout).unwrap();
    let before = tree(&site.data);

    let r = approved(&agent, "backup_verify", json!({"name": name})).await;
    assert!(r.ok, "the checksum matches: {r:#?}");
    let r = approved(&agent, "restore", json!({"name": name, "verify": true})).await;
    assert!(!r.ok);
    assert_eq!(
        &statuses(&r)[..3],
        ["verify=ok", "extract=failed", "status=skipped"]
    );
    let out = output(&r, "extract");
    assert!(
        out.contains("../../escaped") && out.contains(".. are refused"),
        "{out}"
    );
    assert_eq!(tree(&site.data), before);
    assert!(!site.path("escaped").exists() && !site.dir.path().join("../escaped").exists());
    let leftovers: Vec<_> = std::fs::read_dir(site.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data."))
        .collect();
    assert!(leftovers.is_empty(), "no staging tree left: {leftovers:?}");
    assert_eq!(site.pid(), Some(pid));
    assert!(alive(pid), "the node was never stopped");
    stop_node(&agent).await;
    agent.stop().await;
}

#[tokio::test]
async fn hostile_names_and_missing_configuration() {
    let (site, cfg) = backup_site();
    let agent = Agent::start(cfg).await;
    for (args, needle) in [
        (json!({"name": "../x"}), "argument name"),
        (json!({"name": "/etc/passwd"}), "argument name"),
        (
            json!({"name": "neo-data-20240101T000000Z.tar.gz/../../x"}),
            "argument name",
        ),
        (
            json!({"name": "neo-data-20240101T000000Z.tar.gz"}),
            "no backup",
        ),
        (json!({"name": 5}), "argument name must be a string"),
        (
            json!({"latest": true, "name": "neo-data-20240101T000000Z.tar.gz"}),
            "either",
        ),
        (json!({}), "missing argument"),
        (
            json!({"latest": true, "path": "/"}),
            "unknown argument \"path\"",
        ),
    ] {
        for op in ["backup_verify", "restore"] {
            let (status, v) = post(&agent, op, json!({"args": args, "dry_run": true})).await;
            assert_eq!(status, 400, "{op} {args}: {v}");
            assert_eq!(v["error"]["code"], "invalid_args");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(needle), "{op} {args}: {msg}");
        }
    }
    // latest with an empty backup directory
    std::fs::create_dir_all(site.path("backups")).unwrap();
    let (status, v) = post(&agent, "restore", json!({"args": {"latest": true}})).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no backup"));
    agent.stop().await;

    // no backup directory: unsupported
    let agent = Agent::start(site.config()).await;
    for (op, args) in [
        ("backup", json!(null)),
        ("backup_verify", json!({"latest": true})),
        ("restore", json!({"latest": true})),
    ] {
        let (status, v) = post(&agent, op, json!({"args": args})).await;
        assert_eq!(status, 422, "{op}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--backup-dir"));
    }
    agent.stop().await;

    // a backup directory inside the data directory would archive itself
    let mut cfg = site.config();
    cfg.backup_dir = Some(site.data.join("backups"));
    let agent = Agent::start(cfg).await;
    let (status, v) = post(&agent, "backup", json!({"dry_run": true})).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("inside the data directory"));
    agent.stop().await;
}

#[tokio::test]
async fn a_failed_backup_starts_the_node_again() {
    let site = Site::new();
    let mut cfg = site.config();
    // the backup directory is a file: the archive cannot be written
    std::fs::write(site.path("backups"), "not a directory").unwrap();
    cfg.backup_dir = Some(site.path("backups"));
    let agent = Agent::start(cfg).await;
    start_node(&agent).await;
    let r = approved(&agent, "backup", json!(null)).await;
    assert!(!r.ok);
    assert_eq!(r.summary, "the archive could not be written; no backup");
    assert_eq!(
        statuses(&r),
        vec![
            "status=ok",
            "stop=ok",
            "archive=failed",
            "checksum=skipped",
            "start=ok",
            "wait_running=ok"
        ]
    );
    assert!(
        output(&r, "archive").contains("creating the backup directory"),
        "{r:#?}"
    );
    assert!(alive(site.pid().unwrap()), "the node runs again");
    stop_node(&agent).await;
    agent.stop().await;
}
