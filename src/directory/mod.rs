//! Directory backends: where dingsync writes (inbound) people and department groups.
//!
//! A backend owns one node of a directory and addresses its entries by their *source ids*
//! (DingTalk userid / dept_id), which it keeps as anchors inside the entries themselves, so the
//! state is rebuilt from the directory on every read: no side database, renames stay renames.

pub mod ad;
pub mod attrs;
pub mod digest;
pub mod ldap;
pub mod memory;
pub mod scim;

use std::collections::BTreeSet;

use async_trait::async_trait;

pub use attrs::{Attrs, Name};
pub use digest::Digested;

/// A person entry as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonEntry {
    /// Backend locator (LDAP DN, SCIM id).
    pub key: String,
    /// Source id from the anchor; `None` for an entry dingsync has not linked.
    pub id: Option<String>,
    /// Attributes, names lowercased; after a lean read, without the digested ones.
    pub attrs: Attrs,
    /// After a lean read ([`Directory::read_lean`]), the digest of the attributes it folded
    /// (see [`Digested`]); `None` when `attrs` holds them.
    pub digest: Option<u64>,
    /// Ids of the departments the person is a direct member of.
    pub departments: Vec<String>,
    /// `OuTree`: the department whose container holds the entry.
    pub container: Option<String>,
    pub disabled: bool,
}

/// A department entry as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeptEntry {
    pub key: String,
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    /// Attributes, names lowercased.
    pub attrs: Attrs,
}

/// A role's group as read (see [`Directory::read_roles`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleEntry {
    /// Backend locator (LDAP DN, SCIM id).
    pub key: String,
    /// The role's source id, from the group's anchor.
    pub id: String,
    /// The group's name as dingsync wrote it ([`crate::model::Role::group_title`]).
    pub name: String,
    /// Source ids of the anchored people among the members. Members that are not this
    /// target's people (an entry an admin added, a placeholder) are not listed.
    pub members: BTreeSet<String>,
}

/// Everything under the node a target may act on.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Entries anchored to this target's enterprise.
    pub people: Vec<PersonEntry>,
    pub departments: Vec<DeptEntry>,
    /// Unanchored people: candidates for the match rules.
    pub unlinked: Vec<PersonEntry>,
    /// Entries left alone, with why (another enterprise's anchor, ...).
    pub skipped: Vec<(String, String)>,
    /// Account names held by the skipped entries: never given to anyone else.
    pub taken_names: Vec<String>,
}

/// What a targeted read ([`Directory::read_some`]) asks for: the entries an event batch
/// touches, so the batch costs directory work in proportion to what changed, not to the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchors {
    /// Source ids of people: their anchored entries.
    pub people: BTreeSet<String>,
    /// Source ids of departments: their entries.
    pub departments: BTreeSet<String>,
    /// Match-rule values, (attribute lowercased, value lowercased): the unlinked entries
    /// holding one of them are the candidates a rule could link.
    pub values: BTreeSet<(String, String)>,
    /// (attribute lowercased, value): the anchored people holding one of them — those whose
    /// reference attribute points at an entry an event batch changes.
    pub held: BTreeSet<(String, String)>,
    /// The account-name attribute (lowercased) `names` are values of.
    pub name_attr: String,
    /// Account names, lowercased: every entry holding one (anchored, unlinked, or left alone),
    /// so the caller knows which are taken.
    pub names: BTreeSet<String>,
}

impl Anchors {
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
            && self.departments.is_empty()
            && self.values.is_empty()
            && self.names.is_empty()
            && self.held.is_empty()
    }
}

impl Snapshot {
    /// What of a full read a targeted read for `anchors` returns: the anchored people and
    /// departments named, the unlinked entries holding a value asked for, the people holding
    /// a name asked for, and those of `taken_names`. `skipped` is kept whole (it names no
    /// ids); values and names compare case-insensitively.
    pub fn restrict(mut self, anchors: &Anchors) -> Self {
        let holds = |p: &PersonEntry, attr: &str, wanted: &dyn Fn(&str) -> bool| {
            p.attrs
                .get(attr)
                .is_some_and(|mut vs| vs.any(|v| wanted(&v.to_lowercase())))
        };
        let named = |p: &PersonEntry| {
            !anchors.names.is_empty()
                && holds(p, &anchors.name_attr, &|v| anchors.names.contains(v))
        };
        let valued = |p: &PersonEntry| {
            anchors
                .values
                .iter()
                .any(|(attr, value)| holds(p, attr, &|v| v == value.as_str()))
        };
        let held = |p: &PersonEntry| {
            (anchors.held.iter())
                .any(|(attr, value)| holds(p, attr, &|v| v == value.to_lowercase()))
        };
        self.people.retain(|p| {
            p.id.as_ref().is_some_and(|id| anchors.people.contains(id)) || named(p) || held(p)
        });
        self.departments
            .retain(|d| anchors.departments.contains(&d.id));
        self.unlinked.retain(|p| valued(p) || named(p));
        self.taken_names
            .retain(|n| anchors.names.contains(&n.to_lowercase()));
        self
    }
}

