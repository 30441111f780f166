//! Active Directory backend: keeps one OU of an AD domain (Windows Server or Samba) in step.
//!
//! AD speaks LDAP, so connections, paging, DNs and anchors come from [`super::ldap`]; what
//! differs is AD's object model and rules:
//!
//! * **People** are `user` objects `CN=<cn>,OU=people,<node>`. The account name is
//!   `sAMAccountName` (the mapping's `uniqueName.attribute`; at most 20 characters, which
//!   the backend checks before writing), `userPrincipalName` is the mapping's value when it
//!   writes one, otherwise `<sAMAccountName>@<domain>` (the domain from the node's `DC=`
//!   parts unless the target names a UPN suffix). AD wants `cn` unique within a container,
//!   so a homonym whose `cn` is taken gets `cn` = `<cn> (<sAMAccountName>)`; reads give the
//!   engine back the `cn` it wrote, so the suffix never shows up as a change.
//! * **Departments** are security groups `CN=<name>,OU=groups,<node>` (AD's default group
//!   type, global security), nested by `member`: a department's group is a member of its
//!   parent's, the AD way (a group cannot contain other entries, so nesting by DN as on
//!   OpenLDAP is impossible). Sibling names need not be unique across the tree, but group
//!   `cn`s share one OU: a taken name gets the department id in parentheses.
//! * **Anchor**: `adminDescription: dingsync:<user|dept>:<corpId>:<id>`. `adminDescription`
//!   is in every AD schema (Windows and Samba, no Exchange `extensionAttributeN` needed),
//!   is allowed on every class (it belongs to `top`), is shown to no user (only in the
//!   attribute editor, not on any property page, not in the GAL) and is used by nothing in
//!   Windows. It is single-valued and not indexed by default: reads go by subtree under the
//!   node, never by anchor, so the missing index costs nothing. `objectGUID` is kept in the
//!   index and writes address people as `<GUID=...>`, so a rename an admin made since the
//!   last read does not break them.
//! * **Disabled** is the `userAccountControl` ACCOUNTDISABLE bit: leavers are 514, people
//!   with a password 512. A new account is created, as the target says, either waiting for
//!   its first password (546: disabled, password not yet required; not a leaver, never
//!   re-enabled by dingsync) or enabled with a random password set as `unicodePwd`, which
//!   AD accepts only over LDAPS or StartTLS and which is never logged or kept.
//! * Reads are paged with 1,000-entry pages (AD's `MaxPageSize`); `member` values come range
//!   by range (`member;range=0-1499`), as AD never sends more than a range at once.
//!
//! * **`OuTree`** layout: each department is also an OU, nested like the department tree
//!   under `OU=people` and anchored like its group; people live in their main department's
//!   OU and move with modrdn (new superior) when it changes. The groups stay for membership.
//!
//! * As the source of an Outbound target, OUs are departments and users people, by
//!   `objectGUID`; changes are polled by `uSNChanged` (see `source.rs`).
//!
//! Not supported (yet): roles (refused as a configuration error).

mod account;
mod depts;
mod directory;
mod ous;
mod read;
mod source;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use account::{AWAITING_PASSWORD, DISABLED, ENABLED, SAM_MAX};
pub use directory::AdDirectory;

use super::ldap::client::{ConnectOptions, LdapError, Pool, Secret};
use super::ldap::dn::{Dn, DnError};
use crate::api::target::{ActiveDirectorySpec, Layout, NewAccounts};

/// Attribute that carries the anchor (see the module documentation for why).
pub const ANCHOR_ATTR: &str = "adminDescription";
/// OU of people under the node.
pub const PEOPLE_OU: &str = "people";
/// OU of department groups under the node.
pub const GROUPS_OU: &str = "groups";
/// AD's default `MaxPageSize`: larger pages are cut to it anyway.
pub const PAGE_SIZE: i32 = 1000;
/// AD's default `MaxValRange`: `member` values per range.
pub const RANGE_STEP: usize = 1500;

