//! Departments as security groups under `OU=groups`, nested by `member`: a department's group
//! is a member of its parent's group.

use super::account::suffixed_cn;
use super::{ANCHOR_ATTR, AdError, AdStore};
use crate::directory::Attrs;
use crate::directory::ldap::client::{LdapError, Modification};
use crate::directory::ldap::dn::Dn;
use crate::directory::ldap::schema::{AnchorKind, StoredAnchor};

/// Attributes of a group dingsync owns: a department mapping's values for them are ignored.
const OWNED: [&str; 6] = [
    "objectclass",
    "admindescription",
    "member",
    "cn",
    "grouptype",
    "samaccountname",
];

impl AdStore {
    /// Add `dn`'s entry, or, when a group of that name exists, the same entry named
    /// `<name> (<id>)`; the DN it got.
    async fn add_group(&self, name: &str, id: &str, attrs: &Attrs) -> Result<Dn, AdError> {
        let dn = Dn::child(&self.groups_base, "CN", name);
        match self.pool.add(dn.as_str(), attrs).await {
            Ok(()) => Ok(dn),
            Err(LdapError::AlreadyExists { .. }) => {
                let dn = Dn::child(&self.groups_base, "CN", &suffixed_cn(name, id));
                self.pool.add(dn.as_str(), attrs).await?;
                Ok(dn)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Create a department's group (global security, AD's default type) and make it a
    /// member of its parent's.
    pub(super) async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), AdError> {
        let parent_dn = parent.map(|p| self.dept(p)).transpose()?;
        let mut attrs: Attrs = (attrs.iter())
            .filter(|(k, v)| !v.is_empty() && !OWNED.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_vec()))
            .collect();
        attrs.insert("objectclass", vec!["top".into(), "group".into()]);
        let anchor = StoredAnchor::new(AnchorKind::Dept, self.corp_id.clone(), id);
        attrs.insert(ANCHOR_ATTR, vec![anchor.encode()]);
        let dn = self.add_group(name, id, &attrs).await?;
        {
            let mut index = self.index();
            index.depts.insert(id.to_string(), dn.clone());
            index
                .dept_parent
                .insert(id.to_string(), parent.map(str::to_owned));
        }
        if let Some(p) = parent_dn {
            self.group_member(&p, &dn, true).await?;
        }
        if self.ou_tree() {
            self.create_dept_ou(id, name, parent).await?;
        }
        Ok(())
    }

    pub(super) async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), AdError> {
        let dn = self.dept(id)?;
        let mods = (changes.iter())
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_vec()))
            .filter(|(k, _)| !OWNED.contains(&k.as_str()))
            .map(|(k, v)| Modification::Replace(k, v))
            .collect();
        Ok(self.pool.modify(dn.as_str(), mods).await?)
    }

    /// Rename a department's group (modrdn) and/or move its membership to a new parent.
    pub(super) async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), AdError> {
        if self.ou_tree() {
            self.move_dept_ou(id, name, parent).await?;
        }
        let dn = self.dept(id)?;
        let old_parent = self.index().dept_parent.get(id).cloned().flatten();
        let current = dn.rdn_value("cn").unwrap_or_default();
        let dn = if super::account::wanted_cn(&current, id) != name {
            let wanted = Dn::child(&self.groups_base, "CN", name);
            let rdn = wanted.rdn_string();
            let dn2 = match self.pool.modify_dn(dn.as_str(), &rdn, None).await {
                Ok(()) => wanted,
                Err(LdapError::AlreadyExists { .. }) => {
                    let d = Dn::child(&self.groups_base, "CN", &suffixed_cn(name, id));
                    self.pool
                        .modify_dn(dn.as_str(), &d.rdn_string(), None)
                        .await?;
                    d
                }
                Err(e) => return Err(e.into()),
            };
            self.index().depts.insert(id.to_string(), dn2.clone());
            dn2
        } else {
            dn
        };
        if old_parent.as_deref() != parent {
            if let Some(old) = old_parent {
                let old = self.dept(&old)?;
                self.group_member(&old, &dn, false).await?;
            }
            if let Some(new) = parent {
                let new = self.dept(new)?;
                self.group_member(&new, &dn, true).await?;
            }
            let parent = parent.map(str::to_owned);
            self.index().dept_parent.insert(id.to_string(), parent);
        }
        Ok(())
    }

    pub(super) async fn delete_dept(&self, id: &str) -> Result<(), AdError> {
        let dn = self.dept(id)?;
        if self.ou_tree() {
            self.delete_dept_ou(id).await?;
        }
        self.pool.delete(dn.as_str()).await?;
        let mut index = self.index();
        index.depts.remove(id);
        index.dept_parent.remove(id);
        Ok(())
    }

    /// Make `child` a member of `group`, or stop it being one.
    async fn group_member(&self, group: &Dn, child: &Dn, add: bool) -> Result<(), AdError> {
        let value = vec![child.to_string()];
        let m = match add {
            true => Modification::Add("member".into(), value),
            false => Modification::Delete("member".into(), value),
        };
        Ok(self.pool.modify(group.as_str(), vec![m]).await?)
    }
}
