use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Show a SyncTarget's run reports from the cluster: counts, failures, held removals.
    Report(dingsync::cli::reports::Args),
    /// Approve the removals the deletion threshold holds for a SyncTarget.
    Approve(dingsync::cli::approve::Args),
    /// Quick bind: an enterprise's admin scans a QR code to authorise the third-party app;
    /// writes the DingTalkBinding.
    Bind(dingsync::cli::bind::Args),
    /// Print the CustomResourceDefinitions (or write them into a directory).
    Crd {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

/// The name to show in help and errors: `kubectl dingsync` when installed as the kubectl
/// plugin `kubectl-dingsync` (kubectl runs plugins by that file name).
fn command_name() -> Option<&'static str> {
    let argv0 = std::env::args_os().next()?;
    let file = std::path::Path::new(&argv0)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    file.starts_with("kubectl-dingsync")
        .then_some("kubectl dingsync")
}

fn main() -> anyhow::Result<()> {
    let mut command = Cli::command();
    if let Some(name) = command_name() {
        command = command.name(name).bin_name(name);
    }
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
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
        Command::Report(args) => dingsync::cli::reports::run(args),
        Command::Approve(args) => dingsync::cli::approve::run(args),
        Command::Bind(args) => dingsync::cli::bind::run(args),
        Command::Crd { out_dir } => dingsync::cli::crd::run(out_dir.as_deref()),
    }
}
