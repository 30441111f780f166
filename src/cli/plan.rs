//! `dingsync plan`.

/// Options of `dingsync plan`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `dingsync plan`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dingsync plan` is not available in this build yet")
}
