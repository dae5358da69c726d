//! Several `neo-ir watch` processes on one PostgreSQL database: one leads (probes, decides,
//! fires deadlines), the other follows and takes over when the leader dies or freezes, and
//! nothing happens twice: one incident per cause, each escalation step fired (and logged,
//! the stand-in for a page until notifications exist) exactly once.
//!
//! Uses the PostgreSQL server at 127.0.0.1:5432 (`NEO_IR_TEST_POSTGRES` overrides); when
//! none answers, the tests print why and return.

use super::*;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A fresh PostgreSQL database for one test, dropped at the end.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    fn create(tag: &str) -> Option<PgDb> {
        use sqlx::Connection;
        let admin = std::env::var("NEO_IR_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES.into());
        let name = format!("neo_ir_cli_{tag}_{}", std::process::id());
        let made = block_on(async {
            let mut c =
                tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(&admin))
                    .await
                    .map_err(|_| "no answer within 3 s".to_string())?
                    .map_err(|e| e.to_string())?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())
        });
        if let Err(e) = made {
            eprintln!("skipping: no PostgreSQL server at {admin}: {e}");
            return None;
        }
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Some(PgDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    /// Who holds the leader's lease now.
    fn leader(&self) -> Option<String> {
        use sqlx::{Connection, Row};
        block_on(async {
            let mut c = sqlx::PgConnection::connect(&self.url).await.ok()?;
            let row = sqlx::query("SELECT holder FROM leases WHERE name = 'leader'")
                .fetch_optional(&mut c)
                .await
                .ok()??;
            row.try_get::<String, _>("holder").ok()
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        use sqlx::Connection;
        block_on(async {
            if let Ok(mut c) = sqlx::PgConnection::connect(&self.admin).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut c)
                .await;
            }
        });
    }
}

/// Escalation steps of the tests' policy, in seconds after opening.
const STEPS: [u64; 4] = [0, 3, 6, 9];

/// Two watchers on one database, `a` leading and `b` following, with an incident open and
/// its first two escalation steps fired.
struct Pair {
    sim: Sim,
    db: PgDb,
    /// `None` once killed.
    a: Option<Watch>,
    b: Watch,
    id: i64,
    hook: super::notify::Hook,
    _dir: tempfile::TempDir,
}

