//! Role groups: one `groupOfNames` per DingTalk role, flat under `ou=roles,<node>`, named
//! `cn=<group name>-<role name>` and anchored `dingsync:role:<corpId>:<role id>` (so a
//! renamed role is a modrdn of the same entry). They live apart from the department groups
//! (`ou=groups`): a node read never takes them for departments, and the container is
//! created with the first role group, so a target without roles never gets one.
//!
//! Like department groups, an emptied role group holds its own DN as placeholder member
//! (`groupOfNames` needs one); it is never read as a person.

use std::collections::{BTreeSet, HashMap, HashSet};

use ldap3::Scope;

use super::{Store, ignore};
use crate::directory::Attrs;
use crate::directory::ldap::client::{LdapError, Modification};
use crate::directory::ldap::dn::{Dn, escape_filter_value};
use crate::directory::ldap::schema::{ANCHOR_ATTR, AnchorKind, GROUP_RDN, OU_RDN, StoredAnchor};

/// The container of role groups under the node.
pub const ROLES_OU: &str = "roles";

/// A role group as read: its DN, role id, name and the people (source ids) it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGroup {
    pub dn: String,
    pub id: String,
    pub name: String,
    pub members: BTreeSet<String>,
}

impl Store {
    fn roles_base(&self) -> Dn {
        Dn::child(&self.node, OU_RDN, ROLES_OU)
    }

    fn role_filter(&self) -> String {
        let anchor = StoredAnchor::new(AnchorKind::Role, &self.corp_id, "").encode();
        format!(
            "(&(objectClass=groupOfNames)({ANCHOR_ATTR}={}*))",
            escape_filter_value(&anchor)
        )
    }

