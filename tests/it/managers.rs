//! Managers and department heads against slapd and scim2-server: a person's `manager` is
//! their manager's entry in the same target (LDAP DN, SCIM id) two levels deep right after
//! the first sync, department heads are their group's `owner`s, and a manager renamed, moved
//! and then leaving takes the reports' `manager` along at each step — by full sync and by
//! events alone — with a second run that writes nothing.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use dingsync::{
    api::{FieldMappingSpec, target::Layout},
    dingtalk::{StreamConfig, StreamHandle, StreamState},
    directory::{Directory, Snapshot, scim::ScimDirectory},
    mapping::Mapping,
    sim::{
        UserWrite,
        generate::{GenSpec, generate},
        org::Org,
    },
    sync::{
        self, Options, Report,
        dingtalk_source::DingTalkSource,
        events::{LiveTarget, Pipeline, PipelineConfig},
    },
};

use crate::support::{World, truth::key_of};

const CORP: &str = "dingsimcorp";

const LDAP_MAPPING: &str = r#"
user:
  uniqueName: {attribute: uid, template: "{{ name | pinyin }}"}
  attributes:
    - {target: cn, template: "{{ name }}"}
    - {target: sn, template: "{{ name[:1] }}"}
    - {target: manager, template: "{{ manager_userid }}", refersTo: Person}
    - target: employeeType
      template: "{% if is_leader %}head of {{ leader_of | join(',') }}{% endif %}"
department:
  attributes:
    - target: owner
      template: "{{ dept_manager_userid_list | join(',') }}"
      refersTo: Person
"#;

const SCIM_MAPPING: &str = r#"
user:
  uniqueName: {attribute: userName, template: "{{ name | pinyin }}"}
  attributes:
    - {target: displayName, template: "{{ name }}"}
    - target: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
      template: "{{ manager_userid }}"
      refersTo: Person
department:
  attributes:
    - target: owner
      template: "{{ dept_manager_userid_list | join(',') }}"
      refersTo: Person
"#;

const SCIM_MANAGER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager";

fn mapping(yaml: &str) -> Mapping {
    let spec: FieldMappingSpec = serde_yaml::from_str(yaml).expect("mapping YAML");
    Mapping::compile(&spec).expect("mapping compiles")
}

fn org() -> Org {
    generate(&GenSpec {
        people: 40,
        departments: 8,
        seed: 23,
        corp_id: CORP.into(),
        ..Default::default()
    })
}

fn opts(ou_tree: bool) -> Options {
    Options {
        max_percent: 100,
        ou_tree,
        ..Default::default()
    }
}

fn source(w: &World, m: &Mapping) -> Arc<DingTalkSource> {
    let source = DingTalkSource::new(w.client.clone(), vec![1])
        .keeping(m.person_fields())
        .reading_heads(m.reads_heads());
    Arc::new(source)
}

async fn full_sync(
    source: &DingTalkSource,
    dir: &dyn Directory,
    m: &Mapping,
    ou_tree: bool,
) -> Report {
    let r = sync::run(source, dir, m, &opts(ou_tree), false, &|_, _, _| {})
        .await
        .expect("sync runs");
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.plan.problems.is_empty(), "{:#?}", r.plan.problems);
    r
}

/// A full sync, then a second that must write nothing.
async fn settle(source: &DingTalkSource, dir: &dyn Directory, m: &Mapping, ou_tree: bool) {
    full_sync(source, dir, m, ou_tree).await;
    let again = full_sync(source, dir, m, ou_tree).await;
    assert_eq!(again.writes, 0, "second run: {:#?}", again.plan.steps);
}

/// What is wrong with the managers and heads of `snap`, DingTalk's `truth` being right.
fn wrong(truth: &Org, snap: &Snapshot, manager_attr: &str, heads: bool) -> Vec<String> {
    let mut out = vec![];
    for p in &truth.people {
        let Some(e) = snap
            .people
            .iter()
            .find(|e| e.id.as_deref() == Some(&p.userid))
        else {
            out.push(format!("{} has no entry", p.userid));
            continue;
        };
        let want = p.manager_userid.as_deref().and_then(|m| key_of(snap, m));
        let have = e.attrs.first(manager_attr).map(str::to_lowercase);
        if want != have {
            out.push(format!("{}: manager {have:?}, not {want:?}", p.userid));
        }
    }
    for d in truth.departments.iter().filter(|_| heads) {
        let Some(e) = snap.departments.iter().find(|e| e.id == d.id.to_string()) else {
            continue;
        };
        let want: BTreeSet<String> = (d.manager_userids.iter())
            .filter_map(|u| key_of(snap, u))
            .collect();
        let have: BTreeSet<String> = (e.attrs.get("owner").into_iter().flatten())
            .map(str::to_lowercase)
            .collect();
        if want != have {
            out.push(format!(
                "department {}: owners {have:?}, not {want:?}",
                d.id
            ));
        }
    }
    out
}

