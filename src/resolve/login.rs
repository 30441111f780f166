//! A binding's login, resolved the same way from the cluster (every replica) and from a folder
//! (`dingsync login`): its clients, the Inbound target whose accounts it reads, the session,
//! extra claims — then opened into a provider.

use crate::api::Reason;
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::{
    Access, ObjectSource, Problem, Resolved, SourceError, client_config, login_target,
    open_directory, secret_text,
};
use crate::{
    api::DingTalkBinding,
    dingtalk::ClientPool,
    login::{Clients, DirectoryAccounts, KeySet, Provider, ProviderConfig, claim_rules},
};

/// How long a login session lasts when `login.sessionTtl` is not set.
const DEFAULT_SESSION: Duration = Duration::from_secs(8 * 3600);

/// Everything a binding's provider is built from.
pub struct LoginInputs {
    pub issuer: String,
    pub clients: Clients,
    /// The target whose directory holds the accounts.
    pub target: Resolved,
    pub session: Duration,
    pub claims: Vec<(String, String)>,
    /// Changes whenever an input changes (secrets only hashed).
    pub fingerprint: String,
}

impl LoginInputs {
    /// For the `LoginReady` message.
    pub fn summary(&self) -> String {
        format!(
            "serving {} for {} client(s); accounts from SyncTarget {}",
            self.issuer,
            self.clients.len(),
            self.target.key
        )
    }
}

/// Reads and checks a binding's login inputs; the problem names what is wrong.
pub async fn login_inputs(
    objects: &dyn ObjectSource,
    binding: &DingTalkBinding,
) -> Result<Result<LoginInputs, Problem>, SourceError> {
    let ns = binding.namespace().unwrap_or_default();
    let invalid = |m: &str| Ok(Err(Problem::new(Reason::InvalidSpec, m)));
    let Some(login) = binding.spec.login.as_ref().filter(|l| l.enabled) else {
        return Ok(Err(Problem::new(
            Reason::Disabled,
            "login.enabled is false",
        )));
    };
    let Some(issuer) = login.issuer.clone() else {
        return invalid("login.issuer is required");
    };
    if let Err(e) = url::Url::parse(&issuer) {
        return invalid(&format!("login.issuer: {e}"));
    }
    let Some(cref) = &login.clients_secret_ref else {
        return invalid("login.clientsSecretRef is required");
    };
    let field = "login.clientsSecretRef";
    let yaml = match secret_text(objects, &ns, &cref.name, "clients.yaml", field).await? {
        Ok(y) => y,
        Err(p) => return Ok(Err(p)),
    };
    let secret = super::qualified(&ns, &cref.name);
    let clients = match Clients::parse(&yaml) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return invalid_clients(format!("Secret {secret}: clients.yaml lists no clients")),
        Err(e) => return invalid_clients(format!("Secret {secret}: {e}")),
    };
    let Some(tref) = &login.target_ref else {
        return invalid("login.targetRef is required");
    };
    let target = match login_target(objects, binding, &tref.name).await? {
        Ok(t) => t,
        Err(p) => return Ok(Err(p)),
    };
    let fingerprint = fingerprint(&target, &yaml);
    Ok(Ok(LoginInputs {
        issuer,
        clients,
        target,
        session: login
            .session_ttl
            .map(Duration::from)
            .unwrap_or(DEFAULT_SESSION),
        claims: login
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        fingerprint,
    }))
}

fn invalid_clients(message: String) -> Result<Result<LoginInputs, Problem>, SourceError> {
    Ok(Err(Problem::new(Reason::InvalidClients, message)))
}

/// A digest of every input of a provider, so a replica rebuilds it exactly when one changed.
fn fingerprint(target: &Resolved, clients_yaml: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        serde_json::to_vec(&target.binding).unwrap_or_default(),
        serde_json::to_vec(&target.spec).unwrap_or_default(),
        serde_json::to_vec(&target.mapping).unwrap_or_default(),
        clients_yaml.as_bytes().to_vec(),
        target.app_key.as_bytes().to_vec(),
        target.app_secret.expose().as_bytes().to_vec(),
        target.directory_secret.expose().as_bytes().to_vec(),
        target.directory_ca.clone().unwrap_or_default(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Why a provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoginOpenError {
    #[error("SyncTarget {target}: {source}")]
    Directory {
        target: String,
        #[source]
        source: super::OpenError,
    },
    #[error(transparent)]
    Provider(#[from] crate::login::LoginError),
}

/// Opens the target's directory (read-only) and builds the provider, signing with `keys`.
pub async fn open_login(
    i: &LoginInputs,
    keys: Arc<RwLock<Arc<KeySet>>>,
    clients: &ClientPool,
) -> Result<Provider, LoginOpenError> {
    let t = &i.target;
    let dir = open_directory(t, Access::ReadOnly)
        .await
        .map_err(|source| LoginOpenError::Directory {
            target: t.key.to_string(),
            source,
        })?;
    let client = clients.client(client_config(&t.binding, &t.app_key, &t.app_secret));
    let provider = Provider::new(
        ProviderConfig {
            issuer: i.issuer.clone(),
            corp_id: t.binding.corp_id.clone(),
            display_name: t.binding.corp_id.clone(),
            session_ttl: jiff::SignedDuration::try_from(i.session)
                .unwrap_or(jiff::SignedDuration::from_hours(8)),
        },
        i.clients.clone(),
        keys,
        Arc::new(client),
        Arc::new(DirectoryAccounts::new(
            dir,
            claim_rules(&t.mapping, &i.claims),
        )),
    )?;
    Ok(provider)
}
