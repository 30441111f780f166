//! The Outbound engine against an in-memory DingTalk: what it plans and what it writes.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::{
    dingtalk::{
        ScopeSnapshot,
        contacts::{Department, User},
        write::{DeptCreate, DeptUpdate, UserCreate, UserUpdate},
    },
    directory::{Attrs, SourceDept, SourcePerson, SourceTree},
};

/// DingTalk's contacts under the root (department 1), held in memory. Every write is logged.
struct FakeDingTalk {
    state: Mutex<FakeState>,
}

struct FakeState {
    departments: Vec<Department>,
    users: Vec<User>,
    next_id: i64,
    writes: Vec<String>,
}

impl FakeDingTalk {
    fn new(users: Vec<User>) -> Self {
        let root = Department {
            dept_id: 1,
            name: "Acme".into(),
            ..Default::default()
        };
        FakeDingTalk {
            state: Mutex::new(FakeState {
                departments: vec![root],
                users,
                next_id: 100,
                writes: vec![],
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake DingTalk")
    }

    fn user(&self, userid: &str) -> Option<User> {
        self.state()
            .users
            .iter()
            .find(|u| u.userid == userid)
            .cloned()
    }
}

fn not_found(api: &str) -> DingTalkError {
    DingTalkError::NotFound {
        api: api.into(),
        errcode: 60121,
    }
}

#[async_trait]
impl DingTalkSink for FakeDingTalk {
    async fn read_scope(&self, _roots: &[i64]) -> ScopeSnapshot {
        let st = self.state();
        ScopeSnapshot {
            departments: st.departments.clone(),
            users: st.users.clone(),
            ..Default::default()
        }
    }
    async fn get_department(&self, dept_id: i64) -> Result<Department, DingTalkError> {
        let st = self.state();
        let found = st.departments.iter().find(|d| d.dept_id == dept_id);
        found.cloned().ok_or_else(|| not_found("department/get"))
    }
    async fn get_user(&self, userid: &str) -> Result<User, DingTalkError> {
        self.user(userid).ok_or_else(|| not_found("user/get"))
    }
    async fn create_department(&self, dept: &DeptCreate) -> Result<i64, DingTalkError> {
        let mut st = self.state();
        st.next_id += 1;
        let dept_id = st.next_id;
        st.departments.push(Department {
            dept_id,
            name: dept.name.clone(),
            parent_id: Some(dept.parent_id),
            source_identifier: dept.source_identifier.clone(),
            ..Default::default()
        });
        st.writes.push(format!("create department {}", dept.name));
        Ok(dept_id)
    }
    async fn update_department(&self, update: &DeptUpdate) -> Result<(), DingTalkError> {
        let mut st = self.state();
        st.writes
            .push(format!("update department {}", update.dept_id));
        let d = st
            .departments
            .iter_mut()
            .find(|d| d.dept_id == update.dept_id);
        let d = d.ok_or_else(|| not_found("department/update"))?;
        if let Some(name) = &update.name {
            d.name = name.clone();
        }
        if update.parent_id.is_some() {
            d.parent_id = update.parent_id;
        }
        if update.source_identifier.is_some() {
            d.source_identifier = update.source_identifier.clone();
        }
        Ok(())
    }
    async fn delete_department(&self, dept_id: i64) -> Result<(), DingTalkError> {
        let mut st = self.state();
        st.writes.push(format!("delete department {dept_id}"));
        st.departments.retain(|d| d.dept_id != dept_id);
        Ok(())
    }
    async fn create_user(&self, user: &UserCreate) -> Result<(), DingTalkError> {
        user.validate()?;
        let mut st = self.state();
        let userid = user.userid.clone().unwrap_or_default();
        st.writes.push(format!("create user {userid}"));
        st.users.push(User {
            userid,
            name: Some(user.name.clone()),
            mobile: user.mobile.clone(),
            title: user.title.clone(),
            dept_id_list: Some(user.dept_id_list.clone()),
            ..Default::default()
        });
        Ok(())
    }
    async fn update_user(&self, update: &UserUpdate) -> Result<(), DingTalkError> {
        update.validate()?;
        let mut st = self.state();
        st.writes.push(format!("update user {}", update.userid));
        let u = st.users.iter_mut().find(|u| u.userid == update.userid);
        let u = u.ok_or_else(|| not_found("user/update"))?;
        if let Some(name) = &update.name {
            u.name = Some(name.clone());
        }
        if let Some(title) = &update.title {
            u.title = Some(title.clone());
        }
        if let Some(depts) = &update.dept_id_list {
            u.dept_id_list = Some(depts.clone());
        }
        Ok(())
    }
    async fn delete_user(&self, userid: &str) -> Result<(), DingTalkError> {
        let mut st = self.state();
        st.writes.push(format!("delete user {userid}"));
        st.users.retain(|u| u.userid != userid);
        Ok(())
    }
    async fn user_by_mobile(&self, mobile: &str) -> Result<Option<String>, DingTalkError> {
        let st = self.state();
        let found = st
            .users
            .iter()
            .find(|u| u.mobile.as_deref() == Some(mobile));
        Ok(found.map(|u| u.userid.clone()))
    }
    async fn probe_write(&self, _dept_id: i64) -> Result<(), DingTalkError> {
        Ok(())
    }
}

fn mapping() -> OutboundMapping {
    let spec = serde_yaml::from_str(
        "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n  - {target: title, template: '{{ title }}'}\n",
    )
    .expect("the test mapping parses");
    OutboundMapping::compile(&spec).expect("the test mapping compiles")
}

fn person(uid: &str, title: &str, dept: Option<&str>) -> SourcePerson {
    let attrs: Attrs = [
        ("uid", vec![uid.to_string()]),
        ("cn", vec![uid.to_uppercase()]),
        ("mobile", vec!["13800000001".to_string()]),
        ("title", vec![title.to_string()]),
    ]
    .into();
    SourcePerson {
        id: format!("id-{uid}"),
        key: format!("uid={uid},ou=people"),
        attrs,
        dept: dept.map(Into::into),
    }
}

/// A DingTalk user in the root department, as a previous run would have left them.
fn user(userid: &str, title: &str) -> User {
    User {
        userid: userid.into(),
        name: Some(userid.to_uppercase()),
        mobile: Some("13800000001".into()),
        title: Some(title.into()),
        dept_id_list: Some(vec![1]),
        ..Default::default()
    }
}

fn opts() -> OutboundOptions {
    OutboundOptions {
        policy: DeletionPolicy::Delete,
        max_count: 0,
        max_percent: 100,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_container_and_person_are_created() {
    let sink = FakeDingTalk::new(vec![]);
    let tree = SourceTree {
        departments: vec![SourceDept {
            id: "ou-sales".into(),
            name: "Sales".into(),
            parent: None,
            attrs: Attrs::new(),
        }],
        people: vec![person("alice", "Engineer", Some("ou-sales"))],
        ..Default::default()
    };
    let subtree = sink::read_subtree(&sink, 1, false).await;
    let planned = plan(
        &tree,
        &subtree.departments,
        &subtree.users,
        true,
        vec![],
        &mapping(),
        &opts(),
    );
    let described: Vec<String> = planned.ops.iter().map(OutOp::describe).collect();
    assert_eq!(described, ["create department Sales", "create user alice"]);

    let r = push(&sink, &tree, &opts()).await;
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!((r.departments_created, r.created, r.writes), (1, 1, 2));
    let sales = sink.state().departments[1].clone();
    assert_eq!(
        sales.source_identifier.as_deref(),
        Some("dingsync:ou-sales")
    );
    let alice = sink.user("alice").expect("alice was created");
    assert_eq!(alice.dept_id_list, Some(vec![sales.dept_id]));
}

#[tokio::test]
async fn a_changed_field_is_updated_and_then_left_alone() {
    let sink = FakeDingTalk::new(vec![user("alice", "Engineer")]);
    let tree = SourceTree {
        people: vec![person("alice", "Manager", None)],
        ..Default::default()
    };
    let r = push(&sink, &tree, &opts()).await;
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!((r.updated, r.writes), (1, 1));
    assert_eq!(sink.state().writes, ["update user alice"]);
    assert_eq!(
        sink.user("alice").unwrap().title.as_deref(),
        Some("Manager")
    );

    let again = push(&sink, &tree, &opts()).await;
    assert_eq!((again.unchanged, again.writes), (1, 0));
}

#[tokio::test]
async fn someone_who_left_is_removed_or_kept_as_the_policy_says() {
    let sink = FakeDingTalk::new(vec![user("alice", "Engineer"), user("bob", "Engineer")]);
    let tree = SourceTree {
        people: vec![person("alice", "Engineer", None)],
        ..Default::default()
    };
    let kept = push(&sink, &tree, &OutboundOptions::default()).await;
    assert_eq!((kept.kept, kept.writes), (1, 0));
    assert!(sink.user("bob").is_some());

    let r = push(&sink, &tree, &opts()).await;
    assert_eq!((r.deleted, r.unchanged, r.writes), (1, 1, 1));
    assert_eq!(sink.state().writes, ["delete user bob"]);
    assert!(sink.user("bob").is_none());
}

#[tokio::test]
async fn an_incomplete_read_removes_nobody() {
    let sink = FakeDingTalk::new(vec![user("bob", "Engineer")]);
    let subtree = sink::read_subtree(&sink, 1, false).await;
    let planned = plan(
        &SourceTree::default(),
        &subtree.departments,
        &subtree.users,
        false,
        vec!["members of department 1: unavailable".into()],
        &mapping(),
        &opts(),
    );
    assert!(planned.ops.is_empty());
    assert_eq!(planned.report.suppressed_removals, 1);
}

/// One run of the engine over `tree`, against `sink`.
async fn push(sink: &FakeDingTalk, tree: &SourceTree, opts: &OutboundOptions) -> OutboundReport {
    sync_tree(sink, tree, &mapping(), opts, false)
        .await
        .expect("DingTalk's root is readable")
}

/// The test mapping with `match` rules on job number (from `employeeNumber`), then email.
fn matching_mapping() -> OutboundMapping {
    let spec = serde_yaml::from_str(
        "direction: Outbound\nuser:\n  uniqueName: {attribute: userid, template: '{{ uid }}'}\n  attributes:\n  - {target: name, template: '{{ cn }}'}\n  - {target: title, template: '{{ title }}'}\n  match:\n  - {source: '{{ employeenumber }}', target: job_number}\n  - {source: '{{ mail }}', target: email}\n",
    )
    .expect("the test mapping parses");
    OutboundMapping::compile(&spec).expect("the test mapping compiles")
}

fn numbered(uid: &str, number: &str, mail: &str) -> SourcePerson {
    let mut p = person(uid, "Engineer", None);
    p.attrs.insert("employeeNumber", vec![number.to_string()]);
    p.attrs.insert("mail", vec![mail.to_string()]);
    p
}

#[tokio::test]
async fn match_rules_link_in_order_and_an_ambiguous_match_is_refused() {
    let with = |userid: &str, number: &str, email: &str| User {
        job_number: Some(number.into()),
        email: Some(email.into()),
        ..user(userid, "Engineer")
    };
    let sink = FakeDingTalk::new(vec![
        with("dt-1", "E1", "one@example.com"),
        with("dt-2", "E2", "two@example.com"),
        with("dt-3", "E2", "three@example.com"),
    ]);
    let tree = SourceTree {
        people: vec![
            // Found by the first rule (job number).
            numbered("alice", "e1", "nobody@example.com"),
            // Job number E2 is two users': refused, though the email rule would find one.
            numbered("bob", "E2", "three@example.com"),
            // No job number in DingTalk: the email rule links.
            numbered("carol", "E9", "TWO@example.com"),
        ],
        ..Default::default()
    };
    let r = sync_tree(&sink, &tree, &matching_mapping(), &opts(), false)
        .await
        .unwrap();
    assert_eq!(r.linked, 2, "{r:?}");
    assert_eq!(r.created, 0, "nobody created twice");
    let f = &r.failures[0];
    assert_eq!((f.reason.as_str(), r.failures.len()), ("AmbiguousMatch", 1));
    assert!(
        f.message.contains("dt-2") && f.message.contains("dt-3"),
        "{}",
        f.message
    );
    assert_eq!(r.deleted, 0, "the ambiguous users are nobody's to remove");
    assert!(sink.user("dt-3").is_some());
    // Linked users get the directory's fields under their own userid.
    assert_eq!(sink.user("dt-1").unwrap().name.as_deref(), Some("ALICE"));
    assert_eq!(sink.user("dt-2").unwrap().name.as_deref(), Some("CAROL"));
    assert!(sink.user("alice").is_none() && sink.user("carol").is_none());

    let again = sync_tree(&sink, &tree, &matching_mapping(), &opts(), false)
        .await
        .unwrap();
    assert_eq!((again.writes, again.unchanged, again.linked), (0, 2, 2));
}

#[tokio::test]
async fn a_same_named_department_is_adopted_only_when_the_target_allows_it() {
    let sink = FakeDingTalk::new(vec![]);
    sink.state().departments.push(Department {
        dept_id: 7,
        name: "Sales".into(),
        parent_id: Some(1),
        ..Default::default()
    });
    let tree = SourceTree {
        departments: vec![SourceDept {
            id: "ou-sales".into(),
            name: "Sales".into(),
            parent: None,
            attrs: Attrs::new(),
        }],
        people: vec![person("alice", "Engineer", Some("ou-sales"))],
        ..Default::default()
    };
    let r = push(&sink, &tree, &opts()).await;
    let f = &r.failures[0];
    assert_eq!(
        (f.reason.as_str(), f.id.as_str()),
        ("AlreadyExists", "ou-sales")
    );
    assert!(f.message.contains("adoptExisting"), "{}", f.message);
    assert_eq!(r.writes, 0);

    let adopting = OutboundOptions {
        adopt_existing: true,
        ..opts()
    };
    let r = push(&sink, &tree, &adopting).await;
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!((r.departments_adopted, r.departments_created), (1, 0));
    assert_eq!(sink.user("alice").unwrap().dept_id_list, Some(vec![7]));
    let sales = sink.state().departments[1].clone();
    assert_eq!(
        sales.source_identifier.as_deref(),
        Some("dingsync:ou-sales")
    );
    // Now dingsync's own: managed like any it created.
    let again = push(&sink, &tree, &opts()).await;
    assert_eq!((again.writes, again.unchanged), (0, 1));
}

#[test]
fn a_hire_date_is_milliseconds_or_a_date_in_china() {
    use super::fields::hired_ms;
    assert_eq!(hired_ms("1709222400000").unwrap(), "1709222400000");
    // 2024-03-01 00:00 in China is 2024-02-29 16:00 UTC.
    assert_eq!(hired_ms("2024-03-01").unwrap(), "1709222400000");
    assert!(hired_ms("next week").unwrap_err().contains("hired_date"));
    assert!(hired_ms("0").is_err());
}

#[test]
fn a_persons_order_and_title_in_their_department_are_written_only_when_they_differ() {
    use super::per_dept::{PerDept, differing, take};
    let mut fields = std::collections::BTreeMap::from([
        ("dept_order_list".to_string(), "3".to_string()),
        ("dept_title_list".to_string(), "组长".to_string()),
        ("name".to_string(), "A".to_string()),
    ]);
    let want = take(&mut fields, "a", "uid=a").unwrap();
    assert_eq!(fields.len(), 1, "never part of the user write");
    let cur = User {
        dept_order: Some(3),
        title: Some("组员".into()),
        ..user("a", "组员")
    };
    let d = differing(want.clone(), Some(&cur), &Parent::Id(1)).unwrap();
    assert_eq!(
        d,
        PerDept {
            order: None,
            title: Some("组长".into())
        }
    );
    let new = differing(want.clone(), None, &Parent::New("ou".into())).unwrap();
    assert_eq!(new, want);
    let mut bad = std::collections::BTreeMap::from([("dept_order_list".into(), "first".into())]);
    let f = take(&mut bad, "a", "uid=a").unwrap_err();
    assert!(f.message.contains("dept_order_list"), "{}", f.message);
}

#[test]
fn adopt_existing_comes_from_the_target() {
    let spec: crate::api::SyncTargetSpec = serde_yaml::from_str(
        "bindingRef: {name: b}\nfieldMappingRef: {name: m}\ndirection: Outbound\ndirectory: {ldap: {url: 'ldap://x', bindDN: 'cn=x', passwordSecretRef: {name: s, key: k}}}\nnode: 'ou=x'\nscope: {departmentIds: [7]}\nadoptExisting: true\n",
    )
    .unwrap();
    let opts = OutboundOptions::for_target(&spec, None).unwrap();
    assert!(opts.adopt_existing);
    assert_eq!(opts.root, 7);
    let off = crate::api::SyncTargetSpec {
        adopt_existing: false,
        ..spec
    };
    assert!(
        !OutboundOptions::for_target(&off, None)
            .unwrap()
            .adopt_existing
    );
}
