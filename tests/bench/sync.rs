//! Benchmarks of the whole inbound path, printing figures against the design's bounds.
//!
//! 1. DingTalk read at the real quota (20 calls/s per API): calls against the lower bound
//!    (one listsub per department + one user/list page per 100 direct members) and wall time
//!    against the time that bound takes at 20 calls/s per API.
//! 2. Full sync from an unthrottled simulator into a real slapd (the in-memory directory with
//!    `DINGSYNC_BENCH_DIR=memory`, a real scim2-server with `DINGSYNC_BENCH_DIR=scim`): wall
//!    time, directory writes (and SCIM requests), diff time, peak RSS. The simulator runs as
//!    its own process (`dingsync sim`), so the RSS is dingsync's alone.
//!    Peak RSS is reported for the first run and, on its own, for the second (unchanged) run,
//!    which holds both sides' full reads. `DINGSYNC_BENCH_MEMPROBE=1` prints RSS between
//!    phases, `=2` also what the scope read, the model and the plan each hold.
//!
//! Sizes: `DINGSYNC_BENCH_READ_PEOPLE` (default 10000, in 500 departments) and
//! `DINGSYNC_BENCH_SIZES` (default `10000,100000`).

// The integration tests' support code (servers, mapping), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use std::{sync::Arc, time::Instant};
use support::scim_server;
use support::slapd;

/// The allocator the `dingsync` binary ships with, so the figures are the binary's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use dingsync::{
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::{
        Directory,
        ldap::{
            LdapDirectory,
            client::{ConnectOptions, Pool, Secret as LdapSecret},
            store::Store,
        },
        memory::MemoryDirectory,
    },
    sim::{
        self, Org, SimConfig, Simulator,
        generate::{GenSpec, generate},
    },
    sync::{self, Options, Source, dingtalk_source::DingTalkSource},
};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Start a new peak: the kernel resets VmHWM to the current RSS (`5` to `clear_refs`).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn rss_now_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn gen_org(people: usize, departments: usize, seed: u64) -> Org {
    generate(&GenSpec {
        people,
        departments,
        seed,
        ..Default::default()
    })
}

/// Direct members of every department (the root included), by department id.
fn members_per_department(org: &Org) -> std::collections::BTreeMap<i64, usize> {
    let mut m: std::collections::BTreeMap<i64, usize> =
        org.departments.iter().map(|d| (d.id, 0)).collect();
    for p in &org.people {
        for d in &p.departments {
            *m.entry(*d).or_default() += 1;
        }
    }
    m
}

async fn client_for(handle: &sim::SimHandle, config: &SimConfig) -> DingTalkClient {
    let mut c = ClientConfig::new(
        &handle.corp_id(),
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&handle.base_url());
    // Pace the client to the simulator's limit (none when it is unthrottled).
    c.per_api_per_second = config.qps_limit.unwrap_or(100_000);
    DingTalkClient::new(c)
}

async fn read_at_quota() {
    let people = support::bench::env_usize("DINGSYNC_BENCH_READ_PEOPLE", 10_000);
    if people == 0 {
        return;
    }
    let depts = (people / 20).max(1);
    let org = gen_org(people, depts, 11);
    let members = members_per_department(&org);
    let listsub_bound = members.len() as u64;
    let pages_bound: u64 = members
        .values()
        .map(|&n| n.max(1).div_ceil(100) as u64)
        .sum();
    let config = SimConfig {
        qps_limit: Some(20),
        ..Default::default()
    };
    let handle = Simulator::start(config.clone(), org, "127.0.0.1:0")
        .await
        .unwrap();
    let client = client_for(&handle, &config).await;
    let t = Instant::now();
    let read = client.read_scope(&[1]).await;
    let took = t.elapsed().as_secs_f64();
    let listsub = handle.calls("/topapi/v2/department/listsub");
    let pages = handle.calls("/topapi/v2/user/list");
    let get = handle.calls("/topapi/v2/department/get");
    // The two APIs run side by side, each at 20/s: the slower one sets the time.
    let time_bound = (listsub_bound.max(pages_bound)) as f64 / 20.0;
    println!("\n## DingTalk read at 20 calls/s per API: {people} people, {depts} departments");
    println!("| measure | value | bound | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| listsub calls | {listsub} | {listsub_bound} | {:.3} |",
        listsub as f64 / listsub_bound as f64
    );
    println!(
        "| user/list calls | {pages} | {pages_bound} | {:.3} |",
        pages as f64 / pages_bound as f64
    );
    println!(
        "| department/get calls (scope roots' names) | {get} | 1 | {:.3} |",
        get as f64
    );
    println!(
        "| wall time (s) | {took:.2} | {time_bound:.2} | {:.3} |",
        took / time_bound
    );
    println!(
        "| throttled (90018) | {} | 0 | |",
        handle.counters().throttled
    );
    println!("| read errors | {} | 0 | |", read.failures.len());
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Memory,
    Ldap,
    Scim,
}

