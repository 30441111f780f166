//! The OIDC provider that fronts DingTalk's login (QR code on the login page, Workbench SSO).
//!
//! DingTalk's browser login is OAuth2 without OpenID Connect, so ordinary OIDC clients cannot
//! use it. [`Provider`] is a small, standard OIDC provider (discovery, JWKS, authorization code
//! with PKCE, token, userinfo) whose login step is DingTalk's: the browser goes to DingTalk,
//! comes back with an `authCode`, dingsync turns it into the enterprise userid and the synced
//! directory account, and the ID token's claims come from that account.
//!
//! Nothing here talks to Kubernetes: keys and clients are handed in (the controller keeps the
//! keys in a Secret and reads the clients from one), and every replica can serve every request
//! because login state and codes are sealed with the shared keys instead of held in memory;
//! only single use of codes and refresh tokens needs a shared [`Ledger`].

mod account;
mod accounts;
pub mod clients;
pub mod keys;
pub mod ledger;
pub mod password;
mod provider;
pub mod provision;
mod token;
mod workbench;

pub use accounts::{Account, Accounts, ClaimRule, DirectoryAccounts, claim_rules};
pub use clients::{Client, Clients};
pub use keys::KeySet;
pub use ledger::{Ledger, MemoryLedger};
pub use password::{LdapPasswords, PasswordError, PasswordStore, ScimPasswords};
pub use provider::{Provider, ProviderConfig, Providers};
pub use provision::{EngineProvisioner, ProvisionError, Provisioner};
pub use token::REFRESH_TTL;

use crate::{dingtalk::DingTalkError, directory::DirectoryError};

/// What can go wrong in the provider. Request-level refusals are answered as OAuth errors by
/// the handlers; these are the failures behind them.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("cryptography failed: {0}")]
    Crypto(&'static str),
    #[error("signing keys: {0}")]
    Keys(String),
    /// The keys Secret's `keys.json` is not the JSON dingsync writes.
    #[error("signing keys: keys.json: {0}")]
    KeysFile(#[source] serde_json::Error),
    /// A stored key is not base64.
    #[error("signing keys: key {kid}: {field} is not base64")]
    KeyEncoding {
        kid: String,
        field: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    /// A stored key is not a usable RSA or sealing key.
    #[error("signing keys: key {kid}: {problem}")]
    KeyRejected {
        kid: String,
        problem: &'static str,
        #[source]
        source: aws_lc_rs::error::KeyRejected,
    },
    #[error("{0}")]
    Clients(String),
    /// `clients.yaml` is not YAML of the expected shape.
    #[error("clients.yaml: {0}")]
    ClientsFile(#[source] serde_yaml::Error),
    /// A URL in `clients.yaml` does not parse; `at` names the client and field.
    #[error("{at} {url:?}: {source}")]
    ClientUrl {
        at: String,
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("login configuration: {0}")]
    Config(String),
    /// `login.issuer` is not a URL.
    #[error("login configuration: login.issuer {issuer:?}: {source}")]
    Issuer {
        issuer: String,
        #[source]
        source: url::ParseError,
    },
    /// Provisioning a person at their first login failed.
    #[error("provision on login: {0}")]
    Provision(#[source] Box<provision::ProvisionError>),
    /// A token could not be signed.
    #[error("signing a token: {0}")]
    Jose(#[source] jsonwebtoken::errors::Error),
    /// A token, code or sealed state that does not verify (never says why, to the caller).
    #[error("invalid or tampered token")]
    BadToken,
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    #[error("DingTalk: {0}")]
    DingTalk(#[from] DingTalkError),
    /// The store of redeemed codes could not be read or written; `what` names the step.
    #[error("single-use ledger: {what}: {source}")]
    Ledger {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
