//! `dingsync plan` end to end: the simulator as DingTalk, a real slapd, YAML on disk.
//! It prints the pending changes, exits 2, and writes nothing; once synced it exits 0.

use crate::support::World;
use std::process::Command;

use dingsync::{
    sim::{self, SimConfig},
    sync::{self, Options},
};

/// Mapped beyond `cn` and `sn`.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("mail", "{{ email | lower }}"),
    ("mobile", "{{ mobile }}"),
    ("title", "{{ title }}"),
];

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_changes_writes_nothing_and_exits_by_state() {
    let Some(w) = World::builder()
        .people(60)
        .departments(6)
        .seed(4)
        .sim_config(SimConfig {
            qps_limit: None,
            ..Default::default()
        })
        .slapd()
        .build()
        .await
    else {
        return;
    };
    let server = w.slapd();
    let node = w.node("plan");
    let manifests = w.inbound_ldap_yaml(&node, None, ATTRIBUTES);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), &manifests).unwrap();
    let bin = env!("CARGO_BIN_EXE_dingsync");
    let run = |dir: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            // The AppSecret comes from the environment, not the manifests.
            Command::new(bin)
                .args(["plan", "-f"])
                .arg(dir)
                .env("DINGSYNC_SECRET_APP_APPSECRET", sim::DEFAULT_APP_SECRET)
                .output()
                .unwrap()
        })
    };
    let out = run(dir.path().to_path_buf()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "changes pending: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("+ create"), "{stdout}");
    assert!(stdout.contains("60 people"), "{stdout}");
    assert!(!stdout.contains(sim::DEFAULT_APP_SECRET));
    // Who lacks a mobile / an email: the count, the first 20 by userid, how many more.
    let (no_mobile, no_email) = lacking(&w.sim.org());
    assert!(!no_mobile.is_empty() && !no_email.is_empty());
    for (what, ids) in [("a mobile", &no_mobile), ("an email", &no_email)] {
        let section = stdout
            .split(&format!("  without {what}: {}\n", ids.len()))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {what}: {stdout}"));
        let listed: Vec<&str> = section
            .lines()
            .take_while(|l| l.starts_with("    ") && !l.contains('…'))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        let shown = ids.len().min(20);
        assert_eq!(listed, ids[..shown], "{what}: {stdout}");
        if ids.len() > 20 {
            let more = format!("    … and {} more (--all lists them)", ids.len() - 20);
            assert!(section.contains(&more), "{what}: {stdout}");
        }
    }
    // A tree by department: each person's step sits under one of their departments'
    // names, and without a terminal no colour codes are printed.
    assert!(
        !stdout.contains('\u{1b}'),
        "no ANSI codes off a terminal: {stdout}"
    );
    check_tree(&stdout, &w.sim.org());
    // The same plan for machines: one JSON document, the same exit code.
    let bin2 = bin.to_string();
    let path = dir.path().to_path_buf();
    let out_json = tokio::task::spawn_blocking(move || {
        Command::new(bin2)
            .args(["plan", "-o", "json", "-f"])
            .arg(path)
            .env("DINGSYNC_SECRET_APP_APPSECRET", sim::DEFAULT_APP_SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out_json.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out_json.stdout).expect("JSON");
    check_json(&doc, &w.sim.org());

    // Nothing was written: the node still has no children.
    let listing = server.search(&node, "(objectClass=*)", &["1.1"]).unwrap();
    assert_eq!(
        listing.matches("dn: ").count(),
        1,
        "only the node itself: {listing}"
    );

    // Sync for real, then the plan is empty and exits 0.
    let ldap = w.ldap(&node, Default::default()).await;
    let source = w.source();
    let mapping = dingsync::mapping::Mapping::compile(
        &serde_yaml::from_str::<dingsync::api::FieldMapping>(
            manifests.split("---").nth(2).unwrap(),
        )
        .unwrap()
        .spec,
    )
    .unwrap();
    let r = sync::run(
        &source,
        &ldap,
        &mapping,
        &Options::default(),
        false,
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    // The run's report names them too.
    let named = |l: &[dingsync::sync::lacking::Named]| -> Vec<String> {
        l.iter().map(|n| n.id.clone()).collect()
    };
    assert_eq!(named(&r.lacking.mobile), no_mobile);
    assert_eq!(named(&r.lacking.email), no_email);
    assert_eq!(
        (r.missing_mobile, r.missing_email),
        (no_mobile.len(), no_email.len())
    );
    let out = run(dir.path().to_path_buf()).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The userids, in order, of the people without a mobile and of those without an email.
fn lacking(org: &sim::Org) -> (Vec<String>, Vec<String>) {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut people: Vec<&sim::Person> = org.people.iter().collect();
    people.sort_by(|a, b| a.userid.cmp(&b.userid));
    let ids = |keep: &dyn Fn(&sim::Person) -> bool| {
        people
            .iter()
            .filter(|p| keep(p))
            .map(|p| p.userid.clone())
            .collect()
    };
    (
        ids(&|p| blank(&p.mobile)),
        ids(&|p| blank(&p.email) && blank(&p.org_email)),
    )
}

/// The department names of `org`, and which of them each userid belongs to.
fn memberships(org: &sim::Org) -> std::collections::HashMap<String, Vec<String>> {
    let names: std::collections::HashMap<i64, &str> = org
        .departments
        .iter()
        .map(|d| (d.id, d.name.as_str()))
        .collect();
    org.people
        .iter()
        .map(|p| {
            let of = p
                .departments
                .iter()
                .filter_map(|d| names.get(d))
                .map(|n| n.to_string());
            (p.userid.clone(), of.collect())
        })
        .collect()
}

/// Every listed create of a person comes after a department line (less indented) naming one
/// of that person's departments.
fn check_tree(stdout: &str, org: &sim::Org) {
    // By name: the listing shows names and directory uids, not userids.
    let mut by_name: std::collections::HashMap<&str, Vec<String>> = Default::default();
    let member_of = memberships(org);
    for p in &org.people {
        by_name
            .entry(&p.name)
            .or_default()
            .extend(member_of[&p.userid].clone());
    }
    let mut heads: Vec<(usize, String)> = vec![];
    let mut checked = 0;
    for line in stdout.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if let Some(rest) = text.strip_prefix("+ create") {
            let name = rest.split('(').next().unwrap().trim();
            let Some(depts) = by_name.get(name) else {
                continue; // a department's own step
            };
            let (_, head) = heads
                .iter()
                .rev()
                .find(|(i, _)| *i < indent)
                .unwrap_or_else(|| panic!("{name} under no department: {stdout}"));
            assert!(
                depts.contains(head),
                "{name} listed under {head}, is in {depts:?}"
            );
            checked += 1;
        } else if indent >= 2 && !text.contains(':') && !text.starts_with(['+', '-', '~', '…']) {
            heads.retain(|(i, _)| *i < indent);
            heads.push((indent, text.to_string()));
        }
    }
    assert!(checked >= 10, "{checked} people checked in {stdout}");
}

/// The JSON plan: counts match the steps, and each person's step names a department path
/// ending in one of their departments.
fn check_json(doc: &serde_json::Value, org: &sim::Org) {
    let member_of = memberships(org);
    let t = &doc["targets"][0];
    assert_eq!(t["direction"], "Inbound");
    assert_eq!(t["dingtalk"]["people"], 60);
    let steps = t["steps"].as_array().unwrap();
    let creates = steps.iter().filter(|s| s["verb"] == "create").count();
    assert_eq!(t["summary"]["create"].as_u64(), Some(creates as u64));
    let people: Vec<&serde_json::Value> = steps.iter().filter(|s| s["kind"] == "User").collect();
    assert_eq!(people.len(), 60, "{t}");
    for s in people {
        let path = s["department"].as_str().unwrap_or_else(|| panic!("{s}"));
        let last = path.rsplit('/').next().unwrap();
        let userid = s["id"].as_str().unwrap();
        assert!(member_of[userid].iter().any(|d| d == last), "{s}");
    }
}
