//! The reliability suite: every fault dingsync must survive, against the simulator's fault
//! injection and a real slapd. Each case makes HR changes in DingTalk, runs a sync while the
//! fault fires, lifts the fault, runs again, and then compares the directory with DingTalk's
//! truth. It prints one table:
//!
//! | fault | runs | converged | lost | duplicated | wrongly disabled |
//!
//! and fails unless every run converged with nothing lost, duplicated or wrongly disabled —
//! also in the state the faulted run itself left behind, before any recovery.
//!
//! The table is written to the process's stdout handle, which the test runner does not
//! capture, so it shows on every run. `DINGSYNC_RELIABILITY_RUNS` sets the runs per fault
//! (default 2).

use crate::support::{World, manifests, scim_server, slapd, world::ldap_directory};
use std::{
    collections::{BTreeMap, BTreeSet},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use dingsync::{
    api::target::Layout,
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::{Directory, ldap::LdapDirectory},
    mapping::Mapping,
    sim::{
        self, DeptWrite, SimConfig, SimHandle, Simulator, UserWrite,
        generate::{GenSpec, generate},
        state::{FaultKind, FaultRule},
    },
    sync::{self, Options, Report, dingtalk_source::DingTalkSource},
};
use slapd::Slapd;

const CORP: &str = "dingsimcorp";

/// What one run of one case left behind.
#[derive(Default, Clone, Copy)]
struct Tally {
    runs: usize,
    converged: usize,
    lost: usize,
    duplicated: usize,
    wrongly_disabled: usize,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        self.runs += 1;
        self.converged += usize::from(o.converged);
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.wrongly_disabled += o.wrongly_disabled;
    }
    fn clean(&self) -> bool {
        self.converged == self.runs
            && self.lost == 0
            && self.duplicated == 0
            && self.wrongly_disabled == 0
    }
}

#[derive(Default, Clone, Copy, Debug)]
struct Outcome {
    converged: bool,
    lost: usize,
    duplicated: usize,
    wrongly_disabled: usize,
}

/// One enterprise in the simulator and one node in slapd, with the engine between them.
struct Bench {
    sim: SimHandle,
    server: Arc<Slapd>,
    node: String,
    seed: u64,
}

impl Bench {
    async fn new(server: Arc<Slapd>, name: &str, seed: u64) -> Bench {
        let sim = World::builder()
            .people(240)
            .departments(24)
            .seed(seed)
            .build()
            .await
            .expect("a world without servers")
            .sim;
        let node = server.new_node(name).expect("node");
        Bench {
            sim,
            server,
            node,
            seed,
        }
    }

    fn client(&self, tweak: impl FnOnce(&mut ClientConfig)) -> DingTalkClient {
        let mut c = ClientConfig::new(
            CORP,
            sim::DEFAULT_APP_KEY,
            Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
        )
        .with_base(&self.sim.base_url());
        c.per_api_per_second = 2_000;
        c.backoff_base = Duration::from_millis(20);
        c.backoff_max = Duration::from_millis(200);
        tweak(&mut c);
        DingTalkClient::new(c)
    }

    async fn directory(&self) -> LdapDirectory {
        ldap_directory(&self.server, &self.node, Layout::FlatWithGroups, CORP).await
    }

    async fn sync_with(&self, client: DingTalkClient) -> Result<Report, sync::SyncError> {
        let dir = self.directory().await;
        let source = DingTalkSource::new(client, vec![1]);
        let opts = Options {
            max_percent: 100,
            max_count: 10_000,
            ..Default::default()
        };
        let quiet = |_: &str, _: usize, _: Option<usize>| {};
        sync::run(
            &source,
            &dir,
            &crate::support::conformance::mapping(),
            &opts,
            false,
            &quiet,
        )
        .await
    }

    async fn sync(&self) -> Report {
        self.sync_with(self.client(|_| {}))
            .await
            .expect("a clean sync")
    }

