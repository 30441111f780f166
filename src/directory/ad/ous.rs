//! The `OuTree` layout: departments are also OUs nested like the department tree under
//! `OU=people`, and people live in their main department's OU.

use super::account::suffixed_cn;
use super::{ANCHOR_ATTR, AdError, AdStore};
use crate::api::target::Layout;
use crate::directory::Attrs;
use crate::directory::ldap::client::LdapError;
use crate::directory::ldap::dn::Dn;
use crate::directory::ldap::schema::{AnchorKind, StoredAnchor};

impl AdStore {
    pub(super) fn ou_tree(&self) -> bool {
        self.layout == Layout::OuTree
    }

    /// The OU people of `dept` live in: its own with `OuTree`, else `OU=people`.
    pub(super) fn container_of(&self, dept: Option<&str>) -> Result<Dn, AdError> {
        match dept {
            Some(d) if self.ou_tree() => (self.index().dept_ous.get(d).cloned())
                .ok_or_else(|| AdError::Rejected(format!("department {d}: no OU under the node"))),
            _ => Ok(self.people_base.clone()),
        }
    }

    /// Add a department's OU under its parent's (sibling names are unique in DingTalk; a
    /// clash with an OU someone else made gets the id in parentheses).
    pub(super) async fn create_dept_ou(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), AdError> {
        let under = self.container_of(parent)?;
        let anchor = StoredAnchor::new(AnchorKind::Dept, self.corp_id.clone(), id).encode();
        let attrs: Attrs = [
            ("objectClass", vec!["organizationalUnit".to_string()]),
            (ANCHOR_ATTR, vec![anchor]),
        ]
        .into();
        let dn = Dn::child(&under, "OU", name);
        let dn = match self.pool.add(dn.as_str(), &attrs).await {
            Ok(()) => dn,
            Err(LdapError::AlreadyExists { .. }) => {
                let dn = Dn::child(&under, "OU", &suffixed_cn(name, id));
                self.pool.add(dn.as_str(), &attrs).await?;
                dn
            }
            Err(e) => return Err(e.into()),
        };
        self.index().dept_ous.insert(id.to_string(), dn);
        Ok(())
    }

    /// Rename and/or re-parent a department's OU (one modrdn; its subtree follows), and
    /// re-point the index at everything under it.
    pub(super) async fn move_dept_ou(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), AdError> {
        let old = self.container_of(Some(id))?;
        let under = self.container_of(parent)?;
        let wanted = Dn::child(&under, "OU", name);
        if wanted.key() == old.key() {
            return Ok(());
        }
        let rdn = wanted.rdn_string();
        self.pool
            .modify_dn(old.as_str(), &rdn, Some(under.as_str()))
            .await?;
        let mut index = self.index();
        for dn in index.dept_ous.values_mut() {
            if let Some(moved) = dn.rebased(&old, &wanted) {
                *dn = moved;
            }
        }
        for p in index.people.values_mut() {
            if let Some(moved) = p.dn.rebased(&old, &wanted) {
                p.dn = moved;
            }
        }
        Ok(())
    }

    pub(super) async fn delete_dept_ou(&self, id: &str) -> Result<(), AdError> {
        let ou = self.container_of(Some(id))?;
        self.pool.delete(ou.as_str()).await?;
        self.index().dept_ous.remove(id);
        Ok(())
    }

    /// Move a person's entry into their main department's OU (modrdn with a new superior),
    /// keeping its `cn`, or the suffixed one when a homonym holds it there.
    pub(super) async fn move_person(&self, id: &str, main_dept: &str) -> Result<(), AdError> {
        let p = self.person(id)?;
        let under = self.container_of(Some(main_dept))?;
        let rdn = p.dn.rdn_string();
        let moved = self
            .pool
            .modify_dn(p.dn.as_str(), &rdn, Some(under.as_str()));
        let dn = match moved.await {
            Ok(()) => Dn::parse(&format!("{rdn},{under}")),
            Err(LdapError::AlreadyExists { .. }) => {
                let e = self
                    .pool
                    .read(&p.target(), &["sAMAccountName", "cn"])
                    .await?;
                let sam = e.as_ref().and_then(|e| e.first("samaccountname"));
                let cn = e.as_ref().and_then(|e| e.first("cn")).unwrap_or(id);
                let dn = Dn::child(&under, "CN", &suffixed_cn(cn, sam.unwrap_or(id)));
                let rdn = dn.rdn_string();
                self.pool
                    .modify_dn(p.dn.as_str(), &rdn, Some(under.as_str()))
                    .await?;
                Ok(dn)
            }
            Err(e) => return Err(e.into()),
        };
        let dn = dn.map_err(|source| AdError::BadDn {
            what: format!("person {id}"),
            source,
        })?;
        if let Some(p) = self.index().people.get_mut(id) {
            p.dn = dn;
        }
        Ok(())
    }
}