/// What went wrong, with the LDAP error underneath where there is one.
#[derive(Debug, thiserror::Error)]
pub enum AdError {
    #[error(transparent)]
    Ldap(#[from] LdapError),
    #[error("Active Directory: {what}: {source}")]
    BadDn {
        what: String,
        #[source]
        source: DnError,
    },
    /// A target AD cannot be used as (layout, password without encryption, ...).
    #[error("Active Directory configuration: {0}")]
    Config(String),
    /// One object AD would refuse (a name too long, an unknown id).
    #[error("{0}")]
    Rejected(String),
    #[error("directory read incomplete: {0}")]
    Incomplete(String),
}

impl From<AdError> for super::DirectoryError {
    fn from(e: AdError) -> Self {
        use super::DirectoryError as D;
        match e {
            AdError::Ldap(e) => e.into(),
            AdError::BadDn { .. } | AdError::Config(_) => D::Config(e.to_string()),
            AdError::Rejected(_) => D::Rejected(e.to_string()),
            AdError::Incomplete(m) => D::Incomplete(m),
        }
    }
}

/// Everything needed to open a target's AD node, resolved from the spec and its Secrets.
#[derive(Clone, Debug)]
pub struct AdTarget {
    pub connect: ConnectOptions,
    pub node: String,
    pub corp_id: String,
    pub layout: Layout,
    pub new_accounts: NewAccounts,
    /// The part after `@` in `userPrincipalName`; `None`: the node's domain.
    pub upn_suffix: Option<String>,
    /// `member` values asked for per range (AD's `MaxValRange` unless a test lowers it).
    pub range_step: usize,
}

impl AdTarget {
    /// Build from the SyncTarget's `directory.activeDirectory`, Secret values already read.
    pub fn from_spec(
        spec: &ActiveDirectorySpec,
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
        connect.page_size = PAGE_SIZE;
        AdTarget {
            connect,
            node: node.to_string(),
            corp_id: corp_id.to_string(),
            layout: layout.unwrap_or_default(),
            new_accounts: spec.new_accounts,
            upn_suffix: spec.upn_suffix.clone(),
            range_step: RANGE_STEP,
        }
    }

    /// Whether the connection is encrypted (LDAPS or StartTLS): AD takes passwords only so.
    pub fn encrypted(&self) -> bool {
        self.connect.url.starts_with("ldaps://") || self.connect.start_tls
    }

    /// Check the target, connect, bind and open the node (creating its two OUs).
    pub async fn open(&self) -> Result<AdStore, AdError> {
        if self.new_accounts == NewAccounts::EnabledWithRandomPassword && !self.encrypted() {
            return Err(AdError::Config(format!(
                "newAccounts EnabledWithRandomPassword sets passwords (unicodePwd), which AD \
                 accepts only over an encrypted connection: {} is plain LDAP; use ldaps:// \
                 or startTLS",
                self.connect.url
            )));
        }
        let pool = Pool::connect(self.connect.clone()).await?;
        AdStore::open(pool, self, true).await
    }

    /// Bind and open the node without creating anything (an Outbound source).
    pub async fn open_read_only(&self) -> Result<AdStore, AdError> {
        let pool = Pool::connect(self.connect.clone()).await?;
        AdStore::open(pool, self, false).await
    }
}

/// A person's entry as indexed.
#[derive(Debug, Clone)]
struct PersonRef {
    dn: Dn,
    /// `objectGUID` in AD's text form, when read.
    guid: Option<String>,
}

impl PersonRef {
    /// Where writes address the entry: by GUID when known (stable across renames).
    fn target(&self) -> String {
        match &self.guid {
            Some(g) => format!("<GUID={g}>"),
            None => self.dn.to_string(),
        }
    }
}

/// The id → entry index a read rebuilds and writes keep current.
#[derive(Default)]
struct Index {
    people: HashMap<String, PersonRef>,
    depts: HashMap<String, Dn>,
    /// `OuTree`: each department's OU.
    dept_ous: HashMap<String, Dn>,
    /// Department id → its parent's id (the group it is a member of).
    dept_parent: HashMap<String, Option<String>>,
}

/// The node, its two OUs and the index.
pub struct AdStore {
    pool: Arc<Pool>,
    corp_id: String,
    node: Dn,
    /// The domain's root (the node's `DC=` part): account names are unique across it.
    domain: Dn,
    people_base: Dn,
    groups_base: Dn,
    upn_suffix: String,
    new_accounts: NewAccounts,
    layout: Layout,
    range_step: usize,
    index: Mutex<Index>,
}

impl std::fmt::Debug for AdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdStore")
            .field("node", &self.node.to_string())
            .finish()
    }
}

