use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Keep DingTalk's address book and your LDAP or SCIM directory in step.
#[derive(Parser)]
#[command(name = "dingsync", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write them into a directory).
    Crd {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { out_dir } => dingsync::cli::crd::run(out_dir.as_deref()),
    }
}
