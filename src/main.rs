use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A sync run builds and drops hundreds of megabytes of records in bursts, on several threads
/// (the plan renders templates on every core); glibc keeps such memory in per-thread arenas,
/// jemalloc hands it back and reuses it across threads. The sync benchmark links the same.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Keep DingTalk's address book and your LDAP or SCIM directory in step.
#[derive(Parser)]
#[command(name = "dingsync", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Kubernetes controller.
    Controller(dingsync::controller::process::Args),
    /// Show what a sync would change, without writing anything (no cluster needed).
    Plan(dingsync::cli::plan::Args),
    /// Run one full sync from the same YAML, writing the directory (no cluster needed).
    Apply(dingsync::cli::plan::Args),
    /// Serve a binding's OIDC login provider from the same YAML (no cluster needed).
    Login(dingsync::cli::login::Args),
    /// Run the whole product end to end on this machine: simulator, directory, sync engine.
    Demo(dingsync::cli::demo::Args),
    /// Serve the DingTalk simulator.
    Sim(dingsync::cli::sim::Args),
    /// Print the CustomResourceDefinitions (or write them into a directory).
    Crd {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Controller(_)) {
        dingsync::telemetry::init_cli();
    }
    match cli.command {
        Command::Controller(args) => dingsync::controller::process::run(args),
        Command::Plan(args) => dingsync::cli::plan::run(args),
        Command::Apply(args) => dingsync::cli::plan::run_apply(args),
        Command::Demo(args) => dingsync::cli::demo::run(args),
        Command::Login(args) => dingsync::cli::login::run(args),
        Command::Sim(args) => dingsync::cli::sim::run(args),
        Command::Crd { out_dir } => dingsync::cli::crd::run(out_dir.as_deref()),
    }
}
