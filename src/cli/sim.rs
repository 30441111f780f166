//! `dingsync sim`: serve the DingTalk simulator on one port.

use std::path::PathBuf;
use std::time::Duration;

use crate::sim::{self, App, SimConfig, Simulator, generate};

/// Help text listing the admin API (also documented in `dingsync::sim`).
const ADMIN_HELP: &str = "\
Serves on one port: oapi (/gettoken, /topapi/...), /v1.0 (oauth2/accessToken,
oauth2/userAccessToken, contact/users/me, gateway/connections/open), the login page
/oauth2/auth, and the Stream WebSocket /connect. Prints the base URL on stdout; stops on
SIGTERM or Ctrl-C.

Admin API (reserved prefix /__sim/, JSON):
  GET    /__sim/health | /org | /counters | /events | /faults | /stream/connections | /callbacks/failed
  POST   /__sim/counters/reset
  PATCH  /__sim/org                       {name}: the enterprise renamed (org_change)
  POST   /__sim/users                     hire {userid?, name, departments, mobile?, email?, title?, ...}
  GET    /__sim/users/{userid}
  PATCH  /__sim/users/{userid}            edit or move (departments replaces the set);
                                          admin / active alone: org_admin_* / user_active_org
  DELETE /__sim/users/{userid}            leave
  POST   /__sim/users/{userid}/rehire     {departments?}
  POST   /__sim/departments               {name, parent_id, order?}
  PATCH  /__sim/departments/{id}          rename / move / reorder
  DELETE /__sim/departments/{id}
  POST   /__sim/roles                     {name, group_name?, add?}         label_conf_add
  PATCH  /__sim/roles/{id}                {name?, add?, remove?}            label_conf_modify / label_user_change
  DELETE /__sim/roles/{id}                                                  label_conf_del
  POST   /__sim/faults                    {api?, app_key?, skip, times, kind:{type:...}}
                                          types: http{status}, system_busy, upstream_timeout,
                                          errcode{errcode}, throttle, ip_ban, invalid_token, latency{ms}
  DELETE /__sim/faults
  PUT    /__sim/latency                   {ms}
  PUT    /__sim/qps                       {limit: 20 | null}
  POST   /__sim/tokens/invalidate         {app_key?}
  POST   /__sim/clock/advance             {seconds}
  PUT    /__sim/event-faults              {drop, duplicate, reorder}
  POST   /__sim/stream/disconnect         {app_key?, graceful}
  POST   /__sim/oauth/code                {app_key, userid, corpid?} -> {authCode}
  PUT    /__sim/apps/{app_key}/callback   {url, token, aes_key} (console-style HTTP events)
  POST   /__sim/stream/callback           {app_key, topic, data}: a CALLBACK push to a subscriber
  GET    /__sim/suites                    third-party (suite) apps; suitesimkey000000001 is offered
  POST   /__sim/suites/{key}/ticket       push a new suiteTicket (suite_ticket event)
  POST   /__sim/suites/{key}/authorize    {userid}: an admin authorises the suite (org_suite_auth)
  DELETE /__sim/suites/{key}/authorize    the enterprise removes it (org_suite_relieve)
Third-party apps: POST /v1.0/oauth2/corpAccessToken, POST /service/get_corp_token (signed),
and the authorisation page GET /oauth2/suite/auth?suite_key=... with a \"scan as\" form.";

/// Serve a local DingTalk for tests, demos and benchmarks.
#[derive(clap::Args, Debug)]
#[command(after_help = ADMIN_HELP)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the base URL is printed).
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub listen: String,
    /// Org file (YAML: departments, people, apps); see examples/simulator/org.yaml.
    #[arg(long, conflicts_with_all = ["people", "departments"])]
    pub org: Option<PathBuf>,
    /// Generate this many people (when no --org is given).
    #[arg(long, default_value_t = 50)]
    pub people: usize,
    /// Generate this many departments besides the root (when no --org is given).
    #[arg(long, default_value_t = 10)]
    pub departments: usize,
    /// Seed of the generator: same seed, same org.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// corpId of a generated org.
    #[arg(long, default_value = sim::DEFAULT_CORP_ID)]
    pub corp_id: String,
    /// AppKey of the app added to the org (unless the org file already has it).
    #[arg(long, default_value = sim::DEFAULT_APP_KEY)]
    pub app_key: String,
    /// AppSecret of that app.
    #[arg(long, default_value = sim::DEFAULT_APP_SECRET, env = "DINGSYNC_SIM_APP_SECRET", hide_default_value = true)]
    pub app_secret: String,
    /// Per-app per-API QPS limit (DingTalk: 20); 0 switches it off.
    #[arg(long, default_value_t = 20)]
    pub qps: u32,
    /// Short timers for tests (Stream redelivery after 1 s, pings every 2 s, fast callback retries).
    #[arg(long)]
    pub fast: bool,
    /// Seconds before an EVENT not acked is delivered again (default 60, or 1 with --fast).
    #[arg(long)]
    pub ack_timeout: Option<u64>,
}

/// Entry point of `dingsync sim`.
pub fn run(args: Args) -> anyhow::Result<()> {
    // Logs go to stderr so that stdout carries only the base URL.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    crate::runtime::block_on(serve(args))?
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut org = match &args.org {
        Some(path) => sim::Org::load(path)?,
        None => generate::generate(&generate::GenSpec {
            people: args.people,
            departments: args.departments,
            seed: args.seed,
            corp_id: args.corp_id.clone(),
            app_key: args.app_key.clone(),
            app_secret: args.app_secret.clone(),
            ..Default::default()
        }),
    };
    if org.app(&args.app_key).is_none() {
        org.apps
            .push(App::new(args.app_key.clone(), args.app_secret.clone()));
    }
    let mut config = if args.fast {
        SimConfig::fast()
    } else {
        SimConfig::default()
    };
    config.qps_limit = (args.qps > 0).then_some(args.qps);
    if let Some(s) = args.ack_timeout {
        config.stream_ack_timeout = Duration::from_secs(s);
    }
    let handle = Simulator::start(config, org, &args.listen).await?;
    println!("{}", handle.base_url());
    crate::runtime::shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
