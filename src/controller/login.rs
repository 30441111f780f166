//! Login on the controller: the provider's keys live in a Secret (created if missing, rotated
//! with overlap), and every replica — leader or not — serves one OIDC provider per binding
//! with `login.enabled`, rebuilt when its inputs change. The leader also reports the login's
//! health as the binding's `LoginReady` condition (see `binding.rs`). Codes and refresh
//! tokens are single use across replicas through [`LeaseLedger`].

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use k8s_openapi::{ByteString, api::coordination::v1::Lease, api::core::v1::Secret};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Context, Error};
use crate::{
    api::DingTalkBinding,
    directory::{ldap::LdapTarget, scim::client::ScimClient},
    login::{
        EngineProvisioner, KeySet, LdapPasswords, Ledger, LoginError, PasswordStore, Provider,
        Providers, Provisioner, ScimPasswords, keys::ROTATE_AFTER,
    },
    resolve::{
        Access, LoginInputs, Opened, Problem, Resolved, login_inputs, open, open_directory,
        open_login,
    },
};

/// The key of the keys Secret that holds the key set.
pub const KEYS_KEY: &str = "keys.json";
/// How often each replica re-reads bindings and keys.
const REFRESH: Duration = Duration::from_secs(30);

/// Reads and checks the binding's login inputs from the cluster. `Ok(Err(_))` names what is
/// wrong; it becomes `LoginReady=False`.
pub async fn inputs(
    ctx: &Context,
    binding: &DingTalkBinding,
) -> Result<Result<LoginInputs, Problem>, Error> {
    Ok(login_inputs(&ctx.objects(), binding).await?)
}

fn keys_error(message: impl Into<String>) -> Error {
    Error::Transient {
        reason: "LoginKeys",
        message: message.into(),
    }
}

/// The providers this replica serves and the key set they share.
pub struct Login {
    providers: Providers,
    keys: Arc<RwLock<Arc<KeySet>>>,
    keys_loaded: std::sync::atomic::AtomicBool,
    /// `namespace/binding` → (fingerprint, issuer) of the provider built.
    built: Mutex<HashMap<String, (String, String)>>,
    /// Shared by every provider of this replica once the keys' namespace is known.
    ledger: Mutex<Option<Arc<LeaseLedger>>>,
}

impl Default for Login {
    fn default() -> Self {
        Self::new()
    }
}

impl Login {
    pub fn new() -> Self {
        Login {
            providers: Providers::default(),
            keys: Arc::new(RwLock::new(Arc::new(
                KeySet::generate(jiff::Timestamp::now()).expect("key generation"),
            ))),
            keys_loaded: Default::default(),
            built: Default::default(),
            ledger: Default::default(),
        }
    }