impl AdStore {
    async fn open(pool: Arc<Pool>, t: &AdTarget, writing: bool) -> Result<Self, AdError> {
        let node = Dn::parse(&t.node).map_err(|source| AdError::BadDn {
            what: format!("node {:?}", t.node),
            source,
        })?;
        if pool.read(node.as_str(), &["objectClass"]).await?.is_none() {
            return Err(AdError::Config(format!("node {} does not exist", t.node)));
        }
        let upn_suffix = t.upn_suffix.clone().unwrap_or_else(|| domain_of(&node));
        let domain = domain_root(&node);
        let store = AdStore {
            people_base: Dn::child(&node, "OU", PEOPLE_OU),
            groups_base: Dn::child(&node, "OU", GROUPS_OU),
            pool,
            corp_id: t.corp_id.clone(),
            node,
            domain,
            upn_suffix,
            new_accounts: t.new_accounts,
            layout: t.layout,
            range_step: t.range_step.max(1),
            index: Mutex::default(),
        };
        for ou in [&store.people_base, &store.groups_base]
            .into_iter()
            .filter(|_| writing)
        {
            if store
                .pool
                .read(ou.as_str(), &["objectClass"])
                .await?
                .is_none()
            {
                let attrs = [("objectClass", vec!["organizationalUnit".to_string()])].into();
                store.pool.add(ou.as_str(), &attrs).await?;
            }
        }
        Ok(store)
    }

    /// The pool (tests look at what was sent).
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn person(&self, id: &str) -> Result<PersonRef, AdError> {
        self.index()
            .people
            .get(id)
            .cloned()
            .ok_or_else(|| AdError::Rejected(format!("person {id}: no entry under the node")))
    }

    fn dept(&self, id: &str) -> Result<Dn, AdError> {
        self.index()
            .depts
            .get(id)
            .cloned()
            .ok_or_else(|| AdError::Rejected(format!("department {id}: no group under the node")))
    }

    /// The DN a person's entry has now, as indexed.
    pub fn dn_of_person(&self, id: &str) -> Option<String> {
        self.index().people.get(id).map(|p| p.dn.to_string())
    }
}

/// `DC=corp,DC=example,DC=com` → `corp.example.com`.
fn domain_of(dn: &Dn) -> String {
    let mut parts = Vec::new();
    let mut cur = Some(dn.clone());
    while let Some(d) = cur {
        if let Some(v) = d.rdn_value("dc") {
            parts.push(v);
        }
        cur = d.parent();
    }
    parts.join(".")
}

/// `OU=Sync,DC=corp,DC=com` → `DC=corp,DC=com`: the first ancestor made only of `DC=`s.
fn domain_root(dn: &Dn) -> Dn {
    let mut cur = dn.clone();
    while cur.rdn_value("dc").is_none() {
        match cur.parent() {
            Some(p) => cur = p,
            None => return dn.clone(),
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bind_password_is_never_printed() {
        let spec = ActiveDirectorySpec {
            url: "ldaps://dc.example.com".into(),
            bind_dn: "svc@example.com".into(),
            ..Default::default()
        };
        let t = AdTarget::from_spec(
            &spec,
            Secret::new("hunter2-AD"),
            None,
            "OU=x,DC=example,DC=com",
            None,
            "corp",
        );
        assert!(!format!("{t:?}").contains("hunter2-AD"));
        assert!(t.encrypted());
    }

    #[tokio::test]
    async fn a_password_over_plain_ldap_is_refused_before_connecting() {
        let spec = ActiveDirectorySpec {
            url: "ldap://192.0.2.1:389".into(),
            bind_dn: "svc@example.com".into(),
            new_accounts: NewAccounts::EnabledWithRandomPassword,
            ..Default::default()
        };
        let t = AdTarget::from_spec(
            &spec,
            Secret::new("pw"),
            None,
            "OU=x,DC=e,DC=com",
            None,
            "c",
        );
        match t.open().await {
            Err(AdError::Config(m)) => assert!(m.contains("unicodePwd"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn upn_suffix_is_the_nodes_domain() {
        let dn = Dn::parse("OU=Sync,DC=corp,DC=example,DC=com").unwrap();
        assert_eq!(domain_of(&dn), "corp.example.com");
        assert_eq!(domain_root(&dn).to_string(), "DC=corp,DC=example,DC=com");
    }
}