async fn assert_right(w: &World, dir: &dyn Directory, attr: &str, heads: bool, when: &str) {
    let snap = dir.read().await.unwrap();
    let bad = wrong(&w.sim.org(), &snap, attr, heads);
    assert!(bad.is_empty(), "{when}: {bad:#?}");
}

/// Waits until the directory's managers and heads match DingTalk's (events applied); up to
/// 30 s, since the whole suite shares two cores.
async fn converge(w: &World, dir: &dyn Directory, attr: &str, heads: bool, when: &str) {
    let mut bad = vec![];
    for _ in 0..600 {
        let snap = dir.read().await.unwrap();
        bad = wrong(&w.sim.org(), &snap, attr, heads);
        if bad.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{when}: never converged: {bad:#?}");
}

/// A manager with reports, whose own manager is someone too (two levels), and a department
/// other than their own to move them to.
fn pick_manager(truth: &Org) -> (String, i64) {
    let reports = |m: &str| {
        (truth.people.iter())
            .filter(|p| p.manager_userid.as_deref() == Some(m))
            .count()
    };
    let m = (truth.people.iter())
        .filter(|p| p.manager_userid.is_some() && reports(&p.userid) > 0)
        .max_by_key(|p| reports(&p.userid))
        .expect("a manager who has a manager: managers two levels deep");
    let other = (truth.departments.iter())
        .map(|d| d.id)
        .find(|d| *d != 1 && !m.departments.contains(d))
        .expect("another department");
    (m.userid.clone(), other)
}

/// The steps of a manager's story, each followed by `check`.
async fn rename_move_leave(w: &World, manager: &str, to: i64, check: impl AsyncFn(&str)) {
    w.sim
        .edit_user(
            manager,
            UserWrite {
                name: Some("欧阳新名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    check("renamed").await;
    // Their department renamed: in `OuTree` their OU, and so their DN, changes.
    let truth = w.sim.org();
    let person = truth.people.iter().find(|p| p.userid == manager).unwrap();
    let dept = *person.departments.first().unwrap();
    w.sim.rename_department(dept, "改名后的部门").unwrap();
    check("their department renamed").await;
    w.sim.move_user(manager, vec![to]).unwrap();
    check("moved").await;
    w.sim.leave(manager).unwrap();
    check("left").await;
    let truth = w.sim.org();
    assert!(
        truth
            .people
            .iter()
            .all(|p| p.manager_userid.as_deref() != Some(manager))
    );
}

fn two_levels(truth: &Org) {
    let manager_of = |id: &str| {
        let p = truth.people.iter().find(|p| p.userid == id);
        p.and_then(|p| p.manager_userid.clone())
    };
    assert!(
        (truth.people.iter())
            .filter_map(|p| manager_of(&p.userid))
            .any(|m| manager_of(&m).is_some()),
        "the generated org has managers two levels deep"
    );
    assert!(
        truth
            .departments
            .iter()
            .any(|d| !d.manager_userids.is_empty())
    );
}

#[tokio::test]
async fn ldap_managers_and_heads_follow_a_manager_renamed_moved_and_leaving_by_full_sync() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    two_levels(&w.sim.org());
    let dir = w.ldap(&w.node("mgr-full"), Layout::OuTree).await;
    let m = mapping(LDAP_MAPPING);
    let src = source(&w, &m);
    // Managers and reports are all created by the first run, and it leaves them right.
    let first = full_sync(&src, &dir, &m, true).await;
    assert_eq!(
        first.created,
        w.sim.org().people.len() + w.sim.org().departments.len()
    );
    assert_right(&w, &dir, "manager", true, "first sync").await;
    let again = full_sync(&src, &dir, &m, true).await;
    assert_eq!(again.writes, 0, "second run: {:#?}", again.plan.steps);
    let snap = dir.read().await.unwrap();
    let leader = (w.sim.org().people.into_iter()).find(|p| !p.leader_in.is_empty());
    let leader = leader.expect("a head");
    let e = snap
        .people
        .iter()
        .find(|e| e.id.as_deref() == Some(&leader.userid));
    let led: Vec<String> = leader.leader_in.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        e.unwrap().attrs.first("employeetype"),
        Some(format!("head of {}", led.join(",")).as_str()),
        "is_leader and leader_of reach templates"
    );

    let (manager, to) = pick_manager(&w.sim.org());
    rename_move_leave(&w, &manager, to, async |when| {
        settle(&src, &dir, &m, true).await;
        assert_right(&w, &dir, "manager", true, when).await;
    })
    .await;
}

/// A stream of the simulator's events into a pipeline for `dir`, after a first full sync.
async fn events(
    w: &World,
    src: Arc<DingTalkSource>,
    dir: Arc<dyn Directory>,
    m: &Mapping,
    ou_tree: bool,
) -> (Arc<Pipeline>, StreamHandle) {
    let p = Pipeline::start(PipelineConfig::default());
    let yaml = if ou_tree { LDAP_MAPPING } else { SCIM_MAPPING };
    p.set_target(
        "t1",
        LiveTarget {
            source: src,
            dir,
            mapping: Arc::new(mapping(yaml)),
            opts: opts(ou_tree),
            lock: Default::default(),
        },
        true,
    );
    let _ = m;
    let s = w.client.start_stream(
        StreamConfig {
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(300),
            drain: Duration::from_millis(300),
            ..Default::default()
        },
        p.handler(),
    );
    s.wait_for(|st| *st == StreamState::Connected).await;
    (p, s)
}

#[tokio::test]
async fn ldap_reports_follow_a_manager_renamed_moved_and_leaving_by_events_alone() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let dir: Arc<dyn Directory> = Arc::new(w.ldap(&w.node("mgr-events"), Layout::OuTree).await);
    let m = mapping(LDAP_MAPPING);
    let src = source(&w, &m);
    settle(&src, dir.as_ref(), &m, true).await;
    let (_pipeline, _stream) = events(&w, src.clone(), dir.clone(), &m, true).await;
    let (manager, to) = pick_manager(&w.sim.org());
    rename_move_leave(&w, &manager, to, async |when| {
        converge(&w, dir.as_ref(), "manager", true, when).await;
    })
    .await;
    // What the events left is what a full sync makes: it writes nothing.
    let again = full_sync(&src, dir.as_ref(), &m, true).await;
    assert_eq!(again.writes, 0, "{:#?}", again.plan.steps);
}

#[tokio::test]
async fn scim_managers_follow_a_manager_renamed_moved_and_leaving_by_full_sync_and_events() {
    let Some(w) = World::builder().org(org()).scim().build().await else {
        return;
    };
    let m = mapping(SCIM_MAPPING);
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "managers");
    let src = source(&w, &m);
    settle(&src, &dir, &m, false).await;
    assert_right(&w, &dir, SCIM_MANAGER, true, "first sync").await;
    // Heads are a Group of their own, named after the department's.
    let groups = w.scim_client().await.list("Groups", None).await.unwrap();
    let shown: BTreeSet<&str> = (groups.iter())
        .filter_map(|g| g.body["displayName"].as_str())
        .collect();
    let truth = w.sim.org();
    let headed = truth
        .departments
        .iter()
        .find(|d| !d.manager_userids.is_empty());
    let heads = format!("managers/{} heads", headed.unwrap().name);
    assert!(shown.contains(heads.as_str()), "{heads} among {shown:?}");
    let (manager, to) = pick_manager(&w.sim.org());
    rename_move_leave(&w, &manager, to, async |when| {
        settle(&src, &dir, &m, false).await;
        assert_right(&w, &dir, SCIM_MANAGER, true, when).await;
    })
    .await;

    // By events alone, on a second manager of the same org.
    let dir: Arc<dyn Directory> = Arc::new(dir);
    let (_pipeline, _stream) = events(&w, src.clone(), dir.clone(), &m, false).await;
    let (manager, to) = pick_manager(&w.sim.org());
    rename_move_leave(&w, &manager, to, async |when| {
        converge(&w, dir.as_ref(), SCIM_MANAGER, false, when).await;
    })
    .await;
    let again = full_sync(&src, dir.as_ref(), &m, false).await;
    assert_eq!(again.writes, 0, "{:#?}", again.plan.steps);
}

#[test]
fn the_example_mapping_compiles_with_its_manager_and_heads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/03-fieldmapping.yaml");
    let text = std::fs::read_to_string(path).expect("the example");
    let fm: dingsync::api::FieldMapping = serde_yaml::from_str(&text).expect("a FieldMapping");
    let m = Mapping::compile(&fm.spec).expect("the example compiles");
    assert!(m.has_department_references(), "heads as owners");
    let refs: Vec<&str> = m
        .person_reference_attributes()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(refs, ["manager"]);
}