/// A directory node read as the source of an Outbound target: its own structure, whoever
/// made the entries. Ids are the directory's stable ids (LDAP `entryUUID`, SCIM `id`), so a
/// renamed or moved entry keeps its id.
#[derive(Debug, Clone, Default)]
pub struct SourceTree {
    /// Containers under the node (LDAP OUs), parents before children.
    pub departments: Vec<SourceDept>,
    /// People: all of them, or with `since`, those changed since then.
    pub people: Vec<SourcePerson>,
    /// With `since`: every person still under the node, with their container (to see
    /// removals and moves that leave a person's own timestamp alone).
    pub all_people: Option<Vec<(String, Option<String>)>>,
    /// High-water mark of the changes seen (LDAP `modifyTimestamp`), for the next poll.
    pub stamp: Option<String>,
}

/// A container under the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDept {
    pub id: String,
    pub name: String,
    /// `None`: directly under the node.
    pub parent: Option<String>,
    pub attrs: Attrs,
}

/// A person under the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePerson {
    pub id: String,
    /// Locator (LDAP DN), for messages.
    pub key: String,
    /// Attributes, names lowercased.
    pub attrs: Attrs,
    /// The container holding the entry; `None`: directly under the node.
    pub dept: Option<String>,
}

/// What went wrong, classified so one bad entry never stops the rest and a broken connection
/// stops the run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DirectoryError {
    /// Wrong credentials or missing rights: the whole target is affected.
    #[error("directory refused the credentials: {0}")]
    Auth(String),
    /// Unreachable or busy: retry later.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// A read came back short: must not be used to disable anyone.
    #[error("directory read incomplete: {0}")]
    Incomplete(String),
    /// The directory refused one object (schema, constraint, duplicate); names what it can.
    #[error("{0}")]
    Rejected(String),
    /// Configuration the backend cannot work with.
    #[error("directory configuration: {0}")]
    Config(String),
}

impl DirectoryError {
    /// Errors that concern one object; the run goes on with the others.
    pub fn is_per_object(&self) -> bool {
        matches!(self, DirectoryError::Rejected(_))
    }
}

/// One directory node, addressed by source ids.
///
/// Contract every backend keeps (the engine relies on it; the behaviour suite in `tests/it/support/conformance.rs` checks it):
/// - `read` returns every entry under the node: this enterprise's anchored entries, unlinked
///   candidates for matching, and what it must leave alone (with the names those hold). The
///   engine plans from it alone, so the anchors in the entries are the only state.
/// - Writes address entries by source id (the backend keeps the id → locator index `read`
///   built, and updates it on create/link/rename). A write that cannot apply to one object
///   (schema, duplicate name, missing entry) returns [`DirectoryError::Rejected`] and changes
///   nothing; the run goes on with the other objects.
/// - Names are unique: a create or rename onto an existing name is rejected, never merged.
/// - `writes` counts write requests sent (a second sync with nothing changed must make none).
#[async_trait]
pub trait Directory: Send + Sync {
    /// Read everything under the node (and refresh the backend's id → locator index).
    /// Paging is the backend's business; a short read is [`DirectoryError::Incomplete`].
    async fn read(&self) -> Result<Snapshot, DirectoryError>;
    /// Read only what `anchors` names (see [`Anchors`] and [`Snapshot::restrict`]): at least
    /// what a full read holds for them, each entry exactly as a full read gives it, with the
    /// people's departments complete. Entries read are (re-)indexed for the writes that
    /// follow; nothing else in the index changes. The default reads everything and keeps
    /// what was asked for; backends that can search by anchor override it.
    async fn read_some(&self, anchors: &Anchors) -> Result<Snapshot, DirectoryError> {
        Ok(self.read().await?.restrict(anchors))
    }
    /// A full read in which each anchored person's `digested` attributes are folded into
    /// their `digest` (see [`Digested`]): what a resync's plan needs of an entry that did not
    /// change, at a fraction of the memory. Backends that can fold while reading override it.
    async fn read_lean(&self, digested: &Digested) -> Result<Snapshot, DirectoryError> {
        let mut snap = self.read().await?;
        snap.fold_digests(digested);
        Ok(snap)
    }
    /// Create a person carrying the anchor. `attrs` include the naming attribute; empty value
    /// lists are absent attributes. `main_dept` is the container in the `OuTree` layout.
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError>;
    /// Put the anchor on an existing, unlinked entry found by matching.
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError>;
    /// Replace attributes (empty list removes); a change of the naming attribute is a rename
    /// of the same entry (LDAP modrdn, SCIM PATCH), never delete + add.
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError>;
    /// `OuTree`: move the entry to its new main department's container.
    async fn move_person(
        &self,
        id: &str,
        name: &str,
        main_dept: &str,
    ) -> Result<(), DirectoryError>;
    /// Disable a leaver's account (it keeps its anchor and name, so a rehire finds it again)
    /// and take it out of every department group.
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError>;
    /// Re-enable a rehired person's account (memberships come back as separate adds).
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError>;
    /// Delete a person's entry (deletion policy `Delete`; memberships were removed before).
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError>;
    /// Add people (source ids, all existing entries) to a department's group.
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError>;
    /// Remove people from a department's group; people already gone are not an error.
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError>;
    /// Create a department; its parent exists already. Sibling names are unique.
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError>;
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError>;
    /// Rename and/or re-parent a department (its subtree follows).
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError>;
    /// Delete an (empty, childless) department.
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError>;
    /// The locator (LDAP DN, SCIM id) of a person's entry as indexed now, written where an
    /// attribute refers to them (`refersTo`); `None` when they have none. A backend that
    /// keeps no index says `None`, and references to its entries are refused one by one.
    fn locate_person(&self, id: &str) -> Option<String> {
        let _ = id;
        None
    }
    /// Writes made so far (for reports and benchmarks).
    fn writes(&self) -> u64;
    /// How many writes an apply keeps in flight at once.
    fn write_concurrency(&self) -> usize {
        crate::sync::CONCURRENCY
    }
    /// The role groups under the node (LDAP `ou=roles`, SCIM Groups anchored as roles).
    /// Members are given by source id, so the people they name must be indexed (by a read
    /// that found them) first. Role groups are apart from department groups: `read` never
    /// returns them. Backends without roles say so with [`DirectoryError::Config`].
    async fn read_roles(&self) -> Result<Vec<RoleEntry>, DirectoryError> {
        Err(no_roles())
    }
    /// Create a role's group named `name` holding `members` (people's source ids, existing
    /// entries; empty is allowed).
    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        let _ = (id, name, members);
        Err(no_roles())
    }
    /// Rename a role's group (the same entry: LDAP modrdn, SCIM displayName).
    async fn rename_role(&self, id: &str, name: &str) -> Result<(), DirectoryError> {
        let _ = (id, name);
        Err(no_roles())
    }
    /// Add and remove members of a role's group; an emptied group stays (LDAP keeps a
    /// placeholder member, as department groups do).
    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        let _ = (id, add, remove);
        Err(no_roles())
    }
    /// Delete a role's group (the people in it are untouched).
    async fn delete_role(&self, id: &str) -> Result<(), DirectoryError> {
        let _ = id;
        Err(no_roles())
    }
    /// Read the node as an Outbound source; with `since` (a previous `stamp`), only people
    /// changed since then, plus every person's id. Backends that cannot are a configuration
    /// error.
    async fn read_tree(&self, since: Option<&str>) -> Result<SourceTree, DirectoryError> {
        let _ = since;
        Err(DirectoryError::Config(
            "this directory cannot be the source of an Outbound target".into(),
        ))
    }
}

