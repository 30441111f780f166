//! `dingsync controller`.

/// Options of `dingsync controller`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `dingsync controller`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dingsync controller` is not available in this build yet")
}
