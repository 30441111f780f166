//! A generated enterprise imported whole: run a sync, check that the directory holds the
//! simulator's tree (names, parents) and every person in exactly their departments, and that
//! a second run writes nothing. Shared by the large-tree tests of every backend.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use dingsync::{
    directory::Directory,
    sync::{self, Options, Report},
};

use super::{World, conformance};

/// Sync the world's enterprise into `dir` once; prints the run's figures under `label`.
pub async fn sync_once(w: &World, dir: &dyn Directory, label: &str) -> Report {
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
pub async fn assert_same_org(w: &World, dir: &dyn Directory) {
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
pub async fn import_twice(w: &World, dir: &dyn Directory, label: &str) {
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
