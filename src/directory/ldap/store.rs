//! The LDAP-level view of one target's node: reads what it owns (and what it could match),
//! and writes people, department groups, memberships, locks, renames and moves.
//!
//! Everything here is keyed by source ids (the anchor's id); an index from id to DN is
//! rebuilt on every read and kept current by every write, so a rename of a department (which
//! renames its whole nested subtree) keeps later operations pointing at the right entries.

mod members;
mod roles;
mod targeted;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ldap3::Scope;

use self::members::{Compact, Memberships};
use super::client::{LdapError, Modification, Pool, RawEntry};
use super::dn::{Dn, escape_filter_value};
use super::schema::{
    ANCHOR_ATTR, AnchorKind, GROUP_RDN, GROUPS_OU, LOCK_ATTR, LOCK_VALUE, OU_RDN, PEOPLE_OU,
    PERSON_RDN, StoredAnchor, is_anchor_value,
};
use crate::api::target::Layout;
use crate::directory::{Attrs, Digested, Name};

/// Attributes read besides the user attributes (`*`).
const OPERATIONAL: [&str; 3] = ["*", "entryUUID", LOCK_ATTR];
/// Attributes dingsync manages itself; a mapping's values for them are merged, not replacing.
const MANAGED: [&str; 3] = ["objectclass", "member", "pwdaccountlockedtime"];

/// A person entry as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonEntry {
    pub dn: String,
    pub uuid: Option<String>,
    /// Source id from the anchor; `None` for an unlinked entry.
    pub id: Option<String>,
    /// User attributes, names lowercased, the anchor value removed (and after a lean read,
    /// the digested ones).
    pub attrs: Attrs,
    /// After a lean read: the digest of the attributes folded out of `attrs`.
    pub digest: Option<u64>,
    /// Ids of the department groups the person is a direct member of, sorted.
    pub departments: Vec<String>,
    /// In the `OuTree` layout: the department whose OU holds the entry.
    pub container: Option<String>,
    pub disabled: bool,
}

/// A department as read (its group; in `OuTree` also its OU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeptEntry {
    pub dn: String,
    pub uuid: Option<String>,
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    /// User attributes of the group, names lowercased, without anchor and members.
    pub attrs: Attrs,
}

/// Everything under the node this target may act on.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub people: Vec<PersonEntry>,
    pub departments: Vec<DeptEntry>,
    /// People under the node without any dingsync anchor: candidates for matching.
    pub unlinked: Vec<PersonEntry>,
    /// Entries skipped, with the reason (another enterprise's anchor, two anchors, ...).
    pub skipped: Vec<(String, String)>,
}

/// The node, its containers and the id → DN index.
pub struct Store {
    pool: Arc<Pool>,
    corp_id: String,
    layout: Layout,
    node: Dn,
    people_base: Dn,
    groups_base: Dn,
    /// Whether the server's schema knows the ppolicy lock attribute.
    lock_supported: bool,
    index: Mutex<Index>,
}

/// How a store opens its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// Bind and read; create nothing.
    ReadOnly,
    /// Create the `ou=people` / `ou=groups` containers when missing.
    ReadWrite,
    /// As `ReadWrite`, and the node itself when missing.
    CreateNode,
}

/// The member value of a group with no members (`groupOfNames` needs one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    /// The group's own DN: what dingsync writes. It follows renames (refint) and, unlike one
    /// shared entry, does not gather a `memberOf` value per empty group (with 50,000 groups
    /// created empty in a first sync, rewriting that one entry each time was most of the
    /// run).
    Own,
    /// The node's DN: what earlier versions wrote, still recognised and replaced.
    Node,
}

#[derive(Default)]
struct Index {
    /// People's DNs as text, parsed when used: a parsed DN also keeps its comparison key and
    /// RDN bounds, three times the size, and this index lives as long as the store.
    people: HashMap<String, Box<str>>,
    depts: HashMap<String, Dn>,
    /// `OuTree`: the department's OU.
    dept_ous: HashMap<String, Dn>,
    /// Groups whose only member is a placeholder, and which one.
    placeholder: HashMap<String, Placeholder>,
    /// Counts this store's own changes to the index, so a read knows whether a write
    /// changed it while the read's search was in flight.
    edits: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("node", &self.node.to_string())
            .field("layout", &self.layout)
            .finish()
    }
}

fn lower_attrs(attrs: &Attrs) -> Attrs {
    let mut out = Attrs::new();
    for (k, v) in attrs {
        out.update(&k.to_ascii_lowercase(), |vals| {
            vals.extend(v.map(str::to_owned))
        });
    }
    out
}

fn ignore(result: Result<(), LdapError>, rc_ok: &[u32]) -> Result<(), LdapError> {
    match result {
        Err(LdapError::Rejected { rc, .. }) if rc_ok.contains(&rc) => Ok(()),
        Err(LdapError::NoSuchObject { .. }) if rc_ok.contains(&32) => Ok(()),
        other => other,
    }
}

/// A read's entries by kind, before they become a [`Snapshot`].
struct Sorted {
    /// DN, entry and the anchor's id (`None`: unlinked).
    people: Vec<(Dn, RawEntry, Option<String>)>,
    groups: Vec<Group>,
    /// Department OUs (`OuTree`) and their department ids.
    ous: Vec<(Dn, String)>,
}

/// An anchored department group as read.
struct Group {
    dn: Dn,
    raw: RawEntry,
    id: String,
}

/// Moves the last item out of `v`, giving memory back as `v` empties: a pass that moves a
/// read's entries into their next form then never holds both forms whole.
fn pop_shrinking<T>(v: &mut Vec<T>) -> Option<T> {
    let item = v.pop();
    if v.capacity() > 1024 && v.len() < v.capacity() / 2 {
        v.shrink_to_fit();
    }
    item
}