fn no_roles() -> DirectoryError {
    DirectoryError::Config("this directory cannot hold roles".into())
}

/// A shared directory is a directory (tests and `demo` keep a handle to seed and inspect it).
#[async_trait]
impl<T: Directory + ?Sized> Directory for std::sync::Arc<T> {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        (**self).read().await
    }
    async fn read_some(&self, anchors: &Anchors) -> Result<Snapshot, DirectoryError> {
        (**self).read_some(anchors).await
    }
    async fn read_lean(&self, digested: &Digested) -> Result<Snapshot, DirectoryError> {
        (**self).read_lean(digested).await
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        (**self).create_person(id, attrs, main_dept).await
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        (**self).link_person(key, id).await
    }
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        (**self).update_person(id, changes).await
    }
    async fn move_person(
        &self,
        id: &str,
        name: &str,
        main_dept: &str,
    ) -> Result<(), DirectoryError> {
        (**self).move_person(id, name, main_dept).await
    }
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        (**self).disable_person(id).await
    }
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        (**self).enable_person(id).await
    }
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        (**self).delete_person(id).await
    }
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        (**self).add_members(dept, people).await
    }
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        (**self).remove_members(dept, people).await
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        (**self).create_dept(id, name, parent, attrs).await
    }
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        (**self).update_dept(id, changes).await
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        (**self).move_dept(id, name, parent).await
    }
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        (**self).delete_dept(id).await
    }
    fn locate_person(&self, id: &str) -> Option<String> {
        (**self).locate_person(id)
    }
    fn writes(&self) -> u64 {
        (**self).writes()
    }
    fn write_concurrency(&self) -> usize {
        (**self).write_concurrency()
    }
    async fn read_tree(&self, since: Option<&str>) -> Result<SourceTree, DirectoryError> {
        (**self).read_tree(since).await
    }
    async fn read_roles(&self) -> Result<Vec<RoleEntry>, DirectoryError> {
        (**self).read_roles().await
    }
    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        (**self).create_role(id, name, members).await
    }
    async fn rename_role(&self, id: &str, name: &str) -> Result<(), DirectoryError> {
        (**self).rename_role(id, name).await
    }
    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        (**self).role_members(id, add, remove).await
    }
    async fn delete_role(&self, id: &str) -> Result<(), DirectoryError> {
        (**self).delete_role(id).await
    }
}
