//! Benchmark: a first sync into a Samba AD domain controller against Samba's own write
//! ceiling, measured the same way.
//!
//! One generated enterprise (`DINGSYNC_BENCH_AD_PEOPLE`, default 10,000 people, one department
//! per 20) is read once from an in-process simulator. Then, each into a fresh DC
//! (`tests/it/support/samba.rs`):
//!
//! * **dingsync**: `sync::run` of that snapshot into an `AdDirectory` (new accounts disabled,
//!   waiting for a password), timed whole — reading the empty node and planning included —
//!   then a second, unchanged run, which must write nothing;
//! * **ceiling**: the same kind of writes sent bare through the LDAP pool with the same number
//!   in flight: one add per department group, one add per user (same attributes, anchor and
//!   `userAccountControl`), then one modify per group adding all its members and subgroups.
//!   Its requests are built before its clock starts.
//!
//! Writes are counted as requests on both sides (dingsync's directory-level count and its
//! pool's request count are both shown). Run with `cargo bench --bench ad`.

// The integration tests' support code (servers, mapping), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use support::samba::{self, ADMIN_UPN, Samba};

use dingsync::{
    api::{
        FieldMappingSpec,
        target::{Layout, NewAccounts},
    },
    directory::{
        Attrs,
        ad::{AWAITING_PASSWORD, AdDirectory, AdTarget, PAGE_SIZE, RANGE_STEP},
        ldap::{ConnectOptions, Pool, Secret as LdapSecret, client::Modification},
    },
    mapping::Mapping,
    model::SourceSnapshot,
    sync::{self, Options, StaticSource},
};

const CORP: &str = "dingbenchcorp";

const MAPPING: &str = r#"
user:
  uniqueName: {attribute: sAMAccountName, template: "{{ name | pinyin }}", maxLength: 20}
  attributes:
    - {target: cn, template: "{{ name }}"}
    - {target: displayName, template: "{{ name }}"}
    - {target: sn, template: "{{ name[:1] }}"}
    - {target: title, template: "{{ title }}"}
"#;

fn target(dc: &Samba, node: &str) -> AdTarget {
    let mut connect = ConnectOptions::new(
        dc.ldaps_url(),
        ADMIN_UPN,
        LdapSecret::new(dc.admin_password()),
    );
    connect.ca_pem = Some(dc.ca_pem().to_string());
    connect.page_size = PAGE_SIZE;
    AdTarget {
        connect,
        node: node.to_string(),
        corp_id: CORP.to_string(),
        layout: Layout::FlatWithGroups,
        new_accounts: NewAccounts::Disabled,
        upn_suffix: None,
        range_step: RANGE_STEP,
    }
}

/// One measured run: seconds, writes, requests sent.
struct Run {
    seconds: f64,
    writes: u64,
    requests: u64,
}

async fn dingsync_run(snapshot: &SourceSnapshot) -> (Run, Run) {
    let dc = samba::start_or_skip().await.expect("Samba AD DC");
    let node = dc.new_node("bench").expect("node");
    let dir = AdDirectory::new(target(&dc, &node).open().await.expect("open"));
    let spec: FieldMappingSpec = serde_yaml::from_str(MAPPING).expect("mapping");
    let mapping = Mapping::compile(&spec).expect("mapping compiles");
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let source = StaticSource::new(snapshot.clone());
        let before = dir.store().pool().writes_sent();
        let t = Instant::now();
        let report = sync::run(&source, &dir, &mapping, &opts, false, &|_, _, _| {})
            .await
            .expect("sync");
        assert!(report.failures.is_empty(), "{:#?}", report.failures);
        runs.push(Run {
            seconds: t.elapsed().as_secs_f64(),
            writes: report.writes,
            requests: dir.store().pool().writes_sent() - before,
        });
    }
    let second = runs.pop().expect("two runs");
    (runs.pop().expect("two runs"), second)
}

/// Adds (DN, attributes) and member modifies (group DN, values).
type Adds = Vec<(String, Attrs)>;
type Modifies = Vec<(String, Vec<String>)>;

