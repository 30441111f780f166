//! Every address-book event DingTalk sends, applied through events alone (no full sync after
//! the baseline) to a real slapd, over both deliveries at once: one node fed by the Stream
//! connection (OuTree layout), one fed by the encrypted HTTP callback (FlatWithGroups, and
//! only people who activated DingTalk: a people filter reads `active`). Each
//! step makes one HR change through the simulator, checks that DingTalk announced exactly the
//! event it sends for it (type, ids, and a payload that names ids only), waits until both
//! pipelines applied it, and checks both directories: attributes, DNs, memberships, disabled
//! state. The steps share one baseline and run in order; each names itself when it fails.
//! Last, the controller's engine, fed by its binding's Stream, turns `org_change` into a
//! request for the target's full sync.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use dingsync::{
    api::{
        FieldMappingSpec,
        target::{Layout, Scope},
    },
    dingtalk::{StreamConfig, StreamHandle, StreamState},
    directory::{DeptEntry, Directory, PersonEntry, Snapshot},
    mapping::Mapping,
    sim::{self, DeptWrite, UserWrite},
    sync::{
        self, Op, Options,
        dingtalk_source::DingTalkSource,
        events::{LiveTarget, Pipeline, PipelineConfig},
        source_scope::ScopeRules,
    },
};
use serde_json::Value;

use crate::support;

/// `admin` and `active` reach the directory through templates, so the events that change
/// them show there.
const MAPPING: &str = r#"
user:
  uniqueName: {attribute: uid, template: "{{ name | pinyin }}"}
  attributes:
  - {target: cn, template: "{{ name }}"}
  - {target: sn, template: "{{ name[:1] }}"}
  - {target: title, template: "{{ title }}"}
  - {target: employeeType, template: "{{ 'admin' if admin else 'staff' }}"}
  - {target: description, template: "{{ 'active' if active else 'not activated' }}"}
"#;

/// One node and the pipeline that feeds it.
struct Side {
    name: &'static str,
    source: Arc<DingTalkSource>,
    dir: Arc<dyn Directory>,
    pipeline: Arc<Pipeline>,
    opts: Options,
}

struct Rig {
    w: support::World,
    mapping: Arc<Mapping>,
    sides: Vec<Side>,
    stream: StreamHandle,
}

fn active_only() -> Scope {
    serde_json::from_value(serde_json::json!({
        "departmentIds": [1], "includeHidden": true, "peopleFilter": "{{ active }}"
    }))
    .unwrap()
}

fn mapping() -> Arc<Mapping> {
    let spec: FieldMappingSpec = serde_yaml::from_str(MAPPING).unwrap();
    Arc::new(Mapping::compile(&spec).unwrap())
}

impl Rig {
    /// Both nodes fully synced once, then fed by their deliveries.
    async fn start() -> Option<Rig> {
        let w = support::World::builder()
            .people(12)
            .departments(5)
            .seed(19)
            .slapd()
            .build()
            .await?;
        let mapping = mapping();
        let mut sides = vec![];
        for (name, layout) in [
            ("stream", Layout::OuTree),
            ("callback", Layout::FlatWithGroups),
        ] {
            let dir: Arc<dyn Directory> = Arc::new(w.ldap(&w.node(name), layout).await);
            let opts = Options {
                max_percent: 100,
                ou_tree: layout == Layout::OuTree,
                ..Default::default()
            };
            let source = Arc::new(match layout {
                Layout::OuTree => w.source(),
                // The callback side syncs only people who activated DingTalk.
                Layout::FlatWithGroups => DingTalkSource::with_rules(
                    w.client.clone(),
                    ScopeRules::for_target(&active_only()).unwrap(),
                ),
            });
            let r = sync::run(
                source.as_ref(),
                dir.as_ref(),
                &mapping,
                &opts,
                false,
                &|_, _, _| {},
            )
            .await
            .unwrap();
            assert!(r.failures.is_empty(), "{name} baseline: {:#?}", r.failures);
            let pipeline = Pipeline::start(PipelineConfig::default());
            let target = LiveTarget {
                source: source.clone(),
                dir: dir.clone(),
                mapping: mapping.clone(),
                opts: opts.clone(),
                lock: Default::default(),
            };
            pipeline.set_target(name, target, true);
            sides.push(Side {
                name,
                source,
                dir,
                pipeline,
                opts,
            });
        }
        let stream = w.client.start_stream(
            StreamConfig {
                reconnect_min: Duration::from_millis(50),
                reconnect_max: Duration::from_millis(300),
                ..Default::default()
            },
            sides[0].pipeline.handler(),
        );
        stream.wait_for(|s| *s == StreamState::Connected).await;
        subscribe_callback(&w, &sides[1].pipeline).await;
        w.sim.reset_counters();
        Some(Rig {
            w,
            mapping,
            sides,
            stream,
        })
    }