    /// Hires, leavers, moves and a renamed department: enough work for a fault to land on.
    fn hr_changes(&self) {
        let org = self.sim.org();
        let depts: Vec<i64> = org
            .departments
            .iter()
            .filter(|d| d.parent_id.is_some())
            .map(|d| d.id)
            .collect();
        for i in 0..20 {
            self.sim
                .hire(UserWrite {
                    userid: Some(format!("hire{}x{i}", self.seed)),
                    name: Some(["王芳", "李娜", "张伟", "刘洋"][i % 4].into()),
                    departments: Some(vec![depts[i % depts.len()]]),
                    ..Default::default()
                })
                .expect("hire");
        }
        for p in org.people.iter().skip(3).step_by(23).take(8) {
            self.sim.leave(&p.userid).expect("leave");
        }
        for (i, p) in org.people.iter().skip(5).step_by(17).take(10).enumerate() {
            let to = depts[(i * 7 + 3) % depts.len()];
            if self.sim.move_user(&p.userid, vec![to]).is_err() {
                // Already gone (a leaver above): nothing to move.
                continue;
            }
        }
        let d = depts[depts.len() / 2];
        self.sim
            .update_department(
                d,
                DeptWrite {
                    name: Some(format!("重组部{}", self.seed)),
                    ..Default::default()
                },
            )
            .expect("rename");
    }

    /// Ids of the people the directory holds, enabled, right now.
    async fn present(&self) -> BTreeSet<String> {
        let snap = self.directory().await.read().await.expect("read node");
        snap.people
            .iter()
            .filter(|p| !p.disabled)
            .filter_map(|p| p.id.clone())
            .collect()
    }

    /// The directory against DingTalk's truth. With `before` (the people present before a
    /// faulted run) only what the run could have damaged counts: someone who was there and
    /// still works at the company but is now missing is lost; someone not yet created is
    /// merely pending. Without it, the run must have converged completely.
    async fn check(&self, before: Option<&BTreeSet<String>>) -> Outcome {
        self.check_quietly(before, false).await
    }

    async fn check_quietly(&self, before: Option<&BTreeSet<String>>, quiet: bool) -> Outcome {
        let require_complete = before.is_none();
        let truth = self.sim.org();
        let snap = self.directory().await.read().await.expect("read node");
        let mut by_id: BTreeMap<&str, Vec<&dingsync::directory::PersonEntry>> = BTreeMap::new();
        for p in &snap.people {
            if let Some(id) = p.id.as_deref() {
                by_id.entry(id).or_default().push(p);
            }
        }
        let duplicated = by_id.values().filter(|v| v.len() > 1).count();
        let mut lost = 0;
        let mut wrongly_disabled = 0;
        let mut wrong_groups = 0;
        for p in &truth.people {
            match by_id.get(p.userid.as_str()) {
                None if before.is_none_or(|b| b.contains(&p.userid)) => lost += 1,
                None => {}
                Some(entries) => {
                    if entries.iter().any(|e| e.disabled) {
                        wrongly_disabled += 1;
                    }
                    let want: BTreeSet<String> =
                        p.departments.iter().map(|d| d.to_string()).collect();
                    let have: BTreeSet<String> = entries[0].departments.iter().cloned().collect();
                    wrong_groups += usize::from(want != have);
                }
            }
        }
        let alive: BTreeSet<&str> = truth.people.iter().map(|p| p.userid.as_str()).collect();
        // Leavers stay, disabled: an enabled entry for someone who left is drift.
        let stale = snap
            .people
            .iter()
            .filter(|e| !e.disabled && e.id.as_deref().is_some_and(|id| !alive.contains(id)))
            .count();
        let depts_truth: BTreeMap<String, &str> = truth
            .departments
            .iter()
            .map(|d| (d.id.to_string(), d.name.as_str()))
            .collect();
        let depts_dir: BTreeMap<String, String> = snap
            .departments
            .iter()
            .map(|d| (d.id.clone(), d.name.clone()))
            .collect();
        let depts_equal = depts_truth.len() == depts_dir.len()
            && depts_truth
                .iter()
                .all(|(id, name)| depts_dir.get(id).map(String::as_str) == Some(*name));
        // An independent count, not through dingsync's reader: every entry under the node's
        // people container is one of DingTalk's people (current or departed), once.
        let listing = self
            .server
            .search(&format!("ou=people,{}", self.node), "(uid=*)", &["1.1"])
            .unwrap_or_default();
        let entries = listing.matches("dn: ").count();
        let expected_entries = by_id.len();
        let converged = lost == 0
            && duplicated == 0
            && wrongly_disabled == 0
            && (!require_complete
                || (wrong_groups == 0 && stale == 0 && depts_equal && entries == expected_entries));
        if require_complete && !converged && !quiet {
            eprintln!(
                "  not converged: lost {lost}, duplicated {duplicated}, wrongly disabled {wrongly_disabled}, \
                 wrong groups {wrong_groups}, stale enabled {stale}, departments equal {depts_equal}, \
                 entries {entries} vs {expected_entries}"
            );
        }
        Outcome {
            converged,
            lost,
            duplicated,
            wrongly_disabled,
        }
    }
}

