//! Generated enterprises imported into a real scim2-server: department creates run in
//! concurrent waves (siblings add themselves to one parent Group at the same time) and
//! memberships are written concurrently, yet the first run has no failure and the second
//! writes nothing — on the PATCH path the server offers and on the forced replace fallback.
//!
//! `scim_waves::large` imports a tree of 5,000 departments; `-- --nocapture` prints its
//! figures.

use dingsync::directory::scim::{MemberWrites, ScimDirectory};

use crate::support::{World, import::import_twice};

async fn world(people: usize, departments: usize) -> Option<World> {
    World::builder()
        .people(people)
        .departments(departments)
        .seed(21)
        .rate(100_000)
        .scim()
        .build()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_org_of_21_departments_imports_without_failure() {
    let Some(w) = world(300, 21).await else {
        return;
    };
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "acme");
    assert_eq!(dir.member_writes(), MemberWrites::Patch);
    import_twice(&w, &dir, "300 people / 21 departments (PATCH)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replace_fallback_imports_the_same_org_without_failure() {
    let Some(w) = world(300, 21).await else {
        return;
    };
    let client = w.scim_client().await.without_patch();
    let dir = ScimDirectory::new(client, w.corp(), "acme");
    assert_eq!(dir.member_writes(), MemberWrites::Replace);
    import_twice(&w, &dir, "300 people / 21 departments (replace)").await;
}

/// A wide tree: about a quarter of the departments are siblings under the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_tree_of_500_departments_imports_without_failure() {
    let Some(w) = world(500, 500).await else {
        return;
    };
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "acme");
    import_twice(&w, &dir, "500 people / 500 departments (PATCH)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replace_fallback_imports_a_wide_tree_without_failure() {
    let Some(w) = world(300, 300).await else {
        return;
    };
    let client = w.scim_client().await.without_patch();
    let dir = ScimDirectory::new(client, w.corp(), "acme");
    import_twice(&w, &dir, "300 people / 300 departments (replace)").await;
}

/// A tree of 5,000 departments (1,000 people; about a minute on 2 cores). The sizes can be
/// raised (`DINGSYNC_SCIM_WAVES_DEPTS`, `DINGSYNC_SCIM_WAVES_PEOPLE`);
/// `DINGSYNC_SCIM_WAVES_PATCH=0` forces the fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large() {
    let var = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let departments = var("DINGSYNC_SCIM_WAVES_DEPTS", 5_000);
    let people = var("DINGSYNC_SCIM_WAVES_PEOPLE", 1_000);
    let patch = var("DINGSYNC_SCIM_WAVES_PATCH", 1) != 0;
    let Some(w) = world(people, departments).await else {
        return;
    };
    let client = w.scim_client().await;
    let client = if patch {
        client
    } else {
        client.without_patch()
    };
    let dir = ScimDirectory::new(client, w.corp(), "acme");
    import_twice(
        &w,
        &dir,
        &format!(
            "{people} people / {departments} departments ({patch_or}",
            patch_or = if patch { "PATCH)" } else { "replace)" }
        ),
    )
    .await;
}
