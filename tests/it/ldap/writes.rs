//! What the node's writes cost: a department's members go in one modify whatever the state
//! of its placeholder member, and an apply keeps slapd's writer fed.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use dingsync::api::target::Layout;
use dingsync::directory::ldap::{LdapDirectory, store::Store};
use dingsync::directory::{Attrs, Directory, DirectoryError, Snapshot};

use crate::support::slapd::{self, Slapd};
use crate::support::world::ldap_pool;
use crate::support::{World, conformance};

fn person(uid: &str) -> Attrs {
    [("uid", uid), ("cn", uid), ("sn", uid)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect()
}

/// A fresh node with department "1" (its group empty) and the people `uids`, none a member.
async fn node_with(s: &Slapd, uids: &[&str]) -> (String, Store) {
    let node = s.new_node("writes").unwrap();
    let st = Store::open(ldap_pool(s).await, &node, Layout::FlatWithGroups, "corp")
        .await
        .unwrap();
    st.create_dept("1", "Acme", None, &Attrs::new())
        .await
        .unwrap();
    for uid in uids {
        st.create_person(uid, &person(uid), None, false)
            .await
            .unwrap();
    }
    (node, st)
}

/// The `member` values of a department's group, as slapd holds them.
fn members(s: &Slapd, store: &Store, dept: &str) -> Vec<String> {
    let dn = store.dn_of_dept(dept).expect("the department's group");
    let ldif = s
        .search(&dn, "(objectClass=*)", &["member"])
        .expect("search");
    let mut v: Vec<String> = ldif
        .lines()
        .filter_map(|l| l.strip_prefix("member: "))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_departments_members_and_its_placeholder_go_in_one_request() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let (_, st) = node_with(&s, &["a", "b", "c"]).await;
    let dn = |id: &str| st.dn_of_person(id).unwrap();
    let own = st.dn_of_dept("1").unwrap();
    assert_eq!(
        members(&s, &st, "1"),
        vec![own.clone()],
        "placeholder only: the group's own DN"
    );

    // The first members replace the placeholder in the same modify.
    let before = st.pool().writes_sent();
    st.add_members("1", &["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(st.pool().writes_sent() - before, 1, "one request");
    assert_eq!(members(&s, &st, "1"), vec![dn("a"), dn("b")]);

    // Later members: one request too.
    let before = st.pool().writes_sent();
    st.add_members("1", &["c".into()]).await.unwrap();
    assert_eq!(st.pool().writes_sent() - before, 1, "one request");
    assert_eq!(members(&s, &st, "1"), vec![dn("a"), dn("b"), dn("c")]);

    // Emptied, the placeholder is back; the next member takes its place in one request.
    st.remove_members("1", &["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    assert_eq!(members(&s, &st, "1"), vec![own.clone()]);
    let before = st.pool().writes_sent();
    st.add_members("1", &["b".into()]).await.unwrap();
    assert_eq!(st.pool().writes_sent() - before, 1, "one request");
    assert_eq!(members(&s, &st, "1"), vec![dn("b")]);

    // Someone already in: still added, the others too, and nothing is doubled.
    st.add_members("1", &["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(members(&s, &st, "1"), vec![dn("a"), dn("b")]);
}

/// The index says the placeholder is there, but the group lost it meanwhile (another writer
/// of the same group): the members still arrive.
#[tokio::test]
async fn members_arrive_when_the_placeholder_is_already_gone() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let (_, st) = node_with(&s, &["a", "b"]).await;
    let group = st.dn_of_dept("1").unwrap();
    let a = st.dn_of_person("a").unwrap();
    s.ldapmodify(&format!(
        "dn: {group}\nchangetype: modify\nadd: member\nmember: {a}\n-\ndelete: member\nmember: {group}\n"
    ))
    .unwrap();
    st.add_members("1", &["b".into()]).await.unwrap();
    let b = st.dn_of_person("b").unwrap();
    assert_eq!(members(&s, &st, "1"), vec![a, b]);
}

/// Counts the person creates in flight at once, the highest count kept.
struct InFlight {
    inner: LdapDirectory,
    now: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait]
impl Directory for InFlight {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        self.inner.read().await
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let r = self.inner.create_person(id, attrs, main_dept).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        self.inner.link_person(key, id).await
    }
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.inner.update_person(id, changes).await
    }
    async fn move_person(&self, id: &str, name: &str, main: &str) -> Result<(), DirectoryError> {
        self.inner.move_person(id, name, main).await
    }
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.inner.disable_person(id).await
    }
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.inner.enable_person(id).await
    }
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.inner.delete_person(id).await
    }
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.inner.add_members(dept, people).await
    }
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.inner.remove_members(dept, people).await
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        self.inner.create_dept(id, name, parent, attrs).await
    }
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.inner.update_dept(id, changes).await
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.inner.move_dept(id, name, parent).await
    }
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
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
    fn writes(&self) -> u64 {
        self.inner.writes()
    }
    fn write_concurrency(&self) -> usize {
        self.inner.write_concurrency()
    }
}

/// slapd's one writer is kept busy: an apply has as many writes in flight as the LDAP
/// directory asks for (8 per pooled connection), more than the 8 of other backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_apply_keeps_many_writes_in_flight() {
    let Some(w) = World::builder().people(120).slapd().build().await else {
        return;
    };
    let dir = InFlight {
        inner: w.ldap(&w.node("width"), Layout::FlatWithGroups).await,
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    };
    let connections = w.ldap_pool().await.options().connections;
    assert_eq!(dir.write_concurrency(), 8 * connections);
    assert!(dir.write_concurrency() > dingsync::sync::CONCURRENCY);
    let report = dingsync::sync::run(
        &w.source(),
        &dir,
        &conformance::mapping(),
        &Default::default(),
        false,
        &|_, _, _| {},
    )
    .await
    .expect("sync runs");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        report.created,
        120 + 5 + 1,
        "people, departments and the root"
    );
    assert_eq!(dir.peak.load(Ordering::SeqCst), dir.write_concurrency());
}

/// Groups written by earlier versions hold the node's DN as placeholder: read as empty, and
/// their first members replace it.
#[tokio::test]
async fn a_node_placeholder_from_earlier_versions_is_replaced() {
    let Some(s) = slapd::start_or_skip() else {
        return;
    };
    let (node, st) = node_with(&s, &["a"]).await;
    let group = st.dn_of_dept("1").unwrap();
    s.ldapmodify(&format!(
        "dn: {group}\nchangetype: modify\nadd: member\nmember: {node}\n-\ndelete: member\nmember: {group}\n"
    ))
    .unwrap();
    let snap = st.read().await.unwrap();
    let a = snap
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("a"))
        .unwrap();
    assert!(
        a.departments.is_empty(),
        "the node is no member: {:?}",
        a.departments
    );
    let before = st.pool().writes_sent();
    st.add_members("1", &["a".into()]).await.unwrap();
    assert_eq!(st.pool().writes_sent() - before, 1, "one request");
    assert_eq!(members(&s, &st, "1"), vec![st.dn_of_person("a").unwrap()]);
}