/// The simulator in a process of its own (`dingsync sim`), so the figures below are
/// dingsync's alone; killed by PID when dropped.
struct SimProcess {
    child: std::process::Child,
    base_url: String,
}

impl SimProcess {
    fn start(people: usize, departments: usize, seed: u64) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dingsync"))
            .args(["sim", "--listen", "127.0.0.1:0", "--qps", "0"])
            .args(["--people", &people.to_string()])
            .args(["--departments", &departments.to_string()])
            .args(["--seed", &seed.to_string()])
            .env("DINGSYNC_SIM_APP_SECRET", sim::DEFAULT_APP_SECRET)
            // A heap profiler preloaded into the benchmark profiles dingsync, not the simulator.
            .env_remove("LD_PRELOAD")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dingsync sim");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the simulator prints its URL");
        let base_url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Self { child, base_url }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

async fn full_sync(people: usize, backend: Backend) {
    let depts = (people / 20).max(1);
    let sim_process = SimProcess::start(people, depts, 23);
    let corp_id = sim::DEFAULT_CORP_ID.to_owned();
    let mut c = ClientConfig::new(
        &corp_id,
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&sim_process.base_url);
    c.per_api_per_second = 100_000;
    // As the binary builds it: only the fields the mapping's templates read are kept.
    let source = DingTalkSource::new(DingTalkClient::new(c), vec![1])
        .keeping(support::conformance::mapping().person_fields());
    let mut server = None;
    let mut scim = None;
    let mut scim_client = None;
    let dir: Arc<dyn Directory> = if backend == Backend::Scim {
        let s = scim_server::ScimServer::start().expect("scim2-server");
        let c = dingsync::directory::scim::client::ScimClient::connect(
            &s.base_url,
            dingsync::directory::scim::client::BearerToken::new(&s.token),
            None,
        )
        .await
        .unwrap();
        scim_client = Some(c.clone());
        scim = Some(s);
        Arc::new(dingsync::directory::scim::ScimDirectory::new(
            c, &corp_id, "bench",
        ))
    } else if backend == Backend::Ldap {
        let s = slapd::Slapd::start().expect("slapd");
        let node = s.new_node("bench").unwrap();
        let pool = Pool::connect(ConnectOptions::new(
            s.url(),
            slapd::SERVICE_DN,
            LdapSecret::new(s.service_password()),
        ))
        .await
        .unwrap();
        let store = Store::open(pool, &node, Default::default(), &corp_id)
            .await
            .unwrap();
        server = Some(s);
        Arc::new(LdapDirectory::new(store))
    } else {
        Arc::new(MemoryDirectory::new("uid"))
    };
    let mapping = support::conformance::mapping();
    let opts = Options::default();
    let quiet = |_: &str, _: usize, _: Option<usize>| {};
    if std::env::var("DINGSYNC_BENCH_MEMPROBE").is_ok() {
        eprintln!("before: rss {:.0} hwm {:.0}", rss_now_mb(), peak_rss_mb());
        if std::env::var("DINGSYNC_BENCH_MEMPROBE").as_deref() == Ok("2") {
            let read = source.client.read_scope(&[1]).await;
            eprintln!(
                "scope read held: rss {:.0} hwm {:.0}",
                rss_now_mb(),
                peak_rss_mb()
            );
            let snap = dingsync::sync::dingtalk_source::to_model(&corp_id, read).normalise();
            eprintln!(
                "model held: rss {:.0} hwm {:.0}",
                rss_now_mb(),
                peak_rss_mb()
            );
            let t = Instant::now();
            let plan = sync::plan::plan(&snap, &Default::default(), &mapping, &opts);
            eprintln!(
                "plan held ({} steps, {:.2}s): rss {:.0} hwm {:.0}",
                plan.steps.len(),
                t.elapsed().as_secs_f64(),
                rss_now_mb(),
                peak_rss_mb()
            );
            drop(plan);
            drop(snap);
            eprintln!("dropped: rss {:.0} hwm {:.0}", rss_now_mb(), peak_rss_mb());
        }
    }
    let t = Instant::now();
    // Where the first sync's time goes: the moment each phase began.
    let phases: std::sync::Mutex<Vec<(String, f64)>> = Default::default();
    let timed = |phase: &str, _done: usize, _total: Option<usize>| {
        let mut v = phases.lock().unwrap();
        if v.last().is_none_or(|(p, _)| p != phase) {
            v.push((phase.to_owned(), t.elapsed().as_secs_f64()));
        }
        if std::env::var("DINGSYNC_BENCH_MEMPROBE").is_ok() {
            eprintln!(
                "{phase} {_done:?}/{_total:?} at {:.2} s: rss {:.0} hwm {:.0}",
                t.elapsed().as_secs_f64(),
                rss_now_mb(),
                peak_rss_mb()
            );
        }
    };
    let first = sync::run(&source, dir.as_ref(), &mapping, &opts, false, &timed)
        .await
        .unwrap();
    let first_time = t.elapsed().as_secs_f64();
    // A controller keeps a run's figures, not its report (which holds the whole plan).
    let (first_writes, first_failures) = (first.writes, first.failures.len());
    // A run with failures is no measure of anything: say why, by reason.
    let mut reasons = std::collections::BTreeMap::<String, (usize, String)>::new();
    for f in &first.failures {
        let e = reasons
            .entry(format!("{} {}", f.kind, f.reason))
            .or_insert((0, f.message.clone()));
        e.0 += 1;
    }
    for (reason, (n, example)) in &reasons {
        eprintln!("first sync: {n} × {reason}, e.g. {example}");
    }
    drop(first);
    let phases = phases.into_inner().unwrap();
    // Before the benchmark holds snapshots of its own to time the diff.
    let first_peak = peak_rss_mb();
    let probe = std::env::var("DINGSYNC_BENCH_MEMPROBE").is_ok();
    if probe {
        eprintln!(
            "after first sync: rss {:.0} hwm {:.0}",
            rss_now_mb(),
            peak_rss_mb()
        );
    }
    let requests_first = scim_client.as_ref().map(|c| c.requests_sent());
    if std::env::var("DINGSYNC_BENCH_MEMPROBE").as_deref() == Ok("2") {
        // What the directory's side holds on its own, and its peak while read.
        reset_peak_rss();
        let before = rss_now_mb();
        let current = dir
            .read_lean(&sync::plan::digested(&mapping))
            .await
            .unwrap();
        eprintln!(
            "directory read (lean) held: rss {:.0} (+{:.0}) hwm {:.0}",
            rss_now_mb(),
            rss_now_mb() - before,
            peak_rss_mb()
        );
        drop(current);
        eprintln!("dropped: rss {:.0}", rss_now_mb());
    }
    // The second run's own peak (from where the first left the process): both sides read in
    // full, nothing to write.
    let second_peak_measured = reset_peak_rss();
    let t = Instant::now();
    let probed = |phase: &str, done: usize, total: Option<usize>| {
        eprintln!(
            "second run: {phase} {done:?}/{total:?} at {:.2} s: rss {:.0} hwm {:.0}",
            t.elapsed().as_secs_f64(),
            rss_now_mb(),
            peak_rss_mb()
        );
    };
    let progress: sync::ProgressFn<'_> = if probe { &probed } else { &quiet };
    let second = sync::run(&source, dir.as_ref(), &mapping, &opts, false, progress)
        .await
        .unwrap();
    let second_time = t.elapsed().as_secs_f64();
    let second_peak = peak_rss_mb();
    // The diff alone, on the snapshots a run sees.
    let snap = source.read().await.unwrap().normalise();
    if probe {
        eprintln!(
            "after source read: rss {:.0} hwm {:.0}",
            rss_now_mb(),
            peak_rss_mb()
        );
    }
    // Read as a run reads it: lean, the owned attributes of each entry as one digest.
    let current = dir
        .read_lean(&sync::plan::digested(&mapping))
        .await
        .unwrap();
    if probe {
        eprintln!(
            "after dir read: rss {:.0} hwm {:.0}",
            rss_now_mb(),
            peak_rss_mb()
        );
    }
    let t = Instant::now();
    let plan = sync::plan::plan(&snap, &current, &mapping, &opts);
    let diff = t.elapsed().as_secs_f64();
    let name = match backend {
        Backend::Memory => "memory",
        Backend::Ldap => "real slapd",
        Backend::Scim => "real scim2-server",
    };
    println!(
        "\n## Full sync, {people} people in {depts} departments, unthrottled simulator (own process) → {name}"
    );
    let bound = Bounds::at(people);
    println!("| measure | value | bound | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| first sync wall time (s) | {first_time:.2} | {} |",
        bound.show(first_time, bound.first_sync_s)
    );
    for (i, (phase, began)) in phases.iter().enumerate() {
        let end = phases.get(i + 1).map_or(first_time, |(_, b)| *b);
        println!("| first sync: {phase} (s) | {:.2} | |", end - began);
    }
    println!("| first sync directory writes | {first_writes} | |");
    println!("| first sync failures | {first_failures} | 0 |");
    println!(
        "| diff time, nothing changed (s) | {diff:.3} | {} |",
        bound.show(diff, bound.diff_s)
    );
    println!(
        "| diff steps when nothing changed | {} | 0 |",
        plan.steps.len()
    );
    println!("| second sync wall time (s) | {second_time:.2} | |");
    println!("| second sync writes | {} | 0 |", second.writes);
    if let (Some(c), Some(before)) = (&scim_client, requests_first) {
        println!("| SCIM requests, first sync | {before} | |");
        println!(
            "| SCIM requests, second sync (reads only) | {} | |",
            c.requests_sent() - before
        );
        println!(
            "| requests per changed object on resync | 0 (0 changed, {} writes) | 0 |",
            second.writes
        );
    }
    println!(
        "| peak RSS through the first sync (MB) | {first_peak:.0} | {} |",
        bound.show(first_peak, bound.peak_mb)
    );
    if second_peak_measured {
        println!(
            "| peak RSS through the second sync (MB) | {second_peak:.0} | {} |",
            bound.show(second_peak, bound.peak_mb)
        );
    }
    drop(server);
    drop(scim);
    drop(sim_process);
}