    fn sim(&self) -> &sim::SimHandle {
        &self.w.sim
    }

    /// Run `change`, check DingTalk announced exactly `expected` (type, userids, dept ids), and
    /// wait until both pipelines applied each of them.
    async fn announce(
        &self,
        step: &str,
        expected: &[(&str, &[&str], &[i64])],
        change: impl FnOnce(),
    ) {
        let from = self.sim().events().len();
        let before: Vec<_> = self.sides.iter().map(|s| s.pipeline.stats()).collect();
        change();
        let got: Vec<(String, Vec<String>, Vec<i64>)> = self.sim().events()[from..]
            .iter()
            .map(|e| {
                check_shape(step, e);
                (e.event_type.clone(), e.user_ids.clone(), e.dept_ids.clone())
            })
            .collect();
        let want: Vec<(String, Vec<String>, Vec<i64>)> = expected
            .iter()
            .map(|(t, u, d)| {
                let users = u.iter().map(|s| s.to_string()).collect();
                (t.to_string(), users, d.to_vec())
            })
            .collect();
        assert_eq!(got, want, "{step}: the events DingTalk announced");
        for (side, before) in self.sides.iter().zip(before) {
            for (t, _, _) in expected {
                let n = expected.iter().filter(|(u, _, _)| u == t).count() as u64;
                let at_least = before.applied.get(*t).copied().unwrap_or(0) + n;
                applied(side, t, at_least, step).await;
            }
            // Applied means applied: no object failed along the way.
            let st = side.pipeline.status(side.name).unwrap();
            assert_eq!(st.failed, 0, "{step}: {}: {st:?}", side.name);
        }
    }

    /// Each side's directory, read whole.
    async fn snapshots(&self) -> Vec<(&'static str, Snapshot)> {
        let mut out = vec![];
        for s in &self.sides {
            out.push((s.name, s.dir.read().await.unwrap()));
        }
        out
    }

    /// The entry of `userid` on every side, checked by `check`.
    async fn person(&self, step: &str, userid: &str, check: impl Fn(&str, &PersonEntry)) {
        for (side, snap) in self.snapshots().await {
            let found: Vec<&PersonEntry> = snap
                .people
                .iter()
                .filter(|p| p.id.as_deref() == Some(userid))
                .collect();
            assert_eq!(found.len(), 1, "{step}: {side}: one entry of {userid}");
            check(side, found[0]);
        }
    }
}

/// A console-style callback subscription, served by a receiver in front of `pipeline`.
async fn subscribe_callback(w: &support::World, pipeline: &Arc<Pipeline>) {
    let keys = ("everyevent", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG");
    support::world::serve_callbacks(w, pipeline.handler(), keys).await;
}

/// Events name ids only: the Stream `data` and the console push carry no record's fields.
fn check_shape(step: &str, e: &sim::Event) {
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    let want: &[&str] = match e.event_type.as_str() {
        "user_active_org" => &["userId"],
        "user_modify_org" => &["diffInfo", "timeStamp", "userId"],
        "user_add_org" | "user_leave_org" | "org_admin_add" | "org_admin_remove" => {
            &["timeStamp", "userId"]
        }
        "org_dept_create" | "org_dept_modify" | "org_dept_remove" => &["deptId"],
        "org_change" => &[],
        other => panic!("{step}: unexpected event {other}"),
    };
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys(&e.stream_data()), want, "{step}: Stream data of {e:?}");
    let console = keys(&e.console_payload());
    let envelope = ["EventType", "EventTime", "CorpId", "BizId", "eventId"];
    let want: BTreeSet<String> = want
        .into_iter()
        .chain(envelope.iter().map(|s| s.to_string()))
        .collect();
    assert_eq!(console, want, "{step}: callback payload of {e:?}");
}

