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
