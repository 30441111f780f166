//! The behaviour every directory backend must show under the sync engine, written once and run
//! against each backend: the memory directory (`engine`), a real OpenLDAP (`ldap_sync`) and a
//! real scim2-server (`scim_sync`). Each scenario panics with a message on a violation.

use std::{
    collections::{BTreeMap, HashSet},
    sync::atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;
use serde_json::json;

use dingsync::sync::{Op, Options, Report, StaticSource, run};
use dingsync::{
    api::{
        FieldMappingSpec,
        mapping::{AttributeRule, MatchRule, UniqueName, UserMapping},
        target::DeletionPolicy,
    },
    directory::{Anchors, Attrs, Directory, DirectoryError, PersonEntry, Snapshot},
    mapping::Mapping,
    model::{Changes, Department, Person, SourceSnapshot},
};

/// What a backend's test provides.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A fresh, empty node owned by enterprise `corp`. `slot` tells nodes of one test apart.
    async fn node(&self, corp: &str, slot: &str) -> Box<dyn Directory>;
    /// Put an account dingsync did not create into the node of `slot`.
    async fn seed_unlinked(&self, slot: &str, attrs: &Attrs);
    /// Whether two reads of a person show the same entry. Where the display name is the
    /// RDN (AD's `cn`), a rename changes the DN, and the backend's own id tells.
    fn same_entry(&self, before: &PersonEntry, after: &PersonEntry) -> bool {
        before.key == after.key
    }
}

/// The mapping the scenarios use (valid for inetOrgPerson and the memory backend).
pub fn mapping() -> Mapping {
    let rule = |t: &str, tpl: &str| AttributeRule {
        target: t.into(),
        template: tpl.into(),
        ..Default::default()
    };
    Mapping::compile(&FieldMappingSpec {
        direction: Default::default(),
        user: UserMapping {
            attributes: vec![
                rule("cn", "{{ name }}"),
                rule("sn", "{{ name[:1] }}"),
                rule("mail", "{{ email | lower }}"),
                rule("mobile", "{{ mobile }}"),
                rule("title", "{{ title }}"),
            ],
            match_rules: vec![
                MatchRule {
                    source: "{{ mobile }}".into(),
                    target: "mobile".into(),
                },
                MatchRule {
                    source: "{{ email | lower }}".into(),
                    target: "mail".into(),
                },
            ],
            unique_name: UniqueName {
                attribute: "uid".into(),
                template: "{{ name | pinyin }}".into(),
                ..Default::default()
            },
        },
        department: None,
    })
    .expect("the scenario mapping compiles")
}

/// A small org builder.
#[derive(Clone, Default)]
pub struct Org {
    pub corp: String,
    pub depts: Vec<Department>,
    pub people: Vec<Person>,
}

impl Org {
    pub fn new(corp: &str) -> Self {
        Self {
            corp: corp.into(),
            ..Default::default()
        }
    }
    pub fn dept(mut self, id: &str, name: &str, parent: Option<&str>) -> Self {
        self.depts.push(Department {
            id: id.into(),
            name: name.into(),
            parent: parent.map(Into::into),
            fields: serde_json::from_value(json!({"id": id, "name": name, "parent_id": parent}))
                .unwrap(),
        });
        self
    }
    pub fn person(
        mut self,
        id: &str,
        name: &str,
        depts: &[&str],
        mobile: Option<&str>,
        email: Option<&str>,
    ) -> Self {
        let fields = json!({"userid": id, "name": name, "mobile": mobile, "email": email, "title": "Engineer"});
        self.people.push(Person {
            id: id.into(),
            name: name.into(),
            departments: depts.iter().map(|d| d.to_string()).collect(),
            main_department: depts.first().map(|d| d.to_string()),
            fields: serde_json::from_value::<BTreeMap<String, serde_json::Value>>(fields)
                .unwrap()
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect(),
        });
        self
    }
    pub fn without(mut self, id: &str) -> Self {
        self.people.retain(|p| p.id != id);
        self
    }
    pub fn edit(mut self, id: &str, f: impl FnOnce(&mut Person)) -> Self {
        if let Some(p) = self.people.iter_mut().find(|p| p.id == id) {
            f(p);
        }
        self
    }
    pub fn edit_dept(mut self, id: &str, f: impl FnOnce(&mut Department)) -> Self {
        if let Some(d) = self.depts.iter_mut().find(|d| d.id == id) {
            f(d);
        }
        self
    }
    pub fn snapshot(&self, complete: bool) -> SourceSnapshot {
        SourceSnapshot {
            corp_id: self.corp.clone(),
            departments: self.depts.clone(),
            people: self.people.clone(),
            complete,
            incomplete: if complete {
                vec![]
            } else {
                vec!["user/list of department 3 failed".into()]
            },
        }
    }
}