    /// The routes of every provider (a fallback router: merge it last).
    pub fn router(&self) -> axum::Router {
        self.providers.router()
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Key ids currently published.
    pub fn kids(&self) -> Vec<String> {
        self.keys.read().expect("keys lock").kids()
    }

    /// Reads the keys Secret, creating it if missing and rotating it when due. Only what is in
    /// the Secret is ever used to sign, so every replica signs with the same keys.
    pub async fn load_keys(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
        now: jiff::Timestamp,
    ) -> Result<(), Error> {
        self.ledger
            .lock()
            .expect("ledger lock")
            .get_or_insert_with(|| Arc::new(LeaseLedger::new(client.clone(), namespace)));
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let current = api.get_opt(name).await?;
        let (mut set, existing) = match &current {
            Some(s) => {
                let raw = s
                    .data
                    .as_ref()
                    .and_then(|d| d.get(KEYS_KEY))
                    .map(|b| b.0.clone())
                    .unwrap_or_default();
                match KeySet::from_json(&raw) {
                    Ok(k) => (k, Some(s.clone())),
                    Err(e) => {
                        // Never overwrite keys we cannot read: someone must look.
                        return Err(keys_error(format!(
                            "login keys Secret {namespace}/{name}: {e}"
                        )));
                    }
                }
            }
            None => (
                KeySet::generate(now).map_err(|e| keys_error(e.to_string()))?,
                None,
            ),
        };
        let rotated = set
            .rotate(now, ROTATE_AFTER)
            .map_err(|e| keys_error(e.to_string()))?;
        let data = BTreeMap::from([(KEYS_KEY.to_string(), ByteString(set.to_json()))]);
        match existing {
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some(namespace.to_string()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_string(),
                            "dingsync".to_string(),
                        )])),
                        ..Default::default()
                    },
                    data: Some(data),
                    type_: Some("Opaque".into()),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &secret).await {
                    Ok(_) => tracing::info!(secret = name, "login keys created"),
                    // Another replica created it first: use theirs next round.
                    Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Some(mut s) if rotated => {
                s.data = Some(data);
                // resourceVersion is kept: a concurrent rotation by another replica wins.
                match api.replace(name, &PostParams::default(), &s).await {
                    Ok(_) => {
                        tracing::info!(secret = name, kids = ?set.kids(), "login keys rotated")
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Some(_) => {}
        }
        *self.keys.write().expect("keys lock") = Arc::new(set);
        self.keys_loaded
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Builds, rebuilds or drops providers to match the bindings. Serves nothing before the
    /// keys were loaded from their Secret.
    pub async fn refresh(&self, ctx: &Context, namespace: Option<&str>) -> Result<(), Error> {
        if !self.keys_loaded.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let api: Api<DingTalkBinding> = match namespace {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        };
        let bindings = api.list(&Default::default()).await?.items;
        let mut seen = Vec::new();
        for b in &bindings {
            if !b.spec.login.as_ref().is_some_and(|l| l.enabled) {
                continue;
            }
            let key = format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any());
            let inputs = match inputs(ctx, b).await? {
                Ok(i) => i,
                Err(p) => {
                    tracing::warn!(binding = %key, reason = p.reason.as_str(), message = %p.message, "login not served");
                    continue;
                }
            };
            seen.push(key.clone());
            // Options the provider is built with beyond its inputs count as inputs too.
            let login = b.spec.login.clone().unwrap_or_default();
            let extras = Extras {
                self_service: login.self_service.is_some_and(|s| s.password),
                provision: login.provision_on_login,
            };
            let fingerprint = format!("{}|{extras:?}", inputs.fingerprint);
            let unchanged = self
                .built
                .lock()
                .expect("built lock")
                .get(&key)
                .is_some_and(|(fp, _)| *fp == fingerprint);
            if unchanged {
                continue;
            }
            if let Some(other) = self.providers.path_taken_by(&inputs.issuer)
                && self
                    .built
                    .lock()
                    .expect("built lock")
                    .get(&key)
                    .is_none_or(|(_, i)| *i != other)
            {
                tracing::warn!(binding = %key, issuer = %inputs.issuer, other = %other, "login not served: another binding serves this issuer path");
                continue;
            }
            match self.build(ctx, &inputs, extras).await {
                Ok(p) => {
                    if let Some((_, old)) = self.built.lock().expect("built lock").get(&key)
                        && *old != inputs.issuer
                    {
                        self.providers.remove(old);
                    }
                    self.providers.put(Arc::new(p));
                    tracing::info!(binding = %key, issuer = %inputs.issuer, "login provider serving");
                    self.built
                        .lock()
                        .expect("built lock")
                        .insert(key, (fingerprint, inputs.issuer));
                }
                Err(e) => {
                    tracing::warn!(binding = %key, error = %e, "login provider not built");
                }
            }
        }
        let gone: Vec<(String, String)> = self
            .built
            .lock()
            .expect("built lock")
            .iter()
            .filter(|(k, _)| !seen.contains(k))
            .map(|(k, (_, i))| (k.clone(), i.clone()))
            .collect();
        for (k, issuer) in gone {
            self.providers.remove(&issuer);
            self.built.lock().expect("built lock").remove(&k);
            tracing::info!(binding = %k, "login provider removed");
        }
        Ok(())
    }

    async fn build(
        &self,
        ctx: &Context,
        i: &LoginInputs,
        extras: Extras,
    ) -> Result<Provider, String> {
        let mut p = open_login(i, self.keys.clone(), &ctx.clients)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(l) = self.ledger() {
            p = p.with_ledger(l);
        }
        if extras.self_service {
            p = p.with_self_service(password_store(&i.target).await?);
        }
        if extras.provision {
            p = p.with_provisioning(provisioner(ctx, &i.target).await?);
        }
        Ok(p)
    }

    /// The ledger every provider of this replica uses (after the keys were first loaded).
    pub fn ledger(&self) -> Option<Arc<LeaseLedger>> {
        self.ledger.lock().expect("ledger lock").clone()
    }
}

/// What a provider is built with beyond its login inputs (part of its fingerprint).
#[derive(Debug, Clone, Copy)]
struct Extras {
    self_service: bool,
    provision: bool,
}

/// Provision on first login: the login target opened for writing, run for one person. Every
/// replica serves logins, so this writes from non-leaders too; the engine plans from the
/// directory's state, so a concurrent sync of the same person at worst reports a conflict
/// that the next sync settles.
async fn provisioner(ctx: &Context, t: &Resolved) -> Result<Arc<dyn Provisioner>, String> {
    match open(t, Access::ReadWrite, &ctx.clients).await {
        Ok(Opened::Inbound(i)) => Ok(Arc::new(EngineProvisioner::new(
            i.source,
            i.dir,
            Arc::new(i.mapping),
            i.options,
        ))),
        Ok(Opened::Outbound(_)) => {
            Err("login.provisionOnLogin needs an Inbound login target".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Where self-service sets passwords: the login target's LDAP server, as the target's service
/// account (which needs the right to set `userPassword` of the people it manages), or its SCIM
/// server (where its `ServiceProviderConfig` offers `changePassword`).
async fn password_store(t: &Resolved) -> Result<Arc<dyn PasswordStore>, String> {
    if let Some(scim) = &t.spec.directory.scim {
        let client = ScimClient::connect(
            &scim.url,
            t.directory_secret.clone(),
            t.directory_ca.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let dir = open_directory(t, Access::ReadOnly)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Arc::new(ScimPasswords::new(dir, client)));
    }
    let Some(ldap) = &t.spec.directory.ldap else {
        return Err("login.selfService.password needs an LDAP or SCIM target".into());
    };
    let ca = match &t.directory_ca {
        Some(b) => Some(
            String::from_utf8(b.clone())
                .map_err(|_| "caSecretRef: the CA bundle is not PEM text".to_string())?,
        ),
        None => None,
    };
    let target = LdapTarget::from_spec(
        ldap,
        t.directory_secret.clone(),
        ca,
        &t.spec.node,
        t.spec.layout,
        &t.binding.corp_id,
    );
    let dir = open_directory(t, Access::ReadOnly)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(LdapPasswords::new(dir, target.connect)))
}

/// Keeps keys and providers current on this replica until shutdown.
pub async fn run(
    ctx: Arc<Context>,
    login: Arc<Login>,
    namespace: Option<String>,
    keys_namespace: String,
    keys_secret: String,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = login
            .load_keys(
                &ctx.client,
                &keys_namespace,
                &keys_secret,
                jiff::Timestamp::now(),
            )
            .await
        {
            tracing::warn!(error = %e, "login keys not loaded");
        }
        if let Err(e) = login.refresh(&ctx, namespace.as_deref()).await {
            tracing::warn!(error = %e, "login providers not refreshed");
        }
        if let Some(l) = login.ledger()
            && let Err(e) = l.forget_expired(jiff::Timestamp::now()).await
        {
            tracing::warn!(error = %e, "login ledger not cleaned");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// The label that marks the ledger's Leases (value: `used` or `revoked`).
const LEDGER_LABEL: &str = "dingsync.io/login-ledger";
/// When a ledger Lease may be deleted (RFC 3339).
const LEDGER_EXPIRES: &str = "dingsync.io/expires";

/// The single-use ledger as Leases in the keys' namespace, one per used code or refresh token
/// and one per revoked grant, named by a hash of the id (ids never appear in the API). The API
/// server's create is atomic, so of two replicas redeeming one code exactly one creates the
/// Lease and the other gets a conflict: single use across replicas without a database.
///
/// Cost: one create per code redemption and per refresh, one get per userinfo call; the
/// Leases live as long as what they guard (60 s for a code, the refresh token's lifetime for
/// a revoked grant) and every replica deletes expired ones each refresh round.
pub struct LeaseLedger {
    api: Api<Lease>,
}

impl LeaseLedger {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        LeaseLedger {
            api: Api::namespaced(client, namespace),
        }
    }

    fn name(kind: &str, id: &str) -> String {
        let h = Sha256::digest(id.as_bytes());
        format!("dingsync-{kind}-{}", hex::encode(&h[..20]))
    }

    /// Creates the Lease; `Ok(false)` when it exists already.
    async fn create(
        &self,
        kind: &'static str,
        id: &str,
        keep_until: jiff::Timestamp,
    ) -> Result<bool, LoginError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(Self::name(kind, id)),
                labels: Some(BTreeMap::from([
                    (
                        "app.kubernetes.io/managed-by".to_string(),
                        "dingsync".to_string(),
                    ),
                    (LEDGER_LABEL.to_string(), kind.to_string()),
                ])),
                annotations: Some(BTreeMap::from([(
                    LEDGER_EXPIRES.to_string(),
                    keep_until.to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(ledger_error(kind, e)),
        }
    }

    /// Deletes the ledger's Leases whose time has passed.
    pub async fn forget_expired(&self, now: jiff::Timestamp) -> Result<usize, LoginError> {
        let list = self
            .api
            .list(&ListParams::default().labels(LEDGER_LABEL))
            .await
            .map_err(|e| ledger_error("list", e))?;
        let mut gone = 0;
        for l in list.items {
            let expired = l
                .annotations()
                .get(LEDGER_EXPIRES)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| t <= now);
            if !expired {
                continue;
            }
            match self
                .api
                .delete(&l.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => gone += 1,
                // Another replica was first.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(ledger_error("delete", e)),
            }
        }
        Ok(gone)
    }
}

fn ledger_error(what: &'static str, e: kube::Error) -> LoginError {
    LoginError::Ledger {
        what,
        source: Box::new(e),
    }
}

#[async_trait]
impl Ledger for LeaseLedger {
    async fn first_use(&self, id: &str, keep_until: jiff::Timestamp) -> Result<bool, LoginError> {
        self.create("used", id, keep_until).await
    }

    async fn revoke(&self, grant: &str, keep_until: jiff::Timestamp) -> Result<(), LoginError> {
        self.create("revoked", grant, keep_until).await.map(|_| ())
    }

    async fn revoked(&self, grant: &str) -> Result<bool, LoginError> {
        self.api
            .get_opt(&Self::name("revoked", grant))
            .await
            .map(|l| l.is_some())
            .map_err(|e| ledger_error("revoked", e))
    }
}
