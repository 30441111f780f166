//! Outbound push at DingTalk's write quota, on loopback: a real slapd node of N people in a
//! nested OU tree, the simulator enforcing 20 calls/s per API, the client paced to it.
//! Prints DingTalk write calls per changed object (first push, an edit wave, a second run)
//! and the time of the first push against the bound the quota sets: creating N people takes
//! at least N / 20 s on `user/create` alone.
//!
//! `DINGSYNC_BENCH_OUTBOUND_PEOPLE` (default 10000) sets N; `DINGSYNC_BENCH_OUTBOUND_EDITS`
//! (default 200) the edit wave.

// The integration tests' support code (servers, mapping), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use std::time::Instant;
use support::slapd;

use dingsync::{
    api::{
        FieldMappingSpec,
        target::{DeletionPolicy, Layout},
    },
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::ldap::{
        LdapDirectory,
        client::{ConnectOptions, Pool, Secret as LdapSecret},
        store::Store,
    },
    mapping::outbound::OutboundMapping,
    sim,
    sync::outbound::{self, OutboundOptions},
};

const QUOTA: u32 = 20;
const WRITE_APIS: &[&str] = &[
    "/topapi/v2/user/create",
    "/topapi/v2/user/update",
    "/topapi/v2/user/delete",
    "/topapi/v2/department/create",
    "/topapi/v2/department/update",
    "/topapi/v2/department/delete",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(why) = slapd::unavailable() {
        println!("outbound benchmark skipped: {why}");
        return;
    }
    let n = support::bench::env_usize("DINGSYNC_BENCH_OUTBOUND_PEOPLE", 10_000);
    let edits = support::bench::env_usize("DINGSYNC_BENCH_OUTBOUND_EDITS", 200).min(n);
    let server = slapd::Slapd::start().expect("slapd");
    let (sim, root) = support::bench::dingtalk_at_quota(QUOTA, "外部协作").await;

    // N people over 50 OUs in two levels.
    let node = server.new_node("outbound-bench").unwrap();
    let mut ldif = String::new();
    let ous: Vec<String> = (0..10)
        .flat_map(|a| {
            let top = format!("ou=组{a},{node}");
            let mut v = vec![top.clone()];
            v.extend((0..4).map(|b| format!("ou=队{a}{b},{top}")));
            v
        })
        .collect();
    for dn in &ous {
        let ou = dn.split(',').next().unwrap().trim_start_matches("ou=");
        ldif.push_str(&format!(
            "dn: {dn}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
        ));
    }
    for i in 0..n {
        let parent = &ous[i % ous.len()];
        ldif.push_str(&format!(
            "dn: uid=b{i:06},{parent}\nobjectClass: inetOrgPerson\nuid: b{i:06}\ncn: 协作者{i}\nsn: 协\nmail: b{i}@example.com\nmobile: 13{i:09}\n\n"
        ));
    }
    let t = Instant::now();
    server.ldapadd(&ldif).unwrap();
    println!(
        "seeded slapd with {n} people in {} OUs in {:.1?}",
        ous.len(),
        t.elapsed()
    );

    let mut cfg = ClientConfig::new(
        "dingbench",
        sim::DEFAULT_APP_KEY,
        Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
    )
    .with_base(&sim.base_url());
    cfg.per_api_per_second = QUOTA;
    let client = DingTalkClient::new(cfg);
    let pool = Pool::connect(ConnectOptions::new(
        server.url(),
        slapd::SERVICE_DN,
        LdapSecret::new(server.service_password()),
    ))
    .await
    .unwrap();
    let dir = LdapDirectory::new(
        Store::open_read_only(pool, &node, Layout::OuTree, "dingbench")
            .await
            .unwrap(),
    );
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n  - {target: email, template: '{{ mail }}'}\n",
    )
    .unwrap();
    let mapping = OutboundMapping::compile(&spec).unwrap();
    let opts = OutboundOptions {
        root,
        policy: DeletionPolicy::Delete,
        max_count: 0,
        max_percent: 100,
        approval: None,
        adopt_existing: false,
    };
    let writes = || WRITE_APIS.iter().map(|a| sim.calls(a)).sum::<u64>();
    let throttled = || sim.counters().throttled;

    let t = Instant::now();
    let r = outbound::run(&client, &dir, &mapping, &opts, false)
        .await
        .unwrap();
    let first = t.elapsed();
    let objects = r.created + r.departments_created;
    let bound = n as f64 / f64::from(QUOTA);
    println!("\n| outbound push, DingTalk at {QUOTA} calls/s per API | value |");
    println!("|---|---|");
    println!("| people, departments | {n}, {} |", ous.len());
    println!(
        "| first push: created | {} people, {} departments, {} failed |",
        r.created,
        r.departments_created,
        r.failures.len()
    );
    println!(
        "| first push: write calls per created object | {:.3} ({} calls / {objects}) |",
        writes() as f64 / objects.max(1) as f64,
        writes()
    );
    println!(
        "| first push: wall time vs quota bound | {:.1} s vs {bound:.1} s ({:.3}x) |",
        first.as_secs_f64(),
        first.as_secs_f64() / bound
    );
    println!("| throttled answers (90018/403) | {} |", throttled());

    // An edit wave: `edits` people change title-like data (cn); one update each.
    let mut ldif = String::new();
    for i in 0..edits {
        let parent = &ous[i % ous.len()];
        ldif.push_str(&format!(
            "dn: uid=b{i:06},{parent}\nchangetype: modify\nreplace: cn\ncn: 协作者{i}号\n\n"
        ));
    }
    server.ldapmodify(&ldif).unwrap();
    let before = writes();
    let t = Instant::now();
    let r = outbound::run(&client, &dir, &mapping, &opts, false)
        .await
        .unwrap();
    let wave = t.elapsed();
    let w = writes() - before;
    println!(
        "| edit wave: {edits} changed | {} updated, {w} write calls ({:.3} per changed object), {:.1} s |",
        r.updated,
        w as f64 / edits.max(1) as f64,
        wave.as_secs_f64()
    );

    let before = writes();
    let t = Instant::now();
    let r = outbound::run(&client, &dir, &mapping, &opts, false)
        .await
        .unwrap();
    println!(
        "| second run, nothing changed | {} write calls, {} unchanged, {:.1} s |",
        writes() - before,
        r.unchanged,
        t.elapsed().as_secs_f64()
    );
    sim.shutdown().await;
}
