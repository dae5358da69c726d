//! Crash safety: `neo-ir watch` on SQLite is killed with SIGKILL at random moments 20 times
//! while node faults come and go and people acknowledge incidents (racing the engine's
//! writes), and restarted each time. At the end, from the store: every injected fault has
//! exactly one incident, every timeline is consistent (opened once and first, in time order,
//! no duplicate event, clear and recurrence alternating, resolved once and last, the
//! incident row agreeing with its timeline), every escalation step that came due while its
//! incident fired unacknowledged was fired exactly once and never early, and every update
//! reminder due while it was acknowledged and open fired once, at its time or later.

use super::*;

/// Kills.
const KILLS: usize = 20;
/// Escalation steps, seconds after opening.
const STEPS: [u64; 3] = [0, 1, 2];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Fault,
    Ack,
    Recover,
}

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn killed_20_times_while_faults_come_and_go_nothing_is_lost_or_doubled() {
    let sim = Sim::start(1, 4, 300);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = fast_config(&dir, &sim, (1, 4), &store, &STEPS);
    let seed = std::env::var("NEO_IR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash safety: seed {seed} (NEO_IR_CRASH_SEED replays it)");
    let mut rng = Lcg(seed);
    // At which kill what happens: each node fails once, for at least four runs of the
    // watcher; three of the four incidents are acknowledged on the way (at a random moment
    // of a run), the last is left to escalate to the end.
    let plan = [
        (0, "rpc-1", Step::Fault),
        (2, "rpc-1", Step::Ack),
        (4, "rpc-1", Step::Recover),
        (5, "rpc-2", Step::Fault),
        (7, "rpc-2", Step::Ack),
        (9, "rpc-2", Step::Recover),
        (10, "rpc-3", Step::Fault),
        (12, "rpc-3", Step::Ack),
        (14, "rpc-3", Step::Recover),
        (15, "rpc-4", Step::Fault),
        (19, "rpc-4", Step::Recover),
    ];
    // a fault that comes and goes unseen would prove nothing: nothing happens to it before
    // a watcher saw it
    let seen = |node: &str, w: &Watch| -> i64 {
        eventually(
            &format!("an incident for the crash of {node}"),
            Duration::from_secs(30),
            || {
                all_incidents(&store)
                    .into_iter()
                    .find(|i| i["key"] == format!("node_down:{node}"))
                    .and_then(|i| i["id"].as_i64())
            },
            || w.log(),
        )
    };
    let started = Instant::now();
    let mut killed_in_flight = 0;
    for kill in 0..KILLS {
        let w = Watch::start(&cfg, dir.path().join(format!("watch-{kill}.log")));
        let now: Vec<_> = plan.iter().filter(|(k, _, _)| *k == kill).collect();
        for (_, node, step) in &now {
            match step {
                Step::Fault => sim.fault(node, "crash"),
                Step::Recover => {
                    seen(node, &w);
                    sim.recover(node);
                }
                Step::Ack => {}
            }
        }
        // a random moment: before it leads (the lease of the killed one is still running),
        // while it resumes, between rounds or inside one; a person acknowledges in between
        let (first, second) = (rng.next(1500), rng.next(1000));
        std::thread::sleep(Duration::from_millis(200 + first));
        for (_, node, _) in now.iter().filter(|(_, _, s)| *s == Step::Ack) {
            let id = seen(node, &w).to_string();
            let out = neo_ir()
                .args(["ack", &id, "--store", &store])
                .output()
                .unwrap();
            assert!(out.status.success(), "ack {id}: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(second));
        if w.log().contains("leading") {
            killed_in_flight += 1;
        }
        w.kill();
    }
    // a last watcher, left to finish the work, then stopped cleanly
    let w = Watch::start(&cfg, dir.path().join("watch-final.log"));
    let incidents = eventually(
        "every incident resolves",
        Duration::from_secs(60),
        || {
            let all = all_incidents(&store);
            (all.len() >= 4 && all.iter().all(|i| i["status"] == "resolved")).then_some(all)
        },
        || format!("{:?}\n{}", all_incidents(&store), w.log()),
    );
    w.signal("TERM");
    let mut w = w;
    eventually(
        "the last watcher stops on SIGTERM",
        Duration::from_secs(15),
        || w.child.try_wait().unwrap(),
        String::new,
    );

    // exactly one incident per injected fault, and nothing else
    let mut keys: Vec<String> = incidents
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "node_down:rpc-1",
            "node_down:rpc-2",
            "node_down:rpc-3",
            "node_down:rpc-4"
        ],
        "one incident per fault"
    );

    let mut events = 0;
    let mut fired = 0;
    let mut acked = 0;
    let mut reminded = 0;
    let mut worst_late_ms = 0i64;
    for i in &incidents {
        let id = i["id"].as_i64().unwrap();
        let full = incident_json(&store, id);
        let timeline = full["timeline"].as_array().unwrap();
        events += timeline.len();
        let types: Vec<&str> = timeline
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        let ctx = || format!("incident {id}: {types:?}\n{full}");
        assert_eq!(types[0], "opened", "{}", ctx());
        assert_eq!(
            types.iter().filter(|t| **t == "opened").count(),
            1,
            "{}",
            ctx()
        );
        // the last, but for the review a P1/P2 gets scheduled as it resolves
        let last = types.iter().rev().find(|t| **t != "review_scheduled");
        assert_eq!(last, Some(&"resolved"), "{}", ctx());
        assert_eq!(
            types.iter().filter(|t| **t == "resolved").count(),
            1,
            "{}",
            ctx()
        );
        // in time order, and no event twice
        for pair in timeline.windows(2) {
            assert!(ts(&pair[0]["at"]) <= ts(&pair[1]["at"]), "{}", ctx());
        }
        let mut seen = std::collections::HashSet::new();
        for e in timeline {
            assert!(seen.insert(e.to_string()), "duplicate event {e}: {}", ctx());
        }
        // the condition clears and recurs in turn, and the last word is a clear
        let turns: Vec<&&str> = types
            .iter()
            .filter(|t| **t == "condition_cleared" || **t == "recurred")
            .collect();
        for (n, t) in turns.iter().enumerate() {
            let expected = if n % 2 == 0 {
                "condition_cleared"
            } else {
                "recurred"
            };
            assert_eq!(**t, expected, "{}", ctx());
        }
        assert_eq!(
            turns.last().map(|t| **t),
            Some("condition_cleared"),
            "{}",
            ctx()
        );
        // escalation: steps 1..=k once each, in order, never early; the row agrees
        let escalated: Vec<&Value> = timeline
            .iter()
            .filter(|e| e["type"] == "escalated")
            .collect();
        let numbers: Vec<u64> = escalated
            .iter()
            .map(|e| e["data"]["step"].as_u64().unwrap())
            .collect();
        let k = numbers.len() as u64;
        assert_eq!(numbers, (1..=k).collect::<Vec<_>>(), "{}", ctx());
        assert_eq!(full["escalation_step"], k, "{}", ctx());
        for e in &escalated {
            let late = ts(&e["at"]).as_millisecond() - ts(&e["data"]["due_at"]).as_millisecond();
            assert!(late >= 0, "fired early: {e}");
            worst_late_ms = worst_late_ms.max(late);
        }
        fired += escalated.len();
        // a step that came due while the incident still fired, unacknowledged, must have
        // fired (acknowledging stops the chain: a step due while every watcher was down and
        // acknowledged before the next one ran is rightly never paged)
        let opened_at = ts(&full["opened_at"]);
        let last_clear = timeline
            .iter()
            .rev()
            .find(|e| e["type"] == "condition_cleared")
            .map(|e| ts(&e["at"]))
            .unwrap();
        let acked_at = full["acked_at"].as_str().map(|_| ts(&full["acked_at"]));
        match (STEPS.get(k as usize), acked_at) {
            (Some(next), None) => {
                let due = opened_at + jiff::SignedDuration::from_secs(*next as i64);
                assert!(
                    due >= last_clear,
                    "step {} was due while firing and never fired: {}",
                    k + 1,
                    ctx()
                );
            }
            (_, Some(a)) => {
                for e in &escalated {
                    assert!(ts(&e["data"]["due_at"]) <= a, "paged after the ack: {e}");
                }
                acked += 1;
            }
            (None, None) => {}
        }
        // update reminders, once acknowledged: the first due 1 s after the ack, each next
        // one the first whole interval after the moment the previous fired (one reminder
        // after a long gap, not a burst), never early, and none left due at resolution
        let reminders: Vec<&Value> = timeline
            .iter()
            .filter(|e| e["type"] == "update_due")
            .collect();
        reminded += reminders.len();
        match acked_at.map(|a| a.as_millisecond()) {
            None => assert!(reminders.is_empty(), "{}", ctx()),
            Some(base) => {
                let next_after = |t: i64| base + ((t - base) / 1000 + 1) * 1000;
                let mut expected = base + 1000;
                for r in &reminders {
                    let due = ts(&r["data"]["due_at"]).as_millisecond();
                    let at = ts(&r["at"]).as_millisecond();
                    assert_eq!(due, expected, "reminder due time: {r}\n{}", ctx());
                    assert!(at >= due, "reminded early: {r}");
                    expected = next_after(at);
                }
                let resolved = ts(&full["resolved_at"]).as_millisecond();
                assert!(
                    expected > resolved,
                    "a reminder due at {expected} ms never fired: {}",
                    ctx()
                );
            }
        }
        // the row is the projection of its timeline
        assert_eq!(full["status"], "resolved", "{}", ctx());
        assert_eq!(
            full["resolved_at"],
            timeline.last().unwrap()["at"],
            "{}",
            ctx()
        );
        assert!(full["cleared_at"].is_string(), "{}", ctx());
        assert_eq!(
            full["ack_breached_at"].is_null(),
            !types.contains(&"response_target_breached"),
            "{}",
            ctx()
        );
    }
    eprintln!(
        "crash safety: {KILLS} SIGKILLs ({killed_in_flight} while leading) over {:.1} s; \
         {} incidents for 4 faults ({acked} acknowledged meanwhile); {events} timeline events; \
         {fired} escalation steps fired once each, at most {worst_late_ms} ms after due; \
         {reminded} update reminders, each once",
        started.elapsed().as_secs_f64(),
        incidents.len()
    );
}
