//! OpenLDAP backend: keeps one node (a base DN) of an LDAP server in step.
//!
//! # What it writes, in standard schema only
//!
//! Nothing here needs a custom schema, so a platform team can point dingsync at any OpenLDAP
//! (or 389 DS) with the stock `core`, `cosine` and `inetorgperson` schemas.
//!
//! * **Layout** (`FlatWithGroups`, the default): people are `inetOrgPerson` entries
//!   `uid=<uid>,ou=people,<node>`, flat, so a person's DN does not change when they change
//!   department. Departments are `groupOfNames` entries whose DNs nest like the department
//!   tree: `cn=Backend,cn=Engineering,cn=Acme,ou=groups,<node>`. Nesting (rather than a
//!   parent attribute) keeps the tree visible in any LDAP browser, makes sibling names the
//!   only uniqueness constraint (two "Sales" under two regions do not collide), and turns a
//!   department rename or move into one modrdn of its group, subgroups included. A person is a
//!   direct `member` of every department group they belong to (not of the ancestors).
//!   With `OuTree`, each department is additionally an `organizationalUnit` nested under
//!   `ou=people,<node>` and each person lives in the OU of their main department (moving
//!   with it); the groups stay as above for multi-department membership.
//! * **Anchor**: every entry dingsync creates carries `businessCategory:
//!   dingsync:<user|dept>:<corpId>:<DingTalk id>`. `businessCategory` is a multi-valued
//!   attribute allowed by `inetOrgPerson`, `groupOfNames` and `organizationalUnit` alike and
//!   exists in every stock OpenLDAP; the `dingsync:` prefix keeps other values of it intact
//!   (a mapping that writes `businessCategory` gets its values merged next to the anchor).
//!   Trade-off: the value is visible to anyone who can read the entry and is matched
//!   case-insensitively by the server (dingsync compares anchors exactly itself), and it is
//!   not a dedicated attribute that an ACL could protect separately; a custom
//!   `dingsyncAnchor` attribute would need a schema every site must deploy. Entries under the
//!   node with another enterprise's anchor are never read as this target's (two enterprises
//!   never merge); entries without an anchor are offered to the matching rules as unlinked
//!   and get the anchor added when linked.
//! * **Roles** (when the target turns `roles` on): one `groupOfNames` per DingTalk role under
//!   `ou=roles,<node>`, named `<role group>-<role>` and anchored `dingsync:role:<corpId>:<role
//!   id>`; see `store/roles.rs`.
//! * **Empty departments**: `groupOfNames` requires at least one `member`, so an empty
//!   department group holds the node's own DN as placeholder member; it is removed when the
//!   first person joins and put back when the last one leaves. It is never read as a person.
//! * **Leavers** (deletion policy `Disable`): the account is locked the ppolicy way,
//!   `pwdAccountLockedTime: 000001010000Z` ("locked by an administrator", slapo-ppolicy(5)),
//!   and removed from every department group; a rehire deletes the lock. The server needs
//!   the `ppolicy` overlay, and the password policy that applies to these entries must have
//!   `pwdLockout: TRUE` for the lock to refuse binds; without the overlay the disable fails
//!   with an error that says so.
//! * Renames and moves are always modrdn (`deleteoldrdn`), never delete + add, so the
//!   entry (its `entryUUID`, password, any attribute dingsync does not manage) survives.
//!   Group `member` values are repointed after a person's DN changes (the `refint` overlay
//!   does this too when present).
//!
//! Reads are paged (simple paged results) from the node down; a read the server cuts short
//! (size, time or admin limit) is an error, never a shorter list, so it cannot disable anyone.
//! DN values are escaped per RFC 4514 and filter values per RFC 4515 (see [`dn`]).

pub mod client;
pub mod content_sync;
pub mod dn;
pub mod schema;
pub mod store;

use std::time::Duration;