/// The base org: a small tree, a person in two departments, one without mobile.
pub fn base_org(corp: &str) -> Org {
    Org::new(corp)
        .dept("1", "Acme", None)
        .dept("2", "Engineering", Some("1"))
        .dept("3", "Sales", Some("1"))
        .dept("4", "Backend", Some("2"))
        .person(
            "u1",
            "李娜",
            &["2"],
            Some("13800000001"),
            Some("li.na@acme.example"),
        )
        .person(
            "u2",
            "王芳",
            &["3"],
            Some("13800000002"),
            Some("wang.fang@acme.example"),
        )
        .person(
            "u3",
            "刘洋",
            &["4", "3"],
            Some("13800000003"),
            Some("liu.yang@acme.example"),
        )
        .person("u4", "陈静", &["4"], None, Some("chen.jing@acme.example"))
}

pub async fn sync(org: &Org, dir: &dyn Directory, opts: &Options, complete: bool) -> Report {
    let source = StaticSource::new(org.snapshot(complete));
    run(&source, dir, &mapping(), opts, false, &|_, _, _| {})
        .await
        .expect("sync runs")
}

async fn person_by_id(dir: &dyn Directory, id: &str) -> PersonEntry {
    dir.read()
        .await
        .unwrap()
        .people
        .into_iter()
        .find(|p| p.id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("{id} not in the directory"))
}

fn uid(p: &PersonEntry) -> String {
    p.attrs.first("uid").unwrap_or_default().to_owned()
}

fn assert_clean(r: &Report, what: &str) {
    assert!(r.failures.is_empty(), "{what}: failures {:#?}", r.failures);
}

/// First sync builds the tree; the second writes nothing.
pub async fn first_sync_then_nothing(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    let first = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&first, "first sync");
    assert_eq!(
        first.created, 8,
        "4 departments + 4 people: {:?}",
        first.plan.steps
    );
    let snap = dir.read().await.unwrap();
    assert_eq!(snap.people.len(), 4);
    assert_eq!(snap.departments.len(), 4);
    let backend = snap.departments.iter().find(|d| d.id == "4").unwrap();
    assert_eq!(backend.parent.as_deref(), Some("2"), "the tree is kept");
    assert_eq!(first.missing_mobile, 1);
    let second = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&second, "second sync");
    assert_eq!(
        second.writes, 0,
        "a second sync with no change writes nothing: {:?}",
        second.plan.steps
    );
    assert_eq!(second.unchanged, 8);
}

/// Renames and moves are renames and moves, never a second entry.
pub async fn renames_and_moves(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    sync(&org, dir.as_ref(), &Options::default(), true).await;
    let before = dir.read().await.unwrap();
    let org = org
        .edit_dept("3", |d| {
            d.name = "Global Sales".into();
            d.fields.insert("name", json!("Global Sales"));
        })
        .edit_dept("4", |d| {
            d.parent = Some("3".into());
        })
        .edit("u1", |p| {
            p.name = "李丽娜".into();
            p.fields.insert("name", json!("李丽娜"));
            p.departments = vec!["3".into()];
        });
    let r = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&r, "rename/move");
    assert_eq!(
        (r.created, r.deleted, r.disabled),
        (0, 0, 0),
        "{:?}",
        r.plan.steps
    );
    assert_eq!(
        r.moved, 2,
        "department rename and department move: {:?}",
        r.plan.steps
    );
    let after = dir.read().await.unwrap();
    assert_eq!(after.people.len(), before.people.len());
    assert_eq!(after.departments.len(), before.departments.len());
    let sales = after.departments.iter().find(|d| d.id == "3").unwrap();
    assert_eq!(sales.name, "Global Sales");
    assert_eq!(
        after
            .departments
            .iter()
            .find(|d| d.id == "4")
            .unwrap()
            .parent
            .as_deref(),
        Some("3")
    );
    let u1 = person_by_id(dir.as_ref(), "u1").await;
    assert_eq!(
        uid(&u1),
        "lina",
        "a login name survives a display-name change"
    );
    assert_eq!(u1.attrs.values_of("cn"), Some(vec!["李丽娜".to_string()]));
    let u1_before = (before.people.iter())
        .find(|p| p.id.as_deref() == Some("u1"))
        .unwrap();
    assert!(
        h.same_entry(u1_before, &u1),
        "same entry: {u1_before:?} {u1:?}"
    );
    assert_eq!(u1.departments, vec!["3".to_string()]);
    let again = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_eq!(again.writes, 0, "converged: {:?}", again.plan.steps);
}

