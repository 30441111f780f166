//! Reading an AD node: one paged search for users and groups, `member` values fetched range by
//! range, and the entries sorted into this target's people and departments, the unlinked
//! candidates and what belongs to someone else.

use std::collections::{BTreeSet, HashMap};

use ldap3::Scope;

use super::account::{guid_string, is_leaver, wanted_cn};
use super::{ANCHOR_ATTR, AdError, AdStore, Index, PersonRef};
use crate::directory::ldap::client::RawEntry;
use crate::directory::ldap::dn::Dn;
use crate::directory::ldap::schema::{AnchorKind, StoredAnchor};
use crate::directory::{Attrs, DeptEntry, Name, PersonEntry, Snapshot};

/// Attributes of AD's own bookkeeping: never compared with what a mapping wants, so they are
/// left out of what a read hands the engine.
const BOOKKEEPING: [&str; 7] = [
    "objectclass",
    "distinguishedname",
    "name",
    "memberof",
    "usnchanged",
    "usncreated",
    "whenchanged",
];

/// A node's entries by kind.
pub(super) struct Searched {
    users: Vec<RawEntry>,
    groups: Vec<Group>,
    ous: Vec<RawEntry>,
}

/// What a read found that sorting a person needs: the department groups each member DN (key)
/// is in, and the department of each OU (key).
struct Found<'a> {
    member_of: &'a HashMap<String, Vec<String>>,
    containers: &'a HashMap<String, String>,
}

/// The members of one group as read, all ranges joined.
pub(super) struct Group {
    pub dn: Dn,
    pub entry: RawEntry,
    pub members: Vec<String>,
}

impl AdStore {
    /// Every user and group under the node, `member` values complete.
    pub(super) async fn search_node(&self) -> Result<Searched, AdError> {
        let ranged = format!("member;range=0-{}", self.range_step - 1);
        let entries = self
            .pool
            .search(
                self.node.as_str(),
                Scope::Subtree,
                "(|(&(objectClass=user)(!(objectClass=computer)))(objectClass=group)\
                 (objectClass=organizationalUnit))",
                &["*", "objectGUID", "pwdLastSet", &ranged],
            )
            .await?;
        let mut users = Vec::new();
        let mut groups = Vec::new();
        let mut ous = Vec::new();
        for e in entries {
            let class = e.get("objectclass");
            if class.contains("group") {
                groups.push(e);
            } else if class.contains("organizationalUnit") {
                ous.push(e);
            } else {
                users.push(e);
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for entry in groups {
            out.push(self.all_members(entry).await?);
        }
        Ok(Searched {
            users,
            groups: out,
            ous,
        })
    }

    /// The account names held outside the node: `sAMAccountName` is unique in the whole
    /// domain (users, groups and computers alike), so none of them can be given to anyone.
    async fn names_elsewhere(&self) -> Result<Vec<String>, AdError> {
        let entries = self
            .pool
            .search(
                self.domain.as_str(),
                Scope::Subtree,
                "(sAMAccountName=*)",
                &["sAMAccountName"],
            )
            .await?;
        Ok(entries
            .into_iter()
            .filter(|e| Dn::parse(&e.dn).is_ok_and(|d| !d.is_within(&self.node)))
            .filter_map(|e| e.first("samaccountname").map(str::to_owned))
            .collect())
    }

    /// A group's `member` values: AD hands out at most a range of them per request
    /// (`member;range=0-1499`, the last range ending in `*`), so the rest are asked for range
    /// by range until the last one.
    async fn all_members(&self, mut entry: RawEntry) -> Result<Group, AdError> {
        let dn = Dn::parse(&entry.dn).map_err(|source| AdError::BadDn {
            what: format!("group {:?}", entry.dn),
            source,
        })?;
        let mut members = Vec::new();
        let mut next = take_members(&mut entry.attrs, &mut members);
        while let Some(from) = next {
            let ask = format!("member;range={from}-{}", from + self.range_step - 1);
            let Some(mut more) = self.pool.read(&entry.dn, &[ask.as_str()]).await? else {
                return Err(AdError::Incomplete(format!(
                    "{}: the group went away while its members were read",
                    entry.dn
                )));
            };
            let before = members.len();
            next = take_members(&mut more.attrs, &mut members);
            if members.len() == before && next.is_some() {
                return Err(AdError::Incomplete(format!(
                    "{}: member range from {from} came back empty",
                    entry.dn
                )));
            }
        }
        Ok(Group { dn, entry, members })
    }

    /// Read the node into a snapshot and rebuild the id → entry index from it.
    pub(super) async fn read(&self) -> Result<Snapshot, AdError> {
        let Searched { users, groups, ous } = self.search_node().await?;
        let mut snap = Snapshot::default();
        let mut index = Index::default();
        let mut containers = HashMap::new();
        for ou in &ous {
            if let (Ok(Some(id)), Ok(dn)) =
                (self.anchor_of(ou, AnchorKind::Dept), Dn::parse(&ou.dn))
            {
                containers.insert(dn.key(), id.clone());
                index.dept_ous.insert(id, dn);
            }
        }
        let mut member_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut parents: HashMap<String, String> = HashMap::new();
        let mut depts = Vec::new();
        for g in &groups {
            match self.anchor_of(&g.entry, AnchorKind::Dept) {
                Ok(Some(id)) => {
                    for m in &g.members {
                        if let Ok(m) = Dn::parse(m) {
                            member_of.entry(m.key()).or_default().push(id.clone());
                        }
                    }
                    depts.push((g, id));
                }
                Ok(None) => {}
                Err(why) => snap.skipped.push((g.entry.dn.clone(), why)),
            }
        }
        for (g, id) in &depts {
            if let Some(p) = member_of.get(&g.dn.key()).and_then(|ps| ps.first()) {
                parents.insert(id.clone(), p.clone());
            }
        }
        for (g, id) in depts {
            let parent = parents.get(&id).cloned();
            let name = g.entry.first("cn").unwrap_or_default();
            snap.departments.push(DeptEntry {
                key: g.entry.dn.clone(),
                id: id.clone(),
                name: wanted_cn(name, &id).to_string(),
                parent: parent.clone(),
                attrs: user_attrs(&g.entry.attrs, &["member", "cn", "objectguid"]),
            });
            index.dept_parent.insert(id.clone(), parent);
            index.depts.insert(id, g.dn.clone());
        }
        let found = Found {
            member_of: &member_of,
            containers: &containers,
        };
        for e in users {
            self.sort_person(e, &found, &mut snap, &mut index);
        }
        snap.taken_names.extend(self.names_elsewhere().await?);
        *self.index.lock().unwrap_or_else(|e| e.into_inner()) = index;
        Ok(snap)
    }

    /// One user entry into the snapshot (people, unlinked or skipped) and the index.
    fn sort_person(&self, e: RawEntry, found: &Found<'_>, snap: &mut Snapshot, index: &mut Index) {
        let sam = e.first("samaccountname").unwrap_or_default().to_string();
        let id = match self.anchor_of(&e, AnchorKind::User) {
            Ok(id) => id,
            Err(why) => {
                snap.taken_names.push(sam);
                snap.skipped.push((e.dn, why));
                return;
            }
        };
        let Ok(dn) = Dn::parse(&e.dn) else {
            snap.skipped
                .push((e.dn.clone(), "the DN does not parse".into()));
            return;
        };
        let departments: BTreeSet<String> = (found.member_of)
            .get(&dn.key())
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let uac: u32 = e
            .first("useraccountcontrol")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let guid = e.first("objectguid").and_then(guid_of);
        let mut attrs = user_attrs(&e.attrs, &["objectguid"]);
        if let Some(cn) = e.first("cn") {
            attrs.insert("cn", vec![wanted_cn(cn, &sam).to_string()]);
        }
        // In AD's text form: the entry's identity across renames and moves.
        if let Some(g) = &guid {
            attrs.insert("objectguid", vec![g.clone()]);
        }
        let entry = PersonEntry {
            key: e.dn.clone(),
            id: id.clone(),
            attrs,
            digest: None,
            departments: departments.into_iter().collect(),
            container: (dn.parent()).and_then(|p| found.containers.get(&p.key()).cloned()),
            disabled: is_leaver(uac),
        };
        match id {
            Some(id) => {
                index.people.insert(id, PersonRef { dn, guid });
                snap.people.push(entry);
            }
            None => snap.unlinked.push(entry),
        }
    }

    /// The source id in an entry's anchor: `Ok(None)` when it has none (or one of another
    /// kind), `Err` with the reason when it belongs to another enterprise.
    fn anchor_of(&self, e: &RawEntry, kind: AnchorKind) -> Result<Option<String>, String> {
        let found = StoredAnchor::from_values(e.get(ANCHOR_ATTR))?;
        match found {
            Some(a) if a.kind == kind && a.corp_id == self.corp_id => Ok(Some(a.id)),
            Some(a) if a.corp_id != self.corp_id => {
                Err(format!("anchored to another enterprise ({})", a.corp_id))
            }
            Some(a) => Err(format!(
                "anchor of a {:?} on the wrong kind of entry",
                a.kind
            )),
            None => Ok(None),
        }
    }
}

/// An entry's attributes as the engine compares them: without the anchor, AD's bookkeeping,
/// the `member` ranges and the names in `also`.
fn user_attrs(attrs: &Attrs, also: &[&str]) -> Attrs {
    let anchor = ANCHOR_ATTR.to_ascii_lowercase();
    attrs
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k != anchor
                && !BOOKKEEPING.contains(&k)
                && !also.contains(&k)
                && !k.starts_with("member;")
        })
        .map(|(k, v)| (Name::new(k.as_str()), v.to_vec()))
        .collect()
}