fn rule(api: Option<&str>, kind: FaultKind, skip: u64, times: u64) -> FaultRule {
    let mut r = FaultRule::new(api, kind);
    r.skip = skip;
    r.times = times;
    r
}

/// A DingTalk fault during the run, then a clean run.
async fn dingtalk_case(
    server: Arc<Slapd>,
    name: &str,
    seed: u64,
    faults: Vec<FaultRule>,
    tweak: impl FnOnce(&mut ClientConfig),
    mid_run: Option<fn(&SimHandle)>,
) -> (Outcome, Outcome) {
    let b = Bench::new(server, name, seed).await;
    b.sync().await;
    b.hr_changes();
    for f in faults {
        b.sim.add_fault(f);
    }
    let before = b.present().await;
    let client = b.client(tweak);
    let run = b.sync_with(client);
    let during = if let Some(hook) = mid_run {
        let sim = &b.sim;
        let (r, _) = tokio::join!(run, async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            hook(sim);
        });
        r
    } else {
        run.await
    };
    // Whatever the faulted run did, it must not have lost or wrongly disabled anyone.
    if let Err(e) = &during {
        eprintln!("  {name}: faulted run stopped: {e}");
    }
    let after_fault = b.check(Some(&before)).await;
    b.sim.clear_faults();
    b.sync().await;
    let end = b.check(None).await;
    b.sim.shutdown().await;
    (after_fault, end)
}

fn worst(a: Outcome, b: Outcome) -> Outcome {
    Outcome {
        converged: b.converged,
        lost: a.lost.max(b.lost),
        duplicated: a.duplicated.max(b.duplicated),
        wrongly_disabled: a.wrongly_disabled.max(b.wrongly_disabled),
    }
}