/// A person in several departments is a member of each department's group.
pub async fn multi_department_membership(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    sync(
        &base_org("dingacme"),
        dir.as_ref(),
        &Options::default(),
        true,
    )
    .await;
    let mut depts = person_by_id(dir.as_ref(), "u3").await.departments;
    depts.sort();
    assert_eq!(depts, vec!["3".to_string(), "4".to_string()]);
}

/// A leaver is disabled (not deleted); a rehire re-enables the same entry.
pub async fn leaver_and_rehire(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    sync(&org, dir.as_ref(), &Options::default(), true).await;
    let key = person_by_id(dir.as_ref(), "u2").await.key;
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let r = sync(&org.clone().without("u2"), dir.as_ref(), &opts, true).await;
    assert_clean(&r, "leaver");
    assert_eq!((r.disabled, r.deleted), (1, 0));
    let gone = person_by_id(dir.as_ref(), "u2").await;
    assert!(gone.disabled, "the leaver is disabled");
    assert!(
        gone.departments.is_empty(),
        "and out of every department group"
    );
    let r = sync(&org, dir.as_ref(), &opts, true).await;
    assert_clean(&r, "rehire");
    assert_eq!((r.enabled, r.created), (1, 0), "{:?}", r.plan.steps);
    let back = person_by_id(dir.as_ref(), "u2").await;
    assert!(!back.disabled);
    assert_eq!(back.key, key, "the same entry comes back");
    assert_eq!(back.departments, vec!["3".to_string()]);
}

/// Above the threshold nothing is written until the exact plan is approved.
pub async fn threshold_holds_until_approved(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    sync(&org, dir.as_ref(), &Options::default(), true).await;
    let shrunk = org.clone().without("u1").without("u2").without("u3");
    let opts = Options {
        max_count: 2,
        max_percent: 100,
        ..Default::default()
    };
    let held = sync(
        &shrunk.clone().person("u9", "赵敏", &["2"], None, None),
        dir.as_ref(),
        &opts,
        true,
    )
    .await;
    let h1 = held.held.clone().expect("3 removals > maxCount 2 are held");
    assert_eq!(
        held.writes, 0,
        "a held run writes nothing, not even the hire"
    );
    assert_eq!(h1.removals, 3);
    assert!(dir.read().await.unwrap().people.iter().all(|p| !p.disabled));
    let approved = Options {
        approval: Some(h1.token.clone()),
        ..opts.clone()
    };
    let r = sync(
        &shrunk.clone().person("u9", "赵敏", &["2"], None, None),
        dir.as_ref(),
        &approved,
        true,
    )
    .await;
    assert!(r.held.is_none());
    assert_eq!(r.disabled, 3);
    // A percentage gate too.
    let dir2 = h.node("dingacme", "b").await;
    sync(&org, dir2.as_ref(), &Options::default(), true).await;
    let r = sync(
        &org.clone().without("u1"),
        dir2.as_ref(),
        &Options {
            max_count: 0,
            max_percent: 20,
            ..Default::default()
        },
        true,
    )
    .await;
    assert!(r.held.is_some(), "1 of 4 is 25% > 20%");
    assert_eq!(r.writes, 0);
}

/// An incomplete source read disables and deletes nothing, but still applies the rest.
pub async fn incomplete_read_disables_nothing(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    sync(&org, dir.as_ref(), &Options::default(), true).await;
    // The read lost department 3 and everyone only seen there; a hire still arrives.
    let partial = org
        .clone()
        .without("u2")
        .person("u5", "孙悦", &["2"], None, None);
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let r = sync(&partial, dir.as_ref(), &opts, false).await;
    assert_clean(&r, "incomplete read");
    assert!(!r.complete);
    assert_eq!((r.disabled, r.deleted), (0, 0));
    assert_eq!(r.suppressed_removals, 1);
    assert_eq!(r.created, 1, "the hire is applied");
    assert!(!person_by_id(dir.as_ref(), "u2").await.disabled);
}

/// Two enterprises into two nodes never merge, even with the same userids and names.
pub async fn two_enterprises_never_merge(h: &dyn Harness) {
    let a = h.node("dingacme", "a").await;
    let b = h.node("dingbeta", "b").await;
    sync(&base_org("dingacme"), a.as_ref(), &Options::default(), true).await;
    let r = sync(&base_org("dingbeta"), b.as_ref(), &Options::default(), true).await;
    assert_clean(&r, "second enterprise");
    assert_eq!(
        r.created, 8,
        "its own entries, nothing linked from the other"
    );
    let again = sync(&base_org("dingacme"), a.as_ref(), &Options::default(), true).await;
    assert_eq!(again.writes, 0, "the first enterprise is untouched");
    assert_eq!(a.read().await.unwrap().people.len(), 4);
    assert_eq!(b.read().await.unwrap().people.len(), 4);
}