/// `objectGUID` as read: hex when it arrived as binary, the raw bytes when they happened to
/// be valid text.
pub(super) fn guid_of(value: &str) -> Option<String> {
    match hex::decode(value) {
        Ok(raw) if value.len() == 32 => guid_string(&raw),
        _ => guid_string(value.as_bytes()),
    }
}

/// Moves a `member` range's values out of `attrs` into `into`; the start of the next range,
/// or `None` after the last one (or when the server sent the values unranged).
fn take_members(attrs: &mut Attrs, into: &mut Vec<String>) -> Option<usize> {
    let key = attrs
        .keys()
        .find(|k| k.as_str() == "member" || k.as_str().starts_with("member;range="))
        .cloned()?;
    into.extend(attrs.remove(key.as_str()).unwrap_or_default());
    let (_, end) = key
        .as_str()
        .strip_prefix("member;range=")?
        .split_once('-')?;
    if end == "*" {
        return None;
    }
    end.parse::<usize>().ok().map(|e| e + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ranges_are_followed_to_the_end() {
        let mut got = Vec::new();
        let mut a: Attrs = [("member;range=0-1", vec!["a".to_string(), "b".into()])].into();
        assert_eq!(take_members(&mut a, &mut got), Some(2));
        let mut a: Attrs = [("member;range=2-*", vec!["c".to_string()])].into();
        assert_eq!(take_members(&mut a, &mut got), None);
        let mut a: Attrs = [("member", vec!["d".to_string()])].into();
        assert_eq!(take_members(&mut a, &mut got), None);
        assert_eq!(got, ["a", "b", "c", "d"]);
        assert!(a.is_empty());
    }
}
