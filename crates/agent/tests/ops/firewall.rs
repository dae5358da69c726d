//! firewall_apply and firewall_rollback: hostile blocklists refused over HTTP, and a real
//! apply, replace and rollback with nft inside a network namespace of the test's own (never
//! this machine's namespace), checked with `nft list ruleset` in that namespace.

use std::process::{Child, Command, Stdio};

use serde_json::json;

use super::*;
use crate::Agent;

/// A network namespace held by a `sleep` process, and the argv prefix that runs nft in it.
struct Netns {
    holder: Child,
    nft: Vec<String>,
}

impl Netns {
    fn new() -> Result<Netns, String> {
        let v = Command::new("nft").arg("--version").output();
        if !v.is_ok_and(|o| o.status.success()) {
            return Err("nft is not available".into());
        }
        let root = rustix::process::geteuid().is_root();
        let mut cmd = Command::new("unshare");
        if !root {
            cmd.args(["--user", "--map-root-user"]);
        }
        let holder = cmd
            .args(["--net", "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("unshare cannot run: {e}"))?;
        let pid = holder.id();
        let mut ns = Netns {
            holder,
            nft: Vec::new(),
        };
        let mine = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if theirs.as_ref().is_ok_and(|t| *t != mine) && cmdline.starts_with(b"sleep") {
                break;
            }
            if let Ok(Some(status)) = ns.holder.try_wait() {
                return Err(format!(
                    "unshare could not make a network namespace ({status})"
                ));
            }
            if std::time::Instant::now() > deadline {
                return Err("the namespace holder did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut nft = vec![
            "nsenter".to_string(),
            "--target".into(),
            pid.to_string(),
            "--net".into(),
        ];
        if !root {
            nft.extend(["--user".into(), "--preserve-credentials".into()]);
        }
        nft.push("nft".into());
        ns.nft = nft;
        let probe = ns.run(&["list", "ruleset"]);
        probe.map(|_| ns)
    }

    /// nft `args` inside the namespace.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.nft[0])
            .args(&self.nft[1..])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "nft in the namespace failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ruleset(&self) -> String {
        self.run(&["list", "ruleset"]).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// This machine's own tables (read only), to show the tests leave them alone.
fn host_tables() -> Option<String> {
    let out = Command::new("nft").args(["list", "tables"]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn apply_replace_and_roll_back_in_a_namespace() {
    let ns = match Netns::new() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED apply_replace_and_roll_back_in_a_namespace: {why}");
            return;
        }
    };
    let host_before = host_tables();
    let site = Site::new();
    let mut cfg = site.config();
    cfg.nft = ns.nft.clone();
    cfg.state_dir = Some(site.path("state"));
    cfg.p2p_port = 20333;
    cfg.rpc_port = 20332;
    let agent = Agent::start(cfg).await;
    let first = json!({
        "blocklist": ["1.2.3.4", "2001:db8::1", "10.0.0.0/24"],
        "rate_limit_per_minute": 10
    });

    let r = dry_run(&agent, "firewall_apply", first.clone()).await;
    let ruleset = r.report["ruleset"].as_str().unwrap().to_string();
    assert!(
        ruleset.contains("elements = {\n\t\t\t1.2.3.4, 10.0.0.0/24\n\t\t}"),
        "{ruleset}"
    );
    let text = r.plan.describe();
    assert!(
        text.contains(&ruleset),
        "the plan carries the exact ruleset:\n{text}"
    );
    let apply_file = site.path("state/firewall-apply.nft");
    assert!(
        text.contains(&format!(
            "check: {} -c -f {}",
            ns.nft.join(" "),
            apply_file.display()
        )),
        "{text}"
    );
    assert!(text.contains(&format!("[destructive] apply: {} -f", ns.nft.join(" "))));
    assert!(!site.path("state").exists(), "a dry run writes nothing");
    assert!(!ns.ruleset().contains("neo_ir"));

    let (status, v) = post(&agent, "firewall_apply", json!({"args": first})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("approval_required"))
    );
    assert!(
        !ns.ruleset().contains("neo_ir"),
        "nothing applied without approval"
    );

    let r = approved(&agent, "firewall_apply", first.clone()).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        statuses(&r),
        vec!["save=ok", "write=ok", "check=ok", "apply=ok"]
    );
    assert_eq!(r.report["ruleset"], ruleset.as_str());
    assert_eq!(r.report["replaced_table"], false);
    assert_eq!(
        r.summary,
        "firewall applied: 3 addresses or networks blocked; new connections limited to \
         10/minute per IP on ports 20332, 20333"
    );
    assert_eq!(std::fs::read_to_string(&apply_file).unwrap(), ruleset);
    let live = ns.ruleset();
    for needle in [
        "table inet neo_ir",
        "1.2.3.4",
        "10.0.0.0/24",
        "2001:db8::1",
        "ip saddr @blocklist4 drop",
        "limit rate over 10/minute burst 10 packets",
        "tcp dport { 20332, 20333 } ct state new",
    ] {
        assert!(live.contains(needle), "missing {needle:?} in\n{live}");
    }

    // there was no table before: the rollback removes it
    let r = approved(&agent, "firewall_rollback", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.summary, "firewall rolled back: table inet neo_ir removed");
    assert!(!ns.ruleset().contains("neo_ir"), "{}", ns.ruleset());

    // apply twice: the second replaces the first (not added to it)
    assert!(approved(&agent, "firewall_apply", first.clone()).await.ok);
    let r = approved(&agent, "firewall_apply", json!({"blocklist": ["5.6.7.8"]})).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.report["replaced_table"], true);
    let live = ns.ruleset();
    assert!(
        live.contains("5.6.7.8") && !live.contains("1.2.3.4"),
        "{live}"
    );
    assert!(!live.contains("limit rate"), "{live}");
    assert_eq!(live.matches("table inet neo_ir").count(), 1, "{live}");

    // the rollback restores the table the second apply replaced
    let r = dry_run(&agent, "firewall_rollback", json!(null)).await;
    assert_eq!(r.report["restores_previous_table"], true);
    let r = approved(&agent, "firewall_rollback", json!(null)).await;
    assert!(r.ok, "{r:#?}");
    let live = ns.ruleset();
    assert!(
        live.contains("1.2.3.4") && !live.contains("5.6.7.8"),
        "{live}"
    );
    assert!(live.contains("limit rate over 10/minute"), "{live}");
    agent.stop().await;

    assert_eq!(
        host_tables(),
        host_before,
        "this machine's own rules are untouched"
    );
    if let Some(t) = host_tables() {
        assert!(!t.contains("neo_ir"), "{t}");
    }
}

#[tokio::test]
async fn hostile_blocklists_and_missing_configuration() {
    let site = Site::new();
    let mut cfg = site.config();
    cfg.state_dir = Some(site.path("state"));
    // never reached: every request below is refused before anything runs
    cfg.nft = vec!["/nonexistent/nft".into()];
    let agent = Agent::start(cfg).await;
    for (i, entry) in ["1.2.3.4; rm -rf /", "$(id)", "999.1.1.1", "-f", "0.0.0.0/0"]
        .iter()
        .enumerate()
    {
        let body = json!({"args": {"blocklist": ["9.9.9.9", entry]}, "approved_by": "alice"});
        let (status, v) = post(&agent, "firewall_apply", body).await;
        assert_eq!(status, 400, "{entry}: {v}");
        assert_eq!(v["error"]["code"], "invalid_args");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("blocklist[1]") && msg.contains(&format!("{entry:?}")),
            "{i} {entry}: {msg}"
        );
    }
    assert!(!site.path("state").exists());

    // nft missing: the save step fails and nothing is applied
    let r = approved(&agent, "firewall_apply", json!({"blocklist": ["9.9.9.9"]})).await;
    assert!(!r.ok);
    assert_eq!(
        statuses(&r),
        vec![
            "save=failed",
            "write=skipped",
            "check=skipped",
            "apply=skipped"
        ]
    );
    assert!(
        output(&r, "save").contains("could not be started"),
        "{r:#?}"
    );
    assert_eq!(
        r.summary,
        "the current rules could not be saved; nothing applied"
    );

    // nothing saved yet: nothing to roll back
    let (status, v) = post(&agent, "firewall_rollback", json!({})).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing to roll back"));
    agent.stop().await;

    let agent = Agent::start(site.config()).await;
    let (status, v) = post(
        &agent,
        "firewall_apply",
        json!({"args": {"blocklist": ["9.9.9.9"]}}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--state-dir"));
    agent.stop().await;
}