/// Homonyms get distinct names that stay stable across runs and hires.
pub async fn homonyms_get_stable_distinct_names(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = Org::new("dingacme")
        .dept("1", "Acme", None)
        .person("zw-b", "张伟", &["1"], None, None)
        .person("zw-c", "张伟", &["1"], None, None)
        .person("zw-d", "张伟", &["1"], None, None);
    sync(&org, dir.as_ref(), &Options::default(), true).await;
    let names = |snap: &dingsync::directory::Snapshot| {
        let mut v: Vec<(String, String)> = snap
            .people
            .iter()
            .map(|p| (p.id.clone().unwrap(), uid(p)))
            .collect();
        v.sort();
        v
    };
    let first = names(&dir.read().await.unwrap());
    assert_eq!(
        first,
        vec![
            ("zw-b".into(), "zhangwei".into()),
            ("zw-c".into(), "zhangwei2".into()),
            ("zw-d".into(), "zhangwei3".into())
        ]
    );
    // A new homonym whose userid sorts first does not take anyone's name.
    let grown = org.clone().person("zw-a", "张伟", &["1"], None, None);
    let r = sync(&grown, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&r, "fourth homonym");
    assert_eq!(r.moved, 0, "nobody is renamed");
    let after = names(&dir.read().await.unwrap());
    assert!(
        after.contains(&("zw-a".into(), "zhangwei4".into())),
        "{after:?}"
    );
    for pair in &first {
        assert!(after.contains(pair), "{pair:?} kept");
    }
}

/// A match rule that finds two accounts links none and says why; one that finds one links it.
pub async fn ambiguous_matches_are_refused(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let attrs = |uid: &str, mobile: &str, mail: &str| -> Attrs {
        [
            ("uid", vec![uid.to_string()]),
            ("cn", vec![uid.to_string()]),
            ("sn", vec![uid.to_string()]),
            ("mobile", vec![mobile.to_string()]),
            ("mail", vec![mail.to_string()]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    h.seed_unlinked("a", &attrs("lina.old", "13800000001", "li.na@acme.example"))
        .await;
    h.seed_unlinked("a", &attrs("dup1", "13800000002", "x1@acme.example"))
        .await;
    h.seed_unlinked("a", &attrs("dup2", "13800000002", "x2@acme.example"))
        .await;
    let org = base_org("dingacme");
    let r = sync(&org, dir.as_ref(), &Options::default(), true).await;
    let amb: Vec<_> = r
        .failures
        .iter()
        .filter(|f| f.reason == "AmbiguousMatch")
        .collect();
    assert_eq!(amb.len(), 1, "{:#?}", r.failures);
    assert_eq!(amb[0].id, "u2");
    assert!(amb[0].message.contains("2 entries"), "{}", amb[0].message);
    let snap = dir.read().await.unwrap();
    assert!(
        snap.people.iter().all(|p| p.id.as_deref() != Some("u2")),
        "the ambiguous person is neither linked nor created"
    );
    assert_eq!(snap.unlinked.len(), 2, "both candidates stay unlinked");
    let u1 = person_by_id(dir.as_ref(), "u1").await;
    assert_eq!(
        uid(&u1),
        "lina.old",
        "the matched account is linked, not recreated; its name kept: {u1:?}"
    );
}

/// A directory that breaks on purpose, around any backend: writes about the ids in `reject`
/// are refused as one object (as a schema violation would be), and after `budget` writes the
/// connection is "lost" (every later write is unavailable).
pub struct Faulty<'a> {
    inner: &'a dyn Directory,
    reject: HashSet<String>,
    budget: Option<AtomicU64>,
}

impl<'a> Faulty<'a> {
    pub fn new(inner: &'a dyn Directory) -> Self {
        Self {
            inner,
            reject: HashSet::new(),
            budget: None,
        }
    }
    /// Refuse every write about this source id (person or department).
    pub fn rejecting(mut self, id: &str) -> Self {
        self.reject.insert(id.into());
        self
    }
    /// Lose the connection after `n` writes.
    pub fn failing_after(mut self, n: u64) -> Self {
        self.budget = Some(AtomicU64::new(n));
        self
    }
    fn gate<'b>(&self, ids: impl IntoIterator<Item = &'b str>) -> Result<(), DirectoryError> {
        if let Some(id) = ids.into_iter().find(|id| self.reject.contains(*id)) {
            return Err(DirectoryError::Rejected(format!(
                "{id}: constraint violation (refused on purpose)"
            )));
        }
        if let Some(b) = &self.budget
            && b.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            return Err(DirectoryError::Unavailable(
                "connection lost (on purpose)".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Directory for Faulty<'_> {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        self.inner.read().await
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.create_person(id, attrs, main_dept).await
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.link_person(key, id).await
    }
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.update_person(id, changes).await
    }
    async fn move_person(
        &self,
        id: &str,
        name: &str,
        main_dept: &str,
    ) -> Result<(), DirectoryError> {
        self.gate([id, main_dept])?;
        self.inner.move_person(id, name, main_dept).await
    }
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.disable_person(id).await
    }
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.enable_person(id).await
    }
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.delete_person(id).await
    }
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.gate(std::iter::once(dept).chain(people.iter().map(String::as_str)))?;
        self.inner.add_members(dept, people).await
    }
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.gate([dept])?;
        self.inner.remove_members(dept, people).await
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.create_dept(id, name, parent, attrs).await
    }
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.update_dept(id, changes).await
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.move_dept(id, name, parent).await
    }
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        self.gate([id])?;
        self.inner.delete_dept(id).await
    }
    async fn read_roles(&self) -> Result<Vec<dingsync::directory::RoleEntry>, DirectoryError> {
        self.inner.read_roles().await
    }
    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        self.inner.create_role(id, name, members).await
    }
    async fn rename_role(&self, id: &str, name: &str) -> Result<(), DirectoryError> {
        self.inner.rename_role(id, name).await
    }
    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        self.inner.role_members(id, add, remove).await
    }
    async fn delete_role(&self, id: &str) -> Result<(), DirectoryError> {
        self.inner.delete_role(id).await
    }
    async fn read_lean(
        &self,
        digested: &dingsync::directory::Digested,
    ) -> Result<Snapshot, DirectoryError> {
        self.inner.read_lean(digested).await
    }
    fn locate_person(&self, id: &str) -> Option<String> {
        self.inner.locate_person(id)
    }
    fn write_concurrency(&self) -> usize {
        self.inner.write_concurrency()
    }
    async fn read_some(
        &self,
        anchors: &dingsync::directory::Anchors,
    ) -> Result<Snapshot, DirectoryError> {
        self.inner.read_some(anchors).await
    }
    fn writes(&self) -> u64 {
        self.inner.writes()
    }
}

