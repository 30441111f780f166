//! A SyncTarget's scope rules against slapd and scim2-server: excluded and hidden subtrees
//! left out, the people filter, people who fall out of scope disabled (not deleted), an app
//! whose own contact scope is a sub-department, and events about people out of scope.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use dingsync::{
    api::target::{Layout, Scope},
    dingtalk::{DingTalkError, Event as DtEvent},
    directory::{Directory, scim::ScimDirectory},
    model::Changes,
    sim::{DeptWrite, Org, UserWrite},
    sync::{
        self, Options, Report, dingtalk_source::DingTalkSource, events::changes_of,
        source_scope::ScopeRules,
    },
};

use crate::support::{World, conformance};

/// An enterprise with a hidden department (12, with a child 13 hidden by it), a subtree to
/// exclude (21) and an intern.
const ORG: &str = r#"
corp_id: dingscopecorp
name: 范围科技
departments:
  - {id: 10, name: 研发部}
  - {id: 11, name: 前端组, parent_id: 10}
  - {id: 12, name: 机密项目, parent_id: 10, hide_dept: true}
  - {id: 13, name: 机密子组, parent_id: 12}
  - {id: 20, name: 销售部}
  - {id: 21, name: 外包组, parent_id: 20}
  - {id: 30, name: 行政部}
people:
  - {userid: alice, name: 王芳, mobile: "13900000001", title: 工程师, departments: [11]}
  - {userid: bob, name: 李雷, mobile: "13900000002", title: 工程师, departments: [12]}
  - {userid: carol, name: 韩梅, mobile: "13900000003", title: 工程师, departments: [13]}
  - {userid: dave, name: 赵强, mobile: "13900000004", title: 外包, departments: [21]}
  - {userid: erin, name: 钱敏, mobile: "13900000005", title: 销售, departments: [21, 20]}
  - {userid: frank, name: 孙亮, mobile: "13900000006", title: 实习生, departments: [20]}
  - {userid: gina, name: 周婷, mobile: "13900000007", title: 行政, departments: [30]}
  - {userid: hank, name: 吴刚, mobile: "13900000008", title: 经理, departments: [10, 12]}
"#;

const NO_INTERNS: &str = "{{ active and not title == '实习生' }}";

fn org() -> Org {
    Org::from_yaml_str(ORG, "scope org").expect("a valid org")
}

/// The org with its one app's contact scope narrowed to department 10 and gina.
fn narrow_org() -> Org {
    let mut o = org();
    o.normalize();
    let mut app = dingsync::sim::App::new(
        dingsync::sim::DEFAULT_APP_KEY,
        dingsync::sim::DEFAULT_APP_SECRET,
    );
    app.scope.departments = vec![10];
    app.scope.users = vec!["gina".into()];
    o.apps = vec![app];
    o
}

fn scope(exclude: &[i64], include_hidden: bool, filter: Option<&str>) -> Scope {
    Scope {
        department_ids: vec![1],
        exclude_department_ids: exclude.to_vec(),
        include_hidden,
        people_filter: filter.map(str::to_owned),
    }
}

fn source(w: &World, scope: &Scope) -> DingTalkSource {
    let rules = ScopeRules::for_target(scope).expect("valid scope rules");
    DingTalkSource::with_rules(w.client.clone(), rules)
}

fn opts() -> Options {
    Options {
        max_percent: 100,
        ..Default::default()
    }
}

async fn sync(source: &DingTalkSource, dir: &dyn Directory) -> Report {
    let r = sync::run(
        source,
        dir,
        &conformance::mapping(),
        &opts(),
        false,
        &|_, _, _| {},
    )
    .await
    .expect("sync runs");
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.complete, "{:?}", r.incomplete);
    r
}

/// What the directory holds: departments, and each person's departments and whether they
/// are disabled.
struct Held {
    departments: BTreeSet<String>,
    people: BTreeMap<String, (BTreeSet<String>, bool)>,
}

