//! DingTalk roles as directory groups (SyncTarget `roles`) against slapd and scim2-server:
//! the groups and their members after a first sync, nothing written by a second, a role
//! assignment change and a role rename applied by a full sync and by events alone, a new
//! role by events, a removed role's group removed (its people untouched), a leaver out of
//! every role group, and the role groups left alone once `roles` is off.

use std::collections::{BTreeMap, BTreeSet};

use dingsync::{
    api::target::Layout,
    dingtalk::Event as DtEvent,
    directory::{Directory, scim::ScimDirectory},
    model::Changes,
    sim::{Org, roles::RoleEdit},
    sync::{self, Options, Report, dingtalk_source::DingTalkSource, events::changes_of},
};

use crate::support::{World, conformance};

/// Departments 10 and 20 are synced; 30 is not (zed holds a role but is out of scope).
const ORG: &str = r#"
corp_id: dingrolescorp
name: 角色科技
departments:
  - {id: 10, name: 研发部}
  - {id: 20, name: 财务部}
  - {id: 30, name: 外部}
people:
  - {userid: alice, name: 王芳, mobile: "13900000001", departments: [10]}
  - {userid: bob, name: 李雷, mobile: "13900000002", departments: [20]}
  - {userid: carol, name: 韩梅, mobile: "13900000003", departments: [20]}
  - {userid: dave, name: 赵强, mobile: "13900000004", departments: [10]}
  - {userid: zed, name: 钱敏, mobile: "13900000005", departments: [30]}
roles:
  - group_id: 100
    name: 职务
    roles:
      - {id: 5001, name: 财务, members: [bob, carol, zed]}
      - {id: 5002, name: 前台}
  - group_id: 101
    name: 默认
    roles:
      - {id: 5003, name: 主管理员, members: [alice]}
"#;

fn org() -> Org {
    Org::from_yaml_str(ORG, "roles org").expect("a valid org")
}

fn source(w: &World) -> DingTalkSource {
    DingTalkSource::new(w.client.clone(), vec![10, 20])
}

fn opts(roles: bool) -> Options {
    Options {
        max_percent: 100,
        roles,
        ..Default::default()
    }
}

fn clean(r: Report) -> Report {
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.complete, "{:?}", r.incomplete);
    r
}

async fn full_sync(w: &World, dir: &dyn Directory, roles: bool) -> Report {
    let r = sync::run(
        &source(w),
        dir,
        &conformance::mapping(),
        &opts(roles),
        false,
        &|_, _, _| {},
    )
    .await
    .expect("sync runs");
    clean(r)
}

/// Applies the simulator's events since `from` through the event → changes mapping alone.
async fn apply_events(w: &World, dir: &dyn Directory, from: usize) -> Report {
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
        all.roles |= c.roles;
    }
    assert!(all.roles, "role events ask for the roles pass");
    let r = sync::run_changed(
        &source(w),
        dir,
        &conformance::mapping(),
        &opts(true),
        &all,
        false,
        &|_, _, _| {},
    )
    .await
    .expect("events applied");
    clean(r)
}

/// Role groups by name: (role id, members).
async fn groups(dir: &dyn Directory) -> BTreeMap<String, (String, BTreeSet<String>)> {
    dir.read_roles()
        .await
        .expect("read role groups")
        .into_iter()
        .map(|r| (r.name, (r.id, r.members)))
        .collect()
}

fn group(id: &str, members: &[&str]) -> (String, BTreeSet<String>) {
    (id.into(), members.iter().map(|m| m.to_string()).collect())
}

