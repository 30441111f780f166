//! Generated enterprises with large department trees imported into a real slapd: the first
//! run has no failure and leaves every department group (nested as in DingTalk) and every
//! person (in their departments) in place, and the second run writes nothing.
//!
//! The tree is what these tests are about, so people are few: a deep and wide tree of 5,000
//! departments is written in waves (a department after its parent), and each wave's groups
//! nest under groups the earlier waves made. `DINGSYNC_BIG_TREE_DEPTS` and
//! `DINGSYNC_BIG_TREE_PEOPLE` change the size of the large test. In a debug build most of its
//! time goes into generating the tree (`sim::generate`), not into the sync.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use dingsync::{
    api::target::Layout,
    directory::Directory,
    sim::generate::{GenSpec, generate},
    sync::{self, Options, Report},
};

use crate::support::{CORP, World, conformance, slapd};

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A generated enterprise of this size (seed 21) in a world with a slapd.
async fn world(people: usize, departments: usize) -> Option<World> {
    // Before generating: a large tree takes a while to make, for nothing when slapd is missing.
    if !slapd::available_or_skip() {
        return None;
    }
    let start = Instant::now();
    let org = generate(&GenSpec {
        people,
        departments,
        seed: 21,
        corp_id: CORP.into(),
        ..Default::default()
    });
    println!(
        "generated {departments} departments in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    World::builder()
        .org(org)
        .rate(100_000)
        .slapd()
        .build()
        .await
}

/// Sync the world's enterprise into `dir` once; prints the run's figures under `label`.
async fn sync_once(w: &World, dir: &dyn Directory, label: &str) -> Report {
    let start = Instant::now();
    let report = sync::run(
        &w.source(),
        dir,
        &conformance::mapping(),
        &Options {
            max_percent: 100,
            ..Default::default()
        },
        false,
        &|_, _, _| {},
    )
    .await
    .expect("sync runs");
    println!(
        "{label}: {:.1} s, {} failures, {} writes, {} created",
        start.elapsed().as_secs_f64(),
        report.failures.len(),
        report.writes,
        report.created,
    );
    report
}

/// The directory holds the simulator's tree (names and parents) and every person in exactly
/// their departments.
async fn assert_same_org(w: &World, dir: &dyn Directory) {
    let org = w.sim.org();
    let snap = dir.read().await.expect("read back");
    let read: BTreeMap<String, (String, Option<String>)> = snap
        .departments
        .iter()
        .map(|d| (d.id.clone(), (d.name.clone(), d.parent.clone())))
        .collect();
    assert_eq!(
        read.len(),
        org.departments.len(),
        "one group per department"
    );
    for d in &org.departments {
        let id = d.id.to_string();
        let Some((name, parent)) = read.get(&id) else {
            panic!("department {id} ({}) is missing", d.name);
        };
        assert_eq!(name, &d.name, "name of department {id}");
        let expected = d
            .parent_id
            .map(|p| p.to_string())
            .filter(|p| read.contains_key(p));
        assert_eq!(*parent, expected, "parent of department {id}");
    }
    let people: BTreeMap<String, BTreeSet<String>> = snap
        .people
        .iter()
        .map(|p| {
            let id = p.id.clone().unwrap_or_default();
            (id, p.departments.iter().cloned().collect())
        })
        .collect();
    assert_eq!(people.len(), org.people.len(), "every person has an entry");
    for p in &org.people {
        let expected: BTreeSet<String> = p.departments.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            people.get(&p.userid),
            Some(&expected),
            "departments of {}",
            p.userid
        );
    }
}

/// A first run with no failure that leaves the whole org in place, then a second run that
/// writes nothing.
async fn import_twice(w: &World, dir: &dyn Directory, label: &str) {
    let first = sync_once(w, dir, &format!("{label} first run")).await;
    assert!(
        first.failures.is_empty(),
        "{label}: {} failures on the first run, e.g. {:#?}",
        first.failures.len(),
        &first.failures[..first.failures.len().min(5)]
    );
    assert_same_org(w, dir).await;
    let second = sync_once(w, dir, &format!("{label} second run")).await;
    assert!(second.failures.is_empty(), "{:#?}", second.failures);
    assert_eq!(
        second.writes,
        0,
        "{label}: the second run writes nothing: {:?}",
        &second.plan.steps[..second.plan.steps.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_org_of_21_departments_imports_into_slapd() {
    let Some(w) = world(300, 21).await else {
        return;
    };
    let dir = w.ldap(&w.node("acme"), Layout::FlatWithGroups).await;
    import_twice(&w, &dir, "slapd, 300 people / 21 departments").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_5000_departments_imports_into_slapd() {
    let departments = var("DINGSYNC_BIG_TREE_DEPTS", 5_000);
    let people = var("DINGSYNC_BIG_TREE_PEOPLE", 1_000);
    let Some(w) = world(people, departments).await else {
        return;
    };
    let dir = w.ldap(&w.node("acme"), Layout::FlatWithGroups).await;
    import_twice(
        &w,
        &dir,
        &format!("slapd, {people} people / {departments} departments"),
    )
    .await;
}
