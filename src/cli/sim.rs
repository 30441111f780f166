//! `dingsync sim`: serve the DingTalk simulator on a local port.

use crate::sim::{self, Org, SimConfig};

/// Options of `dingsync sim`. The admin API (`/__sim/...`) is described in the `sim` module docs
/// and the README: hire, edit, leave, department changes, faults, QPS switch, call counters.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8900")]
    pub listen: String,
    /// The enterprise's corpId.
    #[arg(long, default_value = "dingsimcorp")]
    pub corp_id: String,
    /// The app's AppKey.
    #[arg(long, default_value = "dingsimappkey")]
    pub app_key: String,
    /// The app's AppSecret.
    #[arg(long, default_value = "sim-app-secret")]
    pub app_secret: String,
    /// Org file (YAML: departments and users with DingTalk's field names).
    #[arg(long, conflicts_with_all = ["people", "departments"])]
    pub org: Option<std::path::PathBuf>,
    /// Generate this many people.
    #[arg(long, default_value_t = 200)]
    pub people: usize,
    /// Generate this many departments.
    #[arg(long, default_value_t = 20)]
    pub departments: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Calls per second per API before errcode 90018 (0: no limit).
    #[arg(long, default_value_t = 20)]
    pub qps: u32,
}

/// Entry point of `dingsync sim`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let org = match &args.org {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--org {}: {e}", path.display()))?;
            Org::from_yaml(&text).map_err(|e| anyhow::anyhow!("--org {}: {e}", path.display()))?
        }
        None => sim::generate(args.people, args.departments, args.seed),
    };
    let config = SimConfig {
        corp_id: args.corp_id,
        app_key: args.app_key,
        app_secret: args.app_secret,
        qps_limit: (args.qps > 0).then_some(args.qps),
        scope: vec![],
    };
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
        let (people, depts) = (org.users.len(), org.departments.len());
        let handle = sim::start(config, org, &args.listen).await?;
        println!("{}", handle.base_url());
        eprintln!("DingTalk simulator: {people} people, {depts} departments; admin API under {}/__sim/", handle.base_url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        handle.stop();
        Ok(())
    })
}