/// Should `user/list` carry no `manager_userid` (DingTalk's SDK list model has none), a
/// mapping that reads it still gets every manager: each person is read with `user/get` for
/// it. A mapping that does not read it makes no such calls.
#[tokio::test]
async fn managers_arrive_when_user_list_leaves_them_out() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    w.sim.set_list_omits_manager(true);
    let m = mapping(LDAP_MAPPING);
    let gets = || w.sim.calls("/topapi/v2/user/get");
    let before = gets();
    let dir = w
        .ldap(&w.node("mgr-unlisted"), Layout::FlatWithGroups)
        .await;
    let src = source(&w, &m);
    full_sync(&src, &dir, &m, false).await;
    assert_right(&w, &dir, "manager", true, "first sync").await;
    let people = w.sim.org().people.len();
    assert!(gets() - before >= people as u64, "a user/get per person");
    let again = full_sync(&src, &dir, &m, false).await;
    assert_eq!(again.writes, 0, "second run: {:#?}", again.plan.steps);

    // Without a manager rule: no user/get at all.
    let plain = mapping(
        r#"
user:
  uniqueName: {attribute: uid, template: "{{ name | pinyin }}"}
  attributes:
    - {target: cn, template: "{{ name }}"}
    - {target: sn, template: "{{ name[:1] }}"}
"#,
    );
    let dir = w.ldap(&w.node("mgr-none"), Layout::FlatWithGroups).await;
    let before = gets();
    full_sync(&source(&w, &plain), &dir, &plain, false).await;
    assert_eq!(gets(), before, "no manager rule, no user/get");
}