/// The bare requests of a first sync: group adds, user adds, member modifies.
fn requests(s: &SourceSnapshot, node: &str) -> (Adds, Adds, Modifies) {
    let group_dn = |id: &str| format!("CN=d{id},OU=groups,{node}");
    let user_dn = |i: usize| format!("CN=u{i},OU=people,{node}");
    let groups = (s.departments.iter())
        .map(|d| {
            let attrs: Attrs = [
                ("objectClass", vec!["top".to_string(), "group".into()]),
                (
                    "adminDescription",
                    vec![format!("dingsync:dept:{CORP}:{}", d.id)],
                ),
            ]
            .into();
            (group_dn(&d.id), attrs)
        })
        .collect();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &s.departments {
        if let Some(p) = &d.parent {
            members.entry(p.clone()).or_default().push(group_dn(&d.id));
        }
    }
    let users = (s.people.iter().enumerate())
        .map(|(i, p)| {
            for d in &p.departments {
                members.entry(d.clone()).or_default().push(user_dn(i));
            }
            let sam = format!("b{i}");
            let attrs: Attrs = [
                (
                    "objectClass",
                    ["top", "person", "organizationalPerson", "user"]
                        .map(String::from)
                        .to_vec(),
                ),
                ("sAMAccountName", vec![sam.clone()]),
                (
                    "userPrincipalName",
                    vec![format!("{sam}@{}", samba::REALM.to_lowercase())],
                ),
                ("displayName", vec![p.name.clone()]),
                ("sn", vec![p.name.chars().take(1).collect()]),
                (
                    "adminDescription",
                    vec![format!("dingsync:user:{CORP}:{}", p.id)],
                ),
                ("userAccountControl", vec![AWAITING_PASSWORD.to_string()]),
            ]
            .into();
            (user_dn(i), attrs)
        })
        .collect();
    let members = (members.into_iter())
        .map(|(d, dns)| (group_dn(&d), dns))
        .collect();
    (groups, users, members)
}

async fn ceiling_run(snapshot: &SourceSnapshot, in_flight: usize) -> Run {
    let dc = samba::start_or_skip().await.expect("Samba AD DC");
    let node = dc.new_node("ceiling").expect("node");
    // Opening creates OU=people and OU=groups, as it does for dingsync.
    drop(target(&dc, &node).open().await.expect("open"));
    let (groups, users, members) = requests(snapshot, &node);
    let pool = Pool::connect(target(&dc, &node).connect)
        .await
        .expect("connect");
    let t = Instant::now();
    for wave in [groups, users] {
        stream::iter(wave)
            .map(|(dn, attrs)| {
                let pool = &pool;
                async move { pool.add(&dn, &attrs).await }
            })
            .buffer_unordered(in_flight)
            .try_collect::<Vec<()>>()
            .await
            .expect("add");
    }
    stream::iter(members)
        .map(|(dn, values)| {
            let pool = &pool;
            async move {
                let m = Modification::Add("member".into(), values);
                pool.modify(&dn, vec![m]).await
            }
        })
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await
        .expect("members");
    let sent = pool.writes_sent();
    Run {
        seconds: t.elapsed().as_secs_f64(),
        writes: sent,
        requests: sent,
    }
}

#[tokio::main]
async fn main() {
    if let Some(why) = samba::unavailable() {
        eprintln!("SKIPPED: Samba AD unavailable: {why}");
        return;
    }
    let people = support::bench::env_usize("DINGSYNC_BENCH_AD_PEOPLE", 10_000);
    let snapshot = support::bench::source_snapshot(people, 29).await;
    let (first, second) = dingsync_run(&snapshot).await;
    let in_flight = sync::CONCURRENCY;
    let ceiling = ceiling_run(&snapshot, in_flight).await;
    let rate = |r: &Run| r.requests as f64 / r.seconds;
    println!(
        "\nAD first sync: {people} people, {} departments, {in_flight} writes in flight",
        snapshot.departments.len()
    );
    println!("| run | time | writes | LDAP requests | requests/s |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, r) in [
        ("dingsync, first sync", &first),
        ("dingsync, second sync", &second),
        ("ceiling: bare adds and member modifies", &ceiling),
    ] {
        println!(
            "| {name} | {:.1} s | {} | {} | {:.0} |",
            r.seconds,
            r.writes,
            r.requests,
            rate(r)
        );
    }
    println!(
        "dingsync's first sync sends {:.0} % of the ceiling's requests/s",
        100.0 * rate(&first) / rate(&ceiling)
    );
    assert_eq!(second.writes, 0, "an unchanged second sync writes nothing");
}
