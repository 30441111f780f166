//! Writes to an AD node: people, their account state, department groups and memberships.
//! Every write goes by source id through the index a read built, and keeps it current.

use super::account::{
    self, AWAITING_PASSWORD, ENABLED, check_sam, random_password, suffixed_cn, unicode_pwd,
};
use super::{ANCHOR_ATTR, AdError, AdStore, PersonRef};
use crate::api::target::NewAccounts;
use crate::directory::Attrs;
use crate::directory::ldap::client::{LdapError, Modification};
use crate::directory::ldap::dn::Dn;
use crate::directory::ldap::schema::{AnchorKind, StoredAnchor};

/// Attributes a mapping never writes here: AD or dingsync own them.
const OWNED: [&str; 7] = [
    "objectclass",
    "admindescription",
    "useraccountcontrol",
    "unicodepwd",
    "member",
    "memberof",
    "cn",
];

/// An entry's values as a mapping gave them, names lowercased, empty lists dropped.
fn lowered(attrs: &Attrs) -> Attrs {
    attrs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_vec()))
        .collect()
}

/// The value that moved an entry's `cn` aside, or the error when it was not a name clash.
fn clash(r: Result<(), LdapError>) -> Result<bool, AdError> {
    match r {
        Ok(()) => Ok(false),
        Err(LdapError::AlreadyExists { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Whether an error says the value was there already / was not there: memberships are
/// changed value by value after one.
fn membership_noop(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::AlreadyExists { .. }
            | LdapError::Rejected {
                rc: 16 | 20 | 53,
                ..
            }
    )
}

impl AdStore {
    fn anchor(&self, kind: AnchorKind, id: &str) -> String {
        StoredAnchor::new(kind, self.corp_id.clone(), id).encode()
    }

    /// Create a person's `user` object; `cn` gets the account name in parentheses when a
    /// homonym holds it in the OU already.
    pub(super) async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), AdError> {
        let under = self.container_of(main_dept)?;
        let mut attrs = lowered(attrs);
        let sam = attrs
            .first("samaccountname")
            .ok_or_else(|| {
                AdError::Rejected(format!(
                    "person {id}: no sAMAccountName (set the mapping's uniqueName.attribute to \
                     sAMAccountName)"
                ))
            })?
            .to_string();
        check_sam(&sam).map_err(|m| AdError::Rejected(format!("person {id}: {m}")))?;
        let cn = attrs.remove("cn").and_then(|v| v.into_iter().next());
        let cn = cn.unwrap_or_else(|| sam.clone());
        attrs.retain(|k, _| !OWNED.contains(&k.as_str()));
        attrs.insert(
            "objectclass",
            ["top", "person", "organizationalPerson", "user"]
                .map(String::from)
                .to_vec(),
        );
        attrs.insert(ANCHOR_ATTR, vec![self.anchor(AnchorKind::User, id)]);
        if !attrs.contains_key("userprincipalname") {
            let upn = format!("{sam}@{}", self.upn_suffix);
            attrs.insert("userprincipalname", vec![upn]);
        }
        let uac = match self.new_accounts {
            NewAccounts::Disabled => AWAITING_PASSWORD,
            NewAccounts::EnabledWithRandomPassword => {
                let pwd = unicode_pwd(&random_password()).map_err(AdError::Config)?;
                attrs.insert("unicodepwd", vec![pwd]);
                ENABLED
            }
        };
        attrs.insert("useraccountcontrol", vec![uac.to_string()]);
        let dn = Dn::child(&under, "CN", &cn);
        let dn = if clash(self.pool.add(dn.as_str(), &attrs).await)? {
            let dn = Dn::child(&under, "CN", &suffixed_cn(&cn, &sam));
            self.pool.add(dn.as_str(), &attrs).await?;
            dn
        } else {
            dn
        };
        let person = PersonRef { dn, guid: None };
        self.index().people.insert(id.to_string(), person);
        Ok(())
    }

    /// Put the anchor on an unlinked entry. `adminDescription` is single-valued: an entry
    /// holding another value there is refused, not overwritten.
    pub(super) async fn link_person(&self, key: &str, id: &str) -> Result<(), AdError> {
        let dn = Dn::parse(key).map_err(|source| AdError::BadDn {
            what: format!("entry {key:?}"),
            source,
        })?;
        let add = Modification::Add(ANCHOR_ATTR.into(), vec![self.anchor(AnchorKind::User, id)]);
        self.pool.modify(key, vec![add]).await?;
        let person = PersonRef { dn, guid: None };
        self.index().people.insert(id.to_string(), person);
        Ok(())
    }

    /// Replace attributes; a new `cn` renames the entry in place (modrdn).
    pub(super) async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), AdError> {
        let p = self.person(id)?;
        let mut mods = Vec::new();
        let mut new_cn = None;
        for (k, v) in changes.iter() {
            let k = k.as_str().to_ascii_lowercase();
            if k == "cn" {
                new_cn = v.first().map(str::to_owned);
            } else if k == "samaccountname" {
                let sam = v.first().unwrap_or_default();
                check_sam(sam).map_err(|m| AdError::Rejected(format!("person {id}: {m}")))?;
                mods.push(Modification::Replace(k, v.to_vec()));
            } else if !OWNED.contains(&k.as_str()) {
                mods.push(Modification::Replace(k, v.to_vec()));
            }
        }
        self.pool.modify(&p.target(), mods).await?;
        if let Some(cn) = new_cn {
            self.rename_person(id, &p, &cn).await?;
        }
        Ok(())
    }

    /// modrdn to `CN=<cn>`, or to the suffixed form when a homonym holds it.
    async fn rename_person(&self, id: &str, p: &PersonRef, cn: &str) -> Result<(), AdError> {
        let parent = p.dn.parent().unwrap_or_else(|| self.people_base.clone());
        // modrdn derives the new DN from the old one's parent, which `<GUID=...>` does not
        // name: renames go by the DN as indexed.
        let target = p.dn.to_string();
        let wanted = Dn::child(&parent, "CN", cn);
        let dn = if clash(
            self.pool
                .modify_dn(&target, &wanted.rdn_string(), None)
                .await,
        )? {
            let e = self.pool.read(&target, &["sAMAccountName"]).await?;
            let sam = e.as_ref().and_then(|e| e.first("samaccountname"));
            let dn = Dn::child(&parent, "CN", &suffixed_cn(cn, sam.unwrap_or(id)));
            self.pool.modify_dn(&target, &dn.rdn_string(), None).await?;
            dn
        } else {
            wanted
        };
        if let Some(p) = self.index().people.get_mut(id) {
            p.dn = dn;
        }
        Ok(())
    }

    /// The person's `userAccountControl`, whether they have a password, and the groups they
    /// are a direct member of, read fresh (an admin may have changed them since).
    async fn account(&self, p: &PersonRef) -> Result<(u32, bool, Vec<String>), AdError> {
        let attrs = ["userAccountControl", "pwdLastSet", "memberOf"];
        let e = self.pool.read(&p.target(), &attrs).await?;
        let e = e.ok_or_else(|| AdError::Rejected(format!("{}: entry gone", p.dn)))?;
        let uac = e.first("useraccountcontrol").and_then(|v| v.parse().ok());
        let has_password = e.first("pwdlastset").is_some_and(|v| v != "0");
        Ok((
            uac.unwrap_or(ENABLED),
            has_password,
            e.get("memberof").to_vec(),
        ))
    }

    /// Set ACCOUNTDISABLE (514) and take the person out of this target's department groups.
    pub(super) async fn disable_person(&self, id: &str) -> Result<(), AdError> {
        let p = self.person(id)?;
        let (uac, _, groups) = self.account(&p).await?;
        let set = account::disabled(uac);
        if set != uac {
            let m = Modification::Replace("userAccountControl".into(), vec![set.to_string()]);
            self.pool.modify(&p.target(), vec![m]).await?;
        }
        let ours: Vec<String> = {
            let index = self.index();
            let keys: Vec<String> = groups
                .iter()
                .filter_map(|g| Dn::parse(g).ok().map(|d| d.key()))
                .collect();
            (index.depts.iter())
                .filter(|(_, dn)| keys.contains(&dn.key()))
                .map(|(id, _)| id.clone())
                .collect()
        };
        for dept in ours {
            self.remove_members(&dept, &[id.to_string()]).await?;
        }
        Ok(())
    }

    /// Clear ACCOUNTDISABLE (512) — or, for an account that never had a password, go back to
    /// waiting for one (546).
    pub(super) async fn enable_person(&self, id: &str) -> Result<(), AdError> {
        let p = self.person(id)?;
        let (uac, has_password, _) = self.account(&p).await?;
        let set = account::enabled(uac, has_password);
        let m = Modification::Replace("userAccountControl".into(), vec![set.to_string()]);
        self.pool.modify(&p.target(), vec![m]).await?;
        Ok(())
    }

    pub(super) async fn delete_person(&self, id: &str) -> Result<(), AdError> {
        let p = self.person(id)?;
        self.pool.delete(&p.target()).await?;
        self.index().people.remove(id);
        Ok(())
    }

    /// Add or delete `member` values, all in one request, value by value when one of them
    /// was already (or no longer) there.
    async fn members(&self, group: &Dn, dns: Vec<String>, add: bool) -> Result<(), AdError> {
        if dns.is_empty() {
            return Ok(());
        }
        let m = |v: Vec<String>| match add {
            true => Modification::Add("member".into(), v),
            false => Modification::Delete("member".into(), v),
        };
        match self.pool.modify(group.as_str(), vec![m(dns.clone())]).await {
            Err(e) if membership_noop(&e) && dns.len() > 1 => {
                for dn in dns {
                    match self.pool.modify(group.as_str(), vec![m(vec![dn])]).await {
                        Err(e) if membership_noop(&e) => {}
                        other => other?,
                    }
                }
                Ok(())
            }
            Err(e) if membership_noop(&e) => Ok(()),
            other => Ok(other?),
        }
    }

    fn people_dns(&self, people: &[String]) -> Vec<String> {
        let index = self.index();
        (people.iter())
            .filter_map(|id| index.people.get(id).map(|p| p.dn.to_string()))
            .collect()
    }

    pub(super) async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), AdError> {
        let group = self.dept(dept)?;
        let missing: Vec<&String> = {
            let index = self.index();
            people
                .iter()
                .filter(|p| !index.people.contains_key(*p))
                .collect()
        };
        if let Some(id) = missing.first() {
            return Err(AdError::Rejected(format!(
                "person {id}: no entry to add to department {dept}"
            )));
        }
        self.members(&group, self.people_dns(people), true).await
    }

    pub(super) async fn remove_members(
        &self,
        dept: &str,
        people: &[String],
    ) -> Result<(), AdError> {
        let group = self.dept(dept)?;
        self.members(&group, self.people_dns(people), false).await
    }
}