/// Pass 3 of a read: people, with the departments `member_of` finds for them. The index of
/// people is left to the caller (see [`refresh_people`]).
fn read_people(
    sorted: Sorted,
    mut member_of: Memberships,
    digested: Option<&Digested>,
    snap: &mut Snapshot,
) {
    let Sorted {
        mut people,
        groups,
        ous,
    } = sorted;
    let ou_by_key: HashMap<String, String> =
        ous.iter().map(|(d, id)| (d.key(), id.clone())).collect();
    let linked = people.iter().filter(|p| p.2.is_some()).count();
    snap.people.reserve_exact(linked);
    snap.unlinked.reserve_exact(people.len() - linked);
    // `people` is in reverse read order (see `sort_entries`): popping restores it.
    while let Some((dn, e, id)) = pop_shrinking(&mut people) {
        let departments = member_of.take(&dn, &groups);
        let container = dn.parent().and_then(|p| ou_by_key.get(&p.key()).cloned());
        let disabled = e.first(LOCK_ATTR).is_some();
        let uuid = e.first("entryUUID").map(str::to_string);
        let mut attrs = e.attrs;
        attrs.remove("entryuuid");
        attrs.remove(&LOCK_ATTR.to_ascii_lowercase());
        strip_anchor(&mut attrs);
        let digest = e.digest.or_else(|| {
            digested
                .filter(|_| id.is_some())
                .map(|d| d.fold(&mut attrs))
        });
        // Kept for the whole run: without the removed values' text.
        attrs.shrink();
        let entry = PersonEntry {
            dn: e.dn,
            uuid,
            id: id.clone(),
            attrs,
            digest,
            departments,
            container,
            disabled,
        };
        match id {
            Some(_) => snap.people.push(entry),
            None => snap.unlinked.push(entry),
        }
    }
}

/// The id → DN index of people brought up to what a read found, in place: on a node that did
/// not change nothing is allocated, where building a second index would hold every DN twice
/// until the swap (a quarter of a read's peak at 100,000 people).
fn refresh_people(people: &mut HashMap<String, Box<str>>, read: &[PersonEntry]) {
    let ids: HashSet<&str> = read.iter().filter_map(|p| p.id.as_deref()).collect();
    people.retain(|id, _| ids.contains(id.as_str()));
    drop(ids);
    for p in read {
        let Some(id) = &p.id else { continue };
        if people.get(id).is_none_or(|d| **d != *p.dn) {
            people.insert(id.clone(), p.dn.as_str().into());
        }
    }
}

impl Store {
    /// Bind to the node. The node must exist; its `ou=people` and `ou=groups` containers are
    /// created when missing.
    pub async fn open(
        pool: Arc<Pool>,
        node: &str,
        layout: Layout,
        corp_id: &str,
    ) -> Result<Self, LdapError> {
        Self::open_with(pool, node, layout, corp_id, Opening::ReadWrite).await
    }

    /// [`Store::open`], creating the node itself first when it does not exist (an
    /// `organizationalUnit` for an `ou=` node, an `organization` for an `o=` one; its parent
    /// must exist).
    pub async fn open_creating(
        pool: Arc<Pool>,
        node: &str,
        layout: Layout,
        corp_id: &str,
    ) -> Result<Self, LdapError> {
        Self::open_with(pool, node, layout, corp_id, Opening::CreateNode).await
    }

    /// Like [`Store::open`] but writes nothing, not even the containers (for `dingsync plan`).
    pub async fn open_read_only(
        pool: Arc<Pool>,
        node: &str,
        layout: Layout,
        corp_id: &str,
    ) -> Result<Self, LdapError> {
        Self::open_with(pool, node, layout, corp_id, Opening::ReadOnly).await
    }

    async fn open_with(
        pool: Arc<Pool>,
        node: &str,
        layout: Layout,
        corp_id: &str,
        opening: Opening,
    ) -> Result<Self, LdapError> {
        let node_dn = Dn::parse(node).map_err(|source| LdapError::BadDn {
            what: "node",
            source,
        })?;
        if node_dn.is_empty() {
            return Err(LdapError::Config("node: must not be the root DN".into()));
        }
        if corp_id.is_empty() || corp_id.contains(':') {
            return Err(LdapError::Config(format!(
                "corpId {corp_id:?}: must be non-empty and contain no ':'"
            )));
        }
        let store = Store {
            people_base: Dn::child(&node_dn, OU_RDN, PEOPLE_OU),
            groups_base: Dn::child(&node_dn, OU_RDN, GROUPS_OU),
            node: node_dn,
            pool,
            corp_id: corp_id.to_string(),
            layout,
            lock_supported: false,
            index: Mutex::new(Index::default()),
        };
        let mut store = store;
        store.lock_supported = store.probe_lock_support().await?;
        let exists = (store.pool)
            .read(&store.node.to_string(), &["1.1"])
            .await?
            .is_some();
        match (exists, opening) {
            (true, _) => {}
            (false, Opening::CreateNode) => store.create_node().await?,
            (false, _) => {
                return Err(LdapError::Config(format!(
                    "node {} does not exist: create it, or set spec.createNode: true for \
                     dingsync to create it",
                    store.node
                )));
            }
        }
        let containers = if opening != Opening::ReadOnly {
            vec![
                (&store.people_base, PEOPLE_OU),
                (&store.groups_base, GROUPS_OU),
            ]
        } else {
            vec![]
        };
        for (base, name) in containers {
            let mut a = Attrs::new();
            a.insert("objectClass".to_string(), vec!["organizationalUnit".into()]);
            a.insert("ou".to_string(), vec![name.to_string()]);
            ignore(store.pool.add(&base.to_string(), &a).await, &[]).or_else(|e| match e {
                LdapError::AlreadyExists { .. } => Ok(()),
                e => Err(e),
            })?;
        }
        Ok(store)
    }

