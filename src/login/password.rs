//! Where account self-service sets a person's directory password.
//!
//! LDAP goes through the Password Modify extended operation (RFC 3062) rather than writing
//! `userPassword`: the server hashes the password its own way and applies its password policy
//! (ppolicy's `pwdMinLength`, quality checks), and its refusal is shown to the person as it is.

use std::{collections::BTreeSet, sync::Arc};

use async_trait::async_trait;

use crate::{
    directory::{
        Anchors, Directory, DirectoryError,
        ldap::{ConnectOptions, LdapError, Pool},
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
        let asked = Anchors {
            people: BTreeSet::from([userid.to_owned()]),
            ..Default::default()
        };
        let snap = self.dir.read_some(&asked).await?;
        let Some(entry) = snap
            .people
            .into_iter()
            .find(|p| p.id.as_deref() == Some(userid))
        else {
            return Err(PasswordError::NoEntry);
        };
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
        match pool.password_modify(&entry.key, new).await {
            Ok(()) => Ok(()),
            Err(LdapError::Rejected { message, .. }) => Err(PasswordError::Refused(message)),
            Err(e) => Err(PasswordError::Ldap(e)),
        }
    }
}