/// Members of each department group, as (dept, sorted userids), for comparing whole states.
async fn memberships(dir: &dyn Directory) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in dir.read().await.unwrap().people {
        for d in &p.departments {
            out.entry(d.clone())
                .or_default()
                .push(p.id.clone().unwrap_or_default());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// One refused person is reported and skipped; everyone else, their groups included, is
/// written; the next run creates the person and then nothing is left to do.
pub async fn one_failure_never_stops_the_rest(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    let faulty = Faulty::new(dir.as_ref()).rejecting("u3");
    let r = sync(&org, &faulty, &Options::default(), true).await;
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    assert_eq!(r.failures[0].id, "u3");
    assert_eq!(r.failures[0].reason, "DirectoryRejected");
    assert_eq!(r.created, 7, "4 departments + 3 people: {:?}", r.failures);
    let m = memberships(dir.as_ref()).await;
    assert_eq!(
        m.get("4"),
        Some(&vec!["u4".to_string()]),
        "u4 joins Backend although u3, in the same batch, failed"
    );
    assert_eq!(m.get("3"), Some(&vec!["u2".to_string()]));
    let r = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&r, "retry");
    assert_eq!(r.created, 1, "{:?}", r.plan.steps);
    let m = memberships(dir.as_ref()).await;
    assert_eq!(m.get("4"), Some(&vec!["u3".to_string(), "u4".to_string()]));
    let again = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_eq!(again.writes, 0, "converged: {:?}", again.plan.steps);
    // A refused update of an entry that exists names the entry (DN, SCIM id) in the report,
    // where the backend indexes its entries.
    let renamed = org.clone().edit("u3", |p| {
        p.name = "王五改".into();
        p.fields.insert("name", json!("王五改"));
    });
    let faulty = Faulty::new(dir.as_ref()).rejecting("u3");
    let r = sync(&renamed, &faulty, &Options::default(), true).await;
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    let want = dir.locate_person("u3");
    assert_eq!(r.failures[0].locator.as_deref(), want.as_deref());
}

/// A run cut off half-way (connection lost) stops with an error; re-running finishes the job,
/// reaches the same state as an uninterrupted run, and a third run writes nothing.
pub async fn half_applied_plan_converges(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    let cut = Faulty::new(dir.as_ref()).failing_after(5);
    let source = StaticSource::new(org.snapshot(true));
    let err = run(
        &source,
        &cut,
        &mapping(),
        &Options::default(),
        false,
        &|_, _, _| {},
    )
    .await
    .expect_err("a lost connection stops the run");
    assert!(
        matches!(
            err,
            dingsync::sync::SyncError::Directory(DirectoryError::Unavailable(_))
        ),
        "{err}"
    );
    let partial = dir.read().await.unwrap();
    assert!(partial.people.len() + partial.departments.len() < 8);
    let r = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&r, "re-run");
    assert!(r.writes > 0);
    let reference = h.node("dingacme", "b").await;
    sync(&org, reference.as_ref(), &Options::default(), true).await;
    assert_eq!(
        memberships(dir.as_ref()).await,
        memberships(reference.as_ref()).await,
        "same memberships as an uninterrupted run"
    );
    let names = |s: &Snapshot| {
        let mut v: Vec<(String, String)> = s
            .people
            .iter()
            .map(|p| (p.id.clone().unwrap_or_default(), uid(p)))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&dir.read().await.unwrap()),
        names(&reference.read().await.unwrap())
    );
    let again = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_eq!(again.writes, 0, "converged: {:?}", again.plan.steps);
}