async fn slapd_restart_case(server: Arc<Slapd>, seed: u64) -> Outcome {
    // A slapd of its own: this case stops it.
    let own = Arc::new(Slapd::start().expect("slapd"));
    drop(server);
    let b = Bench::new(own.clone(), "restart", seed).await;
    b.sync().await;
    b.hr_changes();
    // Many writes pending: a first sync of a second, larger enterprise-wide change set.
    for i in 0..150 {
        b.sim
            .hire(UserWrite {
                userid: Some(format!("bulk{seed}x{i}")),
                name: Some(format!("员工{i}")),
                departments: Some(vec![1]),
                ..Default::default()
            })
            .expect("hire");
    }
    let before = b.present().await;
    let pid = own.pid().expect("slapd pid");
    let run = b.sync_with(b.client(|_| {}));
    let (r, _) = tokio::join!(run, async {
        tokio::time::sleep(Duration::from_millis(120)).await;
        // SIGKILL: no clean shutdown, in-flight operations are cut.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    if let Err(e) = &r {
        eprintln!("  slapd killed mid-apply: run stopped: {e}");
    }
    // Restart it on the same port and data: take the server back from the bench first.
    let Bench {
        sim,
        server: held,
        node,
        seed,
    } = b;
    drop(held);
    let mut own = Arc::try_unwrap(own).unwrap_or_else(|_| panic!("slapd still shared"));
    own.restart().expect("restart slapd");
    let b = Bench {
        sim,
        server: Arc::new(own),
        node,
        seed,
    };
    let during = b.check(Some(&before)).await;
    b.sync().await;
    let end = b.check(None).await;
    b.sim.shutdown().await;
    worst(during, end)
}

/// The process is killed (SIGKILL) in the middle of `dingsync apply`, then run again.
async fn killed_mid_apply_case(server: Arc<Slapd>, seed: u64) -> Outcome {
    let b = Bench::new(server.clone(), &format!("killed{seed}"), seed).await;
    b.hr_changes();
    let before = BTreeSet::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("all.yaml"),
        manifests(
            &b.sim.base_url(),
            &server.url(),
            &b.node,
            server.service_password(),
        ),
    )
    .expect("manifests");
    let bin = env!("CARGO_BIN_EXE_dingsync");
    let apply = || {
        Command::new(bin)
            .args(["apply", "-f"])
            .arg(dir.path())
            .env("DINGSYNC_SECRET_APP_APPSECRET", sim::DEFAULT_APP_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dingsync apply")
    };
    let mut child = apply();
    // Kill as soon as the first entries are in: the run is then mid-apply.
    let t = Instant::now();
    loop {
        let n = server
            .search(&format!("ou=people,{}", b.node), "(uid=*)", &["1.1"])
            .unwrap_or_default()
            .matches("dn: ")
            .count();
        if n >= 10 || t.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let during = b.check(Some(&before)).await;
    let status = apply().wait().expect("second apply");
    if !status.success() {
        eprintln!("  second apply exited {status}");
    }
    let end = b.check(None).await;
    b.sim.shutdown().await;
    worst(during, end)
}

/// Events instead of full syncs: a burst of HR changes delivered over Stream with duplicated
/// and reordered events and the connection dropped mid-burst; only events may fix it.
async fn stream_burst_case(server: Arc<Slapd>, seed: u64, drop_connection: bool) -> Outcome {
    use dingsync::{
        dingtalk::{StreamConfig, StreamState},
        sim::state::EventFaults,
        sync::events::{LiveTarget, Pipeline, PipelineConfig},
    };
    let b = Bench::new(server, &format!("stream{seed}{drop_connection}"), seed).await;
    b.sync().await;
    let client = b.client(|_| {});
    let pipeline = Pipeline::start(PipelineConfig::default());
    pipeline.set_target(
        "rel",
        LiveTarget {
            source: Arc::new(DingTalkSource::new(client.clone(), vec![1])),
            dir: Arc::new(b.directory().await),
            mapping: Arc::new(crate::support::conformance::mapping()),
            opts: Options {
                max_percent: 100,
                max_count: 10_000,
                ..Default::default()
            },
            lock: Default::default(),
        },
        true,
    );
    let stream = client.start_stream(
        StreamConfig {
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(300),
            ..Default::default()
        },
        pipeline.handler(),
    );
    stream.wait_for(|s| *s == StreamState::Connected).await;
    let before = b.present().await;
    b.sim.set_event_faults(EventFaults {
        duplicate: 15,
        reorder: 15,
        ..Default::default()
    });
    b.hr_changes();
    if drop_connection {
        b.sim.disconnect_streams(None, false);
    }
    for i in 0..20 {
        b.sim
            .hire(UserWrite {
                userid: Some(format!("late{seed}x{i}")),
                name: Some(format!("后来{i}")),
                departments: Some(vec![1]),
                ..Default::default()
            })
            .expect("hire");
    }
    let during = b.check(Some(&before)).await;
    let mut end = b.check_quietly(None, true).await;
    for _ in 0..100 {
        if end.converged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        end = b.check_quietly(None, true).await;
    }
    if !end.converged {
        // Print why (check prints the differences when asked for completeness).
        b.check(None).await;
    }
    stream.stop().await;
    b.sim.shutdown().await;
    worst(during, end)
}

/// An HTTP proxy in front of the SCIM server that answers 503 to requests number
/// `skip+1 ..= skip+times` (a server failing for a while), passing everything else through.
async fn flaky_proxy(upstream: String, skip: u64, times: u64) -> (String, Arc<AtomicU64>) {
    use axum::{body::Body, extract::Request, http::StatusCode, response::Response};
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (http, upstream, counter) = (http.clone(), upstream.clone(), counter.clone());
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if n > skip && n <= skip + times {
                return Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .body(Body::from("upstream busy"))
                    .unwrap();
            }
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let url = format!(
                "{upstream}{}",
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
            );
            let mut out = http.request(parts.method, url).body(body);
            for (k, v) in &parts.headers {
                if k != "host" {
                    out = out.header(k, v);
                }
            }
            match out.send().await {
                Ok(r) => {
                    let mut b = Response::builder().status(r.status());
                    for (k, v) in r.headers() {
                        if k != "transfer-encoding" && k != "content-length" {
                            b = b.header(k, v);
                        }
                    }
                    b.body(Body::from(r.bytes().await.unwrap_or_default()))
                        .unwrap()
                }
                Err(_) => Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(Body::empty())
                    .unwrap(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

/// The SCIM server answers 503 for a while in the middle of a run.
async fn scim_flaky_case(seed: u64) -> Option<Outcome> {
    use dingsync::directory::scim::{
        ScimDirectory,
        client::{BearerToken, ScimClient},
    };
    let scim = scim_server::ScimServer::start()?;
    let origin = scim.base_url.trim_end_matches("/v2").to_owned();
    let org = generate(&GenSpec {
        people: 120,
        departments: 12,
        seed,
        corp_id: CORP.into(),
        ..Default::default()
    });
    let sim = Simulator::start(
        SimConfig {
            qps_limit: None,
            ..SimConfig::fast()
        },
        org,
        "127.0.0.1:0",
    )
    .await
    .expect("simulator");
    let (proxy, _) = flaky_proxy(origin.clone(), 60, 40).await;
    let mut c = ClientConfig::new(
        CORP,
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&sim.base_url());
    c.per_api_per_second = 2_000;
    let source = DingTalkSource::new(DingTalkClient::new(c), vec![1]);
    let directory = |base: String| {
        let token = scim.token.clone();
        async move {
            let client = ScimClient::connect(&format!("{base}/v2"), BearerToken::new(token), None)
                .await
                .expect("SCIM connect");
            ScimDirectory::new(client, CORP, "rel")
        }
    };
    let opts = Options {
        max_percent: 100,
        max_count: 10_000,
        ..Default::default()
    };
    let mapping = Mapping::compile(&scim_mapping()).expect("SCIM mapping");
    let quiet = |_: &str, _: usize, _: Option<usize>| {};
    // Through the flaky proxy: some writes (or the read) fail.
    let flaky = directory(proxy).await;
    if let Err(e) = sync::run(&source, &flaky, &mapping, &opts, false, &quiet).await {
        eprintln!("  SCIM 503s: run stopped: {e}");
    }
    let direct = directory(origin).await;
    let check = |snap: dingsync::directory::Snapshot| {
        let truth = sim.org();
        let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
        for p in &snap.people {
            if let Some(id) = &p.id {
                *by_id.entry(id.clone()).or_default() += 1;
            }
        }
        let duplicated = by_id.values().filter(|n| **n > 1).count();
        let wrongly_disabled = snap.people.iter().filter(|p| p.disabled).count();
        let lost = truth
            .people
            .iter()
            .filter(|p| !by_id.contains_key(&p.userid))
            .count();
        (
            lost,
            duplicated,
            wrongly_disabled,
            snap.departments.len() == truth.departments.len(),
        )
    };
    let (_, dup_mid, wd_mid, _) = check(direct.read().await.expect("read"));
    sync::run(&source, &direct, &mapping, &opts, false, &quiet)
        .await
        .expect("a clean run once the server recovers");
    let (lost, duplicated, wrongly_disabled, depts) = check(direct.read().await.expect("read"));
    sim.shutdown().await;
    Some(Outcome {
        converged: lost == 0 && duplicated == 0 && wrongly_disabled == 0 && depts,
        lost,
        duplicated: duplicated.max(dup_mid),
        wrongly_disabled: wrongly_disabled.max(wd_mid),
    })
}

fn scim_mapping() -> dingsync::api::FieldMappingSpec {
    serde_json::from_value(serde_json::json!({
        "user": {
            "uniqueName": {"attribute": "userName", "template": "{{ name | pinyin }}"},
            "attributes": [{"target": "displayName", "template": "{{ name }}"}]
        }
    }))
    .expect("mapping spec")
}

fn manifests(sim_url: &str, ldap_url: &str, node: &str, password: &str) -> String {
    // The same mapping as the in-process cases (support::conformance::mapping).
    manifests::InboundLdap {
        sim_url,
        app_key: sim::DEFAULT_APP_KEY,
        app_secret: None,
        ldap_url,
        bind_dn: slapd::SERVICE_DN,
        node,
        password,
        attributes: &[("mail", "{{ email | lower }}")],
    }
    .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_converges() {
    let Some(server) = slapd::start_or_skip() else {
        return;
    };
    let server = Arc::new(server);
    let runs: u64 = std::env::var("DINGSYNC_RELIABILITY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut table: Vec<(&str, Tally)> = Vec::new();
    let user_list = Some("/topapi/v2/user/list");
    let listsub = Some("/topapi/v2/department/listsub");

    macro_rules! case {
        ($label:expr, |$seed:ident| $body:expr) => {{
            let mut t = Tally::default();
            for i in 0..runs {
                let $seed = 100 + i;
                let o: Outcome = $body;
                t.add(o);
            }
            table.push(($label, t));
        }};
    }

    case!("DingTalk 5xx mid-walk", |seed| {
        let (a, b) = dingtalk_case(
            server.clone(),
            &format!("http5xx{seed}"),
            seed,
            vec![
                rule(user_list, FaultKind::Http { status: 502 }, 6, 4),
                rule(listsub, FaultKind::SystemBusy, 3, 3),
            ],
            |_| {},
            None,
        )
        .await;
        worst(a, b)
    });
    case!("DingTalk timeouts mid-walk", |seed| {
        let (a, b) = dingtalk_case(
            server.clone(),
            &format!("timeout{seed}"),
            seed,
            vec![
                rule(user_list, FaultKind::Latency { ms: 1500 }, 4, 3),
                rule(user_list, FaultKind::UpstreamTimeout, 10, 2),
            ],
            |c| c.timeout = Duration::from_millis(500),
            None,
        )
        .await;
        worst(a, b)
    });
    case!("DingTalk throttling storm", |seed| {
        let (a, b) = dingtalk_case(
            server.clone(),
            &format!("throttle{seed}"),
            seed,
            vec![
                rule(None, FaultKind::Throttle, 2, 15),
                rule(user_list, FaultKind::Throttle, 20, 5),
            ],
            |c| c.attempts = 12,
            None,
        )
        .await;
        worst(a, b)
    });
    case!("DingTalk token invalidated mid-run", |seed| {
        let (a, b) = dingtalk_case(
            server.clone(),
            &format!("token{seed}"),
            seed,
            vec![rule(user_list, FaultKind::InvalidToken, 5, 2)],
            |_| {},
            Some(|sim: &SimHandle| {
                sim.invalidate_tokens(None);
            }),
        )
        .await;
        worst(a, b)
    });
    case!("DingTalk member listing down (incomplete read)", |seed| {
        let (a, b) = dingtalk_case(
            server.clone(),
            &format!("down{seed}"),
            seed,
            vec![rule(user_list, FaultKind::SystemBusy, 8, 0)],
            |c| c.attempts = 2,
            None,
        )
        .await;
        worst(a, b)
    });
    case!("slapd killed and restarted mid-apply", |seed| {
        slapd_restart_case(server.clone(), seed).await
    });
    case!("dingsync killed mid-apply, run again", |seed| {
        killed_mid_apply_case(server.clone(), seed).await
    });
    case!("Stream events duplicated and reordered", |seed| {
        stream_burst_case(server.clone(), seed, false).await
    });
    case!("Stream connection dropped mid-burst", |seed| {
        stream_burst_case(server.clone(), seed, true).await
    });
    if scim_server::ScimServer::start().is_some() {
        case!("SCIM server answering 503 for a while", |seed| {
            scim_flaky_case(seed).await.expect("scim2-server")
        });
    }

    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Reliability suite ({runs} runs per fault, real slapd, simulated DingTalk)\n"
    );
    let _ = writeln!(
        out,
        "| fault | runs | converged | lost | duplicated | wrongly disabled |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let mut ok = true;
    for (label, t) in &table {
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} |",
            t.runs, t.converged, t.lost, t.duplicated, t.wrongly_disabled
        );
        ok &= t.clean();
    }
    {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
    }
    assert!(
        ok,
        "reliability suite FAILED: a fault left the directory different from DingTalk{out}"
    );
    println!("all faults converged with nothing lost, duplicated or wrongly disabled");
}
