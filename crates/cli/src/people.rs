//! What people do from the command line: `declare`, `ack`, `note`, `assign`, `transition`,
//! `severity`, `silence`, `audit`. Each writes to the store directly (the same store the
//! watcher and the API use), as the OS user, with an audit record.
//!
//! Exit codes: 0 done (or already so), 1 the incident does not exist or its state does not
//! allow it, 2 a usage error (an empty note, an unknown phase).

use std::process::ExitCode;

use neo_ir_core::incident::{Actor, IncidentKind, Mutation, ResponseRole, Severity, Status};
use neo_ir_core::oncall::ResponseConfig;
use neo_ir_core::respond::{self, Refusal};
use neo_ir_store::{Audit, NewSilence, Store, StoreError};
use serde_json::json;

use crate::run::StoreArgs;

/// The person running the CLI, for the audit trail.
pub fn cli_actor() -> Actor {
    let who = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Actor {
        who,
        from: "cli".into(),
    }
}

/// The message and exit code (1) of a command given an incident id that does not exist.
pub fn no_such_incident(id: i64) -> ExitCode {
    eprintln!("error: incident {id} does not exist");
    ExitCode::from(1)
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

/// Run one person's action on incident `id` and report it: the events written, or why not.
async fn act<F>(
    id: i64,
    args: StoreArgs,
    action: &str,
    detail: serde_json::Value,
    f: F,
) -> anyhow::Result<ExitCode>
where
    F: Fn(
        &neo_ir_core::incident::Incident,
        &Actor,
        jiff::Timestamp,
        &ResponseConfig,
    ) -> Result<Mutation, Refusal>,
{
    let (store, cfg) = args.open_with_response().await?;
    let actor = cli_actor();
    let audit = Audit::new(&actor, action, detail);
    let result = store
        .mutate(id, &audit, |i| f(i, &actor, jiff::Timestamp::now(), &cfg))
        .await;
    let code = match result {
        Ok(Ok(m)) => {
            for e in &m.events {
                println!("incident #{id}: {}", e.message);
            }
            ExitCode::SUCCESS
        }
        Ok(Err(Refusal::Unchanged(why))) => {
            println!("{why}");
            ExitCode::SUCCESS
        }
        Ok(Err(Refusal::Conflict(why))) => {
            eprintln!("error: {why}");
            ExitCode::from(1)
        }
        Ok(Err(Refusal::Invalid(why))) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
        Err(StoreError::NoSuchIncident(_)) => no_such_incident(id),
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    Ok(code)
}

/// `neo-ir ack ID`.
pub async fn ack(id: i64, args: StoreArgs) -> anyhow::Result<ExitCode> {
    act(id, args, "acknowledge", json!({}), |i, a, now, _| {
        respond::acknowledge(i, a, now)
    })
    .await
}

/// `neo-ir note ID TEXT [--action [--runbook-run RUN]]`.
pub async fn note(
    id: i64,
    text: &str,
    action: bool,
    runbook_run: Option<&str>,
    args: StoreArgs,
) -> anyhow::Result<ExitCode> {
    if runbook_run.is_some() && !action {
        return usage("--runbook-run links the run behind an action: add --action");
    }
    let name = if action { "action" } else { "note" };
    act(
        id,
        args,
        name,
        json!({"text": text, "runbook_run": runbook_run}),
        |i, a, now, _| match action {
            true => respond::action(i, text, runbook_run, a, now),
            false => respond::note(i, text, a, now),
        },
    )
    .await
}

/// `neo-ir update ID TEXT`: a public status update (goes to the incident's channels).
pub async fn update(id: i64, text: &str, args: StoreArgs) -> anyhow::Result<ExitCode> {
    act(
        id,
        args,
        "status_update",
        json!({"text": text}),
        |i, a, now, _| respond::status_update(i, text, a, now),
    )
    .await
}

/// `neo-ir review ID --at TIME`: schedule the post-incident review (sent to the channels).
pub async fn review(id: i64, at: &str, args: StoreArgs) -> anyhow::Result<ExitCode> {
    let at: jiff::Timestamp = match at.parse() {
        Ok(t) => t,
        Err(e) => {
            return usage(format!(
                "--at: expected a time such as 2026-12-01T10:00:00Z: {e}"
            ))
        }
    };
    act(
        id,
        args,
        "review_scheduled",
        json!({"at": at}),
        |i, a, now, _| respond::schedule_review(i, at, a, now),
    )
    .await
}

/// `neo-ir assign ID ROLE WHO` or `neo-ir assign ID ROLE --release`.
pub async fn assign(
    id: i64,
    role: &str,
    who: Option<&str>,
    release: bool,
    args: StoreArgs,
) -> anyhow::Result<ExitCode> {
    let role: ResponseRole = match role.parse() {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    if who.is_some() == release {
        return usage("name who takes the role, or pass --release (not both)");
    }
    act(
        id,
        args,
        "role",
        json!({"role": role, "holder": who}),
        |i, a, now, _| respond::set_role(i, role, who, a, now),
    )
    .await
}

/// `neo-ir transition ID PHASE [--reason TEXT] [--root-cause TEXT]`.
pub async fn transition(
    id: i64,
    phase: &str,
    reason: Option<&str>,
    root_cause: Option<&str>,
    args: StoreArgs,
) -> anyhow::Result<ExitCode> {
    let to: Status = match phase.parse() {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    if root_cause.is_some() && to != Status::Resolved {
        return usage(
            "--root-cause goes with resolving: `transition ID resolved --root-cause ...`",
        );
    }
    act(
        id,
        args,
        "transition",
        json!({"to": to, "reason": reason, "root_cause": root_cause}),
        // a P1/P2 resolved here gets its review scheduled after the configured delay (the
        // playbook's 48 h without a configuration file)
        |i, a, now, cfg| {
            respond::transition_with(i, to, reason, root_cause, a, now, cfg.review_after)
        },
    )
    .await
}

/// `neo-ir severity ID P2 --reason TEXT`.
pub async fn severity(
    id: i64,
    severity: &str,
    reason: &str,
    args: StoreArgs,
) -> anyhow::Result<ExitCode> {
    let to: Severity = match severity.parse() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    act(
        id,
        args,
        "severity",
        json!({"to": to, "reason": reason}),
        |i, a, now, cfg| respond::change_severity(i, to, reason, a, now, cfg),
    )
    .await
}

/// `neo-ir declare`: a person's incident, stored with who declared it (the OS user).
pub async fn declare(
    severity: &str,
    kind: &str,
    summary: &str,
    nodes: Vec<String>,
    json: bool,
    args: StoreArgs,
) -> anyhow::Result<ExitCode> {
    let kind: IncidentKind = match kind.parse() {
        Ok(k) => k,
        Err(e) => return usage(format!("--kind: {e}")),
    };
    let severity: Severity = match severity.parse() {
        Ok(s) => s,
        Err(e) => return usage(format!("--severity: {e}")),
    };
    let (store, cfg) = args.open_with_response().await?;
    let actor = cli_actor();
    let now = jiff::Timestamp::now();
    let silences = store.silences(Some(now)).await?;
    let d = respond::Declaration {
        kind,
        severity,
        summary: summary.to_string(),
        nodes,
    };
    let change = match respond::declare(&d, &actor, now, &cfg, &silences) {
        Ok(c) => c,
        Err(e) => return usage(format!("--{e}")),
    };
    let detail = serde_json::to_value(&d).expect("a declaration serializes");
    let incident = store
        .declare(&change, &Audit::new(&actor, "declare", detail))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&incident)?);
    } else {
        println!(
            "declared incident #{}: {} {} by {}: {}",
            incident.id, incident.severity, incident.kind, actor.who, incident.summary
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// What `neo-ir silence` does.
#[derive(clap::Subcommand)]
pub enum SilenceAction {
    /// Silence a node, an incident kind, or a kind on a node, for a time: incidents are still
    /// recorded, nobody is paged.
    #[command(
        after_help = "Example: neo-ir silence add --node rpc-1 --for 2h --reason \"disk swap\""
    )]
    Add {
        /// The node to silence.
        #[arg(long)]
        node: Option<String>,
        /// The incident kind to silence (node_down, sync_failure, ...).
        #[arg(long)]
        kind: Option<String>,
        /// How long, from now (e.g. 30m, 2h).
        #[arg(long = "for")]
        duration: String,
        /// Why (shown on every escalation it holds back).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Silences in force or starting later (`--all`: ended ones too).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// End a silence now.
    Expire {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `neo-ir silence add|list|expire`.
pub async fn silence(action: SilenceAction) -> anyhow::Result<ExitCode> {
    let now = jiff::Timestamp::now();
    let actor = cli_actor();
    match action {
        SilenceAction::Add {
            node,
            kind,
            duration,
            reason,
            store,
        } => {
            let kind: Option<IncidentKind> = match kind.map(|k| k.parse()).transpose() {
                Ok(k) => k,
                Err(e) => return usage(format!("--kind: {e}")),
            };
            let Ok(d) = humantime::parse_duration(&duration) else {
                return usage(format!(
                    "--for: expected a duration such as 30m or 2h, got {duration:?}"
                ));
            };
            let ends_at = neo_ir_core::oncall::plus(now, d);
            if let Err(e) = neo_ir_core::oncall::check_silence(
                node.as_deref(),
                kind,
                now,
                ends_at,
                &reason,
                now,
            ) {
                return usage(e);
            }
            let store = store.open().await?;
            let s = store
                .add_silence(
                    &NewSilence {
                        node,
                        kind,
                        starts_at: now,
                        ends_at,
                        reason: reason.trim().to_string(),
                    },
                    &actor,
                    now,
                )
                .await?;
            println!("silence #{} until {}: {}", s.id, s.ends_at, describe(&s));
            store.close().await;
        }
        SilenceAction::List { all, json, store } => {
            let store = store.open().await?;
            let list = store.silences((!all).then_some(now)).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"silences": list}))?
                );
            } else if list.is_empty() {
                println!("no silences");
            } else {
                for s in &list {
                    let state = if s.ends_at <= now {
                        "ended"
                    } else if s.starts_at > now {
                        "upcoming"
                    } else {
                        "active"
                    };
                    println!(
                        "#{:<4} {:<8} {} → {}  {}  by {}: {}",
                        s.id,
                        state,
                        s.starts_at,
                        s.ends_at,
                        describe(s),
                        s.created_by,
                        s.reason
                    );
                }
            }
            store.close().await;
        }
        SilenceAction::Expire { id, store } => {
            let store = store.open().await?;
            let code = match store.expire_silence(id, &actor, now).await {
                Ok(s) => {
                    println!("silence #{} ended: {}", s.id, describe(&s));
                    ExitCode::SUCCESS
                }
                Err(StoreError::NoSuchSilence(_)) => {
                    eprintln!("error: silence {id} does not exist or has ended");
                    ExitCode::from(1)
                }
                Err(e) => return Err(e.into()),
            };
            store.close().await;
            return Ok(code);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(s: &neo_ir_core::oncall::Silence) -> String {
    match (&s.node, s.kind) {
        (Some(n), Some(k)) => format!("{k} on {n}"),
        (Some(n), None) => format!("every incident on {n}"),
        (None, Some(k)) => format!("every {k} incident"),
        (None, None) => "every incident".into(),
    }
}

/// `neo-ir notify test --channel NAME`: render a test message with the channel's templates
/// and send it now (playbook drills test the channels), outside the outbox.
pub async fn notify_test(
    channel: &str,
    config: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    use neo_ir_core::incident::{EventType, Finding, TimelineEvent};
    use neo_ir_core::notify::{MessageKind, Notification};
    let (path, cfg) = crate::run::load_config(config)?;
    let outlets = neo_ir_watch::dispatch::Outlets::build(&cfg.notify)?;
    let now = jiff::Timestamp::now();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into());
    let finding = Finding {
        key: "test".into(),
        kind: IncidentKind::NodeDown,
        severity: Severity::P4,
        nodes: vec![],
        summary: format!("test message from neo-ir on {host}: channel {channel} works"),
        evidence: json!({"test": true}),
    };
    let mut incident = neo_ir_core::lifecycle::open(
        &finding,
        now,
        &neo_ir_core::oncall::ResponseConfig::default(),
    );
    incident.id = 0;
    let event = TimelineEvent::new(now, EventType::Opened, finding.summary.clone(), json!({}));
    let n = Notification {
        kind: MessageKind::Alert,
        channel: channel.to_string(),
        incident,
        event,
        event_id: 0,
        idempotency_key: format!("neo-ir-test-{}", now.as_millisecond()),
        network: None,
        link: cfg.notify.public_url.clone(),
    };
    match outlets.send_now(channel, &n).await {
        Ok(d) => {
            println!(
                "test message sent to {channel} ({} of {}): {} {}",
                cfg.notify.channel(channel).map_or("?", |c| c.kind.as_str()),
                path.display(),
                d.status,
                d.detail
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: channel {channel}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `neo-ir audit`: who changed what, newest first.
pub async fn audit(limit: u32, json: bool, args: StoreArgs) -> anyhow::Result<ExitCode> {
    let store: Store = args.open().await?;
    let entries = store.audit_log(limit, None).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"entries": entries}))?
        );
    } else {
        for e in &entries {
            let on = e.incident_id.map(|i| format!(" #{i}")).unwrap_or_default();
            println!(
                "{}  {:<14}{on}  by {} ({})  {}",
                e.at, e.action, e.who, e.from, e.detail
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