    /// Every role group of this enterprise under `ou=roles` (none when it does not exist).
    pub async fn read_roles(&self) -> Result<Vec<RoleGroup>, LdapError> {
        let base = self.roles_base().to_string();
        let found = match self
            .pool
            .search(
                &base,
                Scope::OneLevel,
                &self.role_filter(),
                &[ANCHOR_ATTR, GROUP_RDN, "member"],
            )
            .await
        {
            Ok(f) => f,
            Err(LdapError::NoSuchObject { .. }) => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let by_dn = self.indexed_members(found.iter().flat_map(|e| e.get("member")));
        let mut unknown: HashMap<String, Option<String>> = HashMap::new();
        let mut out = vec![];
        for e in found {
            let Ok(Some(a)) = StoredAnchor::from_values(e.get(ANCHOR_ATTR)) else {
                continue;
            };
            if a.kind != AnchorKind::Role || a.corp_id != self.corp_id {
                continue;
            }
            let Ok(dn) = Dn::parse(&e.dn) else { continue };
            let own = dn.key();
            let mut members = BTreeSet::new();
            for m in e.get("member") {
                let Ok(mdn) = Dn::parse(m) else { continue };
                let key = mdn.key();
                if key == own {
                    continue;
                }
                let id = match by_dn.get(&key) {
                    Some(id) => Some(id.clone()),
                    None => match unknown.get(&key) {
                        Some(id) => id.clone(),
                        None => {
                            let id = self.person_id_at(m).await?;
                            unknown.insert(key, id.clone());
                            id
                        }
                    },
                };
                members.extend(id);
            }
            out.push(RoleGroup {
                name: dn.rdn_value(GROUP_RDN).unwrap_or_default(),
                dn: e.dn,
                id: a.id,
                members,
            });
        }
        Ok(out)
    }

    /// The indexed people among `members`, by DN key. Only index entries whose first RDN
    /// value is a member's are parsed: a role read follows every event batch, and parsing
    /// every indexed DN would make it a pass over the whole node. A member this misses (an
    /// escaped comma in its RDN) is read by [`Store::person_id_at`] instead.
    fn indexed_members<'a>(
        &self,
        members: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, String> {
        let first_value = |dn: &str| {
            let rdn = dn.split(',').next()?;
            Some(rdn.split_once('=')?.1.trim().to_lowercase())
        };
        let firsts: HashSet<String> = members.filter_map(first_value).collect();
        (self.lock().people.iter())
            .filter(|(_, dn)| first_value(dn).is_some_and(|v| firsts.contains(&v)))
            .filter_map(|(id, dn)| Some((Dn::parse(dn).ok()?.key(), id.clone())))
            .collect()
    }

    /// The source id of the person at `dn` (a member the index does not know yet), indexing
    /// it; `None` when the entry is gone or not this enterprise's person.
    async fn person_id_at(&self, dn: &str) -> Result<Option<String>, LdapError> {
        let Some(e) = self.pool.read(dn, &[ANCHOR_ATTR, "objectClass"]).await? else {
            return Ok(None);
        };
        match StoredAnchor::from_values(e.get(ANCHOR_ATTR)) {
            Ok(Some(a)) if a.kind == AnchorKind::User && a.corp_id == self.corp_id => {
                if let Ok(parsed) = Dn::parse(dn) {
                    (self.edit().people)
                        .entry(a.id.clone())
                        .or_insert(parsed.as_str().into());
                }
                Ok(Some(a.id))
            }
            _ => Ok(None),
        }
    }

    async fn role_dn(&self, id: &str) -> Result<Dn, LdapError> {
        let filter = format!(
            "(&(objectClass=groupOfNames)({ANCHOR_ATTR}={}))",
            escape_filter_value(&StoredAnchor::new(AnchorKind::Role, &self.corp_id, id).encode())
        );
        let base = self.roles_base().to_string();
        let found = self
            .pool
            .search(&base, Scope::OneLevel, &filter, &["1.1"])
            .await?;
        match found.first().map(|e| Dn::parse(&e.dn)) {
            Some(Ok(dn)) => Ok(dn),
            _ => Err(LdapError::NoSuchObject {
                dn: format!("(role {id})"),
            }),
        }
    }

    fn member_dns(&self, people: &[String]) -> Vec<String> {
        let ix = self.lock();
        people
            .iter()
            .filter_map(|p| ix.people.get(p).map(|d| d.to_string()))
            .collect()
    }

    /// Create `ou=roles` (when missing) and the role's group.
    pub async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<String, LdapError> {
        if name.is_empty() {
            return Err(LdapError::Rejected {
                dn: format!("(role {id})"),
                attribute: Some(GROUP_RDN.into()),
                rc: 64,
                message: "role name must not be empty".into(),
            });
        }
        let base = self.roles_base();
        let mut ou = Attrs::new();
        ou.insert("objectclass".to_string(), vec!["organizationalUnit".into()]);
        ou.insert("ou".to_string(), vec![ROLES_OU.to_string()]);
        match self.pool.add(&base.to_string(), &ou).await {
            Ok(()) | Err(LdapError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        let dn = Dn::child(&base, GROUP_RDN, name).to_string();
        let mut dns = self.member_dns(members);
        if dns.is_empty() {
            dns.push(dn.clone());
        }
        let mut a = Attrs::new();
        a.insert("objectclass".to_string(), vec!["groupOfNames".into()]);
        a.insert(GROUP_RDN.to_string(), vec![name.to_string()]);
        a.insert(
            ANCHOR_ATTR.to_ascii_lowercase(),
            vec![StoredAnchor::new(AnchorKind::Role, &self.corp_id, id).encode()],
        );
        a.insert("member".to_string(), dns);
        self.pool.add(&dn, &a).await?;
        Ok(dn)
    }

    /// Rename a role's group in place (modrdn).
    pub async fn rename_role(&self, id: &str, name: &str) -> Result<(), LdapError> {
        let dn = self.role_dn(id).await?;
        let new = Dn::child(&self.roles_base(), GROUP_RDN, name);
        let rdn = new.rdn_string();
        self.pool.modify_dn(&dn.to_string(), &rdn, None).await
    }

    /// Add and remove members; the group's own DN holds the place of the last one.
    pub async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), LdapError> {
        let gdn = self.role_dn(id).await?.to_string();
        let add = self.member_dns(add);
        let remove = self.member_dns(remove);
        if !add.is_empty() {
            let with_placeholder = vec![
                Modification::Add("member".into(), add.clone()),
                Modification::Delete("member".into(), vec![gdn.clone()]),
            ];
            match self.pool.modify(&gdn, with_placeholder).await {
                Ok(()) => {}
                // No placeholder there (16), or some are members already (20): value by value.
                Err(LdapError::Rejected { rc: 16 | 20, .. }) => {
                    for d in &add {
                        let one = Modification::Add("member".into(), vec![d.clone()]);
                        ignore(self.pool.modify(&gdn, vec![one]).await, &[20])?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for d in remove {
            let del = Modification::Delete("member".into(), vec![d]);
            match self.pool.modify(&gdn, vec![del.clone()]).await {
                Ok(()) | Err(LdapError::Rejected { rc: 16, .. }) => {}
                Err(LdapError::Rejected { rc: 65, .. }) => {
                    let keep = Modification::Add("member".into(), vec![gdn.clone()]);
                    self.pool.modify(&gdn, vec![keep, del]).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Delete a role's group (its members' entries are untouched).
    pub async fn delete_role(&self, id: &str) -> Result<(), LdapError> {
        let dn = self.role_dn(id).await?;
        ignore(self.pool.delete(&dn.to_string()).await, &[32])
    }

    /// Role groups holding `dn` as member (for a leaver, a deleted or a renamed person).
    pub(super) async fn role_groups_with_member(&self, dn: &str) -> Result<Vec<String>, LdapError> {
        let filter = format!(
            "(&(objectClass=groupOfNames)(member={}))",
            escape_filter_value(dn)
        );
        let base = self.roles_base().to_string();
        match self
            .pool
            .search(&base, Scope::OneLevel, &filter, &["1.1"])
            .await
        {
            Ok(found) => Ok(found.into_iter().map(|e| e.dn).collect()),
            Err(LdapError::NoSuchObject { .. }) => Ok(vec![]),
            Err(e) => Err(e),
        }
    }
}