/// Wait until `side` applied at least `n` events of `event_type`.
async fn applied(side: &Side, event_type: &str, n: u64, step: &str) {
    for _ in 0..400 {
        let stats = side.pipeline.stats();
        if stats.applied.get(event_type).copied().unwrap_or(0) >= n {
            return;
        }
        assert!(
            stats.failed.is_empty(),
            "{step}: {}: failed events {:?}",
            side.name,
            stats.failed
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{step}: {}: {event_type} never applied ({:?})",
        side.name,
        side.pipeline.stats().applied
    );
}

fn dept(snap: &Snapshot, id: i64) -> Option<&DeptEntry> {
    snap.departments.iter().find(|d| d.id == id.to_string())
}

fn members(p: &PersonEntry) -> BTreeSet<String> {
    p.departments.iter().cloned().collect()
}

fn set(ids: &[i64]) -> BTreeSet<String> {
    ids.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_address_book_event_reaches_ldap_by_stream_and_by_callback() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let d: Vec<i64> = rig
        .sim()
        .org()
        .departments
        .iter()
        .filter(|d| d.parent_id.is_some())
        .map(|d| d.id)
        .collect();
    people_events(&rig, &d).await;
    status_events(&rig, &d).await;
    department_events(&rig, &d).await;
    // Up to here events alone did everything: no person list was read.
    assert_eq!(rig.sim().calls("/topapi/v2/user/list"), 0, "no full read");
    org_change(&rig).await;
    let Rig { w, stream, .. } = rig;
    stream.stop().await;
    the_controller_hears_org_change(&w).await;
}

/// `user_add_org`, `user_modify_org` (profile and departments), `user_leave_org`.
async fn people_events(rig: &Rig, d: &[i64]) {
    let step = "user_add_org";
    rig.announce(step, &[(step, &["ev1"], &[])], || {
        rig.sim()
            .hire(UserWrite {
                userid: Some("ev1".into()),
                name: Some("郑新".into()),
                title: Some("工程师".into()),
                departments: Some(vec![d[0]]),
                ..Default::default()
            })
            .unwrap();
    })
    .await;
    rig.person(step, "ev1", |side, p| {
        assert!(!p.disabled, "{side}");
        assert_eq!(p.attrs.first("cn"), Some("郑新"), "{side}");
        assert_eq!(p.attrs.first("title"), Some("工程师"), "{side}");
        assert_eq!(members(p), set(&[d[0]]), "{side}");
    })
    .await;

    let step = "user_modify_org";
    rig.announce(step, &[(step, &["ev1"], &[])], || {
        let edit = UserWrite {
            title: Some("架构师".into()),
            departments: Some(vec![d[1], d[2]]),
            ..Default::default()
        };
        rig.sim().edit_user("ev1", edit).unwrap();
    })
    .await;
    rig.person(step, "ev1", |side, p| {
        assert_eq!(p.attrs.first("title"), Some("架构师"), "{side}");
        assert_eq!(members(p), set(&[d[1], d[2]]), "{side}");
        if side == "stream" {
            assert_eq!(p.container, Some(d[1].to_string()), "moved OU: {p:?}");
        }
    })
    .await;

    let step = "user_leave_org";
    rig.announce(step, &[(step, &["ev1"], &[])], || {
        rig.sim().leave("ev1").unwrap();
    })
    .await;
    rig.person(step, "ev1", |side, p| {
        assert!(p.disabled, "{side}: a leaver is disabled");
    })
    .await;
}

/// `user_active_org` (the `active` field, which the callback side's people filter reads) and `org_admin_add` / `org_admin_remove` (the
/// `admin` field), each a targeted re-read of that one person.
async fn status_events(rig: &Rig, d: &[i64]) {
    rig.announce(
        "hire unactivated",
        &[("user_add_org", &["ev2"], &[])],
        || {
            rig.sim()
                .hire(UserWrite {
                    userid: Some("ev2".into()),
                    name: Some("钱未激活".into()),
                    departments: Some(vec![d[1]]),
                    active: Some(false),
                    ..Default::default()
                })
                .unwrap();
        },
    )
    .await;
    let description = |want: &'static str| {
        move |side: &str, p: &PersonEntry| {
            assert_eq!(p.attrs.first("description"), Some(want), "{side}");
        }
    };
    for (side, snap) in rig.snapshots().await {
        let found = snap.people.iter().find(|p| p.id.as_deref() == Some("ev2"));
        match side {
            "stream" => description("not activated")(side, found.expect("hired")),
            _ => assert!(found.is_none(), "{side}: the people filter leaves ev2 out"),
        }
    }

    let edit = |admin: Option<bool>, active: Option<bool>| UserWrite {
        admin,
        active,
        ..Default::default()
    };
    let step = "user_active_org";
    rig.announce(step, &[(step, &["ev2"], &[])], || {
        rig.sim().edit_user("ev2", edit(None, Some(true))).unwrap();
    })
    .await;
    // Read by the template on one side, by the people filter on the other: ev2 is created.
    rig.person(step, "ev2", description("active")).await;

    let employee_type = |want: &'static str| {
        move |side: &str, p: &PersonEntry| {
            assert_eq!(p.attrs.first("employeetype"), Some(want), "{side}");
        }
    };
    for (step, admin, want) in [
        ("org_admin_add", true, "admin"),
        ("org_admin_remove", false, "staff"),
    ] {
        let gets = rig.sim().calls("/topapi/v2/user/get");
        rig.announce(step, &[(step, &["ev2"], &[])], || {
            rig.sim().edit_user("ev2", edit(Some(admin), None)).unwrap();
        })
        .await;
        rig.person(step, "ev2", employee_type(want)).await;
        // A re-read of the person by each target (a redelivery under load may add one).
        let reread = rig.sim().calls("/topapi/v2/user/get") - gets;
        assert!(
            reread >= rig.sides.len() as u64,
            "{step}: {reread} user/get calls"
        );
    }
}