async fn held(dir: &dyn Directory) -> Held {
    let snap = dir.read().await.expect("read the directory");
    Held {
        departments: snap.departments.iter().map(|d| d.id.clone()).collect(),
        people: snap
            .people
            .iter()
            .filter_map(|p| {
                let depts = p.departments.iter().cloned().collect();
                Some((p.id.clone()?, (depts, p.disabled)))
            })
            .collect(),
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn ids<V>(m: &BTreeMap<String, V>) -> BTreeSet<String> {
    m.keys().cloned().collect()
}

/// The main case on any backend: the excluded subtree, the hidden one and the interns are
/// absent; a second run writes nothing; with `includeHidden` the hidden subtree comes in.
async fn excluded_hidden_and_filtered(w: &World, dir: &dyn Directory, wide: &dyn Directory) {
    let rules = scope(&[21], false, Some(NO_INTERNS));
    sync(&source(w, &rules), dir).await;
    let h = held(dir).await;
    assert_eq!(h.departments, set(&["1", "10", "11", "20", "30"]));
    assert_eq!(ids(&h.people), set(&["alice", "erin", "gina", "hank"]));
    assert_eq!(
        h.people["erin"].0,
        set(&["20"]),
        "only the memberships in scope"
    );
    assert_eq!(
        h.people["hank"].0,
        set(&["10"]),
        "not the hidden department"
    );
    let again = sync(&source(w, &rules), dir).await;
    assert_eq!(
        again.writes, 0,
        "a second run writes nothing: {:?}",
        again.plan
    );

    let rules = scope(&[21], true, None);
    sync(&source(w, &rules), wide).await;
    let h = held(wide).await;
    assert_eq!(
        h.departments,
        set(&["1", "10", "11", "12", "13", "20", "30"])
    );
    assert_eq!(
        ids(&h.people),
        set(&["alice", "bob", "carol", "erin", "frank", "gina", "hank"])
    );
    assert_eq!(h.people["hank"].0, set(&["10", "12"]));
    let again = sync(&source(w, &rules), wide).await;
    assert_eq!(
        again.writes, 0,
        "a second run writes nothing: {:?}",
        again.plan
    );
}

#[tokio::test]
async fn excluded_and_hidden_subtrees_and_filtered_people_stay_out_of_ldap() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let dir = w.ldap(&w.node("scoped"), Layout::FlatWithGroups).await;
    let wide = w.ldap(&w.node("wide"), Layout::OuTree).await;
    excluded_hidden_and_filtered(&w, &dir, &wide).await;
}

#[tokio::test]
async fn excluded_and_hidden_subtrees_and_filtered_people_stay_out_of_scim() {
    let Some(w) = World::builder().org(org()).scim().build().await else {
        return;
    };
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "scoped");
    let wide = ScimDirectory::new(w.scim_client().await, w.corp(), "wide");
    excluded_hidden_and_filtered(&w, &dir, &wide).await;
}

#[tokio::test]
async fn a_person_the_filter_leaves_out_after_the_first_sync_is_disabled_not_deleted() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let dir = w.ldap(&w.node("later"), Layout::FlatWithGroups).await;
    sync(&source(&w, &scope(&[], false, None)), &dir).await;
    assert!(held(&dir).await.people.contains_key("frank"));

    let filtered = source(&w, &scope(&[], false, Some(NO_INTERNS)));
    let r = sync(&filtered, &dir).await;
    assert_eq!(
        (r.disabled, r.deleted, r.created),
        (1, 0, 0),
        "{:?}",
        r.plan
    );
    let h = held(&dir).await;
    assert!(h.people["frank"].1, "frank is disabled, his entry kept");
    assert!(!h.people["alice"].1);
    let again = sync(&filtered, &dir).await;
    assert_eq!(
        again.writes, 0,
        "a second run writes nothing: {:?}",
        again.plan
    );
}

#[tokio::test]
async fn an_app_scoped_to_a_sub_department_syncs_its_subtree_and_says_so() {
    let Some(w) = World::builder().org(narrow_org()).slapd().build().await else {
        return;
    };
    // DingTalk refuses what lies outside the app's contact scope.
    match w.client.list_sub_departments(1).await {
        Err(DingTalkError::Denied { errcode: 50004, .. }) => {}
        other => panic!("listsub of the root: {other:?}"),
    }
    match w.client.get_user("dave").await {
        Err(DingTalkError::Denied { errcode: 50002, .. }) => {}
        other => panic!("user/get outside the scope: {other:?}"),
    }
    let scope = w.client.auth_scopes().await.expect("/auth/scopes");
    assert_eq!(scope.departments, vec![10]);
    assert_eq!(scope.users, vec!["gina".to_string()]);

    // No departmentIds: the app's own scope (hidden departments still left out).
    let own = Scope::default();
    let source = source(&w, &own);
    let dir = w.ldap(&w.node("narrow"), Layout::FlatWithGroups).await;
    sync(&source, &dir).await;
    let h = held(&dir).await;
    assert_eq!(h.departments, set(&["10", "11"]));
    assert_eq!(ids(&h.people), set(&["alice", "gina", "hank"]));
    assert!(
        h.people["gina"].0.is_empty(),
        "authorised alone: no department"
    );
    let note = source.scope_note().expect("a narrow scope is reported");
    assert!(note.contains("narrower") && note.contains("[10]"), "{note}");
    let again = sync(&source, &dir).await;
    assert_eq!(
        again.writes, 0,
        "a second run writes nothing: {:?}",
        again.plan
    );

    // Events: a hire outside the app's scope is refused to it (50002) and ignored, not
    // retried; the authorised person and a hire inside are applied.
    let from = w.sim.events().len();
    hire(&w, "nina", "行政", 30);
    hire(&w, "omar", "工程师", 11);
    w.sim
        .edit_user(
            "gina",
            UserWrite {
                title: Some("行政主管".into()),
                ..Default::default()
            },
        )
        .expect("edit");
    let changes = changes_since(&w, from);
    let r = sync::run_changed(
        &source,
        &dir,
        &conformance::mapping(),
        &opts(),
        &changes,
        false,
        &|_, _, _| {},
    )
    .await
    .expect("events applied");
    assert!(r.complete, "{:?}", r.incomplete);
    assert_eq!(
        (r.created, r.updated, r.disabled),
        (1, 1, 0),
        "{:?}",
        r.plan
    );
    assert_eq!(
        ids(&held(&dir).await.people),
        set(&["alice", "gina", "hank", "omar"])
    );

    // The whole enterprise's app says nothing.
    let Some(whole) = World::builder().org(org()).build().await else {
        return;
    };
    let wide = DingTalkSource::new(whole.client.clone(), vec![]);
    dingsync::sync::Source::read(&wide).await.expect("read");
    assert_eq!(wide.scope_note(), None);
}