/// The design's bounds at the sizes it names (none elsewhere).
struct Bounds {
    first_sync_s: Option<f64>,
    diff_s: Option<f64>,
    peak_mb: Option<f64>,
}

impl Bounds {
    fn at(people: usize) -> Self {
        match people {
            100_000 => Bounds {
                first_sync_s: Some(60.0),
                diff_s: Some(1.0),
                peak_mb: Some(200.0),
            },
            1_000_000 => Bounds {
                first_sync_s: Some(600.0),
                diff_s: Some(5.0),
                peak_mb: Some(600.0),
            },
            _ => Bounds {
                first_sync_s: None,
                diff_s: None,
                peak_mb: None,
            },
        }
    }

    /// `≤ bound | value / bound`, or empty cells.
    fn show(&self, value: f64, bound: Option<f64>) -> String {
        match bound {
            Some(b) => format!("≤ {b} | {:.3}", value / b),
            None => " | ".into(),
        }
    }
}

#[tokio::main]
async fn main() {
    read_at_quota().await;
    let sizes: Vec<usize> = std::env::var("DINGSYNC_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let backend = match std::env::var("DINGSYNC_BENCH_DIR").as_deref() {
        Ok("memory") => Backend::Memory,
        Ok("scim") => Backend::Scim,
        _ if slapd::unavailable().is_none() => Backend::Ldap,
        _ => Backend::Memory,
    };
    for n in sizes {
        full_sync(n, backend).await;
    }
}