/// `org_dept_create`, `org_dept_modify` (rename, then a move: the group / OU moves with its
/// members), `org_dept_remove`.
async fn department_events(rig: &Rig, d: &[i64]) {
    let step = "org_dept_create";
    let mut id = 0;
    let created = &mut id;
    let from = rig.sim().events().len();
    rig.sim()
        .create_department(DeptWrite {
            name: Some("事件部".into()),
            parent_id: Some(d[0]),
            ..Default::default()
        })
        .map(|x| *created = x.id)
        .unwrap();
    // Announced before its id was known here: checked by what was logged.
    let logged = &rig.sim().events()[from..];
    assert_eq!(logged.len(), 1, "{step}: {logged:?}");
    assert_eq!(
        (logged[0].event_type.as_str(), logged[0].dept_ids.as_slice()),
        (step, [id].as_slice())
    );
    check_shape(step, &logged[0]);
    for side in &rig.sides {
        applied(side, step, 1, step).await;
    }
    for (side, snap) in rig.snapshots().await {
        let e = dept(&snap, id).unwrap_or_else(|| panic!("{step}: {side}: no entry"));
        assert_eq!(e.name, "事件部", "{side}");
        assert_eq!(e.parent, Some(d[0].to_string()), "{side}");
    }

    let step = "org_dept_modify (rename)";
    rig.announce(step, &[("org_dept_modify", &[], &[id])], || {
        rig.sim().rename_department(id, "事件中心").unwrap();
    })
    .await;
    for (side, snap) in rig.snapshots().await {
        assert_eq!(dept(&snap, id).unwrap().name, "事件中心", "{step}: {side}");
    }

    rig.announce("hire into it", &[("user_add_org", &["ev3"], &[])], || {
        rig.sim()
            .hire(UserWrite {
                userid: Some("ev3".into()),
                name: Some("孙部员".into()),
                departments: Some(vec![id]),
                ..Default::default()
            })
            .unwrap();
    })
    .await;
    let step = "org_dept_modify (move)";
    rig.announce(step, &[("org_dept_modify", &[], &[id])], || {
        let to = DeptWrite {
            parent_id: Some(d[1]),
            ..Default::default()
        };
        rig.sim().update_department(id, to).unwrap();
    })
    .await;
    for (side, snap) in rig.snapshots().await {
        let e = dept(&snap, id).unwrap();
        let parent = dept(&snap, d[1]).unwrap();
        assert_eq!(e.parent, Some(d[1].to_string()), "{step}: {side}");
        assert_eq!(e.name, "事件中心", "{step}: {side}");
        let p = snap
            .people
            .iter()
            .find(|p| p.id.as_deref() == Some("ev3"))
            .unwrap();
        assert!(!p.disabled, "{step}: {side}");
        assert_eq!(members(p), set(&[id]), "{step}: {side}: member stays");
        // The group moved under its new parent's.
        let suffix = format!(",{}", parent.key.to_lowercase());
        assert!(
            e.key.to_lowercase().ends_with(&suffix),
            "{step}: {side}: {e:?}"
        );
        if side == "stream" {
            // The OU moved under its new parent's OU, and the member's DN with it.
            let ou = format!(",ou={},ou={},", e.name, parent.name);
            assert!(p.key.contains(&ou), "{step}: {p:?}");
            assert_eq!(p.container, Some(id.to_string()), "{step}: {p:?}");
        }
    }

    rig.announce("empty it", &[("user_modify_org", &["ev3"], &[])], || {
        rig.sim().move_user("ev3", vec![d[2]]).unwrap();
    })
    .await;
    let step = "org_dept_remove";
    rig.announce(step, &[(step, &[], &[id])], || {
        rig.sim().delete_department(id).unwrap();
    })
    .await;
    for (side, snap) in rig.snapshots().await {
        assert!(dept(&snap, id).is_none(), "{step}: {side}: entry left");
    }
    rig.person(step, "ev3", |side, p| {
        assert_eq!(members(p), set(&[d[2]]), "{side}");
    })
    .await;
}

