//! Targeted reads: the entries of given anchors, account names and match values, found by
//! search filters (`businessCategory` and the other attributes are equality-indexed on a
//! production server) instead of a read of the whole node. An event batch then costs
//! directory work in proportion to what it touches.
//!
//! Each entry comes out exactly as a full read ([`Store::read`]) gives it: the same
//! attributes, the departments it is a direct member of (one `member=<dn>` search per
//! person), a department's parent and a person's container (the entry above it, read when
//! the search did not return it).

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, stream};
use ldap3::{Scope, ldap_escape};

use super::{Index, OPERATIONAL, Snapshot, Store, members::Memberships, read_people};
use crate::directory::{
    Anchors,
    ldap::{
        client::{LdapError, RawEntry},
        dn::Dn,
        schema::{ANCHOR_ATTR, AnchorKind, PERSON_RDN, StoredAnchor},
    },
};

/// Assertions OR-ed into one filter: keeps each request well within a server's limits.
const CHUNK: usize = 100;
/// Membership searches in flight at once (the pool multiplexes them).
const PARALLEL: usize = 8;

/// The kind of entry, by the same precedence a full read sorts entries by.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    Person,
    Group,
    Unit,
    Other,
}

fn class_of(e: &RawEntry) -> Class {
    let has = |c: &str| e.get("objectClass").any(|x| x.eq_ignore_ascii_case(c));
    if has("inetOrgPerson") {
        Class::Person
    } else if has("groupOfNames") {
        Class::Group
    } else if has("organizationalUnit") {
        Class::Unit
    } else {
        Class::Other
    }
}

/// An attribute description a filter may carry; anything else cannot match and is not sent.
fn is_attr_name(a: &str) -> bool {
    a.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ';' | '.'))
}

fn assertion(attr: &str, value: &str) -> String {
    format!("({attr}={})", ldap_escape(value))
}

impl Store {
    /// The entries `anchors` asks for, as a full read would give them. The index learns
    /// (or forgets) only the entries asked for or read; the rest of it stays as it was.
    pub async fn read_some(&self, anchors: &Anchors) -> Result<Snapshot, LdapError> {
        let edits = self.lock().edits;
        let mut raw = self.search_anchored(anchors).await?;
        raw.extend(self.search_holders(anchors).await?);
        let mut seen = HashSet::new();
        raw.retain(|e| seen.insert(e.dn.to_ascii_lowercase()));
        let mut snap = Snapshot::default();
        let mut index = Index::default();
        let sorted = self.sort_entries(raw, &mut snap.skipped);
        let people: Vec<Dn> = sorted.people.iter().map(|p| p.0.clone()).collect();
        let member_of = self.memberships(&people, &mut index).await?;
        // Its members are those of the groups read only: each person's come from the search.
        let _ = self.read_departments(&sorted, &mut snap, &mut index);
        read_people(sorted, member_of, None, &mut snap);
        for p in &snap.people {
            if let Some(id) = &p.id {
                index.people.insert(id.clone(), p.dn.as_str().into());
            }
        }
        self.resolve_above(&mut snap, &mut index).await?;
        self.merge_index(index, anchors, &snap, edits);
        Ok(snap)
    }

    /// People and departments (groups and OUs) by their anchor values.
    async fn search_anchored(&self, anchors: &Anchors) -> Result<Vec<RawEntry>, LdapError> {
        let anchor = |kind, id: &String| {
            assertion(
                ANCHOR_ATTR,
                &StoredAnchor::new(kind, &self.corp_id, id).encode(),
            )
        };
        let assertions: Vec<String> = (anchors.people.iter())
            .map(|id| anchor(AnchorKind::User, id))
            .chain(
                anchors
                    .departments
                    .iter()
                    .map(|id| anchor(AnchorKind::Dept, id)),
            )
            .collect();
        self.search_any(
            "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames)(objectClass=organizationalUnit))",
            &assertions,
        )
        .await
    }

    /// Person entries holding a match value, a referring value (`held`), or an account name
    /// (as the name attribute or as their `uid`, which names the entries a read leaves alone).
    async fn search_holders(&self, anchors: &Anchors) -> Result<Vec<RawEntry>, LdapError> {
        let mut assertions: Vec<String> = (anchors.values.iter().chain(&anchors.held))
            .filter(|(attr, _)| is_attr_name(attr))
            .map(|(attr, value)| assertion(attr, value))
            .collect();
        for name in &anchors.names {
            if is_attr_name(&anchors.name_attr) && anchors.name_attr != PERSON_RDN {
                assertions.push(assertion(&anchors.name_attr, name));
            }
            assertions.push(assertion(PERSON_RDN, name));
        }
        self.search_any("(objectClass=inetOrgPerson)", &assertions)
            .await
    }

    /// Entries of `class` matching any of `assertions`, `CHUNK` assertions per search.
    async fn search_any(
        &self,
        class: &str,
        assertions: &[String],
    ) -> Result<Vec<RawEntry>, LdapError> {
        let base = self.node.to_string();
        let mut out = Vec::new();
        for chunk in assertions.chunks(CHUNK) {
            let filter = format!("(&{class}(|{}))", chunk.concat());
            out.extend(
                self.pool
                    .search(&base, Scope::Subtree, &filter, &OPERATIONAL)
                    .await?,
            );
        }
        Ok(out)
    }

