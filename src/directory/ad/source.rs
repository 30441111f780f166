//! An AD node as the source of an Outbound target: its OUs become departments and its users
//! people, identified by `objectGUID` (stable across renames and moves). Changes are found by
//! polling `uSNChanged`, the DC's own change counter: unlike `whenChanged` (one-second
//! resolution) it never misses two changes within a second. It is counted per DC, so the
//! target must keep talking to one DC (the URL names it); DirSync is not used, as it needs
//! the replication right no ordinary service account has.

use std::collections::HashMap;

use ldap3::Scope;

use super::read::guid_of;
use super::{AdError, AdStore};
use crate::directory::ldap::client::RawEntry;
use crate::directory::ldap::dn::Dn;
use crate::directory::{Name, SourceDept, SourcePerson, SourceTree};

const USERS: &str = "(&(objectClass=user)(!(objectClass=computer)))";

/// An entry's `objectGUID` in AD's text form.
fn guid(e: &RawEntry) -> Result<String, AdError> {
    (e.first("objectguid").and_then(guid_of))
        .ok_or_else(|| AdError::Incomplete(format!("{}: no objectGUID", e.dn)))
}

/// The entry's attributes, `objectGUID` in text form.
fn attrs_of(e: &RawEntry, id: &str) -> crate::directory::Attrs {
    let mut attrs = e.attrs.clone();
    attrs.insert(Name::new("objectguid"), vec![id.to_string()]);
    attrs
}

impl AdStore {
    /// The OUs under the node, parents first, with an id by DN key for placing people.
    async fn source_depts(&self) -> Result<(Vec<SourceDept>, HashMap<String, String>), AdError> {
        let ous = (self.pool)
            .search(
                self.node.as_str(),
                Scope::Subtree,
                "(objectClass=organizationalUnit)",
                &["*", "objectGUID"],
            )
            .await?;
        let mut by_dn = HashMap::new();
        let mut parsed = Vec::new();
        for e in ous {
            let Ok(dn) = Dn::parse(&e.dn) else { continue };
            if dn.key() != self.node.key() {
                by_dn.insert(dn.key(), guid(&e)?);
                parsed.push((dn, e));
            }
        }
        parsed.sort_by_key(|(dn, _)| dn.len());
        let depts = (parsed.iter())
            .map(|(dn, e)| {
                let id = by_dn[&dn.key()].clone();
                SourceDept {
                    name: dn.rdn_value("ou").unwrap_or_default(),
                    parent: dn.parent().and_then(|p| by_dn.get(&p.key()).cloned()),
                    attrs: attrs_of(e, &id),
                    id,
                }
            })
            .collect();
        Ok((depts, by_dn))
    }

    /// The node as an Outbound source; with `since` (a `uSNChanged` from an earlier read),
    /// only the people changed after it, and every person's id and container.
    pub(super) async fn read_tree(&self, since: Option<&str>) -> Result<SourceTree, AdError> {
        let (departments, by_dn) = self.source_depts().await?;
        let container = |dn: &str| -> Option<String> {
            let dn = Dn::parse(dn).ok()?;
            by_dn.get(&dn.parent()?.key()).cloned()
        };
        let after: Option<u64> = match since {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| AdError::Config(format!("poll mark {s:?} is not a uSNChanged")))?,
            ),
            None => None,
        };
        let filter = match after {
            Some(n) => format!("(&{USERS}(uSNChanged>={}))", n + 1),
            None => USERS.to_string(),
        };
        let node = self.node.as_str();
        let found = (self.pool)
            .search(node, Scope::Subtree, &filter, &["*", "objectGUID"])
            .await?;
        let mut tree = SourceTree {
            departments,
            stamp: after.map(|n| n.to_string()),
            ..Default::default()
        };
        let mut high = after.unwrap_or(0);
        for e in found {
            let id = guid(&e)?;
            let usn = e.first("usnchanged").and_then(|v| v.parse().ok());
            high = high.max(usn.unwrap_or(0));
            tree.people.push(SourcePerson {
                key: e.dn.clone(),
                dept: container(&e.dn),
                attrs: attrs_of(&e, &id),
                id,
            });
        }
        if high > 0 {
            tree.stamp = Some(high.to_string());
        }
        if after.is_some() {
            let all = (self.pool)
                .search(node, Scope::Subtree, USERS, &["objectGUID"])
                .await?;
            let mut everyone = Vec::with_capacity(all.len());
            for e in &all {
                everyone.push((guid(e)?, container(&e.dn)));
            }
            tree.all_people = Some(everyone);
        }
        Ok(tree)
    }
}
