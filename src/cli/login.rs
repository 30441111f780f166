//! `dingsync login -f DIR`: serve the OIDC provider of a binding from the same YAML the
//! cluster gets, without a cluster — to try "log in with DingTalk" with an app before
//! deploying, or against the simulator. The controller serves the same provider on every
//! replica; here the signing keys live in a file (`--keys`, created if missing) instead of a
//! Secret.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::{Context as _, anyhow, bail};

use super::plan::{load, secret};
use crate::{
    api::target::Direction,
    controller::{Sensitive, SyncRequest, adapters},
    dingtalk::DingTalkClient,
    login::{Clients, DirectoryAccounts, KeySet, Provider, ProviderConfig, Providers, claim_rules},
};

/// Options of `dingsync login`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory (or file) with the DingTalkBinding, FieldMapping, SyncTarget and Secret YAML.
    #[arg(short = 'f', long = "filename")]
    pub path: PathBuf,
    /// The binding whose login to serve (default: the only one with `login.enabled`).
    #[arg(long)]
    pub binding: Option<String>,
    /// Listen address (default: the issuer URL's host and port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// File holding the signing keys (created if missing; keep it private).
    #[arg(long)]
    pub keys: PathBuf,
}

/// Entry point of `dingsync login`.
pub fn run(args: Args) -> anyhow::Result<()> {
    crate::telemetry::init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

fn load_keys(path: &PathBuf) -> anyhow::Result<KeySet> {
    let now = jiff::Timestamp::now();
    let mut set = match std::fs::read(path) {
        Ok(raw) => KeySet::from_json(&raw).with_context(|| format!("--keys {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeySet::generate(now)?,
        Err(e) => return Err(e).with_context(|| format!("--keys {}", path.display())),
    };
    set.rotate(now, crate::login::keys::ROTATE_AFTER)?;
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("--keys {}", tmp.display()))?;
        std::io::Write::write_all(&mut f, &set.to_json())?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("--keys {}", path.display()))?;
    Ok(set)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let m = load(&args.path)?;
    let enabled: Vec<_> = m
        .bindings
        .iter()
        .filter(|(n, b)| {
            b.spec.login.as_ref().is_some_and(|l| l.enabled)
                && args.binding.as_ref().is_none_or(|want| want == *n)
        })
        .collect();
    let (bname, binding) = match enabled.as_slice() {
        [one] => *one,
        [] => bail!(
            "no DingTalkBinding with login.enabled in {}",
            args.path.display()
        ),
        _ => bail!("several bindings enable login; pick one with --binding"),
    };
    let login = binding.spec.login.clone().unwrap_or_default();
    let at = |f: &str| format!("DingTalkBinding {bname}: login.{f}");
    let issuer = login
        .issuer
        .clone()
        .ok_or_else(|| anyhow!("{} is required", at("issuer")))?;
    let cref = login
        .clients_secret_ref
        .clone()
        .ok_or_else(|| anyhow!("{} is required", at("clientsSecretRef")))?;
    let clients = Clients::parse(&secret(
        &m,
        &cref.name,
        "clients.yaml",
        &at("clientsSecretRef"),
    )?)
    .map_err(|e| anyhow!("Secret {}: {e}", cref.name))?;
    let tref = login
        .target_ref
        .clone()
        .ok_or_else(|| anyhow!("{} is required", at("targetRef")))?;
    let target = m
        .targets
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some(tref.name.as_str()))
        .ok_or_else(|| anyhow!("{}: SyncTarget {:?} not found", at("targetRef"), tref.name))?;
    if target.spec.direction != Direction::Inbound || target.spec.binding_ref.name != *bname {
        bail!(
            "{}: SyncTarget {:?} must be an Inbound target of this binding",
            at("targetRef"),
            tref.name
        );
    }
    let spec = target.spec.clone();
    let fm = m
        .mappings
        .get(&spec.field_mapping_ref.name)
        .ok_or_else(|| {
            anyhow!(
                "SyncTarget {}: FieldMapping {:?} not found",
                tref.name,
                spec.field_mapping_ref.name
            )
        })?;
    let cred = &binding.spec.credentials_secret_ref;
    let app_key = secret(&m, &cred.name, &cred.app_key_key, "credentialsSecretRef")?;
    let app_secret = secret(&m, &cred.name, &cred.app_secret_key, "credentialsSecretRef")?;
    let Some((dref, field)) = spec.directory.credential_ref() else {
        bail!("SyncTarget {}: set exactly one of ldap or scim", tref.name);
    };
    let dir_secret = secret(&m, &dref.name, &dref.key, field)?;
    let ca = match spec.directory.ca_ref() {
        Some(r) => Some(secret(&m, &r.name, &r.key, "caSecretRef")?.into_bytes()),
        None => None,
    };
    let request = SyncRequest {
        target: tref.name.clone(),
        spec,
        binding: binding.spec.clone(),
        mapping: fm.spec.clone(),
        app_key: app_key.clone(),
        app_secret: Sensitive::new(app_secret.clone()),
        directory_secret: Sensitive::new(dir_secret),
        directory_ca: ca,
        trigger: String::new(),
        approval: None,
        progress: None,
        callback: None,
    };
    let dir = adapters::open_directory(&request, true)
        .await
        .map_err(|e| anyhow!("SyncTarget {}: {e}", tref.name))?;
    let claims: Vec<(String, String)> = login.claims.clone().into_iter().collect();
    let keys = load_keys(&args.keys)?;
    let client = DingTalkClient::shared(adapters::client_config(
        &binding.spec,
        &app_key,
        &Sensitive::new(app_secret),
    ));
    let provider = Provider::new(
        ProviderConfig {
            issuer: issuer.clone(),
            corp_id: binding.spec.corp_id.clone(),
            display_name: binding.spec.corp_id.clone(),
            session_ttl: login
                .session_ttl
                .map(std::time::Duration::from)
                .and_then(|d| jiff::SignedDuration::try_from(d).ok())
                .unwrap_or(jiff::SignedDuration::from_hours(8)),
        },
        clients,
        Arc::new(std::sync::RwLock::new(Arc::new(keys))),
        Arc::new(client),
        Arc::new(DirectoryAccounts::new(dir, claim_rules(&fm.spec, &claims))),
    )?;
    let providers = Providers::default();
    providers.put(Arc::new(provider));
    let listen = match args.listen {
        Some(a) => a,
        None => {
            let u = url::Url::parse(&issuer)?;
            let host = u.host_str().unwrap_or("127.0.0.1");
            let port = u.port_or_known_default().unwrap_or(80);
            tokio::net::lookup_host((host, port))
                .await?
                .next()
                .ok_or_else(|| anyhow!("{}: cannot resolve {host}", at("issuer")))?
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    println!(
        "OIDC issuer {issuer} (listening on {listen}); discovery at {issuer}/.well-known/openid-configuration"
    );
    axum::serve(listener, providers.router())
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        })
        .await?;
    Ok(())
}