pub use client::{ConnectOptions, LdapError, Pool, Secret};
pub use store::{DeptEntry, PersonEntry, Snapshot, Store};

use crate::api::target::{Layout, LdapSpec};

/// Writes an apply keeps in flight per pooled connection (each connection multiplexes them).
const WRITES_PER_CONNECTION: usize = 8;

/// Everything needed to open a target's LDAP node, resolved from the spec and its Secrets.
#[derive(Clone, Debug)]
pub struct LdapTarget {
    pub connect: ConnectOptions,
    pub node: String,
    pub layout: Layout,
    /// The enterprise whose anchors this target owns.
    pub corp_id: String,
    /// Create the node entry when it does not exist (`spec.createNode`).
    pub create_node: bool,
}

impl LdapTarget {
    /// Build from the SyncTarget's `directory.ldap`, with the Secret values already read.
    pub fn from_spec(
        spec: &LdapSpec,
        password: Secret,
        ca_pem: Option<String>,
        node: &str,
        layout: Option<Layout>,
        corp_id: &str,
    ) -> Self {
        let mut connect = ConnectOptions::new(spec.url.clone(), spec.bind_dn.clone(), password);
        connect.start_tls = spec.start_tls;
        connect.ca_pem = ca_pem;
        connect.timeout = Duration::from_secs(30);
        LdapTarget {
            connect,
            node: node.to_string(),
            layout: layout.unwrap_or_default(),
            corp_id: corp_id.to_string(),
            create_node: false,
        }
    }

    /// Connect, bind and open the node.
    pub async fn open(&self) -> Result<Store, LdapError> {
        let pool = Pool::connect(self.connect.clone()).await?;
        if self.create_node {
            return Store::open_creating(pool, &self.node, self.layout, &self.corp_id).await;
        }
        Store::open(pool, &self.node, self.layout, &self.corp_id).await
    }

    /// Bind without creating anything (readers: Outbound sources, login lookups).
    pub async fn open_read_only(&self) -> Result<Store, LdapError> {
        let pool = Pool::connect(self.connect.clone()).await?;
        Store::open_read_only(pool, &self.node, self.layout, &self.corp_id).await
    }
}

/// The LDAP node as a [`super::Directory`]; counts the write operations it sends.
pub struct LdapDirectory {
    store: Store,
    writes: std::sync::atomic::AtomicU64,
}

impl LdapDirectory {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            writes: Default::default(),
        }
    }

    /// The underlying node store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn wrote<T>(&self, r: Result<T, LdapError>) -> Result<(), super::DirectoryError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r.map(|_| ()).map_err(Into::into)
    }
}

impl From<LdapError> for super::DirectoryError {
    fn from(e: LdapError) -> Self {
        use super::DirectoryError as D;
        match &e {
            LdapError::Auth { .. } => D::Auth(e.to_string()),
            LdapError::Unavailable(_) => D::Unavailable(e.to_string()),
            LdapError::Incomplete { .. } => D::Incomplete(e.to_string()),
            LdapError::Config(_) | LdapError::BadDn { .. } => D::Config(e.to_string()),
            LdapError::NoSuchObject { .. }
            | LdapError::AlreadyExists { .. }
            | LdapError::Rejected { .. }
            | LdapError::Other { .. } => D::Rejected(e.to_string()),
        }
    }
}

fn person(p: PersonEntry) -> super::PersonEntry {
    super::PersonEntry {
        key: p.dn,
        id: p.id,
        attrs: p.attrs,
        digest: p.digest,
        departments: p.departments,
        container: p.container,
        disabled: p.disabled,
    }
}