/// The ids the simulator's events since `from` name, as the events pipeline sees them.
fn changes_since(w: &World, from: usize) -> Changes {
    let mut all = Changes::default();
    for e in w.sim.events().into_iter().skip(from) {
        let c = changes_of(&DtEvent {
            event_type: e.event_type,
            event_id: None,
            corp_id: None,
            born_ms: None,
            user_ids: e.user_ids,
            dept_ids: e.dept_ids,
            data: serde_json::Value::Null,
        });
        all.people.extend(c.people);
        all.departments.extend(c.departments);
    }
    all
}

fn hire(w: &World, userid: &str, title: &str, dept: i64) {
    w.sim
        .hire(UserWrite {
            userid: Some(userid.into()),
            name: Some(format!("新人{userid}")),
            title: Some(title.into()),
            departments: Some(vec![dept]),
            ..Default::default()
        })
        .expect("hire");
}

#[tokio::test]
async fn events_about_people_and_departments_out_of_scope_create_nothing() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let dir = w.ldap(&w.node("events"), Layout::FlatWithGroups).await;
    let rules = scope(&[21], false, Some(NO_INTERNS));
    let source = source(&w, &rules);
    sync(&source, &dir).await;
    let from = w.sim.events().len();
    hire(&w, "ivan", "外包", 21);
    hire(&w, "judy", "工程师", 12);
    hire(&w, "kate", "实习生", 30);
    hire(&w, "liam", "工程师", 11);
    let sub = w
        .sim
        .create_department(DeptWrite {
            name: Some("外包二组".into()),
            parent_id: Some(21),
            ..Default::default()
        })
        .expect("department under the excluded subtree");
    hire(&w, "mona", "工程师", sub.id);
    // Edits of people only in the excluded or the hidden subtree, or left out by the filter.
    for userid in ["dave", "bob", "frank"] {
        w.sim
            .edit_user(
                userid,
                UserWrite {
                    remark: Some("新备注".into()),
                    ..Default::default()
                },
            )
            .expect("edit");
    }
    // alice moves into the excluded subtree: she leaves the scope.
    w.sim.move_user("alice", vec![21]).expect("move");
    let changes = changes_since(&w, from);
    assert!(changes.departments.contains(&sub.id.to_string()));
    for edited in ["dave", "bob", "frank"] {
        assert!(changes.people.contains(edited), "{edited}: user_modify_org");
    }

    let r = sync::run_changed(
        &source,
        &dir,
        &conformance::mapping(),
        &opts(),
        &changes,
        false,
        &|_, _, _| {},
    )
    .await
    .expect("events applied");
    assert!(r.complete, "{:?}", r.incomplete);
    assert_eq!(
        (r.created, r.disabled, r.deleted),
        (1, 1, 0),
        "{:?}",
        r.plan
    );
    let h = held(&dir).await;
    assert!(!h.departments.contains(&sub.id.to_string()));
    for out in ["ivan", "judy", "kate", "mona", "dave", "bob", "frank"] {
        assert!(!h.people.contains_key(out), "{out} is out of scope");
    }
    assert!(h.people.contains_key("liam"), "a hire in scope is created");
    assert!(h.people["alice"].1, "alice took the leaver path: disabled");
    // A full sync agrees with what the events left.
    let full = sync(&source, &dir).await;
    assert_eq!(
        full.writes, 0,
        "the full sync finds nothing to do: {:?}",
        full.plan
    );
}

#[test]
fn the_example_targets_scopes_pass_the_check_they_meet_when_resolved() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut filters = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let path = entry.expect("an entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_json::Value::deserialize(doc).expect("YAML");
            if v["kind"] != "SyncTarget" {
                continue;
            }
            let t: dingsync::api::SyncTarget = serde_json::from_value(v).expect("a SyncTarget");
            filters += usize::from(t.spec.scope.people_filter.is_some());
            if let Err(p) = dingsync::resolve::validate_scope(&t.spec) {
                panic!("{}: {p}", path.display());
            }
        }
    }
    assert!(filters >= 1, "an example shows peopleFilter");
}