/// Someone joining a department and made its head in one change, then no longer its head:
/// the department's `owner` follows by events alone, although DingTalk's event names only the
/// person.
#[tokio::test]
async fn a_head_appointed_with_a_move_becomes_owner_by_events_alone() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let dir: Arc<dyn Directory> = Arc::new(w.ldap(&w.node("mgr-heads"), Layout::OuTree).await);
    let m = mapping(LDAP_MAPPING);
    assert!(m.reads_heads());
    let headless = SCIM_MAPPING.replace("dept_manager_userid_list", "name");
    assert!(!mapping(&headless).reads_heads());
    let src = source(&w, &m);
    settle(&src, dir.as_ref(), &m, true).await;
    let (_pipeline, _stream) = events(&w, src.clone(), dir.clone(), &m, true).await;
    let truth = w.sim.org();
    let (person, to) = truth
        .people
        .iter()
        .find_map(|p| {
            let d = truth.departments.iter().find(|d| {
                d.id != 1 && !p.departments.contains(&d.id) && d.manager_userids.is_empty()
            })?;
            p.leader_in.is_empty().then(|| (p.userid.clone(), d.id))
        })
        .expect("a person and a department without heads they are not in");
    let appoint = |leader_in: Vec<i64>| UserWrite {
        departments: Some(vec![to]),
        leader_in: Some(leader_in),
        ..Default::default()
    };
    w.sim.edit_user(&person, appoint(vec![to])).unwrap();
    let heads = |d: i64| {
        let org = w.sim.org();
        org.departments
            .iter()
            .find(|x| x.id == d)
            .unwrap()
            .manager_userids
            .clone()
    };
    assert_eq!(heads(to), std::slice::from_ref(&person));
    converge(
        &w,
        dir.as_ref(),
        "manager",
        true,
        "appointed head on joining",
    )
    .await;
    w.sim.edit_user(&person, appoint(vec![])).unwrap();
    assert!(heads(to).is_empty());
    converge(&w, dir.as_ref(), "manager", true, "no longer head").await;
    let again = full_sync(&src, dir.as_ref(), &m, true).await;
    assert_eq!(again.writes, 0, "{:#?}", again.plan.steps);
}
