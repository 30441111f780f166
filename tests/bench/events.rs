//! Event-to-directory latency of incremental sync, on loopback: the simulator at DingTalk's
//! 20 calls/s per API, the client paced to it, a real slapd. Prints, for a steady stream of
//! edits, the latency from DingTalk's event time to the change applied in LDAP (p50, p99, max)
//! against the 1 s bound; then for a burst of hires at once, DingTalk reads per changed record
//! and the time the burst took against the bound the quota sets.
//!
//! `DINGSYNC_BENCH_EVENTS` (default 1000) and `DINGSYNC_BENCH_EVENT_RATE` (events/s, default
//! 10) shape the steady part; `DINGSYNC_BENCH_BURST` (default 1000) the burst;
//! `DINGSYNC_BENCH_EVENT_PEOPLE` (default 500) the org (one department per 20 people). The
//! first full sync, which only sets the baseline, reads DingTalk unthrottled so a large org
//! gets there in reasonable time; the events then run at the real quota.

// The integration tests' support code (servers, mapping), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use support::slapd;

use dingsync::{
    api::target::Layout,
    dingtalk::{ClientConfig, DingTalkClient, Secret, StreamConfig, StreamState},
    directory::{
        Directory,
        ldap::{
            LdapDirectory,
            client::{ConnectOptions, Pool, Secret as LdapSecret},
            store::Store,
        },
    },
    sim::{
        self, SimConfig, Simulator, UserWrite,
        generate::{GenSpec, generate},
    },
    sync::{
        self, Options,
        dingtalk_source::DingTalkSource,
        events::{LiveTarget, Pipeline, PipelineConfig},
    },
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(why) = slapd::unavailable() {
        println!("events benchmark skipped: {why}");
        return;
    }
    let events = env("DINGSYNC_BENCH_EVENTS", 1000);
    let rate = env("DINGSYNC_BENCH_EVENT_RATE", 10).max(1);
    let burst = env("DINGSYNC_BENCH_BURST", 1000);
    let size = env("DINGSYNC_BENCH_EVENT_PEOPLE", 500).max(1) as usize;
    let corp = "dingbenchcorp";
    let org = generate(&GenSpec {
        people: size,
        departments: (size / 20).max(25),
        seed: 17,
        corp_id: corp.into(),
        ..Default::default()
    });
    let sim = Simulator::start(SimConfig::default(), org, "127.0.0.1:0")
        .await
        .unwrap();
    let client = DingTalkClient::new(
        ClientConfig::new(
            corp,
            sim::DEFAULT_APP_KEY,
            Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
        )
        .with_base(&sim.base_url()),
    );
    let server = slapd::Slapd::start().expect("slapd");
    let node = server.new_node("events").unwrap();
    let pool = Pool::connect(ConnectOptions::new(
        server.url(),
        slapd::SERVICE_DN,
        LdapSecret::new(server.service_password()),
    ))
    .await
    .unwrap();
    let dir: Arc<dyn Directory> = Arc::new(LdapDirectory::new(
        Store::open(pool, &node, Layout::FlatWithGroups, corp)
            .await
            .unwrap(),
    ));
    let mapping = Arc::new(support::conformance::mapping());
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let mut unpaced = ClientConfig::new(
        corp,
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&sim.base_url());
    unpaced.per_api_per_second = 100_000;
    let baseline = DingTalkSource::new(DingTalkClient::new(unpaced), vec![1])
        .keeping(mapping.person_fields())
        .reading_heads(mapping.reads_heads());
    sim.set_qps_limit(None);
    let t = Instant::now();
    let first = sync::run(
        &baseline,
        dir.as_ref(),
        &mapping,
        &opts,
        false,
        &|_, _, _| {},
    )
    .await
    .unwrap();
    sim.set_qps_limit(SimConfig::default().qps_limit);
    // Events read through the paced client, with the department tree the baseline learnt.
    let source = Arc::new(baseline.with_client(client.clone()));
    println!(
        "(baseline: {size} people, {} departments, first sync {:.1} s)",
        first.departments,
        t.elapsed().as_secs_f64()
    );
    let pipeline = Pipeline::start(PipelineConfig::default());
    pipeline.set_target(
        "bench",
        LiveTarget {
            source,
            dir: dir.clone(),
            mapping,
            opts,
            lock: Default::default(),
        },
        true,
    );
    let stream = client.start_stream(StreamConfig::default(), pipeline.handler());
    stream.wait_for(|s| *s == StreamState::Connected).await;

    // Steady edits.
    let people: Vec<String> = sim.org().people.iter().map(|p| p.userid.clone()).collect();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let t = Instant::now();
    for i in 0..events as usize {
        sim.edit_user(
            &people[i % people.len()],
            UserWrite {
                title: Some(format!("职位 {i}")),
                ..Default::default()
            },
        )
        .unwrap();
        tokio::time::sleep_until((t + gap * (i as u32 + 1)).into()).await;
    }
    while (pipeline.stats().lags.len() as u64) < events && t.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = pipeline.stats();
    println!(
        "(batches {}, mean batch time {:.0} ms)",
        st.batches,
        st.busy.as_secs_f64() * 1000.0 / st.batches.max(1) as f64
    );
    let mut lags = st.lags;
    lags.sort();
    println!(
        "\n## Incremental sync at {size} people: {events} edits at {rate}/s, DingTalk at 20 calls/s per API, slapd\n"
    );
    println!("| measure | value | bound | ratio |");
    println!("|---|---|---|---|");
    println!("| events applied | {} | {events} | |", lags.len());
    for (label, d) in [
        ("p50 event → LDAP (ms)", pct(&lags, 0.50)),
        ("p99 event → LDAP (ms)", pct(&lags, 0.99)),
        (
            "max event → LDAP (ms)",
            lags.last().copied().unwrap_or_default(),
        ),
    ] {
        println!(
            "| {label} | {} | 1000 | {:.3} |",
            d.as_millis(),
            d.as_secs_f64() / 1.0
        );
    }

    // A burst of hires at once.
    if burst > 0 {
        sim.reset_counters();
        let applied_before = pipeline.stats().lags.len();
        let t = Instant::now();
        for i in 0..burst {
            sim.hire(UserWrite {
                userid: Some(format!("burst{i}")),
                name: Some(format!("新人{i}")),
                departments: Some(vec![1]),
                ..Default::default()
            })
            .unwrap();
        }
        while ((pipeline.stats().lags.len() - applied_before) as u64) < burst
            && t.elapsed() < Duration::from_secs(900)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = t.elapsed().as_secs_f64();
        let reads = sim.calls("/topapi/v2/user/get");
        let bound = burst as f64 / 20.0;
        println!("\n## A burst of {burst} hires at once\n");
        println!("| measure | value | bound | ratio |");
        println!("|---|---|---|---|");
        println!(
            "| user/get reads per hire | {:.3} | 1 | {:.3} |",
            reads as f64 / burst as f64,
            reads as f64 / burst as f64
        );
        println!(
            "| time to apply (s) | {took:.1} | {bound:.1} | {:.3} |",
            took / bound
        );
        println!("| throttled (90018) | {} | 0 | |", sim.counters().throttled);
        println!("| batches (whole run) | {} | | |", pipeline.stats().batches);
    }
    stream.stop().await;
    sim.shutdown().await;
}
