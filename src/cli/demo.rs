//! `dingsync demo`.

/// Options of `dingsync demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `dingsync demo`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dingsync demo` is not available in this build yet")
}
