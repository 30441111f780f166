//! Opening the test DC's nodes, and the behaviour suite's account names on AD.

use async_trait::async_trait;
use dingsync::{
    api::target::{Layout, NewAccounts},
    directory::{
        Attrs, Directory, DirectoryError, Snapshot,
        ad::{AdDirectory, AdTarget, RANGE_STEP},
        ldap::{ConnectOptions, Secret},
    },
};

use crate::support::samba::{ADMIN_UPN, Samba};

/// The AD directory of `node`, bound as the administrator over LDAPS; `tune` may change the
/// target before it opens.
pub async fn open(
    dc: &Samba,
    node: &str,
    corp: &str,
    tune: impl FnOnce(&mut AdTarget),
) -> AdDirectory {
    let mut target = target(dc, node, corp);
    tune(&mut target);
    AdDirectory::new(target.open().await.expect("open the AD node"))
}

/// The target of `node`, bound as the administrator over LDAPS, trusting the test CA.
pub fn target(dc: &Samba, node: &str, corp: &str) -> AdTarget {
    let mut connect =
        ConnectOptions::new(dc.ldaps_url(), ADMIN_UPN, Secret::new(dc.admin_password()));
    connect.ca_pem = Some(dc.ca_pem().to_string());
    connect.page_size = dingsync::directory::ad::PAGE_SIZE;
    AdTarget {
        connect,
        node: node.to_string(),
        corp_id: corp.to_string(),
        layout: Layout::FlatWithGroups,
        new_accounts: NewAccounts::Disabled,
        upn_suffix: None,
        range_step: RANGE_STEP,
    }
}

/// The behaviour suite names accounts by `uid` (its mapping is written for inetOrgPerson);
/// on AD the account name is `sAMAccountName`. This passes one for the other both ways and
/// forwards everything else untouched.
pub struct AccountNames(pub AdDirectory);

fn to_ad(attrs: &Attrs) -> Attrs {
    attrs
        .iter()
        .map(|(k, v)| match k.as_str() {
            "uid" => ("sAMAccountName".to_string(), v.to_vec()),
            k => (k.to_string(), v.to_vec()),
        })
        .collect()
}

fn from_ad(mut snap: Snapshot) -> Snapshot {
    for p in snap.people.iter_mut().chain(snap.unlinked.iter_mut()) {
        if let Some(sam) = p.attrs.values_of("samaccountname") {
            p.attrs.insert("uid", sam);
        }
    }
    snap
}

#[async_trait]
impl Directory for AccountNames {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        Ok(from_ad(self.0.read().await?))
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.0.create_person(id, &to_ad(attrs), main_dept).await
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        self.0.link_person(key, id).await
    }
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.0.update_person(id, &to_ad(changes)).await
    }
    async fn move_person(&self, id: &str, name: &str, dept: &str) -> Result<(), DirectoryError> {
        self.0.move_person(id, name, dept).await
    }
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.0.disable_person(id).await
    }
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.0.enable_person(id).await
    }
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.0.delete_person(id).await
    }
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.0.add_members(dept, people).await
    }
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.0.remove_members(dept, people).await
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        self.0.create_dept(id, name, parent, attrs).await
    }
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.0.update_dept(id, changes).await
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.0.move_dept(id, name, parent).await
    }
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        self.0.delete_dept(id).await
    }
    fn locate_person(&self, id: &str) -> Option<String> {
        self.0.locate_person(id)
    }
    fn writes(&self) -> u64 {
        self.0.writes()
    }
}
