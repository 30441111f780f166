//! Generated enterprises with large department trees imported into a real slapd: the first
//! run has no failure and leaves every department group (nested as in DingTalk) and every
//! person (in their departments) in place, and the second run writes nothing.
//!
//! The tree is what these tests are about, so people are few: a deep and wide tree of 5,000
//! departments is written in waves (a department after its parent), and each wave's groups
//! nest under groups the earlier waves made. `DINGSYNC_BIG_TREE_DEPTS` and
//! `DINGSYNC_BIG_TREE_PEOPLE` change the size of the large test.

use std::time::Instant;

use dingsync::{
    api::target::Layout,
    sim::generate::{GenSpec, generate},
};

use crate::support::{CORP, World, import::import_twice, slapd};

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