impl Pair {
    fn start(tag: &str) -> Option<Pair> {
        let db = PgDb::create(tag)?;
        let sim = Sim::start(1, 2, 300);
        let dir = tempfile::tempdir().unwrap();
        let cfg = fast_config(&dir, &sim, (1, 2), &db.url, &STEPS);
        // every message goes to a webhook receiver: each must arrive once, whoever leads
        let hook = super::notify::Hook::default();
        hook.status.store(200, std::sync::atomic::Ordering::SeqCst);
        let url = hook.start();
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&super::notify::notify_toml(&url));
        std::fs::write(&cfg, text).unwrap();
        let a = Watch::start(&cfg, dir.path().join("a.log"));
        let a_pid = format!(":{}:", a.pid());
        eventually(
            "the first watcher leads",
            Duration::from_secs(30),
            || db.leader().filter(|h| h.contains(&a_pid)),
            || a.log(),
        );
        let b = Watch::start(&cfg, dir.path().join("b.log"));
        eventually(
            "the second watcher follows",
            Duration::from_secs(30),
            || {
                b.log()
                    .contains("another instance leads: following")
                    .then_some(())
            },
            || b.log(),
        );
        sim.fault("rpc-1", "crash");
        let store = db.url.clone();
        let id = eventually(
            "the leader opens one node_down incident and pages twice",
            Duration::from_secs(30),
            || {
                all_incidents(&store)
                    .into_iter()
                    .find(|i| {
                        i["key"] == "node_down:rpc-1" && i["escalation_step"].as_u64() >= Some(2)
                    })
                    .and_then(|i| i["id"].as_i64())
            },
            || format!("a:\n{}\nb:\n{}", a.log(), b.log()),
        );
        Some(Pair {
            sim,
            db,
            a: Some(a),
            b,
            id,
            hook,
            _dir: dir,
        })
    }

    /// Wait for `b` to hold the lease.
    fn b_leads(&self, within: Duration) {
        let b_pid = format!(":{}:", self.b.pid());
        eventually(
            "the follower takes over",
            within,
            || self.db.leader().filter(|h| h.contains(&b_pid)),
            || self.b.log(),
        );
    }

    /// Let every step fire, recover the node, wait for resolution, and check nothing
    /// happened twice. `logs` are the log files of every process that ever led.
    fn finish(&self, logs: &[&std::path::Path]) {
        let store = self.db.url.clone();
        eventually(
            "every escalation step fires",
            Duration::from_secs(30),
            || {
                let i = incident_json(&store, self.id);
                (i["escalation_step"] == STEPS.len()).then_some(())
            },
            || self.b.log(),
        );
        self.sim.recover("rpc-1");
        let done = eventually(
            "the incident resolves",
            Duration::from_secs(30),
            || {
                let i = incident_json(&store, self.id);
                (i["status"] == "resolved").then_some(i)
            },
            || self.b.log(),
        );
        let same_cause: Vec<_> = all_incidents(&store)
            .into_iter()
            .filter(|i| i["key"] == "node_down:rpc-1")
            .collect();
        assert_eq!(
            same_cause.len(),
            1,
            "one incident for the cause: {same_cause:?}"
        );
        assert_eq!(events_of(&done, "opened").len(), 1);
        assert_eq!(events_of(&done, "resolved").len(), 1);
        let steps: Vec<u64> = events_of(&done, "escalated")
            .iter()
            .map(|e| e["data"]["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [1, 2, 3, 4], "each step once, in order: {done}");
        // each step fired no earlier than due (the store keeps milliseconds)
        for e in events_of(&done, "escalated") {
            let ms = |v: &Value| {
                v.as_str()
                    .unwrap()
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_millisecond()
            };
            assert!(ms(&e["at"]) >= ms(&e["data"]["due_at"]), "{e}");
        }
        // and was announced once, by whichever instance fired it (other incidents, such as
        // the peers the crash took from the others, escalate too)
        let ours = format!("incident={} ", self.id);
        let logs: Vec<String> = logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        let logged: usize = logs
            .iter()
            .map(|l| {
                l.lines()
                    .filter(|l| l.contains("escalation step") && l.contains(&ours))
                    .count()
            })
            .sum();
        assert_eq!(logged, STEPS.len(), "{logs:?}");
        // and each message reached the webhook once: the alert, every page, the clear and
        // the resolution, in order
        let id = self.id;
        // as a receiver sees them: a repeat of an idempotency key is dropped (see below)
        let kinds = || -> Vec<String> {
            let mut seen = std::collections::HashSet::new();
            self.hook
                .accepted
                .lock()
                .unwrap()
                .iter()
                .filter(|v| v["incident"]["id"] == id)
                .filter(|v| seen.insert(v["idempotency_key"].to_string()))
                .map(|v| v["kind"].as_str().unwrap_or_default().to_string())
                // a new leader's first rounds may judge the severity anew (a raise is a
                // message of its own, not part of this count)
                .filter(|k| k != "severity")
                .collect()
        };
        let expected = [
            "alert", "page", "page", "page", "page", "update", "resolved", "review",
        ];
        eventually(
            "every message of the incident is delivered",
            Duration::from_secs(30),
            || (kinds().len() >= expected.len()).then_some(()),
            || format!("{:?}", kinds()),
        );
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(kinds(), expected);
        // Delivery is at least once with an idempotency key: the one message a leader may
        // have had in flight when it was killed or frozen (sent, not yet marked sent) is
        // sent again by the next leader, with the same key, which the receiver drops. Never
        // more than that one.
        let keys = self.hook.keys();
        let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
        assert!(
            keys.len() - unique.len() <= 1,
            "more than the one in-flight message arrived twice: {keys:?}"
        );
    }
}

#[test]
fn the_follower_continues_the_same_incident_after_the_leader_is_killed() {
    let Some(mut pair) = Pair::start("kill") else {
        return;
    };
    let a = pair.a.take().unwrap();
    let a_log = a.log.clone();
    let killed_at = Instant::now();
    a.kill();
    pair.b_leads(Duration::from_secs(15));
    eprintln!(
        "takeover after SIGKILL of the leader: {:?} (lease 1 s)",
        killed_at.elapsed()
    );
    pair.finish(&[&a_log, &pair.b.log]);
}

#[test]
fn a_frozen_leader_finds_out_it_lost_the_lease_before_it_acts() {
    let Some(pair) = Pair::start("freeze") else {
        return;
    };
    let a = pair.a.as_ref().unwrap();
    let store = pair.db.url.clone();
    let step_before = incident_json(&store, pair.id)["escalation_step"]
        .as_u64()
        .unwrap();
    a.signal("STOP");
    pair.b_leads(Duration::from_secs(15));
    // frozen until the new leader has fired a step of its own
    eventually(
        "the new leader fires the next step",
        Duration::from_secs(30),
        || {
            let step = incident_json(&store, pair.id)["escalation_step"].as_u64()?;
            (step > step_before).then_some(())
        },
        || pair.b.log(),
    );
    // what it logged before it froze; everything after is what it did once woken
    let frozen_log = a.log().len();
    a.signal("CONT");
    eventually(
        "the old leader learns it lost the lease",
        Duration::from_secs(15),
        || a.log().contains("lost the leader's lease").then_some(()),
        || a.log(),
    );
    pair.finish(&[&a.log, &pair.b.log]);
    // once woken, it found out before it acted, and then only followed: no incident
    // opened, updated, escalated or resolved by it, and no write refused either way
    let log = a.log();
    let after_wake = &log[frozen_log..];
    for acted in [
        "incident opened",
        "incident updated",
        "incident resolved",
        "escalation step",
        "leading: watching",
    ] {
        assert!(!after_wake.contains(acted), "{acted}:\n{after_wake}");
    }
}
