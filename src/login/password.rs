//! Where account self-service sets a person's directory password.
//!
//! LDAP goes through the Password Modify extended operation (RFC 3062) rather than writing
//! `userPassword`: the server hashes the password its own way and applies its password policy
//! (ppolicy's `pwdMinLength`, quality checks), and its refusal is shown to the person as it is.
//! SCIM sets `password` by PATCH, only where the server's `ServiceProviderConfig` says
//! `changePassword` is supported.

use std::{collections::BTreeSet, sync::Arc};

use async_trait::async_trait;

use crate::{
    directory::{
        Anchors, Directory, DirectoryError,
        ldap::{ConnectOptions, LdapError, Pool},
        scim::client::{PatchOp, ScimClient, ScimError},
    },
    secret::Secret,
};

/// Why a password was not set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The directory refused this password (its policy); the text is the server's.
    #[error("the directory refused the password: {0}")]
    Refused(String),
    /// The person has no entry to set a password on.
    #[error("no directory entry for this person")]
    NoEntry,
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    #[error("LDAP: {0}")]
    Ldap(#[source] LdapError),
    /// The SCIM server does not let passwords be changed (`changePassword` unsupported).
    #[error("the directory does not accept password changes")]
    Unsupported,
    #[error("SCIM: {0}")]
    Scim(#[source] ScimError),
}

/// The directory entry of `userid` (its LDAP DN or SCIM id).
async fn entry_key(dir: &dyn Directory, userid: &str) -> Result<String, PasswordError> {
    let asked = Anchors {
        people: BTreeSet::from([userid.to_owned()]),
        ..Default::default()
    };
    dir.read_some(&asked)
        .await?
        .people
        .into_iter()
        .find(|p| p.id.as_deref() == Some(userid))
        .map(|p| p.key)
        .ok_or(PasswordError::NoEntry)
}

/// Sets passwords of people found by their DingTalk userid.
#[async_trait]
pub trait PasswordStore: Send + Sync {
    async fn set_password(&self, userid: &str, new: &Secret) -> Result<(), PasswordError>;
}

/// An LDAP directory: the entry is found through the synced directory (by anchor), the
/// password set with the service account's connection.
pub struct LdapPasswords {
    dir: Arc<dyn Directory>,
    connect: ConnectOptions,
    pool: tokio::sync::OnceCell<Arc<Pool>>,
}

impl LdapPasswords {
    pub fn new(dir: Arc<dyn Directory>, connect: ConnectOptions) -> Self {
        LdapPasswords {
            dir,
            connect,
            pool: tokio::sync::OnceCell::new(),
        }
    }
}

#[async_trait]
impl PasswordStore for LdapPasswords {
    async fn set_password(&self, userid: &str, new: &Secret) -> Result<(), PasswordError> {
        let dn = entry_key(self.dir.as_ref(), userid).await?;
        // One connection, opened on first use: self-service is rare next to logins.
        let pool = self
            .pool
            .get_or_try_init(|| {
                let mut o = self.connect.clone();
                o.connections = 1;
                Pool::connect(o)
            })
            .await
            .map_err(PasswordError::Ldap)?;
        match pool.password_modify(&dn, new).await {
            Ok(()) => Ok(()),
            Err(LdapError::Rejected { message, .. }) => Err(PasswordError::Refused(message)),
            Err(e) => Err(PasswordError::Ldap(e)),
        }
    }
}

/// A SCIM server: `password` replaced by PATCH on the person's User.
pub struct ScimPasswords {
    dir: Arc<dyn Directory>,
    client: ScimClient,
}

impl ScimPasswords {
    pub fn new(dir: Arc<dyn Directory>, client: ScimClient) -> Self {
        ScimPasswords { dir, client }
    }
}

#[async_trait]
impl PasswordStore for ScimPasswords {
    async fn set_password(&self, userid: &str, new: &Secret) -> Result<(), PasswordError> {
        if !self.client.capabilities().change_password {
            return Err(PasswordError::Unsupported);
        }
        let id = entry_key(self.dir.as_ref(), userid).await?;
        let op = PatchOp::replace("password", serde_json::Value::from(new.expose()));
        match self.client.patch("Users", &id, &[op], None).await {
            Ok(()) => Ok(()),
            Err(ScimError::Rejected { detail, .. }) => Err(PasswordError::Refused(detail)),
            Err(e) => Err(PasswordError::Scim(e)),
        }
    }
}