/// Deletion policies: `Delete` removes the leaver's entry (and its memberships first), `Retain`
/// keeps it enabled but out of the groups; neither touches anyone else.
pub async fn delete_and_retain_policies(h: &dyn Harness) {
    let opts = |policy| Options {
        policy,
        max_percent: 100,
        ..Default::default()
    };
    let org = base_org("dingacme");
    let dir = h.node("dingacme", "a").await;
    sync(&org, dir.as_ref(), &opts(DeletionPolicy::Delete), true).await;
    let r = sync(
        &org.clone().without("u3"),
        dir.as_ref(),
        &opts(DeletionPolicy::Delete),
        true,
    )
    .await;
    assert_clean(&r, "delete");
    assert_eq!((r.deleted, r.disabled), (1, 0), "{:?}", r.plan.steps);
    let snap = dir.read().await.unwrap();
    assert!(snap.people.iter().all(|p| p.id.as_deref() != Some("u3")));
    assert_eq!(snap.people.len(), 3);
    assert!(
        !memberships(dir.as_ref())
            .await
            .values()
            .flatten()
            .any(|m| m == "u3")
    );

    let dir = h.node("dingacme", "b").await;
    sync(&org, dir.as_ref(), &opts(DeletionPolicy::Retain), true).await;
    let r = sync(
        &org.clone().without("u3"),
        dir.as_ref(),
        &opts(DeletionPolicy::Retain),
        true,
    )
    .await;
    assert_clean(&r, "retain");
    assert_eq!((r.deleted, r.disabled), (0, 0), "{:?}", r.plan.steps);
    let u3 = person_by_id(dir.as_ref(), "u3").await;
    assert!(!u3.disabled, "retained as it is");
    assert!(u3.departments.is_empty(), "but out of the groups");
}

/// Departments that go away are emptied and deleted children first, with their people moved
/// elsewhere in the same run.
pub async fn removed_departments_go_children_first(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    sync(&org, dir.as_ref(), &Options::default(), true).await;
    let mut shrunk = org.clone();
    shrunk.depts.retain(|d| d.id != "2" && d.id != "4");
    for p in &mut shrunk.people {
        p.departments = vec!["3".into()];
        p.main_department = Some("3".into());
    }
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let r = sync(&shrunk, dir.as_ref(), &opts, true).await;
    assert_clean(&r, "departments removed");
    assert_eq!(r.deleted, 2, "{:?}", r.plan.steps);
    let order: Vec<&str> = r
        .plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::DeleteDept { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(order, vec!["4", "2"], "children before parents");
    let snap = dir.read().await.unwrap();
    let mut ids: Vec<&str> = snap.departments.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, vec!["1", "3"]);
    assert_eq!(
        memberships(dir.as_ref()).await.get("3").map(Vec::len),
        Some(4)
    );
    let again = sync(&shrunk, dir.as_ref(), &opts, true).await;
    assert_eq!(again.writes, 0, "converged: {:?}", again.plan.steps);
}