fn edit(name: Option<&str>, add: &[&str], remove: &[&str]) -> RoleEdit {
    RoleEdit {
        name: name.map(Into::into),
        add: add.iter().map(|s| s.to_string()).collect(),
        remove: remove.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn people(dir: &dyn Directory) -> BTreeMap<String, bool> {
    let snap = dir.read().await.expect("read");
    (snap.people.into_iter())
        .filter_map(|p| Some((p.id?, p.disabled)))
        .collect()
}

/// The whole story on one backend.
async fn roles_as_groups(w: &World, dir: &dyn Directory) {
    // Off: no role groups at all.
    full_sync(w, dir, false).await;
    assert!(groups(dir).await.is_empty());

    let first = full_sync(w, dir, true).await;
    let expected = BTreeMap::from([
        ("职务-财务".to_string(), group("5001", &["bob", "carol"])),
        ("职务-前台".to_string(), group("5002", &[])),
        ("默认-主管理员".to_string(), group("5003", &["alice"])),
    ]);
    assert_eq!(groups(dir).await, expected, "zed is out of scope");
    assert_eq!(first.roles.as_ref().expect("roles pass").groups, 3);
    let again = full_sync(w, dir, true).await;
    assert_eq!(again.writes, 0, "{:?}", again.roles);

    // By full sync: an assignment change and a rename.
    w.sim
        .update_role(5001, edit(None, &["dave"], &["carol"]))
        .unwrap();
    w.sim
        .update_role(5003, edit(Some("超级管理员"), &[], &[]))
        .unwrap();
    full_sync(w, dir, true).await;
    let now = groups(dir).await;
    assert_eq!(now["职务-财务"], group("5001", &["bob", "dave"]));
    assert_eq!(
        now["默认-超级管理员"],
        group("5003", &["alice"]),
        "renamed in place"
    );
    assert!(!now.contains_key("默认-主管理员"));
    assert_eq!(full_sync(w, dir, true).await.writes, 0);

    // By events alone: an assignment, a rename, a new role.
    let from = w.sim.events().len();
    w.sim
        .update_role(5002, edit(Some("接待"), &["carol"], &[]))
        .unwrap();
    w.sim.update_role(5001, edit(None, &[], &["bob"])).unwrap();
    let made = w
        .sim
        .create_role(RoleEdit {
            group_name: Some("职务".into()),
            name: Some("审计".into()),
            add: vec!["alice".into(), "zed".into()],
            ..Default::default()
        })
        .unwrap();
    apply_events(w, dir, from).await;
    let now = groups(dir).await;
    assert_eq!(now["职务-接待"], group("5002", &["carol"]));
    assert_eq!(now["职务-财务"], group("5001", &["dave"]));
    assert_eq!(now["职务-审计"], group(&made.id.to_string(), &["alice"]));
    assert_eq!(now.len(), 4);
    assert_eq!(
        full_sync(w, dir, true).await.writes,
        0,
        "events left nothing to do"
    );

    // A removed role: its group goes, its people stay; by events, then by full sync.
    let before = people(dir).await;
    let from = w.sim.events().len();
    w.sim.delete_role(5002).unwrap();
    apply_events(w, dir, from).await;
    assert!(!groups(dir).await.contains_key("职务-接待"));
    w.sim.delete_role(5003).unwrap();
    full_sync(w, dir, true).await;
    let now = groups(dir).await;
    assert_eq!(
        now.keys().cloned().collect::<Vec<_>>(),
        ["职务-审计", "职务-财务"]
    );
    assert_eq!(
        people(dir).await,
        before,
        "people untouched by role removals"
    );

    // A leaver leaves every role group.
    w.sim.leave("dave").unwrap();
    full_sync(w, dir, true).await;
    assert_eq!(groups(dir).await["职务-财务"], group("5001", &[]));

    // Roles off: the groups stay as they are, whatever DingTalk says now.
    w.sim.delete_role(5001).unwrap();
    let off = full_sync(w, dir, false).await;
    assert_eq!(off.writes, 0);
    assert!(groups(dir).await.contains_key("职务-财务"));
}

#[tokio::test]
async fn roles_become_ldap_groups_kept_in_step_by_full_sync_and_events() {
    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let node = w.node("roles");
    let dir = w.ldap(&node, Layout::FlatWithGroups).await;
    roles_as_groups(&w, &dir).await;

    // In LDAP terms: groupOfNames under ou=roles, an empty one holding itself.
    let pool = w.ldap_pool().await;
    let found = pool
        .search(
            &format!("ou=roles,{node}"),
            ldap3::Scope::OneLevel,
            "(objectClass=groupOfNames)",
            &["member", "businessCategory"],
        )
        .await
        .expect("search ou=roles");
    let empty = found
        .iter()
        .find(|e| e.dn.starts_with("cn=职务-财务,"))
        .expect("the 财务 role group");
    assert_eq!(empty.get("member").collect::<Vec<_>>(), [empty.dn.as_str()]);
    assert!(
        empty
            .get("businessCategory")
            .any(|v| v == "dingsync:role:dingrolescorp:5001")
    );
    let audit = found
        .iter()
        .find(|e| e.dn.starts_with("cn=职务-审计,"))
        .expect("the 审计 role group");
    let members: Vec<&str> = audit.get("member").collect();
    assert_eq!(members.len(), 1, "{members:?}");
    assert!(
        members[0].ends_with(&format!(",ou=people,{node}")),
        "{members:?}"
    );
    // Department reads never take role groups for departments.
    let snap = dir.read().await.unwrap();
    assert!(snap.departments.iter().all(|d| !d.name.contains('-')));
}

#[tokio::test]
async fn roles_become_scim_groups_kept_in_step_by_full_sync_and_events() {
    let Some(w) = World::builder().org(org()).scim().build().await else {
        return;
    };
    let dir = ScimDirectory::new(w.scim_client().await, w.corp(), "roles");
    roles_as_groups(&w, &dir).await;
    let listed = w
        .scim_client()
        .await
        .list("Groups", None)
        .await
        .expect("list Groups");
    let audit = listed
        .iter()
        .find(|g| g.body["displayName"] == "roles/role:职务-审计")
        .expect("the 审计 role group, with the role prefix");
    assert!(
        audit.body["externalId"]
            .as_str()
            .is_some_and(|e| e.starts_with("dingsync:role:dingrolescorp:"))
    );
}

/// An event pipeline feeding `dir` as a live target (its baseline full sync done).
fn pipeline(
    w: &World,
    dir: std::sync::Arc<dyn Directory>,
) -> std::sync::Arc<dingsync::sync::events::Pipeline> {
    use dingsync::sync::events::{LiveTarget, Pipeline, PipelineConfig};
    use std::sync::Arc;
    let p = Pipeline::start(PipelineConfig::default());
    p.set_target(
        "t1",
        LiveTarget {
            source: Arc::new(source(w)),
            dir,
            mapping: Arc::new(conformance::mapping()),
            opts: opts(true),
            lock: Default::default(),
        },
        true,
    );
    p
}

/// A rename with an assignment change and a removed role, made in the simulator; then waits
/// until the role groups show them (events only: no sync is run here).
async fn role_changes_arrive(w: &World, dir: &dyn Directory, p: &dingsync::sync::events::Pipeline) {
    w.sim
        .update_role(5001, edit(Some("会计"), &["alice"], &["bob"]))
        .unwrap();
    w.sim.delete_role(5002).unwrap();
    let want = BTreeMap::from([
        ("职务-会计".to_string(), group("5001", &["alice", "carol"])),
        ("默认-主管理员".to_string(), group("5003", &["alice"])),
    ]);
    let events = ["label_user_change", "label_conf_modify", "label_conf_del"];
    let all_applied = || events.iter().all(|e| p.stats().applied.contains_key(*e));
    let mut now = BTreeMap::new();
    for _ in 0..200 {
        now = groups(dir).await;
        if now == want && all_applied() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(now, want, "role events applied: {:?}", p.stats());
    assert!(all_applied(), "{:?}", p.stats());
}

/// Role events over DingTalk's Stream reach the LDAP role groups through the event pipeline
/// alone (no full sync after the first); `OuTree` keeps `ou=roles` apart from its department
/// OUs.
#[tokio::test]
async fn role_events_over_the_stream_reach_the_ldap_role_groups() {
    use dingsync::dingtalk::{StreamConfig, StreamState};
    use std::{sync::Arc, time::Duration};

    let Some(w) = World::builder().org(org()).slapd().build().await else {
        return;
    };
    let dir: Arc<dyn Directory> = Arc::new(w.ldap(&w.node("stream"), Layout::OuTree).await);
    full_sync(&w, dir.as_ref(), true).await;
    let p = pipeline(&w, dir.clone());
    let stream = w.client.start_stream(
        StreamConfig {
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(300),
            ..Default::default()
        },
        p.handler(),
    );
    stream.wait_for(|st| *st == StreamState::Connected).await;
    role_changes_arrive(&w, dir.as_ref(), &p).await;
    stream.stop().await;
}

/// The same role events pushed to an HTTP callback reach the SCIM role groups.
#[tokio::test(flavor = "multi_thread")]
async fn role_events_by_http_callback_reach_the_scim_role_groups() {
    use dingsync::dingtalk::{
        callback::CallbackCrypto,
        events::{CallbackReceiver, callback_endpoint},
    };
    use std::sync::Arc;

    let Some(w) = World::builder().org(org()).scim().build().await else {
        return;
    };
    let dir: Arc<dyn Directory> = Arc::new(ScimDirectory::new(
        w.scim_client().await,
        w.corp(),
        "callback",
    ));
    full_sync(&w, dir.as_ref(), true).await;
    let p = pipeline(&w, dir.clone());
    let (token, aes) = ("cbtoken", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG");
    let crypto = CallbackCrypto::new(token, aes, dingsync::sim::DEFAULT_APP_KEY).unwrap();
    let receiver = Arc::new(CallbackReceiver::new(crypto, p.handler()));
    let app = axum::Router::new()
        .route("/callback", axum::routing::post(callback_endpoint))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    w.sim
        .subscribe_callback(dingsync::sim::DEFAULT_APP_KEY, &url, token, aes)
        .await
        .unwrap();
    role_changes_arrive(&w, dir.as_ref(), &p).await;
}

/// The simulator's role APIs as a DingTalk client reads them, and its admin routes for roles
/// with the events they announce.
#[tokio::test]
async fn the_simulator_serves_roles_and_its_admin_api_changes_them() {
    use serde_json::{Value, json};

    let Some(w) = World::builder().org(org()).build().await else {
        return;
    };
    let roles = w.client.list_roles().await.expect("role/list");
    let names: Vec<(i64, &str, &str)> = roles
        .iter()
        .map(|r| (r.id, r.group_name.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (5001, "职务", "财务"),
            (5002, "职务", "前台"),
            (5003, "默认", "主管理员")
        ]
    );
    let mut held = w.client.role_members(5001).await.expect("role/simplelist");
    held.sort();
    assert_eq!(held, ["bob", "carol", "zed"]);
    let bob = w.client.get_user("bob").await.expect("user/get");
    let list = bob.role_list.expect("role_list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, Some(5001));

    let base = format!("{}/__sim", w.sim.base_url());
    let http = reqwest::Client::new();
    let from = w.sim.events().len();
    let made: Value = http
        .post(format!("{base}/roles"))
        .json(&json!({"name": "法务", "group_name": "新组", "add": ["alice"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["id"].as_i64().expect("the new role's id");
    let renamed = http
        .patch(format!("{base}/roles/{id}"))
        .json(&json!({"name": "法务部", "remove": ["alice"]}))
        .send()
        .await
        .unwrap();
    assert!(renamed.status().is_success());
    let gone = http
        .delete(format!("{base}/roles/{id}"))
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success());
    let missing = http
        .delete(format!("{base}/roles/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let types: Vec<String> = (w.sim.events().into_iter().skip(from))
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "label_conf_add",
            "label_user_change",
            "label_conf_modify",
            "label_user_change",
            "label_conf_del",
        ]
    );
    assert_eq!(w.client.list_roles().await.unwrap().len(), 3);
}
