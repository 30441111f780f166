//! Bad input from DingTalk, against a real slapd: names LDAP must escape, very long names,
//! templates that fail for some people, empty departments, a parent cycle and an orphan. Each
//! gives a clean result or a per-object error naming the object — never a panic, never a
//! destructive write — and a second run converges.

use crate::support::slapd;
use dingsync::{
    api::{
        FieldMappingSpec,
        mapping::{AttributeRule, UniqueName, UserMapping},
        target::Layout,
    },
    directory::{Directory, ldap::LdapDirectory},
    mapping::Mapping,
    sync::{self, Options, Report, StaticSource},
};

use crate::support::{
    conformance::{self, Org},
    world::ldap_directory,
};

const CORP: &str = "dingbadcorp";

async fn node(server: &slapd::Slapd, name: &str, layout: Layout) -> LdapDirectory {
    let node = server.new_node(name).expect("node");
    ldap_directory(server, &node, layout, CORP).await
}

async fn run_with(org: &Org, dir: &dyn Directory, mapping: &Mapping, complete: bool) -> Report {
    let source = StaticSource::new(org.snapshot(complete));
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    sync::run(&source, dir, mapping, &opts, false, &|_, _, _| {})
        .await
        .expect("the run completes")
}

async fn run(org: &Org, dir: &dyn Directory) -> Report {
    run_with(org, dir, &conformance::mapping(), true).await
}

/// Every name LDAP needs escaped in a DN or a filter, and characters beyond ASCII.
const HOSTILE: &[&str] = &[
    "R&D, \"Core\" + <Ops>; \\ team",
    "#1 组",
    "前后 有空格 ",
    "张·三",
    "🚀 Launch",
    "a=b,c=d",
    "*)(uid=*",
    "=",
];