/// `OuTree`: people live in their main department's container and move (not re-created) when
/// it changes.
pub async fn ou_tree_moves_people(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let opts = Options {
        ou_tree: true,
        ..Default::default()
    };
    let org = base_org("dingacme");
    let r = sync(&org, dir.as_ref(), &opts, true).await;
    assert_clean(&r, "first OuTree sync");
    let u1 = person_by_id(dir.as_ref(), "u1").await;
    assert_eq!(u1.container.as_deref(), Some("2"));
    let moved = org.clone().edit("u1", |p| {
        p.departments = vec!["4".into()];
        p.main_department = Some("4".into());
    });
    let r = sync(&moved, dir.as_ref(), &opts, true).await;
    assert_clean(&r, "move");
    assert_eq!(
        (r.moved, r.created, r.deleted),
        (1, 0, 0),
        "{:?}",
        r.plan.steps
    );
    let after = person_by_id(dir.as_ref(), "u1").await;
    assert_eq!(after.container.as_deref(), Some("4"));
    assert_eq!(uid(&after), uid(&u1), "same account");
    let again = sync(&moved, dir.as_ref(), &opts, true).await;
    assert_eq!(again.writes, 0, "converged: {:?}", again.plan.steps);
}

/// An incremental run acts on the named records only: a hire, a leaver and a renamed
/// department are applied; drift elsewhere waits for the next full run.
pub async fn incremental_run_touches_only_named_records(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    sync(&org, dir.as_ref(), &Options::default(), true).await;
    let changed = org
        .clone()
        .person("u5", "孙悦", &["2"], Some("13800000005"), None)
        .without("u2")
        .edit_dept("3", |d| {
            d.name = "Global Sales".into();
            d.fields.insert("name", json!("Global Sales"));
        })
        // Not named by any event: must not be written by the incremental run.
        .edit("u1", |p| {
            p.fields.insert("title", json!("Manager"));
        });
    let source = StaticSource::new(changed.snapshot(true));
    let changes = Changes {
        people: ["u5", "u2"].into_iter().map(String::from).collect(),
        departments: ["3".to_string()].into_iter().collect(),
        roles: false,
    };
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let r = dingsync::sync::run_changed(
        &source,
        dir.as_ref(),
        &mapping(),
        &opts,
        &changes,
        false,
        &|_, _, _| {},
    )
    .await
    .expect("incremental run");
    assert_clean(&r, "incremental");
    assert_eq!(
        (r.created, r.disabled, r.moved, r.updated),
        (1, 1, 1, 0),
        "{:?}",
        r.plan.steps
    );
    let u5 = person_by_id(dir.as_ref(), "u5").await;
    assert_eq!(
        u5.departments,
        vec!["2".to_string()],
        "joins an existing group"
    );
    assert!(person_by_id(dir.as_ref(), "u2").await.disabled);
    let u1 = person_by_id(dir.as_ref(), "u1").await;
    assert_eq!(
        u1.attrs.values_of("title"),
        Some(vec!["Engineer".to_string()])
    );
    // The next full run catches the rest, and only the rest.
    let r = sync(&changed, dir.as_ref(), &opts, true).await;
    assert_clean(&r, "full after incremental");
    assert_eq!(r.updated, 1, "{:?}", r.plan.steps);
    assert_eq!(r.writes, 1);
}

