//! `dingsync demo`.

/// Options of `dingsync demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Entry point of `dingsync demo`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    println!(
        "dingsync demo: runs the DingTalk simulator with a generated company, an embedded directory\n\
         and the real sync engine end to end, then plays HR changes through it.\n\n\
         This build does not include the sync engine yet, so there is nothing to run end to end.\n\
         What works today without a cluster:\n\
         \x20 dingsync crd               print the CustomResourceDefinitions\n\
         \x20 tests/run                  run the test suite\n"
    );
    Ok(())
}