    /// Adds the node entry: an `ou=` node as an `organizationalUnit`, an `o=` one as an
    /// `organization`; other kinds of entry are the directory admin's to create.
    async fn create_node(&self) -> Result<(), LdapError> {
        let rdn = self.node.rdn();
        let (attr, class) = match rdn.as_slice() {
            [a] if a.attr.eq_ignore_ascii_case("ou") => ("ou", "organizationalUnit"),
            [a] if a.attr.eq_ignore_ascii_case("o") => ("o", "organization"),
            _ => {
                return Err(LdapError::Config(format!(
                    "node {} does not exist, and spec.createNode creates only an ou= or o= \
                     node: create it yourself",
                    self.node
                )));
            }
        };
        let mut a = Attrs::new();
        a.insert("objectClass".to_string(), vec![class.into()]);
        a.insert(attr.to_string(), vec![rdn[0].value.clone()]);
        match self.pool.add(&self.node.to_string(), &a).await {
            Ok(()) | Err(LdapError::AlreadyExists { .. }) => Ok(()),
            Err(LdapError::NoSuchObject { .. }) => Err(LdapError::Config(format!(
                "node {}: spec.createNode creates the node, not the entries above it; its \
                 parent does not exist",
                self.node
            ))),
            Err(e) => Err(e),
        }
    }

    /// Look the lock attribute up in the subschema entry (the ppolicy overlay defines it).
    async fn probe_lock_support(&self) -> Result<bool, LdapError> {
        let root = self.pool.read("", &["subschemaSubentry"]).await?;
        let sub = root
            .as_ref()
            .and_then(|e| e.first("subschemaSubentry"))
            .unwrap_or("cn=Subschema")
            .to_string();
        let schema = match self.pool.read(&sub, &["attributeTypes"]).await {
            Ok(s) => s,
            // Some servers hide the subschema from ordinary accounts: assume yes and let the
            // first disable say otherwise.
            Err(LdapError::Auth { .. }) => return Ok(true),
            Err(e) => return Err(e),
        };
        let needle = format!("'{}'", LOCK_ATTR.to_ascii_lowercase());
        Ok(schema.is_none_or(|s| {
            s.get("attributeTypes")
                .any(|t| t.to_ascii_lowercase().contains(&needle))
        }))
    }

    /// Whether accounts can be disabled (the server has the ppolicy overlay).
    pub fn lock_supported(&self) -> bool {
        self.lock_supported
    }

    pub fn node(&self) -> &Dn {
        &self.node
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index, to change it after a write.
    fn edit(&self) -> std::sync::MutexGuard<'_, Index> {
        let mut ix = self.lock();
        ix.edits += 1;
        ix
    }

    /// Read everything under the node and rebuild the index.
    pub async fn read(&self) -> Result<Snapshot, LdapError> {
        self.read_with(None).await
    }

    /// [`Store::read`], with each anchored person's `digested` attributes folded into their
    /// digest as the entry is read, so the values are never all held at once.
    pub async fn read_lean(&self, digested: &Digested) -> Result<Snapshot, LdapError> {
        self.read_with(Some(digested)).await
    }

    async fn read_with(&self, digested: Option<&Digested>) -> Result<Snapshot, LdapError> {
        let edits = self.lock().edits;
        let raw = self
            .pool
            .search_shaped(
                &self.node.to_string(),
                Scope::Subtree,
                "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames)(objectClass=organizationalUnit))",
                &OPERATIONAL,
                |e| self.fold_early(digested, e),
            )
            .await?;
        let mut snap = Snapshot::default();
        let mut index = Index::default();
        let sorted = self.sort_entries(raw, &mut snap.skipped);
        let member_of = self.read_departments(&sorted, &mut snap, &mut index);
        read_people(sorted, member_of, digested, &mut snap);
        // Replaced under the lock: a write or another read running meanwhile (the store is
        // shared) sees the old index or the new one, never an empty or partial one. A write of this store
        // that changed the index while the search ran (a person created, a placeholder
        // dropped) is not in what the search returned: swapping then would forget it, and the
        // write's next step (adding the new person to their groups) would not find the
        // person. The index the writes keep stays instead; the next read refreshes it.
        let mut current = self.lock();
        if current.edits == edits {
            index.edits = edits;
            index.people = std::mem::take(&mut current.people);
            refresh_people(&mut index.people, &snap.people);
            *current = index;
        }
        Ok(snap)
    }

    /// Folds an anchored person's digested attributes as the search returns the entry, so
    /// their values are never all held; what the passes after the search read (class,
    /// anchor, lock) is never folded here, and a mapping that writes one of those is folded
    /// later, by [`read_people`], as a full read sees the entry.
    fn fold_early(&self, digested: Option<&Digested>, e: &mut RawEntry) {
        let Some(d) = digested else { return };
        let read_later = ["objectclass", ANCHOR_ATTR, LOCK_ATTR, "entryuuid", "member"];
        if read_later.iter().any(|a| d.contains(a)) {
            return;
        }
        let ours = matches!(
            StoredAnchor::from_values(e.get(ANCHOR_ATTR)),
            Ok(Some(a)) if a.kind == AnchorKind::User && a.corp_id == self.corp_id
        );
        if ours
            && e.get("objectClass")
                .any(|c| c.eq_ignore_ascii_case("inetOrgPerson"))
        {
            e.digest = Some(d.fold(&mut e.attrs));
            // Of what the passes after the search read, the class that sorts the entry is all
            // a lean read needs to keep (the entry's UUID is for outbound reads).
            e.attrs.remove("entryuuid");
            e.attrs
                .insert(Name::new("objectclass"), vec!["inetOrgPerson".to_owned()]);
            e.attrs.shrink();
        }
    }