/// A targeted read returns, for the anchors, names and match values it is given, exactly what
/// a full read holds for them (the people with their departments, the departments with their
/// parents, the unlinked candidates, the names taken), and nothing of the rest; writes after
/// it find their entries.
pub async fn targeted_reads_match_a_full_read(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let account = |uid: &str, mobile: &str, mail: &str| -> Attrs {
        [
            ("uid", vec![uid.to_string()]),
            ("cn", vec![uid.to_string()]),
            ("sn", vec![uid.to_string()]),
            ("mobile", vec![mobile.to_string()]),
            ("mail", vec![mail.to_string()]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    h.seed_unlinked(
        "a",
        &account("old.li", "13800000009", "old.li@acme.example"),
    )
    .await;
    h.seed_unlinked("a", &account("zhangwei", "13800000010", "zw@acme.example"))
        .await;
    h.seed_unlinked("a", &account("bystander", "13800000011", "by@acme.example"))
        .await;
    let org = base_org("dingacme");
    assert_clean(
        &sync(&org, dir.as_ref(), &Options::default(), true).await,
        "first sync",
    );
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    let anchors = Anchors {
        people: set(&["u3", "u4", "nobody"]),
        departments: set(&["4", "3", "99"]),
        values: [("mobile".to_string(), "13800000009".to_string())].into(),
        name_attr: "uid".into(),
        names: set(&["zhangwei", "liuyang", "free.name"]),
        held: Default::default(),
    };
    let some = dir.read_some(&anchors).await.expect("targeted read");
    let want = dir.read().await.unwrap().restrict(&anchors);
    let people = |v: &[PersonEntry]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    };
    assert_eq!(people(&some.people), people(&want.people));
    assert_eq!(people(&some.unlinked), people(&want.unlinked));
    let mut depts = some.departments.clone();
    depts.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want_depts = want.departments.clone();
    want_depts.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(depts, want_depts);
    let ids: Vec<_> = some.people.iter().filter_map(|p| p.id.clone()).collect();
    assert_eq!(ids.len(), 2, "u3 and u4 only: {ids:?}");
    assert!(some.people.iter().all(|p| !p.departments.is_empty()));
    assert_eq!(depts.len(), 2);
    assert_eq!(
        depts[1].parent.as_deref(),
        Some("2"),
        "the parent not read is named"
    );
    let unlinked: HashSet<String> = some.unlinked.iter().map(uid).collect();
    assert_eq!(
        unlinked,
        HashSet::from(["old.li".to_string(), "zhangwei".to_string()])
    );
    // Writes after a targeted read reach the entries it read.
    let moved = org.clone().edit("u4", |p| {
        p.departments = vec!["3".into()];
        p.main_department = Some("3".into());
    });
    let r = sync(&moved, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&r, "after the targeted read");
    assert_eq!(
        person_by_id(dir.as_ref(), "u4").await.departments,
        vec!["3"]
    );
}

/// A resync reads entries lean (a digest of the owned attributes) and still names exactly
/// what changed: a DingTalk edit, an admin's edit of an owned attribute in the directory, and
/// an attribute dingsync does not own (left alone).
pub async fn lean_resync_names_exactly_what_changed(h: &dyn Harness) {
    let dir = h.node("dingacme", "a").await;
    let org = base_org("dingacme");
    assert_clean(
        &sync(&org, dir.as_ref(), &Options::default(), true).await,
        "first",
    );
    let lean = dir
        .read_lean(&dingsync::sync::plan::digested(&mapping()))
        .await
        .unwrap();
    for p in &lean.people {
        assert!(p.digest.is_some(), "{} read lean", p.key);
        assert!(
            !p.attrs.contains_key("mail"),
            "{}: owned values folded",
            p.key
        );
        assert!(p.attrs.contains_key("uid"), "{}: the name is kept", p.key);
    }
    // The digests of unchanged entries match what the mapping renders: nothing to re-read.
    let unchanged = dingsync::sync::plan::plan(
        &org.snapshot(true).normalise(),
        &lean,
        &mapping(),
        &Options::default(),
    );
    assert!(unchanged.steps.is_empty(), "{:#?}", unchanged.steps);
    assert!(
        unchanged.unverified.is_empty(),
        "{:?}",
        unchanged.unverified
    );
    let org = org.edit("u1", |p| p.fields.insert("title", json!("Staff Engineer")));
    let drifted = Attrs::from_iter([("mail".to_owned(), vec!["someone@else.example".to_owned()])]);
    dir.update_person("u2", &drifted).await.unwrap();
    let source = StaticSource::new(org.snapshot(true));
    let (_, plan) = dingsync::sync::compute(
        &source,
        dir.as_ref(),
        &mapping(),
        &Options::default(),
        &|_, _, _| {},
    )
    .await
    .unwrap();
    let mut updates: Vec<(String, Vec<String>, String)> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::UpdatePerson { id, changes } => Some((
                id.clone(),
                changes.keys().map(|k| k.to_string()).collect(),
                s.reason.to_string(),
            )),
            _ => None,
        })
        .collect();
    updates.sort();
    assert_eq!(
        updates,
        vec![
            (
                "u1".into(),
                vec!["title".into()],
                r#"changed: ["title"]"#.into()
            ),
            (
                "u2".into(),
                vec!["mail".into()],
                r#"changed: ["mail"]"#.into()
            ),
        ],
        "{:#?}",
        plan.steps
    );
    assert!(plan.unverified.is_empty(), "refined: {:?}", plan.unverified);
    assert_eq!(plan.unchanged_people, 2, "u3 and u4");
    let r = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_clean(&r, "resync");
    assert_eq!(
        person_by_id(dir.as_ref(), "u2").await.attrs.first("mail"),
        Some("wang.fang@acme.example")
    );
    let again = sync(&org, dir.as_ref(), &Options::default(), true).await;
    assert_eq!(again.writes, 0, "converged: {:?}", again.plan.steps);
}
