//! Benchmark: the LDAP backend against a real slapd with 10,000 and 100,000 people.
//!
//! Prints wall time, directory writes, peak RSS, the read (snapshot) time and the writes of a
//! second, unchanged run, each against its target. Sizes come from `DINGSYNC_BENCH_SIZES`
//! (comma-separated, default `10000,100000`), so CI can shrink them.

// The integration tests' support code (servers, mapping), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use support::slapd;

use dingsync::api::target::Layout;
use dingsync::directory::Attrs;
use dingsync::directory::ldap::{ConnectOptions, Pool, Secret, Store};
use futures::{StreamExt, TryStreamExt};

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

fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn sizes() -> Vec<usize> {
    std::env::var("DINGSYNC_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![10_000, 100_000])
}

fn line(what: &str, value: f64, unit: &str, target: f64, lower_is_better: bool) {
    let ok = if lower_is_better {
        value <= target
    } else {
        value >= target
    };
    println!(
        "  {what:<28} {value:>10.2} {unit:<4} target {} {target:<8} ratio {:>5.2} {}",
        if lower_is_better { "<" } else { ">" },
        value / target,
        if ok { "ok" } else { "MISSED" }
    );
}

async fn run(n: usize) {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let node = s.new_node("bench").unwrap();
    let mut opts = ConnectOptions::new(
        s.url(),
        slapd::SERVICE_DN,
        Secret::new(s.service_password()),
    );
    opts.connections = 4;
    let pool = Pool::connect(opts).await.unwrap();
    let store = Arc::new(
        Store::open(pool, &node, Layout::FlatWithGroups, "dingbench")
            .await
            .unwrap(),
    );
    let depts = (n / 50).max(1);
    let writes = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    // Departments: a tree, parents first (level by level).
    for d in 0..depts {
        let parent = if d == 0 {
            None
        } else {
            Some(((d - 1) / 8).to_string())
        };
        store
            .create_dept(
                &d.to_string(),
                &format!("部门{d}"),
                parent.as_deref(),
                &Attrs::new(),
            )
            .await
            .unwrap();
        writes.fetch_add(1, Ordering::Relaxed);
    }
    futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            let writes = writes.clone();
            async move {
                let mut a = Attrs::new();
                a.insert("uid".to_string(), vec![format!("user{i}")]);
                a.insert("cn".to_string(), vec![format!("员工{i}")]);
                a.insert("sn".to_string(), vec![format!("员{i}")]);
                a.insert("mail".to_string(), vec![format!("user{i}@example.com")]);
                a.insert("mobile".to_string(), vec![format!("+86-138{i:08}")]);
                store
                    .create_person(&format!("u{i}"), &a, None, false)
                    .await?;
                writes.fetch_add(1, Ordering::Relaxed);
                Ok::<_, dingsync::directory::ldap::LdapError>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    // Memberships: one request per department.
    let mut members: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for i in 0..n {
        members.entry(i % depts).or_default().push(format!("u{i}"));
        if i % 7 == 0 {
            members
                .entry((i / 7) % depts)
                .or_default()
                .push(format!("u{i}"));
        }
    }
    futures::stream::iter(members)
        .map(|(d, ps)| {
            let store = store.clone();
            let writes = writes.clone();
            async move {
                let mut ps = ps;
                ps.dedup();
                store.add_members(&d.to_string(), &ps).await?;
                writes.fetch_add(1, Ordering::Relaxed);
                Ok::<_, dingsync::directory::ldap::LdapError>(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let first = t0.elapsed().as_secs_f64();
    eprintln!(
        "  rss after writes {:.0} MB (peak {:.0})",
        rss_mb("VmRSS:"),
        rss_mb("VmHWM:")
    );
    let t1 = Instant::now();
    let snap = store.read().await.unwrap();
    let read = t1.elapsed().as_secs_f64();
    eprintln!(
        "  rss after read {:.0} MB (peak {:.0})",
        rss_mb("VmRSS:"),
        rss_mb("VmHWM:")
    );
    assert_eq!(snap.people.len(), n);
    println!("ldap backend, {n} people, {depts} departments:");
    println!(
        "  directory writes, 1st run     {:>10}",
        writes.load(Ordering::Relaxed)
    );
    let scale = n as f64 / 100_000.0;
    line("1st run wall time", first, "s", 60.0 * scale, true);
    line(
        "full read of the node",
        read,
        "s",
        1.5_f64.max(1.5 * scale),
        true,
    );
    line("peak RSS (this process)", peak_rss_mb(), "MB", 300.0, true);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes() {
        rt.block_on(run(n));
    }
}