/// `org_change` names nothing: every target asks for a full sync (and stays live), and that
/// full sync is what brings the enterprise's new name (the root department's) in.
async fn org_change(rig: &Rig) {
    let step = "org_change";
    rig.announce(step, &[(step, &[], &[])], || {
        rig.sim().rename_org("事件测试集团").unwrap();
    })
    .await;
    for side in &rig.sides {
        let p = &side.pipeline;
        assert_eq!(p.take_full_sync_requests(), [side.name], "{}", side.name);
        let st = p.status(side.name).unwrap();
        assert!(st.active, "{}: still live: {st:?}", side.name);
        // Events kept the node as a full sync makes it: the full sync's plan only renames
        // the root department.
        let (_, plan) = sync::compute(
            side.source.as_ref(),
            side.dir.as_ref(),
            &rig.mapping,
            &side.opts,
            &|_, _, _| {},
        )
        .await
        .unwrap();
        let ops: Vec<String> = plan.steps.iter().map(|s| format!("{:?}", s.op)).collect();
        assert!(
            !plan.steps.is_empty()
                && plan.steps.iter().all(|s| matches!(
                    &s.op,
                    Op::UpdateDept { id, .. } | Op::MoveDept { id, .. } if id == "1"
                )),
            "{}: {ops:#?}",
            side.name
        );
        // The full sync the request asks for (what the controller runs).
        let r = sync::run(
            side.source.as_ref(),
            side.dir.as_ref(),
            &rig.mapping,
            &side.opts,
            false,
            &|_, _, _| {},
        )
        .await
        .unwrap();
        assert!(r.failures.is_empty(), "{:#?}", r.failures);
        let snap = side.dir.read().await.unwrap();
        assert_eq!(
            dept(&snap, 1).unwrap().name,
            "事件测试集团",
            "{}",
            side.name
        );
    }
}

/// The controller's engine, fed by its binding's Stream connection, hears `org_change` and
/// says the target wants a full sync (the reconcile then runs one).
async fn the_controller_hears_org_change(w: &support::World) {
    use dingsync::{
        controller::{SyncRunner, engine::Engine},
        resolve::{Resolved, TargetKey},
        secret::Secret,
    };
    let server = w.slapd();
    let base = w.sim.base_url();
    let binding = serde_json::from_value(serde_json::json!({
        "corpId": w.corp(),
        "credentialsSecretRef": {"name": "app"},
        "endpoints": {"oapi": base, "api": base, "login": base},
    }))
    .unwrap();
    let spec = serde_json::from_value(serde_json::json!({
        "bindingRef": {"name": "acme"},
        "fieldMappingRef": {"name": "map"},
        "direction": "Inbound",
        "directory": {"ldap": {
            "url": server.url(),
            "bindDN": support::slapd::SERVICE_DN,
            "passwordSecretRef": {"name": "ldap", "key": "password"}
        }},
        "node": w.node("engine"),
    }))
    .unwrap();
    let t = Resolved {
        key: TargetKey::new("team", "events"),
        spec,
        binding,
        mapping: serde_yaml::from_str(MAPPING).unwrap(),
        app_key: sim::DEFAULT_APP_KEY.into(),
        app_secret: Secret::new(sim::DEFAULT_APP_SECRET),
        directory_secret: Secret::new(server.service_password()),
        directory_ca: None,
        approval: None,
        callback: None,
    };
    let engine = Engine::new(Default::default(), Default::default());
    let view = engine.track_events(&t, true).await.expect("fed by events");
    assert!(view.active, "{view:?}");
    assert!(!engine.full_sync_wanted(&t.key));
    w.sim.rename_org("事件测试控股").unwrap();
    for _ in 0..400 {
        if engine.full_sync_wanted(&t.key) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("org_change: the controller never asked for a full sync");
}