    /// Pass 1 of a read: sorts the entries into people, department groups and department
    /// OUs, and skips what dingsync must not touch.
    /// `people` comes out in reverse read order, for [`read_people`] to pop.
    fn sort_entries(&self, mut raw: Vec<RawEntry>, skipped: &mut Vec<(String, String)>) -> Sorted {
        let mut sorted = Sorted {
            // Sized once: grown by doubling, this vector held up to twice what it needed.
            people: Vec::with_capacity(raw.len()),
            groups: Vec::new(),
            ous: Vec::new(),
        };
        while let Some(e) = pop_shrinking(&mut raw) {
            let dn = match Dn::parse(&e.dn) {
                Ok(d) => d,
                Err(err) => {
                    skipped.push((e.dn.clone(), err.to_string()));
                    continue;
                }
            };
            let classes: HashSet<String> = e
                .get("objectClass")
                .map(|c| c.to_ascii_lowercase())
                .collect();
            let anchor = match StoredAnchor::from_values(e.get(ANCHOR_ATTR)) {
                Ok(a) => a,
                Err(msg) => {
                    skipped.push((e.dn.clone(), msg));
                    continue;
                }
            };
            if let Some(a) = &anchor
                && a.corp_id != self.corp_id
            {
                skipped.push((
                    e.dn.clone(),
                    format!("anchored to another enterprise ({})", a.corp_id),
                ));
                continue;
            }
            if classes.contains("inetorgperson") {
                match anchor {
                    Some(a) if a.kind == AnchorKind::User => {
                        sorted.people.push((dn, e, Some(a.id)))
                    }
                    Some(_) => {
                        skipped.push((e.dn.clone(), "person carries a department anchor".into()))
                    }
                    None => sorted.people.push((dn, e, None)),
                }
            } else if classes.contains("groupofnames") {
                if let Some(a) = anchor.filter(|a| a.kind == AnchorKind::Dept) {
                    sorted.groups.push(Group {
                        dn,
                        raw: e,
                        id: a.id,
                    });
                }
            } else if classes.contains("organizationalunit")
                && let Some(a) = anchor.filter(|a| a.kind == AnchorKind::Dept)
            {
                sorted.ous.push((dn, a.id));
            }
        }
        sorted.groups.reverse();
        sorted.ous.reverse();
        sorted
    }

    /// Pass 2 of a read: departments and their parents (the nearest anchored ancestor
    /// group). Returns where each member's departments are found.
    fn read_departments(
        &self,
        sorted: &Sorted,
        snap: &mut Snapshot,
        index: &mut Index,
    ) -> Memberships {
        let group_by_key: HashMap<String, String> = sorted
            .groups
            .iter()
            .map(|g| (g.dn.key(), g.id.clone()))
            .collect();
        let mut member_of = Compact::new();
        let node_key = self.node.key();
        for (gi, g) in sorted.groups.iter().enumerate() {
            let parent =
                g.dn.parent()
                    .and_then(|p| group_by_key.get(&p.key()).cloned());
            let own_key = g.dn.key();
            let mut only = Some(Placeholder::Node);
            for (vi, m) in g.raw.get("member").enumerate() {
                let Ok(mdn) = Dn::parse(m) else { continue };
                let k = mdn.key_str();
                if k == own_key {
                    only = only.map(|_| Placeholder::Own);
                } else if k != node_key {
                    only = None;
                    member_of.add(k, gi, vi);
                }
            }
            if let Some(p) = only {
                index.placeholder.insert(g.id.clone(), p);
            }
            let mut attrs = g.raw.attrs.clone();
            attrs.remove("member");
            strip_anchor(&mut attrs);
            index.depts.insert(g.id.clone(), g.dn.clone());
            snap.departments.push(DeptEntry {
                dn: g.raw.dn.clone(),
                uuid: g.raw.first("entryUUID").map(str::to_string),
                id: g.id.clone(),
                name: g.dn.rdn_value(GROUP_RDN).unwrap_or_default(),
                parent,
                attrs,
            });
        }
        for (dn, id) in &sorted.ous {
            index.dept_ous.insert(id.clone(), dn.clone());
        }
        member_of.seal()
    }

    fn person_dn(&self, id: &str) -> Result<Dn, LdapError> {
        let text = self.lock().people.get(id).cloned();
        let text = text.ok_or_else(|| LdapError::NoSuchObject {
            dn: format!("(person {id} under {})", self.node),
        })?;
        Dn::parse(&text).map_err(|source| LdapError::BadDn {
            what: "indexed person",
            source,
        })
    }

    fn dept_dn(&self, id: &str) -> Result<Dn, LdapError> {
        self.lock()
            .depts
            .get(id)
            .cloned()
            .ok_or_else(|| LdapError::NoSuchObject {
                dn: format!("(department {id} under {})", self.node),
            })
    }

    /// Where a person's entry goes: flat under `ou=people`, or (OuTree) under the OU of
    /// their main department.
    fn person_parent(&self, main_dept: Option<&str>) -> Dn {
        if self.layout == Layout::OuTree
            && let Some(d) = main_dept
            && let Some(ou) = self.lock().dept_ous.get(d)
        {
            return ou.clone();
        }
        self.people_base.clone()
    }

    fn group_parent(&self, parent: Option<&str>) -> Result<Dn, LdapError> {
        match parent {
            Some(p) => self.dept_dn(p),
            None => Ok(self.groups_base.clone()),
        }
    }

    fn ou_parent(&self, parent: Option<&str>) -> Dn {
        parent
            .and_then(|p| self.lock().dept_ous.get(p).cloned())
            .unwrap_or_else(|| self.people_base.clone())
    }

