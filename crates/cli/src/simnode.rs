//! `neo-ir sim node` (one simulated Neo node as this process, following a simulated network,
//! with its chain in a data directory) and `neo-ir sim db check|repair|optimize` (the database
//! tools of a stopped node's data directory). The runbooks' restart, quick_recovery,
//! backup/restore and database scripts are tested against these; see crates/sim/STANDALONE.md.
//!
//! Exit codes: `node` 0 after SIGTERM/Ctrl-C, 1 when it cannot start or go on (LOCK held,
//! corrupt block file, port taken), 2 on bad options. `db`: 0 healthy or done, 1 corruption
//! found (check, optimize) or an IO error, 2 refused (a node runs on the directory, or a LOCK
//! without a pid) or usage error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use neo_ir_sim::standalone::{self, DbError, DbReport, OptimizeReport, RepairReport};
use neo_ir_sim::{NodeError, NodeOptions};

/// What `neo-ir sim` runs instead of a network.
#[derive(clap::Subcommand)]
pub enum SimCommand {
    /// Run one simulated node as this process, with its chain in a data directory.
    ///
    /// It follows a node of a running simulated network, keeps its chain in --data-dir (with
    /// a LOCK while it runs) and serves JSON-RPC. Stops on SIGTERM or Ctrl-C (exit 0); exit 1
    /// when LOCK exists, the block file is corrupt or the port is taken; 2 on bad options.
    ///
    /// Example: neo-ir sim node --upstream http://127.0.0.1:20336/ --listen 127.0.0.1:21332
    /// --data-dir /tmp/neo-data --log-file /tmp/neo.log
    Node(NodeArgs),
    /// Database tools for a stopped simulated node's data directory.
    ///
    /// Example: neo-ir sim db check --data-dir /tmp/neo-data --json
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

#[derive(clap::Args)]
pub struct NodeArgs {
    /// JSON-RPC URL of a node of a running simulated network (`neo-ir sim` prints them).
    #[arg(long)]
    upstream: String,
    /// Address to serve JSON-RPC on, e.g. 127.0.0.1:21332.
    #[arg(long)]
    listen: SocketAddr,
    /// The node's data directory (LOCK, chain/blocks.dat); created if missing.
    #[arg(long)]
    data_dir: PathBuf,
    /// Append the node's log here instead of stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// How often to ask the upstream for new blocks.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    poll: Duration,
}

#[derive(clap::Subcommand)]
pub enum DbAction {
    /// Verify every block record (checksum, index, link to the previous block); exit 1 on
    /// corruption, naming the first bad block.
    ///
    /// Example: neo-ir sim db check --data-dir /tmp/neo-data
    Check(DbArgs),
    /// Cut the block file at its first bad record (the node re-syncs the rest).
    ///
    /// Example: neo-ir sim db repair --data-dir /tmp/neo-data
    Repair(DbArgs),
    /// Rewrite the block file compactly and remove leftover temp files.
    ///
    /// Example: neo-ir sim db optimize --data-dir /tmp/neo-data --json
    Optimize(DbArgs),
}

#[derive(clap::Args)]
pub struct DbArgs {
    /// The node's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SimCommand::Node(args) => node(args).await,
        SimCommand::Db { action } => Ok(db(action)),
    }
}

async fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let logs_to_file = args.log_file.is_some();
    let opts = NodeOptions {
        upstream: args.upstream,
        listen: args.listen,
        data_dir: args.data_dir,
        log_file: args.log_file,
        poll: args.poll,
    };
    match neo_ir_sim::run_node(opts, stop_signal()?).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // the node wrote the error to its log; on stderr once, whichever that is
            if logs_to_file || matches!(e, NodeError::Log { .. }) {
                eprintln!("error: {e}");
            }
            let code = if matches!(e, NodeError::InvalidOptions(_)) {
                2
            } else {
                1
            };
            Ok(ExitCode::from(code))
        }
    }
}

/// SIGTERM or SIGINT, with the handlers installed now: a signal that comes while the node
/// is still opening its data directory must stop it cleanly (releasing LOCK), not kill it.
#[cfg(unix)]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(crate::run::shutdown_signal())
}

fn db(action: DbAction) -> ExitCode {
    let (args, outcome) = match action {
        DbAction::Check(a) => {
            let r = standalone::db_check(&a.data_dir).map(Done::Check);
            (a, r)
        }
        DbAction::Repair(a) => {
            let r = standalone::db_repair(&a.data_dir).map(Done::Repair);
            (a, r)
        }
        DbAction::Optimize(a) => {
            let r = standalone::db_optimize(&a.data_dir).map(Done::Optimize);
            (a, r)
        }
    };
    match outcome {
        Ok(done) => {
            let healthy = !matches!(&done, Done::Check(r) if !r.ok);
            let text = if args.json {
                done.json()
            } else {
                done.human(&args.data_dir)
            };
            println!("{text}");
            ExitCode::from(if healthy { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            let refused = matches!(
                e,
                DbError::InUse { .. } | DbError::UnknownLock { .. } | DbError::NoDataDir(_)
            );
            ExitCode::from(if refused { 2 } else { 1 })
        }
    }
}

/// The report of a tool that ran.
enum Done {
    Check(DbReport),
    Repair(RepairReport),
    Optimize(OptimizeReport),
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn height(blocks: u64) -> String {
    match blocks.checked_sub(1) {
        Some(h) => format!("height {h}"),
        None => "no block: the node syncs from genesis".to_string(),
    }
}

impl Done {
    fn json(&self) -> String {
        let v = match self {
            Done::Check(r) => serde_json::to_string_pretty(r),
            Done::Repair(r) => serde_json::to_string_pretty(r),
            Done::Optimize(r) => serde_json::to_string_pretty(r),
        };
        v.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    fn human(&self, dir: &Path) -> String {
        match self {
            Done::Check(r) => {
                let temps = if r.temp_files > 0 {
                    format!(
                        "\n{} left by an unfinished write (`neo-ir sim db optimize` removes them)",
                        plural(r.temp_files, "temp file", "temp files")
                    )
                } else {
                    String::new()
                };
                match &r.first_bad {
                    None => format!(
                        "ok: {} ({}) in {}{temps}",
                        plural(r.blocks, "block", "blocks"),
                        height(r.blocks),
                        r.file.display()
                    ),
                    Some(bad) => format!(
                        "corrupt: block {}: {} in {}\n{} intact before it ({}).\n\
                         Repair drops block {} and everything after it (the node re-syncs them \
                         from its upstream): neo-ir sim db repair --data-dir {}\n\
                         or restore a backup of the data directory.{temps}",
                        bad.index,
                        bad.reason,
                        r.file.display(),
                        plural(r.blocks, "block", "blocks"),
                        height(r.blocks),
                        bad.index,
                        dir.display()
                    ),
                }
            }
            Done::Repair(r) if r.dropped == 0 => format!(
                "nothing to repair: {} intact in {}",
                plural(r.blocks, "block", "blocks"),
                r.file.display()
            ),
            Done::Repair(r) => format!(
                "repaired {}: dropped {} from block {} on; {} kept ({})",
                r.file.display(),
                plural(r.dropped, "record", "records"),
                r.blocks,
                plural(r.blocks, "block", "blocks"),
                height(r.blocks)
            ),
            Done::Optimize(r) => format!(
                "optimized {}: {}, {} -> {} bytes, removed {}",
                r.file.display(),
                plural(r.blocks, "block", "blocks"),
                r.bytes_before,
                r.bytes_after,
                plural(r.temp_files_removed, "temp file", "temp files")
            ),
        }
    }
}
