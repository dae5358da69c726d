//! `neo-ir`: the one binary. Parses the command line, sets up logging and hands each
//! subcommand to its module. Library crates return typed errors; here they become messages
//! and exit codes (0 ok, 1 the check found a problem, 2 usage or configuration error).

mod agent;
mod demo;
mod drill;
mod init;
mod output;
mod people;
mod rehearse;
mod report;
mod review;
mod run;
mod runbooks_list;
mod runs;
mod simnode;
mod stage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "neo-ir",
    version,
    about = "Incident response for Neo N3 node operators: watch nodes, detect incidents, run the playbook",
    after_help = "Start here: `neo-ir demo` runs a simulated Neo network, breaks it and shows the response."
)]
struct Cli {
    /// Log level or filter (overrides RUST_LOG), e.g. `info` or `neo_ir_watch=debug`.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// A short drill on a built-in simulated Neo network: detection, response, messages,
    /// a runbook, recovery and the review.
    ///
    /// Examples:
    ///   neo-ir demo          exits 0 after about 10 seconds
    ///   neo-ir demo --keep   leaves the network, the watcher and the API running
    #[command(verbatim_doc_comment)]
    Demo(demo::DemoArgs),
    /// Watch the configured Neo nodes, open and resolve incidents, serve the API.
    ///
    /// Example: neo-ir watch --config /etc/neo-ir/neo-ir.toml
    Watch {
        /// Configuration file (default ./neo-ir.toml, then /etc/neo-ir/neo-ir.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run a simulated Neo N3 network on loopback ports, with a control API for faults.
    ///
    /// Example: neo-ir sim --validators 4 --rpc 3 --msperblock 1000 --base-port 30000
    Sim(run::SimArgs),
    /// List incidents (open ones unless --all).
    ///
    /// Example: neo-ir incidents --all --json
    Incidents {
        /// Include resolved incidents.
        #[arg(long)]
        all: bool,
        /// Print JSON (the same shape as GET /api/v1/incidents).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Show one incident with its evidence and timeline.
    ///
    /// Example: neo-ir incident show 3
    #[command(after_help = "Example: neo-ir incident show 3 --json")]
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Run the host agent on a Neo node's machine: a report for the watcher (process,
    /// memory, CPU, IO wait, disk, connections per IP, error lines) and the runbooks' named
    /// operations on the node (service control, recovery, cleanup, backup/restore, database
    /// tools, nftables, diagnostics; crates/agent/OPERATIONS.md).
    ///
    /// Example: NEO_IR_AGENT_TOKEN=... neo-ir agent --unit neo-node --data-dir /var/neo/data
    Agent(agent::AgentArgs),
    /// Write a commented example configuration for a local node.
    ///
    /// Example: neo-ir init --network testnet --output neo-ir.toml
    Init {
        /// Which network the local node is on (sets the RPC port).
        #[arg(long, value_enum, default_value_t = init::Network::Testnet)]
        network: init::Network,
        /// Where to write the file.
        #[arg(long, short, default_value = "neo-ir.toml")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate a configuration file without starting anything (exit 2 on an error).
    ///
    /// Example: neo-ir check-config neo-ir.toml
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Acknowledge an incident: you are on it. Records who (the OS user) and whether it was
    /// within the severity's response target (P1 15 min, P2 30 min, P3 2 h, P4 24 h).
    ///
    /// Example: neo-ir ack 12
    Ack {
        /// The incident id.
        id: i64,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Add a note to an incident's timeline (what you saw, did or decided), as the OS user.
    ///
    /// Example: neo-ir note 12 "restarted neo-cli on rpc-2; heights catching up"
    Note {
        /// The incident id.
        id: i64,
        /// The note.
        text: String,
        /// Record it as an action taken (restarted a node, blocked an IP), not a note.
        #[arg(long)]
        action: bool,
        /// The runbook run that did the action (with --action).
        #[arg(long)]
        runbook_run: Option<String>,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Give a response role (IC, TL, CL, OL) to someone, hand it over, or release it.
    ///
    /// Example: neo-ir assign 12 IC alice    |    neo-ir assign 12 TL --release
    Assign {
        /// The incident id.
        id: i64,
        /// IC (Incident Commander), TL (Technical Lead), CL (Communications Lead) or OL
        /// (Operations Lead).
        role: String,
        /// Who takes it (whoever held it hands it over).
        who: Option<String>,
        /// Nobody holds the role any more.
        #[arg(long)]
        release: bool,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Move an incident to another phase: triage, investigating, mitigating, monitoring,
    /// resolved, reviewed.
    ///
    /// Example: neo-ir transition 12 mitigating --reason "restarting neo-cli on rpc-2"
    Transition {
        /// The incident id.
        id: i64,
        /// The phase to move to.
        phase: String,
        /// Why (on the timeline).
        #[arg(long)]
        reason: Option<String>,
        /// With `resolved`: the root cause, for the resolution notice and the review.
        #[arg(long)]
        root_cause: Option<String>,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Change an incident's severity, with the reason.
    ///
    /// Example: neo-ir severity 12 P1 --reason "two validators affected"
    Severity {
        /// The incident id.
        id: i64,
        /// P1, P2, P3 or P4.
        severity: String,
        /// Why (required: on the timeline and in the review).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Post a public status update (the playbook's INCIDENT UPDATE): it goes to the
    /// incident's channels, unlike a note.
    ///
    /// Example: neo-ir update 12 "rpc-2 restarted from a snapshot; syncing, 40 blocks behind"
    Update {
        /// The incident id.
        id: i64,
        /// The update.
        text: String,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// The post-incident review of an incident: print it (the saved one, else the
    /// playbook's template prefilled from the timeline), schedule it, edit it in $EDITOR,
    /// add action items, mark it complete (the incident becomes reviewed).
    ///
    /// Examples:
    ///   neo-ir review 12
    ///   neo-ir review 12 --at 2026-12-01T10:00:00Z
    ///   neo-ir review 12 --edit
    ///   neo-ir review 12 --action "alert on disk at 80%" --owner alice --due 2026-12-15 --priority high
    ///   neo-ir review 12 --complete
    #[command(verbatim_doc_comment)]
    Review(review::ReviewArgs),
    /// Action items of post-incident reviews: the open ones, --overdue, --all; --done ITEM
    /// marks one done.
    ///
    /// Example: neo-ir actions --overdue
    Actions(review::ActionsArgs),
    /// The playbook's six runbooks and the scripts, each with its last review (when an
    /// action item pointing at it was last done) and its open action items.
    ///
    /// Example: neo-ir runbooks    |    neo-ir runbooks --json
    Runbooks(runbooks_list::RunbooksArgs),
    /// Run one of the playbook's scripts: checks over JSON-RPC, steps on a node's host
    /// through its agent, coordinated restarts, fleet rendering. Destructive steps wait for
    /// `neo-ir approve RUN`; --dry-run prints exactly what would run. Exit 0 succeeded, 1
    /// failed or refused, 2 usage, 3 waits for an approval.
    ///
    /// Examples:
    ///   neo-ir run validate_sync
    ///   neo-ir run quick_recovery --node rpc-1 --incident 12 --dry-run
    ///   neo-ir run restore_backup --node rpc-1 --latest --verify
    ///   neo-ir run block_ips --node rpc-1 suspicious_ips.txt
    #[command(verbatim_doc_comment, after_help = neo_ir_runbook::scripts::help())]
    Run(runs::RunArgs),
    /// Approve a run that waits for one (it has destructive steps), and execute it here.
    ///
    /// Example: neo-ir approve 7
    Approve {
        /// The run id (`neo-ir runs --waiting` lists them).
        run: i64,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Store URL (overrides the configuration's store.url).
        #[arg(long)]
        store: Option<String>,
    },
    /// Decline a run that waits for an approval, with the reason.
    ///
    /// Example: neo-ir decline 7 --reason "restore from yesterday's backup instead"
    Decline {
        /// The run id.
        run: i64,
        /// Why (recorded with the run and on the incident's timeline).
        #[arg(long)]
        reason: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Store URL (overrides the configuration's store.url).
        #[arg(long)]
        store: Option<String>,
    },
    /// List runbook runs (newest first), or show one with its plan, steps and output.
    ///
    /// Example: neo-ir runs --waiting    |    neo-ir runs 7 --json
    Runs {
        /// Show this run in full.
        id: Option<i64>,
        /// Only the runs of this incident.
        #[arg(long)]
        incident: Option<i64>,
        /// Only the runs that wait for an approval.
        #[arg(long)]
        waiting: bool,
        /// Print JSON (the same shapes as GET /api/v1/runs and /api/v1/runs/{id}).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Notification channels.
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Maintenance windows: silence a node or an incident kind for a time.
    Silence {
        #[command(subcommand)]
        action: people::SilenceAction,
    },
    /// The audit log: every change a person made, newest first.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// The playbook's monthly drills: inject a scenario's faults (on the simulated network,
    /// or on the designated test node through its agent), let the responders respond,
    /// repair, score the response; the schedule with its rotating IC, the history of scores,
    /// and rehearsals in simulated time.
    ///
    /// Examples:
    ///   neo-ir drill list
    ///   neo-ir drill run node-crash --respond-within 10m --commander alice
    ///   neo-ir drill run split-brain --auto-respond
    ///   neo-ir drill run node-crash --test-node --approved-by alice --config neo-ir.toml
    ///   neo-ir drill schedule --months 6
    ///   neo-ir drill history
    ///   neo-ir drill rehearse consensus-stall --config neo-ir.toml --ack-after 10m
    #[command(verbatim_doc_comment)]
    Drill {
        #[command(subcommand)]
        action: drill::DrillAction,
    },
    /// Incident KPIs over a period: count, MTTD, MTTA, MTTR, response-target breaches and
    /// escalations, per severity, kind and month (from the stored timelines; drills excluded).
    ///
    /// Example: neo-ir report --since 30d
    Report(report::ReportArgs),
    /// Declare an incident a person saw (a user report; playbook phase 1). Detection never
    /// resolves a declared incident.
    ///
    /// Example: neo-ir declare --severity P2 --kind performance_degradation --summary "exchanges report slow RPC" --node rpc-1
    Declare {
        /// P1, P2, P3 or P4.
        #[arg(long)]
        severity: String,
        /// node_down, sync_failure, consensus_failure, split_brain, data_corruption,
        /// network_attack or performance_degradation.
        #[arg(long)]
        kind: String,
        /// What was reported.
        #[arg(long)]
        summary: String,
        /// An affected node (repeat for several).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Print the incident as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: run::StoreArgs,
    },
}

#[derive(Subcommand)]
enum NotifyAction {
    /// Send a test message to one channel now, with its templates (drills test the
    /// channels). PagerDuty gets a trigger for `neo-ir-incident-0`.
    Test {
        /// The channel's name in [[notify.channels]].
        #[arg(long)]
        channel: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum IncidentAction {
    /// Show one incident with its evidence and timeline.
    Show {
        /// The incident id.
        id: i64,
        /// Print JSON (the same shape as GET /api/v1/incidents/{id}).
        #[arg(long)]
        json: bool,
        /// Show the playbook's procedure for the incident's kind as a checklist, with what
        /// is done (by a person's mark or a successful run) and the script for each step.
        #[arg(long)]
        runbook: bool,
        #[command(flatten)]
        store: run::StoreArgs,
    },
    /// Mark a step of the incident's runbook checklist done (or --undone).
    ///
    /// Example: neo-ir incident step 12 diagnostics
    Step {
        /// The incident id.
        id: i64,
        /// The step's key, as `incident show ID --runbook` lists it.
        key: String,
        /// Mark it not done.
        #[arg(long)]
        undone: bool,
        #[command(flatten)]
        store: run::StoreArgs,
    },
}

/// mimalloc instead of glibc malloc: with thousands of nodes, glibc's arena locks and
/// consolidation cost a quarter of the watcher's CPU (bench/README.md, scale).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        // the demo prints its own story; library logs would only repeat it
        Command::Demo(_) | Command::Drill { .. } => "error",
        // PostgreSQL's notices ("relation ... already exists, skipping" on every start) are
        // not news to an operator
        _ => "info,sqlx::postgres::notice=warn",
    };
    init_logging(cli.log_level.as_deref(), default_level, cli.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Watch { config } => run::watch(config).await,
            Command::Sim(args) => run::sim(args).await,
            Command::Incidents { all, json, store } => run::incidents(all, json, store).await,
            Command::Incident {
                action:
                    IncidentAction::Show {
                        id,
                        json,
                        runbook: true,
                        store,
                    },
            } => runs::checklist(id, json, store).await,
            Command::Incident {
                action:
                    IncidentAction::Show {
                        id,
                        json,
                        runbook: false,
                        store,
                    },
            } => run::incident_show(id, json, store).await,
            Command::Incident {
                action:
                    IncidentAction::Step {
                        id,
                        key,
                        undone,
                        store,
                    },
            } => runs::step(id, &key, undone, store).await,
            Command::CheckConfig { file } => run::check_config(&file),
            Command::Ack { id, store } => people::ack(id, store).await,
            Command::Note {
                id,
                text,
                action,
                runbook_run,
                store,
            } => people::note(id, &text, action, runbook_run.as_deref(), store).await,
            Command::Assign {
                id,
                role,
                who,
                release,
                store,
            } => people::assign(id, &role, who.as_deref(), release, store).await,
            Command::Transition {
                id,
                phase,
                reason,
                root_cause,
                store,
            } => {
                people::transition(id, &phase, reason.as_deref(), root_cause.as_deref(), store)
                    .await
            }
            Command::Severity {
                id,
                severity,
                reason,
                store,
            } => people::severity(id, &severity, &reason, store).await,
            Command::Silence { action } => people::silence(action).await,
            Command::Update { id, text, store } => people::update(id, &text, store).await,
            Command::Review(args) => review::review(args).await,
            Command::Actions(args) => review::actions(args).await,
            Command::Runbooks(args) => runbooks_list::run(args).await,
            Command::Run(args) => runs::run(args).await,
            Command::Approve {
                run,
                json,
                config,
                store,
            } => runs::approve(run, json, config, store).await,
            Command::Decline {
                run,
                reason,
                config,
                store,
            } => runs::decline(run, &reason, config, store).await,
            Command::Runs {
                id,
                incident,
                waiting,
                json,
                store,
            } => runs::list(id, incident, waiting, json, store).await,
            Command::Notify {
                action: NotifyAction::Test { channel, config },
            } => people::notify_test(&channel, config).await,
            Command::Audit { limit, json, store } => people::audit(limit, json, store).await,
            Command::Declare {
                severity,
                kind,
                summary,
                nodes,
                json,
                store,
            } => people::declare(&severity, &kind, &summary, nodes, json, store).await,
            Command::Drill { action } => drill::run(action).await,
            Command::Report(args) => report::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Init {
                network,
                output,
                force,
            } => init::run(network, &output, force),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            let config_error = e
                .downcast_ref::<neo_ir_core::config::ConfigError>()
                .is_some()
                || matches!(
                    e.downcast_ref::<neo_ir_watch::WatchError>(),
                    Some(
                        neo_ir_watch::WatchError::MissingSecret { .. }
                            | neo_ir_watch::WatchError::Notify(_)
                    )
                );
            let code = if config_error { 2 } else { 1 };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn init_logging(level: Option<&str>, default_level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
