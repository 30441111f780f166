//! `dingsync sim`.

/// Options of `dingsync sim`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `dingsync sim`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dingsync sim` is not available in this build yet")
}
