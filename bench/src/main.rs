//! `neo-ir-bench`: how fast and how cheaply neo-ir detects incidents.
//!
//! - `detection` runs the simulated Neo N3 network (4 validators + 3 RPC nodes, 1 s blocks)
//!   watched by neo-ir at a 1 s probe interval, injects each fault kind N times and prints the
//!   detection latency (p50/p95/max) and false incidents per kind against the targets. When
//!   Debian's `prometheus` and `prometheus-alertmanager` are installed it runs them, tuned,
//!   against the same network at the same time and prints neo-ir's latency as a ratio of
//!   theirs ([`detection`], [`prom`]).
//! - `scale` watches N lightweight JSON-RPC endpoints served by a child process and prints the
//!   watcher's CPU % of one core and peak RSS ([`scale`], [`endpoints`]).
//! - `serve-endpoints` (hidden) is that child process.
//!
//! A benchmark, not a test: it prints numbers and exits 0 when it could measure, whether or
//! not a target was met (the tables say which were).

mod detection;
mod endpoints;
mod prom;
mod scale;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "neo-ir-bench",
    about = "Detection and scale benchmark of neo-ir"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Inject every fault kind N times; print detection latency and false incidents.
    Detection(detection::Args),
    /// Watch N lightweight RPC endpoints; print the watcher's CPU % and peak RSS.
    Scale(scale::Args),
    /// (internal) Serve the lightweight endpoints of `scale` in this process.
    #[command(hide = true)]
    ServeEndpoints(endpoints::Args),
}

/// mimalloc instead of glibc malloc: with thousands of nodes, glibc's arena locks and
/// consolidation cost a quarter of the watcher's CPU (bench/README.md, scale).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        // Ctrl-C drops the running future, so child processes are killed by their guards.
        tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted");
                Ok(ExitCode::from(130))
            }
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Detection(a) => detection::run(a).await,
        Cmd::Scale(a) => scale::run(a).await,
        Cmd::ServeEndpoints(a) => endpoints::serve(a).await,
    }
}
