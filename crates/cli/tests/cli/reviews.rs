//! The post-incident review from the command line, as an operator goes through it: a P2
//! resolved with `neo-ir transition` gets its review scheduled after the configured
//! `review_after` (the playbook's 48 h without a configuration); `neo-ir review ID --edit`
//! opens `$EDITOR` (a script that edits the file) and saves the result; action items are
//! added with `--action`, listed with `neo-ir actions --overdue` and `neo-ir runbooks`;
//! `--complete` makes the incident `reviewed`, after which changes are refused with the
//! reason; marking the item done is the runbook's review date.

use std::process::Output;

use serde_json::Value;

use super::{events_of, incident_json, neo_ir, write};

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// The hours between the resolution and the review date the resolve scheduled.
fn review_delay_hours(store: &str, id: i64) -> i64 {
    let timeline = incident_json(store, id);
    let resolved = events_of(&timeline, "phase_changed")
        .into_iter()
        .find(|e| e["data"]["to_phase"] == "resolved")
        .expect("resolved by a person");
    let scheduled = events_of(&timeline, "review_scheduled");
    assert_eq!(scheduled.len(), 1, "{timeline}");
    let at: jiff::Timestamp = scheduled[0]["data"]["at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let when: jiff::Timestamp = resolved["at"].as_str().unwrap().parse().unwrap();
    // the event time is stored in milliseconds, the review date in full
    at.duration_since(when).as_secs() / 3600
}

#[test]
fn a_review_is_edited_itemized_completed_and_final() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/neo-ir.db", dir.path().display());
    let cfg = write(
        &dir,
        "neo-ir.toml",
        &format!(
            "[[nodes]]\nname = \"rpc-1\"\nrpc = \"http://127.0.0.1:1\"\nrole = \"rpc\"\n\
             [store]\nurl = \"{store}\"\n[response]\nreview_after = \"24h\"\n"
        ),
    );
    let cfg = cfg.to_str().unwrap().to_string();
    // every command as alice, from a directory without a neo-ir.toml of its own
    let run = |args: &[&str]| {
        neo_ir()
            .current_dir(dir.path())
            .env("USER", "alice")
            .env("VISUAL", "")
            .args(args)
            .output()
            .unwrap()
    };
    let declare = |summary: &str| -> String {
        let o = run(&[
            "declare",
            "--severity",
            "P2",
            "--kind",
            "node_down",
            "--summary",
            summary,
            "--node",
            "rpc-1",
            "--json",
            "--store",
            &store,
        ]);
        json(&o)["id"].as_i64().unwrap().to_string()
    };

    // the configured review_after (24 h) for a resolve with the configuration; the
    // playbook's 48 h without one
    let id = declare("rpc-1 is down");
    let o = run(&[
        "transition",
        &id,
        "resolved",
        "--root-cause",
        "the disk filled up",
        "--config",
        &cfg,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("post-incident review scheduled"),
        "{}",
        text(&o)
    );
    assert_eq!(review_delay_hours(&store, id.parse().unwrap()), 24);
    std::fs::rename(&cfg, dir.path().join("elsewhere.toml")).unwrap();
    let other = declare("rpc-1 is down again");
    let o = run(&["transition", &other, "resolved", "--store", &store]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(review_delay_hours(&store, other.parse().unwrap()), 48);

    // --edit: the editor (a script) edits the prefilled template, the result is saved
    let editor = write(
        &dir,
        "edit.sh",
        "#!/bin/sh\n\
         sed -i 's/^### What Happened$/### What Happened\\nrpc-1 filled its disk with logs./' \"$1\"\n\
         printf '\\nEdited in the test.\\n' >> \"$1\"\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let editor = editor.to_str().unwrap();
    let edit = |with: &str| {
        neo_ir()
            .current_dir(dir.path())
            .env("USER", "alice")
            .env("VISUAL", "")
            .env("EDITOR", with)
            .args(["review", &id, "--edit", "--store", &store])
            .output()
            .unwrap()
    };
    let o = edit(editor);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("review saved"),
        "{}",
        text(&o)
    );
    let shown = json(&run(&["review", &id, "--json", "--store", &store]));
    assert_eq!(shown["saved"], true);
    let md = shown["markdown"].as_str().unwrap();
    assert!(
        md.contains("### What Happened\nrpc-1 filled its disk with logs."),
        "{md}"
    );
    assert!(md.contains("Edited in the test."), "{md}");
    assert!(md.contains(&format!("# Post-Incident Review: Incident #{id}")));
    // an editor that fails saves nothing; one that changes nothing says so
    let o = edit("false");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not saved"),
        "{}",
        text(&o)
    );
    let o = edit("true");
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unchanged"));
    assert_eq!(
        json(&run(&["review", &id, "--json", "--store", &store]))["markdown"],
        md,
        "still the edited review"
    );

    // action items: one overdue pointing at the node crash runbook, one due later
    let o = run(&[
        "review",
        &id,
        "--action",
        "alert on disk usage above 80%",
        "--owner",
        "dave",
        "--due",
        "2020-01-15",
        "--priority",
        "high",
        "--runbook",
        "node_down",
        "--json",
        "--store",
        &store,
    ]);
    let overdue = json(&o)["id"].as_i64().unwrap();
    let o = run(&[
        "review",
        &id,
        "--action",
        "rotate logs daily",
        "--owner",
        "erin",
        "--due",
        "2099-01-01",
        "--store",
        &store,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    for (flag, bad) in [("--runbook", "restart_nodes"), ("--due", "15/01/2020")] {
        let o = run(&[
            "review", &id, "--action", "x", "--owner", "dave", flag, bad, "--store", &store,
        ]);
        assert_eq!(o.status.code(), Some(2), "{flag} {bad}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(flag),
            "{}",
            text(&o)
        );
    }
    let listed = json(&run(&["actions", "--overdue", "--json", "--store", &store]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], overdue);
    assert_eq!(listed[0]["incident_id"].to_string(), id);
    assert_eq!(listed[0]["runbook"], "node_down");
    let table = run(&["actions", "--overdue", "--store", &store]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("2020-01-15") && table.contains("alert on disk usage"),
        "{table}"
    );
    assert!(!table.contains("rotate logs"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");

    // the runbooks: node_down never reviewed, with its open item
    let runbooks = json(&run(&["runbooks", "--json", "--store", &store]));
    let runbooks = runbooks["runbooks"].as_array().unwrap();
    let names: Vec<&str> = runbooks
        .iter()
        .filter(|r| r["type"] == "playbook")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "node_down",
            "consensus_failure",
            "data_corruption",
            "network_attack",
            "split_brain",
            "performance_degradation"
        ]
    );
    assert!(
        runbooks
            .iter()
            .any(|r| r["name"] == "quick_recovery" && r["type"] == "script"),
        "the scripts are listed"
    );
    let node_down = &runbooks[0];
    assert_eq!(node_down["title"], "Node Crash/Unresponsive");
    assert_eq!(node_down["last_reviewed"], Value::Null);
    assert_eq!(node_down["open_items"][0]["id"], overdue);

    // complete: the incident is reviewed, and later changes are refused with why
    let o = run(&["review", &id, "--complete", "--store", &store]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("the incident is reviewed"));
    assert_eq!(
        incident_json(&store, id.parse().unwrap())["status"],
        "reviewed"
    );
    let refusals = [
        (
            vec!["assign", &id, "IC", "bob"],
            format!("incident {id} is reviewed: roles are part of the record now"),
        ),
        (
            vec!["transition", &id, "investigating"],
            "reviewed → investigating: reviewed is final".to_string(),
        ),
        (
            vec!["update", &id, "all good"],
            format!("incident {id} is reviewed: its updates are part of the record now"),
        ),
    ];
    for (args, why) in refusals {
        let mut args = args;
        args.extend(["--store", &store]);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&why),
            "{args:?}: {}",
            text(&o)
        );
    }
    let o = edit(editor);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("the review of incident {id} is complete")),
        "{}",
        text(&o)
    );
    let o = run(&["review", &id, "--complete", "--store", &store]);
    assert!(o.status.success(), "completing twice is fine: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already reviewed"));

    // the items are still tracked: done, the runbook is reviewed today
    let o = run(&["actions", "--done", &overdue.to_string(), "--store", &store]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["actions", "--overdue", "--store", &store]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no overdue action items"));
    let runbooks = json(&run(&["runbooks", "--json", "--store", &store]));
    let node_down = &runbooks["runbooks"][0];
    assert_eq!(node_down["name"], "node_down");
    let reviewed: jiff::Timestamp = node_down["last_reviewed"]
        .as_str()
        .expect("reviewed")
        .parse()
        .unwrap();
    assert!(
        (jiff::Timestamp::now().duration_since(reviewed)).as_secs() < 600,
        "{node_down}"
    );
    assert_eq!(node_down["last_reviewed_incident"].to_string(), id);
    assert_eq!(node_down["open_items"], serde_json::json!([]));
    let o = run(&["runbooks", "--store", &store]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let today = reviewed
        .to_zoned(jiff::tz::TimeZone::system())
        .date()
        .to_string();
    let line = table
        .lines()
        .find(|l| l.starts_with("node_down "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("Node Crash/Unresponsive") && line.contains(&today),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("split_brain ") && l.contains("never")),
        "{table}"
    );
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
}
