//! Real-time Outbound on loopback: a real slapd node (syncprov) followed by RFC 4533 content
//! synchronisation, the simulator enforcing DingTalk's 20 calls/s per API and the client
//! paced to it. After a first full push, `E` edits are made one at a time, each timed from
//! the LDAP modify to the moment DingTalk's user shows it; prints p50, p99 and the slowest.
//! Figures only: nothing is asserted about time.
//!
//! `DINGSYNC_BENCH_LIVE_PEOPLE` (default 200) sets the node's size;
//! `DINGSYNC_BENCH_LIVE_EDITS` (default 200) the number of edits.

// The integration tests' support code (servers, mapping), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::slapd;

use dingsync::{
    api::{
        FieldMappingSpec,
        target::{DeletionPolicy, Layout},
    },
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::ldap::{
        LdapDirectory,
        client::{ConnectOptions, Modification, Pool, Secret as LdapSecret},
        store::Store,
    },
    mapping::outbound::OutboundMapping,
    sim,
    sync::outbound::{self, OutboundOptions},
};

const QUOTA: u32 = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(why) = slapd::unavailable() {
        println!("live outbound benchmark skipped: {why}");
        return;
    }
    let n = support::bench::env_usize("DINGSYNC_BENCH_LIVE_PEOPLE", 200).max(1);
    let edits = support::bench::env_usize("DINGSYNC_BENCH_LIVE_EDITS", 200);
    let server = slapd::Slapd::start().expect("slapd");
    let (sim, root) = support::bench::dingtalk_at_quota(QUOTA, "实时协作").await;
    let node = server.new_node("live-bench").unwrap();
    let ous: Vec<String> = (0..5).map(|a| format!("ou=组{a},{node}")).collect();
    let mut ldif = String::new();
    for (a, dn) in ous.iter().enumerate() {
        ldif.push_str(&format!(
            "dn: {dn}\nobjectClass: organizationalUnit\nou: 组{a}\n\n"
        ));
    }
    let person = |i: usize| format!("uid=l{i:05},{}", ous[i % ous.len()]);
    for i in 0..n {
        ldif.push_str(&format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: l{i:05}\ncn: 实时{i}\nsn: 实\nmobile: 135{i:08}\ntitle: 初始\n\n",
            person(i)
        ));
    }
    server.ldapadd(&ldif).unwrap();

    let mut cfg = ClientConfig::new(
        "dingbench",
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&sim.base_url());
    cfg.per_api_per_second = QUOTA;
    let client = DingTalkClient::new(cfg);
    let connect = || {
        Pool::connect(ConnectOptions::new(
            server.url(),
            slapd::SERVICE_DN,
            LdapSecret::new(server.service_password()),
        ))
    };
    let dir = LdapDirectory::new(
        Store::open_read_only(connect().await.unwrap(), &node, Layout::OuTree, "dingbench")
            .await
            .unwrap(),
    );
    let writer = connect().await.unwrap();
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n  - {target: title, template: '{{ title }}'}\n",
    )
    .unwrap();
    let mapping = OutboundMapping::compile(&spec).unwrap();
    let opts = OutboundOptions {
        root,
        policy: DeletionPolicy::Delete,
        max_count: 0,
        max_percent: 100,
        ..Default::default()
    };
    let title = |u: &str| {
        let org = sim.org();
        org.people
            .iter()
            .find(|p| p.userid == u)
            .and_then(|p| p.title.clone())
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let full = std::sync::atomic::AtomicBool::new(false);
    let mut on_batch = |b: outbound::Batch| {
        if b.full {
            full.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let lock = tokio::sync::Mutex::new(());
    let session = outbound::Session {
        sink: &client,
        dir: &dir,
        mapping: &mapping,
        opts: &opts,
        writer: &lock,
    };
    let follower = outbound::follow(session, None, &mut on_batch, async {
        let _ = stopped.await;
    });
    let driver = async {
        let t = Instant::now();
        while !full.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("first full push of {n} people: {:.1?}", t.elapsed());
        let mut took = Vec::with_capacity(edits);
        for e in 0..edits {
            let i = e % n;
            let value = format!("第{e}版");
            let t = Instant::now();
            writer
                .modify(
                    &person(i),
                    vec![Modification::Replace("title".into(), vec![value.clone()])],
                )
                .await
                .unwrap();
            let uid = format!("l{i:05}");
            while title(&uid).as_deref() != Some(value.as_str()) {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "edit {e} never arrived"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            took.push(t.elapsed());
        }
        stop.send(()).unwrap();
        took
    };
    let (done, mut took) = tokio::join!(follower, driver);
    done.unwrap();
    took.sort();
    if took.is_empty() {
        return;
    }
    println!("\n| LDAP modify to DingTalk, {QUOTA} calls/s per API | value |");
    println!("|---|---|");
    println!("| edits (one at a time) | {} |", took.len());
    println!("| p50 | {:.1?} |", percentile(&took, 0.5));
    println!("| p99 | {:.1?} |", percentile(&took, 0.99));
    println!("| slowest | {:.1?} |", took[took.len() - 1]);
    println!(
        "| throttled answers (90018/403) | {} |",
        sim.counters().throttled
    );
    sim.shutdown().await;
}