#[tokio::test(flavor = "multi_thread")]
async fn names_ldap_must_escape_round_trip() {
    let Some(server) = slapd::start_or_skip() else {
        return;
    };
    for layout in [Layout::FlatWithGroups, Layout::OuTree] {
        let dir = node(&server, &format!("hostile-{layout:?}"), layout).await;
        let mut org = Org::new(CORP).dept("1", "Acme", None);
        for (i, name) in HOSTILE.iter().enumerate() {
            let id = format!("{}", 10 + i);
            org = org.dept(&id, name, Some("1")).person(
                &format!("u{i}"),
                name,
                &[id.as_str()],
                None,
                None,
            );
        }
        let first = run(&org, &dir).await;
        assert!(
            first.failures.is_empty(),
            "{layout:?}: {:#?}",
            first.failures
        );
        assert_eq!(
            first.created,
            2 * HOSTILE.len() + 1,
            "{layout:?}: people, departments, root"
        );
        let snap = dir.read().await.unwrap();
        for (i, name) in HOSTILE.iter().enumerate() {
            let p = snap
                .people
                .iter()
                .find(|p| p.id.as_deref() == Some(&format!("u{i}")))
                .unwrap_or_else(|| panic!("{layout:?}: u{i} ({name:?}) not read back"));
            assert_eq!(
                p.attrs.first("cn").unwrap().trim(),
                name.trim(),
                "{layout:?}: cn survives"
            );
            assert_eq!(p.departments, vec![format!("{}", 10 + i)], "{layout:?}");
            let d = snap
                .departments
                .iter()
                .find(|d| d.id == format!("{}", 10 + i))
                .expect("department read back");
            assert_eq!(d.name.trim(), name.trim(), "{layout:?}: department name");
        }
        // The filter-shaped name matched nobody else: exactly one entry per person.
        assert_eq!(snap.people.len(), HOSTILE.len(), "{layout:?}");
        let again = run(&org, &dir).await;
        assert_eq!(again.writes, 0, "{layout:?}: {:#?}", again.plan.steps);

        // Renaming the hostile departments (modrdn with escaped RDNs) converges too.
        let mut renamed = org.clone();
        for i in 0..HOSTILE.len() {
            renamed = renamed.edit_dept(&format!("{}", 10 + i), |d| {
                d.name = format!("{}+新", d.name)
            });
        }
        let r = run(&renamed, &dir).await;
        assert!(r.failures.is_empty(), "{layout:?}: {:#?}", r.failures);
        assert_eq!(run(&renamed, &dir).await.writes, 0, "{layout:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn very_long_names_fail_alone_or_succeed() {
    let Some(server) = slapd::start_or_skip() else {
        return;
    };
    let dir = node(&server, "long", Layout::FlatWithGroups).await;
    let long = "龙".repeat(400);
    let org = conformance::base_org(CORP)
        .dept("9", &"部".repeat(300), Some("1"))
        .person("long1", &long, &["9"], None, None)
        .person("long2", &"x".repeat(5000), &["2"], None, None);
    let first = run(&org, &dir).await;
    // The ordinary people are all there, whatever happened to the long ones.
    let snap = dir.read().await.unwrap();
    for id in ["u1", "u2", "u3", "u4"] {
        assert!(
            snap.people.iter().any(|p| p.id.as_deref() == Some(id)),
            "{id} created: {:#?}",
            first.failures
        );
    }
    for f in &first.failures {
        assert!(
            f.id.starts_with("long") || f.id == "9",
            "only the long records may fail: {f:?}"
        );
        assert!(!f.message.is_empty());
    }
    let created_or_failed = |id: &str| {
        snap.people.iter().any(|p| p.id.as_deref() == Some(id))
            || first.failures.iter().any(|f| f.id == id)
    };
    assert!(created_or_failed("long1") && created_or_failed("long2"));
    // A second run converges: no new writes for what succeeded, the same failures at most.
    let again = run(&org, &dir).await;
    assert!(again.failures.len() <= first.failures.len());
    assert_eq!(again.disabled + again.deleted, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_failing_for_some_people_fails_only_them() {
    let Some(server) = slapd::start_or_skip() else {
        return;
    };
    let dir = node(&server, "tplfail", Layout::FlatWithGroups).await;
    let rule = |t: &str, tpl: &str| AttributeRule {
        target: t.into(),
        template: tpl.into(),
        ..Default::default()
    };
    // Renders for people with a mobile; for the others the division fails at render time.
    let mapping = Mapping::compile(&FieldMappingSpec {
        direction: Default::default(),
        user: UserMapping {
            attributes: vec![
                rule("cn", "{{ name }}"),
                rule("sn", "{{ name[:1] }}"),
                rule(
                    "description",
                    "{{ 100 // (mobile | default('') | length) }}",
                ),
            ],
            unique_name: UniqueName {
                attribute: "uid".into(),
                template: "{{ name | pinyin }}".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        department: None,
    })
    .expect("compiles: the failure is per person");
    let org = conformance::base_org(CORP);
    let r = run_with(&org, &dir, &mapping, true).await;
    // u4 has no mobile: only u4 fails, naming the rule.
    let failed: Vec<&str> = r.failures.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(failed, vec!["u4"], "{:#?}", r.failures);
    assert!(
        r.failures[0].message.contains("description"),
        "{:#?}",
        r.failures
    );
    // Nothing half-written: u4 has no entry at all.
    let snap = dir.read().await.unwrap();
    assert!(snap.people.iter().all(|p| p.id.as_deref() != Some("u4")));
    // Fixed data converges.
    let fixed = org.edit("u4", |p| {
        p.fields.insert("mobile", serde_json::json!("13800000004"));
    });
    let r = run_with(&fixed, &dir, &mapping, true).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    let snap = dir.read().await.unwrap();
    assert_eq!(snap.people.len(), 4, "u4 created once the data is fixed");
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_departments_cycles_and_orphans() {
    let Some(server) = slapd::start_or_skip() else {
        return;
    };
    let dir = node(&server, "shapes", Layout::FlatWithGroups).await;
    let org = conformance::base_org(CORP)
        .dept("20", "空部门", Some("1"))
        .dept("21", "也是空的", Some("20"))
        // A parent cycle: neither can be placed in the tree.
        .dept("30", "环A", Some("31"))
        .dept("31", "环B", Some("30"))
        // An orphan: its parent is not in the data.
        .dept("40", "孤儿", Some("999"))
        .person("c1", "周杰", &["30", "2"], None, None)
        .person("o1", "吴磊", &["40"], None, None);
    let r = run(&org, &dir).await;
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    // The cycle makes the read incomplete (reported), so nothing may be removed this run.
    assert!(!r.complete);
    assert!(
        r.incomplete
            .iter()
            .any(|m| m.contains("30") || m.contains("31")),
        "{:?}",
        r.incomplete
    );
    let snap = dir.read().await.unwrap();
    let dept = |id: &str| snap.departments.iter().find(|d| d.id == id);
    assert!(
        dept("20").is_some() && dept("21").is_some(),
        "empty departments exist"
    );
    assert!(
        dept("30").is_none() && dept("31").is_none(),
        "cyclic ones are skipped"
    );
    assert!(dept("40").is_some(), "the orphan is kept, at the top");
    let person = |id: &str| {
        snap.people
            .iter()
            .find(|p| p.id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} created"))
    };
    assert_eq!(person("c1").departments, vec!["2".to_string()]);
    assert_eq!(person("o1").departments, vec!["40".to_string()]);
    // Stable: the same data writes nothing more.
    let again = run(&org, &dir).await;
    assert_eq!(again.writes, 0, "{:#?}", again.plan.steps);
    // Removing everyone while the data still has a cycle removes no one.
    let gone = Org {
        people: vec![],
        ..org.clone()
    };
    let r = run(&gone, &dir).await;
    assert_eq!(r.disabled + r.deleted, 0);
    assert!(dir.read().await.unwrap().people.iter().all(|p| !p.disabled));
}