    /// Create a person with their anchor. `main_dept` places them in the `OuTree` layout.
    pub async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
        disabled: bool,
    ) -> Result<String, LdapError> {
        let mut a = lower_attrs(attrs);
        let uid = single(&a, PERSON_RDN, id)?;
        let dn = Dn::child(&self.person_parent(main_dept), PERSON_RDN, &uid);
        merge_class(&mut a, &["inetOrgPerson"]);
        set_anchor(
            &mut a,
            &StoredAnchor::new(AnchorKind::User, &self.corp_id, id),
        );
        if disabled {
            a.insert(LOCK_ATTR.to_string(), vec![LOCK_VALUE.to_string()]);
        }
        let text = dn.to_string();
        self.pool.add(&text, &a).await.map_err(lock_hint)?;
        self.edit()
            .people
            .insert(id.to_string(), dn.as_str().into());
        Ok(text)
    }

    /// Attach an anchor to an existing (unlinked) entry found by matching.
    pub async fn link_person(&self, dn: &str, id: &str) -> Result<(), LdapError> {
        let parsed = Dn::parse(dn).map_err(|source| LdapError::BadDn {
            what: "entry to link",
            source,
        })?;
        if !parsed.is_within(&self.node) {
            return Err(LdapError::Config(format!(
                "{dn} is outside the node {}",
                self.node
            )));
        }
        let anchor = StoredAnchor::new(AnchorKind::User, &self.corp_id, id).encode();
        self.pool
            .modify(
                dn,
                vec![Modification::Add(ANCHOR_ATTR.into(), vec![anchor])],
            )
            .await?;
        self.edit()
            .people
            .insert(id.to_string(), parsed.as_str().into());
        Ok(())
    }

    /// Replace attributes (empty list: remove). A change of `uid` is a modrdn.
    pub async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), LdapError> {
        let mut changes = lower_attrs(changes);
        let dn = self.person_dn(id)?;
        if let Some(uid) = changes.remove(PERSON_RDN) {
            let new = uid.first().cloned().unwrap_or_default();
            if new.is_empty() {
                return Err(LdapError::Rejected {
                    dn: dn.to_string(),
                    attribute: Some(PERSON_RDN.into()),
                    rc: 65,
                    message: "uid must not be empty".into(),
                });
            }
            if dn.rdn_value(PERSON_RDN).as_deref() != Some(new.as_str()) {
                self.move_person(id, &new, None).await?;
            }
        }
        let dn = self.person_dn(id)?;
        let mods = self
            .replace_mods(&dn, changes, AnchorKind::User, id)
            .await?;
        self.pool.modify(&dn.to_string(), mods).await
    }

    async fn replace_mods(
        &self,
        dn: &Dn,
        changes: Attrs,
        kind: AnchorKind,
        id: &str,
    ) -> Result<Vec<Modification>, LdapError> {
        let mut mods = Vec::new();
        for (k, v) in changes {
            if MANAGED.contains(&k.as_str()) {
                continue;
            }
            if k == ANCHOR_ATTR.to_ascii_lowercase() {
                // The anchor lives in this attribute too: keep it alongside the mapped values.
                let mut vals: Vec<String> = v.into_iter().filter(|x| !is_anchor_value(x)).collect();
                vals.push(StoredAnchor::new(kind, &self.corp_id, id).encode());
                mods.push(Modification::Replace(k.to_string(), vals));
                continue;
            }
            mods.push(Modification::Replace(k.to_string(), v));
        }
        let _ = dn;
        Ok(mods)
    }

    /// modrdn: new uid and/or (OuTree) new container; group memberships follow the new DN.
    pub async fn move_person(
        &self,
        id: &str,
        new_uid: &str,
        new_main_dept: Option<&str>,
    ) -> Result<String, LdapError> {
        let old = self.person_dn(id)?;
        let parent = match new_main_dept {
            Some(_) if self.layout == Layout::OuTree => self.person_parent(new_main_dept),
            _ => old.parent().unwrap_or_else(|| self.people_base.clone()),
        };
        let new = Dn::child(&parent, PERSON_RDN, new_uid);
        if new == old {
            return Ok(old.to_string());
        }
        let new_sup = (parent != old.parent().unwrap_or_else(Dn::root)).then(|| parent.to_string());
        self.pool
            .modify_dn(&old.to_string(), &new.rdn_string(), new_sup.as_deref())
            .await?;
        self.edit()
            .people
            .insert(id.to_string(), new.as_str().into());
        self.repoint_members(&old, &new).await?;
        Ok(new.to_string())
    }

    /// Replace member values naming `old` with `new` (refint may have done it already).
    async fn repoint_members(&self, old: &Dn, new: &Dn) -> Result<(), LdapError> {
        let groups = self.groups_with_member(&old.to_string()).await?;
        for g in groups {
            ignore(
                self.pool
                    .modify(
                        &g,
                        vec![Modification::Add("member".into(), vec![new.to_string()])],
                    )
                    .await,
                &[20],
            )?;
            ignore(
                self.pool
                    .modify(
                        &g,
                        vec![Modification::Delete("member".into(), vec![old.to_string()])],
                    )
                    .await,
                &[16],
            )?;
        }
        Ok(())
    }

    /// Department and role groups holding `dn`.
    async fn groups_with_member(&self, dn: &str) -> Result<Vec<String>, LdapError> {
        let filter = format!(
            "(&(objectClass=groupOfNames)(member={}))",
            escape_filter_value(dn)
        );
        let mut groups: Vec<String> = self
            .pool
            .search(
                &self.groups_base.to_string(),
                Scope::Subtree,
                &filter,
                &["1.1"],
            )
            .await?
            .into_iter()
            .map(|e| e.dn)
            .collect();
        groups.extend(self.role_groups_with_member(dn).await?);
        Ok(groups)
    }

    /// Add people to a department group: one request for all of them, which also drops the
    /// placeholder member when the group held only that (so a department's first members
    /// cost one write, not two).
    pub async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), LdapError> {
        if people.is_empty() {
            return Ok(());
        }
        let gdn = self.dept_dn(dept)?.to_string();
        let dns: Vec<String> = people
            .iter()
            .map(|p| self.person_dn(p).map(|d| d.to_string()))
            .collect::<Result<_, _>>()?;
        let placeholder = self.lock().placeholder.get(dept).copied();
        let mut mods = vec![Modification::Add("member".into(), dns.clone())];
        if let Some(p) = placeholder {
            mods.push(self.placeholder_mod(&gdn, p, false));
        }
        match self.pool.modify(&gdn, mods).await {
            Ok(()) => {
                if placeholder.is_some() {
                    self.edit().placeholder.remove(dept);
                }
                Ok(())
            }
            // Some are members already, or the placeholder is gone (a concurrent add dropped
            // it): the modify changed nothing, so add value by value.
            Err(LdapError::Rejected { rc: 20 | 16, .. }) => {
                self.add_member_dns_one_by_one(dept, &gdn, &dns).await
            }
            Err(e) => Err(e),
        }
    }

    /// The placeholder member value of the group `gdn`, to add (`true`) or delete.
    fn placeholder_mod(&self, gdn: &str, p: Placeholder, add: bool) -> Modification {
        let value = vec![match p {
            Placeholder::Own => gdn.to_owned(),
            Placeholder::Node => self.node.to_string(),
        }];
        match add {
            true => Modification::Add("member".into(), value),
            false => Modification::Delete("member".into(), value),
        }
    }

    /// Add members one request each, skipping those already in, then drop the placeholder.
    async fn add_member_dns_one_by_one(
        &self,
        dept: &str,
        gdn: &str,
        dns: &[String],
    ) -> Result<(), LdapError> {
        for d in dns {
            let add = Modification::Add("member".into(), vec![d.clone()]);
            ignore(self.pool.modify(gdn, vec![add]).await, &[20])?;
        }
        let had_placeholder = self.edit().placeholder.remove(dept);
        if let Some(p) = had_placeholder {
            ignore(
                self.pool
                    .modify(gdn, vec![self.placeholder_mod(gdn, p, false)])
                    .await,
                &[16],
            )?;
        }
        Ok(())
    }

    /// Remove people from a department group; an emptied group keeps the placeholder member.
    pub async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), LdapError> {
        if people.is_empty() {
            return Ok(());
        }
        let gdn = self.dept_dn(dept)?.to_string();
        let mut dns = Vec::new();
        for p in people {
            // A person already gone from the index has nothing to remove.
            if let Ok(d) = self.person_dn(p) {
                dns.push(d.to_string());
            }
        }
        self.remove_member_dns(dept, &gdn, dns).await
    }

    async fn remove_member_dns(
        &self,
        dept: &str,
        gdn: &str,
        dns: Vec<String>,
    ) -> Result<(), LdapError> {
        if dns.is_empty() {
            return Ok(());
        }
        let del = Modification::Delete("member".into(), dns.clone());
        match self.pool.modify(gdn, vec![del.clone()]).await {
            Ok(()) => Ok(()),
            // groupOfNames needs a member: the group's own DN holds the place.
            Err(LdapError::Rejected { rc: 65, .. }) => self
                .pool
                .modify(
                    gdn,
                    vec![self.placeholder_mod(gdn, Placeholder::Own, true), del],
                )
                .await
                .map(|_| {
                    let mut ix = self.edit();
                    ix.placeholder.insert(dept.to_string(), Placeholder::Own);
                }),
            // Some were not members: remove one by one, skipping those.
            Err(LdapError::Rejected { rc: 16, .. }) => {
                for d in dns {
                    Box::pin(self.remove_member_dns(dept, gdn, vec![d.clone()]))
                        .await
                        .or_else(|e| match e {
                            LdapError::Rejected { rc: 16, .. } => Ok(()),
                            e => Err(e),
                        })?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Lock the account (ppolicy) and take it out of every department group.
    pub async fn disable_person(&self, id: &str) -> Result<(), LdapError> {
        let dn = self.person_dn(id)?.to_string();
        if !self.lock_supported {
            return Err(LdapError::Rejected {
                dn,
                attribute: Some(LOCK_ATTR.into()),
                rc: 17,
                message: "the server has no ppolicy overlay, so accounts cannot be disabled; \
                          load it (with pwdLockout: TRUE in the applicable policy) or use \
                          deletion policy Delete or Retain"
                    .into(),
            });
        }
        self.pool
            .modify(
                &dn,
                vec![Modification::Replace(
                    LOCK_ATTR.into(),
                    vec![LOCK_VALUE.into()],
                )],
            )
            .await
            .map_err(lock_hint)?;
        self.leave_all_groups(&dn).await
    }

    async fn leave_all_groups(&self, dn: &str) -> Result<(), LdapError> {
        let groups = self.groups_with_member(dn).await?;
        let ids: HashMap<String, String> = self
            .lock()
            .depts
            .iter()
            .map(|(id, d)| (d.key(), id.clone()))
            .collect();
        for g in groups {
            let key = Dn::parse(&g).map(|d| d.key()).unwrap_or_default();
            let dept = ids.get(&key).cloned().unwrap_or_default();
            self.remove_member_dns(&dept, &g, vec![dn.to_string()])
                .await
                .or_else(|e| match e {
                    LdapError::Rejected { rc: 16, .. } | LdapError::NoSuchObject { .. } => Ok(()),
                    e => Err(e),
                })?;
        }
        Ok(())
    }

    /// Remove the lock (rehire).
    pub async fn enable_person(&self, id: &str) -> Result<(), LdapError> {
        let dn = self.person_dn(id)?.to_string();
        ignore(
            self.pool
                .modify(&dn, vec![Modification::Delete(LOCK_ATTR.into(), vec![])])
                .await,
            &[16],
        )
        .map_err(lock_hint)
    }

    /// Delete the entry (after taking it out of every group, for servers without refint).
    pub async fn delete_person(&self, id: &str) -> Result<(), LdapError> {
        let dn = self.person_dn(id)?.to_string();
        self.leave_all_groups(&dn).await?;
        ignore(self.pool.delete(&dn).await, &[32])?;
        self.edit().people.remove(id);
        Ok(())
    }

    /// Create a department group (and, in `OuTree`, its OU). Parents must exist first.
    pub async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<String, LdapError> {
        if name.is_empty() {
            return Err(LdapError::Rejected {
                dn: format!("(department {id})"),
                attribute: Some(GROUP_RDN.into()),
                rc: 64,
                message: "department name must not be empty".into(),
            });
        }
        let anchor = StoredAnchor::new(AnchorKind::Dept, &self.corp_id, id);
        if self.layout == Layout::OuTree {
            let ou = Dn::child(&self.ou_parent(parent), OU_RDN, name);
            let mut a = Attrs::new();
            a.insert("objectclass".to_string(), vec!["organizationalUnit".into()]);
            a.insert("ou".to_string(), vec![name.to_string()]);
            set_anchor(&mut a, &anchor);
            match self.pool.add(&ou.to_string(), &a).await {
                Ok(()) | Err(LdapError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            self.edit().dept_ous.insert(id.to_string(), ou);
        }
        let dn = Dn::child(&self.group_parent(parent)?, GROUP_RDN, name);
        let mut a = lower_attrs(attrs);
        a.remove("member");
        a.insert(GROUP_RDN.to_string(), vec![name.to_string()]);
        merge_class(&mut a, &["groupOfNames"]);
        set_anchor(&mut a, &anchor);
        let text = dn.to_string();
        a.insert("member".to_string(), vec![text.clone()]);
        self.pool.add(&text, &a).await?;
        let mut ix = self.edit();
        ix.depts.insert(id.to_string(), dn);
        ix.placeholder.insert(id.to_string(), Placeholder::Own);
        Ok(text)
    }

    /// Replace department attributes (not the name: see `move_dept`).
    pub async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), LdapError> {
        let mut changes = lower_attrs(changes);
        changes.remove(GROUP_RDN);
        let dn = self.dept_dn(id)?;
        let mods = self
            .replace_mods(&dn, changes, AnchorKind::Dept, id)
            .await?;
        self.pool.modify(&dn.to_string(), mods).await
    }

    /// Rename and/or move a department: one modrdn of its group (its nested subgroups move
    /// with it), and in `OuTree` one of its OU (people inside move with it).
    pub async fn move_dept(
        &self,
        id: &str,
        new_name: &str,
        new_parent: Option<&str>,
    ) -> Result<String, LdapError> {
        if self.layout == Layout::OuTree {
            let old_ou = self.lock().dept_ous.get(id).cloned();
            if let Some(old_ou) = old_ou {
                let parent = self.ou_parent(new_parent);
                let new_ou = Dn::child(&parent, OU_RDN, new_name);
                if new_ou != old_ou {
                    let sup =
                        (Some(&parent) != old_ou.parent().as_ref()).then(|| parent.to_string());
                    self.pool
                        .modify_dn(&old_ou.to_string(), &new_ou.rdn_string(), sup.as_deref())
                        .await?;
                    for (from, to) in self.rebase(&old_ou, &new_ou) {
                        self.repoint_members(&from, &to).await?;
                    }
                }
            }
        }
        let old = self.dept_dn(id)?;
        let parent = self.group_parent(new_parent)?;
        if parent.is_within(&old) {
            return Err(LdapError::Rejected {
                dn: old.to_string(),
                attribute: None,
                rc: 53,
                message: "a department cannot move below itself".into(),
            });
        }
        let new = Dn::child(&parent, GROUP_RDN, new_name);
        if new == old {
            return Ok(old.to_string());
        }
        let sup = (Some(&parent) != old.parent().as_ref()).then(|| parent.to_string());
        self.pool
            .modify_dn(&old.to_string(), &new.rdn_string(), sup.as_deref())
            .await?;
        self.rebase(&old, &new);
        Ok(new.to_string())
    }

    /// After a subtree modrdn: rewrite every indexed DN under `old` to sit under `new`.
    /// Returns the people whose DN changed (old, new).
    fn rebase(&self, old: &Dn, new: &Dn) -> Vec<(Dn, Dn)> {
        let mut moved_people = Vec::new();
        let mut guard = self.edit();
        let ix = &mut *guard;
        for d in ix.people.values_mut() {
            let Ok(dn) = Dn::parse(d) else { continue };
            if let Some(n) = dn.rebased(old, new) {
                *d = n.as_str().into();
                moved_people.push((dn, n));
            }
        }
        for map in [&mut ix.depts, &mut ix.dept_ous] {
            for d in map.values_mut() {
                if let Some(n) = d.rebased(old, new) {
                    *d = n;
                }
            }
        }
        moved_people
    }

    /// Delete a department group (and OU). Children must be gone first.
    pub async fn delete_dept(&self, id: &str) -> Result<(), LdapError> {
        let dn = self.dept_dn(id)?;
        ignore(self.pool.delete(&dn.to_string()).await, &[32])?;
        let ou = self.lock().dept_ous.get(id).cloned();
        if let Some(ou) = ou {
            ignore(self.pool.delete(&ou.to_string()).await, &[32])?;
        }
        let mut ix = self.edit();
        ix.depts.remove(id);
        ix.dept_ous.remove(id);
        ix.placeholder.remove(id);
        Ok(())
    }

    /// The DN currently indexed for a person.
    pub fn dn_of_person(&self, id: &str) -> Option<String> {
        self.lock().people.get(id).map(|d| d.to_string())
    }

    /// The DN currently indexed for a department group.
    pub fn dn_of_dept(&self, id: &str) -> Option<String> {
        self.lock().depts.get(id).map(|d| d.to_string())
    }

    /// The node as an Outbound source: OUs become departments (by `entryUUID`, so a renamed
    /// or moved OU stays the same department), `inetOrgPerson` entries people in the OU that
    /// holds them. With `since` (a `modifyTimestamp` high-water mark) only people modified at
    /// or after it come with attributes, and every person's `entryUUID` is listed apart (a
    /// cheap search) so removals show.
    pub async fn read_tree(
        &self,
        since: Option<&str>,
    ) -> Result<crate::directory::SourceTree, LdapError> {
        use crate::directory::{SourceDept, SourcePerson, SourceTree};
        const ATTRS: [&str; 3] = ["*", "entryUUID", "modifyTimestamp"];
        let base = self.node.to_string();
        let ous = self
            .pool
            .search(
                &base,
                Scope::Subtree,
                "(objectClass=organizationalUnit)",
                &ATTRS,
            )
            .await?;
        let mut by_dn: HashMap<String, String> = HashMap::new();
        let mut parsed: Vec<(Dn, RawEntry)> = Vec::new();
        for e in ous {
            let Ok(dn) = Dn::parse(&e.dn) else { continue };
            if dn.key() == self.node.key() {
                continue;
            }
            let Some(id) = e.first("entryUUID").map(str::to_string) else {
                return Err(LdapError::Unavailable(format!(
                    "{}: no entryUUID (the server must expose it)",
                    e.dn
                )));
            };
            by_dn.insert(dn.key(), id);
            parsed.push((dn, e));
        }
        // Parents before children: fewer RDNs first.
        parsed.sort_by_key(|(dn, _)| dn.len());
        let container =
            |dn: &Dn| -> Option<String> { dn.parent().and_then(|p| by_dn.get(&p.key()).cloned()) };
        let mut tree = SourceTree::default();
        for (dn, e) in &parsed {
            tree.departments.push(SourceDept {
                id: by_dn[&dn.key()].clone(),
                name: dn
                    .rdn_value("ou")
                    .or_else(|| e.first("ou").map(str::to_string))
                    .unwrap_or_default(),
                parent: container(dn),
                attrs: e.attrs.clone(),
            });
        }
        let filter = match since {
            Some(ts) => format!(
                "(&(objectClass=inetOrgPerson)(modifyTimestamp>={}))",
                escape_filter_value(ts)
            ),
            None => "(objectClass=inetOrgPerson)".to_string(),
        };
        let people = self
            .pool
            .search(&base, Scope::Subtree, &filter, &ATTRS)
            .await?;
        let mut stamp = since.map(str::to_string);
        for e in people {
            let Ok(dn) = Dn::parse(&e.dn) else { continue };
            let Some(id) = e.first("entryUUID").map(str::to_string) else {
                continue;
            };
            if let Some(m) = e.first("modifyTimestamp")
                && stamp.as_deref().is_none_or(|s| m > s)
            {
                stamp = Some(m.to_string());
            }
            tree.people.push(SourcePerson {
                id,
                key: e.dn.clone(),
                dept: container(&dn),
                attrs: e.attrs,
            });
        }
        if since.is_some() {
            let all = self
                .pool
                .search(
                    &base,
                    Scope::Subtree,
                    "(objectClass=inetOrgPerson)",
                    &["entryUUID"],
                )
                .await?;
            tree.all_people = Some(
                all.iter()
                    .filter_map(|e| {
                        let id = e.first("entryUUID")?.to_string();
                        let dept = Dn::parse(&e.dn).ok().and_then(|dn| container(&dn));
                        Some((id, dept))
                    })
                    .collect(),
            );
        }
        tree.stamp = stamp;
        Ok(tree)
    }

    /// Ids of all indexed departments (for membership diffs).
    pub fn dept_ids(&self) -> BTreeSet<String> {
        self.lock().depts.keys().cloned().collect()
    }
}

fn strip_anchor(attrs: &mut Attrs) {
    let key = ANCHOR_ATTR.to_ascii_lowercase();
    if attrs.get(&key).is_some_and(|mut v| v.any(is_anchor_value)) {
        let kept: Vec<String> = attrs
            .remove(&key)
            .unwrap_or_default()
            .into_iter()
            .filter(|x| !is_anchor_value(x))
            .collect();
        if !kept.is_empty() {
            attrs.insert(key, kept);
        }
    }
}

fn set_anchor(attrs: &mut Attrs, anchor: &StoredAnchor) {
    attrs.update(&ANCHOR_ATTR.to_ascii_lowercase(), |v| {
        v.retain(|x| !is_anchor_value(x));
        v.push(anchor.encode());
    });
}

fn merge_class(attrs: &mut Attrs, classes: &[&str]) {
    attrs.update("objectclass", |v| {
        for c in classes {
            if !v.iter().any(|x| x.eq_ignore_ascii_case(c)) {
                v.push(c.to_string());
            }
        }
    });
}

fn single(attrs: &Attrs, name: &str, id: &str) -> Result<String, LdapError> {
    match attrs.first(name) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(LdapError::Rejected {
            dn: format!("(person {id})"),
            attribute: Some(name.to_string()),
            rc: 64,
            message: format!("{name} is required to name the entry"),
        }),
    }
}

/// A server without the ppolicy overlay does not know the lock attribute: say so.
fn lock_hint(e: LdapError) -> LdapError {
    match e {
        LdapError::Rejected {
            dn,
            attribute: Some(a),
            rc: 17,
            message,
        } if a.eq_ignore_ascii_case(LOCK_ATTR) => LdapError::Rejected {
            dn,
            attribute: Some(a),
            rc: 17,
            message: format!(
                "{message}; disabling accounts needs the ppolicy overlay (with pwdLockout: TRUE in the applicable policy)"
            ),
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: Option<&str>, dn: &str) -> PersonEntry {
        PersonEntry {
            dn: dn.into(),
            uuid: None,
            id: id.map(str::to_string),
            attrs: Attrs::new(),
            digest: None,
            departments: Vec::new(),
            container: None,
            disabled: false,
        }
    }

    #[test]
    fn a_refreshed_index_forgets_the_gone_follows_the_moved_and_keeps_the_rest() {
        let mut people: HashMap<String, Box<str>> = [
            ("a", "uid=a,ou=people,dc=x"),
            ("b", "uid=b,ou=people,dc=x"),
            ("gone", "uid=gone,ou=people,dc=x"),
        ]
        .into_iter()
        .map(|(id, d)| (id.to_string(), d.into()))
        .collect();
        let read = [
            entry(Some("a"), "uid=a,ou=people,dc=x"),
            entry(Some("b"), "uid=b2,ou=people,dc=x"),
            entry(Some("new"), "uid=new,ou=people,dc=x"),
            entry(None, "uid=unlinked,ou=people,dc=x"),
        ];
        refresh_people(&mut people, &read);
        let mut got: Vec<(String, String)> = people
            .iter()
            .map(|(id, d)| (id.clone(), d.to_string()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a".to_string(), "uid=a,ou=people,dc=x".to_string()),
                ("b".into(), "uid=b2,ou=people,dc=x".into()),
                ("new".into(), "uid=new,ou=people,dc=x".into()),
            ]
        );
    }
}