    /// The department groups each person is a direct member of, by the person's DN key; the
    /// groups found are indexed (the writes that take people out of them need their DNs).
    async fn memberships(
        &self,
        people: &[Dn],
        index: &mut Index,
    ) -> Result<Memberships, LdapError> {
        // Owned items: a stream over borrowed ones would not be `Send` for every lifetime.
        let people: Vec<(String, String)> =
            people.iter().map(|dn| (dn.key(), dn.to_string())).collect();
        let found: Vec<Result<(String, Vec<RawEntry>), LdapError>> = stream::iter(people)
            .map(|(key, dn)| self.groups_of(key, dn))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut member_of = HashMap::new();
        for result in found {
            let (key, groups) = result?;
            let mut ids = Vec::new();
            for g in groups {
                if let Some(id) = self.own_dept(&g, Class::Group)
                    && let Ok(dn) = Dn::parse(&g.dn)
                {
                    index.depts.insert(id.clone(), dn);
                    ids.push(id);
                }
            }
            member_of.insert(key, ids);
        }
        Ok(Memberships::ByKey(member_of))
    }

    /// The groups holding `dn` as a member (with the member's key, to sort them back).
    async fn groups_of(
        &self,
        key: String,
        dn: String,
    ) -> Result<(String, Vec<RawEntry>), LdapError> {
        let filter = format!(
            "(&(objectClass=groupOfNames)(member={}))",
            ldap_escape(dn.as_str())
        );
        let attrs = ["objectClass", ANCHOR_ATTR];
        let groups = (self.pool)
            .search(&self.node.to_string(), Scope::Subtree, &filter, &attrs)
            .await?;
        Ok((key, groups))
    }

    /// The department id of an entry of `class` carrying this enterprise's department anchor.
    fn own_dept(&self, e: &RawEntry, class: Class) -> Option<String> {
        if class_of(e) != class {
            return None;
        }
        let a = StoredAnchor::from_values(e.get(ANCHOR_ATTR)).ok()??;
        (a.kind == AnchorKind::Dept && a.corp_id == self.corp_id).then_some(a.id)
    }

    /// A department's parent group and a person's container OU when the search did not
    /// return them: read the entry above (once each).
    async fn resolve_above(&self, snap: &mut Snapshot, index: &mut Index) -> Result<(), LdapError> {
        let mut cache: HashMap<String, Option<String>> = HashMap::new();
        for d in snap.departments.iter_mut().filter(|d| d.parent.is_none()) {
            let above = Dn::parse(&d.dn).ok().and_then(|dn| dn.parent());
            if let Some(above) = above.filter(|a| *a != self.groups_base) {
                d.parent = self.dept_at(&above, Class::Group, &mut cache).await?;
                if let Some(id) = &d.parent {
                    index.depts.insert(id.clone(), above);
                }
            }
        }
        for p in snap.people.iter_mut().chain(snap.unlinked.iter_mut()) {
            if p.container.is_some() {
                continue;
            }
            let above = Dn::parse(&p.dn).ok().and_then(|dn| dn.parent());
            if let Some(above) = above.filter(|a| *a != self.people_base) {
                p.container = self.dept_at(&above, Class::Unit, &mut cache).await?;
                if let Some(id) = &p.container {
                    index.dept_ous.insert(id.clone(), above);
                }
            }
        }
        Ok(())
    }

    /// The department id anchored on the entry at `dn` when it is of `class`.
    async fn dept_at(
        &self,
        dn: &Dn,
        class: Class,
        cache: &mut HashMap<String, Option<String>>,
    ) -> Result<Option<String>, LdapError> {
        if !dn.is_within(&self.node) || *dn == self.node {
            return Ok(None);
        }
        let key = format!("{}|{}", class as u8, dn.key());
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
        let entry = self
            .pool
            .read(&dn.to_string(), &["objectClass", ANCHOR_ATTR])
            .await?;
        let id = entry.and_then(|e| self.own_dept(&e, class));
        cache.insert(key, id.clone());
        Ok(id)
    }

    /// Fold what a targeted read indexed into the store's index: anchors asked for and not
    /// found are forgotten, entries read replace theirs, everything else stays. As in
    /// [`Store::read`], a write of this store meanwhile wins: its index changes stay.
    fn merge_index(&self, read: Index, anchors: &Anchors, snap: &Snapshot, edits: u64) {
        let mut ix = self.lock();
        if ix.edits != edits {
            return;
        }
        for id in &anchors.people {
            ix.people.remove(id);
        }
        for id in &anchors.departments {
            ix.depts.remove(id);
            ix.dept_ous.remove(id);
        }
        // Groups read whole: their placeholder state is known now.
        for id in anchors
            .departments
            .iter()
            .chain(snap.departments.iter().map(|d| &d.id))
        {
            ix.placeholder.remove(id);
        }
        ix.people.extend(read.people);
        ix.depts.extend(read.depts);
        ix.dept_ous.extend(read.dept_ous);
        ix.placeholder.extend(read.placeholder);
    }
}