/// The store's snapshot as the engine reads it: a skipped entry's `uid` is a name taken.
fn snapshot(s: Snapshot) -> super::Snapshot {
    super::Snapshot {
        people: s.people.into_iter().map(person).collect(),
        departments: s
            .departments
            .into_iter()
            .map(|d| super::DeptEntry {
                key: d.dn,
                id: d.id,
                name: d.name,
                parent: d.parent,
                attrs: d.attrs,
            })
            .collect(),
        unlinked: s.unlinked.into_iter().map(person).collect(),
        taken_names: s
            .skipped
            .iter()
            .filter_map(|(dn, _)| dn.split(',').next()?.split_once('='))
            .filter(|(attr, _)| attr.trim().eq_ignore_ascii_case("uid"))
            .map(|(_, v)| v.trim().to_string())
            .collect(),
        skipped: s.skipped,
    }
}

#[async_trait::async_trait]
impl super::Directory for LdapDirectory {
    async fn read(&self) -> Result<super::Snapshot, super::DirectoryError> {
        Ok(snapshot(self.store.read().await?))
    }
    async fn read_lean(
        &self,
        digested: &super::Digested,
    ) -> Result<super::Snapshot, super::DirectoryError> {
        Ok(snapshot(self.store.read_lean(digested).await?))
    }
    async fn read_some(
        &self,
        anchors: &super::Anchors,
    ) -> Result<super::Snapshot, super::DirectoryError> {
        Ok(snapshot(self.store.read_some(anchors).await?))
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &super::Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), super::DirectoryError> {
        let attrs: super::Attrs = attrs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.to_vec()))
            .collect();
        self.wrote(self.store.create_person(id, &attrs, main_dept, false).await)
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.link_person(key, id).await)
    }
    async fn update_person(
        &self,
        id: &str,
        changes: &super::Attrs,
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.update_person(id, changes).await)
    }
    async fn move_person(
        &self,
        id: &str,
        name: &str,
        main_dept: &str,
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.move_person(id, name, Some(main_dept)).await)
    }
    async fn disable_person(&self, id: &str) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.disable_person(id).await)
    }
    async fn enable_person(&self, id: &str) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.enable_person(id).await)
    }
    async fn delete_person(&self, id: &str) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.delete_person(id).await)
    }
    async fn add_members(
        &self,
        dept: &str,
        people: &[String],
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.add_members(dept, people).await)
    }
    async fn remove_members(
        &self,
        dept: &str,
        people: &[String],
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.remove_members(dept, people).await)
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &super::Attrs,
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.create_dept(id, name, parent, attrs).await)
    }
    async fn update_dept(
        &self,
        id: &str,
        changes: &super::Attrs,
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.update_dept(id, changes).await)
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.move_dept(id, name, parent).await)
    }
    async fn delete_dept(&self, id: &str) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.delete_dept(id).await)
    }
    async fn read_tree(
        &self,
        since: Option<&str>,
    ) -> Result<super::SourceTree, super::DirectoryError> {
        Ok(self.store.read_tree(since).await?)
    }
    async fn read_roles(&self) -> Result<Vec<super::RoleEntry>, super::DirectoryError> {
        Ok(self
            .store
            .read_roles()
            .await?
            .into_iter()
            .map(|g| super::RoleEntry {
                key: g.dn,
                id: g.id,
                name: g.name,
                members: g.members,
            })
            .collect())
    }
    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.create_role(id, name, members).await)
    }
    async fn rename_role(&self, id: &str, name: &str) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.rename_role(id, name).await)
    }
    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.role_members(id, add, remove).await)
    }
    async fn delete_role(&self, id: &str) -> Result<(), super::DirectoryError> {
        self.wrote(self.store.delete_role(id).await)
    }
    fn locate_person(&self, id: &str) -> Option<String> {
        self.store.dn_of_person(id)
    }
    fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// slapd has one writer (back-mdb): it stays busy only while further requests wait,
    /// parsed and access-checked, behind the one being written; with few in flight it idles
    /// between round trips (`cargo bench --bench ldap_ceiling` measures this).
    fn write_concurrency(&self) -> usize {
        self.store.pool().options().connections.max(1) * WRITES_PER_CONNECTION
    }
}
