//! `dingsync login -f DIR`: serve the OIDC provider of a binding from the same YAML the
//! cluster gets, without a cluster — to try "log in with DingTalk" with an app before
//! deploying, or against the simulator. The controller serves the same provider on every
//! replica; here the signing keys live in a file (`--keys`, created if missing) instead of a
//! Secret.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
};

use anyhow::{Context as _, anyhow, bail};

use crate::{
    api::DingTalkBinding,
    dingtalk::ClientPool,
    login::{KeySet, Providers},
    resolve::{self, Manifests},
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

/// The binding whose login to serve: the one `--binding` names, or the only one with
/// `login.enabled`.
fn login_binding<'m>(
    m: &'m Manifests,
    args: &Args,
) -> anyhow::Result<(&'m String, &'m DingTalkBinding)> {
    let enabled: Vec<_> = m
        .bindings
        .iter()
        .filter(|(n, b)| {
            b.spec.login.as_ref().is_some_and(|l| l.enabled)
                && args.binding.as_ref().is_none_or(|want| want == *n)
        })
        .collect();
    match enabled.as_slice() {
        [one] => Ok(*one),
        [] => bail!(
            "no DingTalkBinding with login.enabled in {}",
            args.path.display()
        ),
        _ => bail!("several bindings enable login; pick one with --binding"),
    }
}

/// Entry point of `dingsync login`.
pub fn run(args: Args) -> anyhow::Result<()> {
    crate::telemetry::init();
    crate::runtime::block_on(serve(args))?
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
    let m = Manifests::load(&args.path)?;
    let (bname, binding) = login_binding(&m, &args)?;
    let inputs = resolve::login_inputs(&m, binding)
        .await?
        .map_err(|p| anyhow!("DingTalkBinding {bname}: {p}"))?;
    let keys = load_keys(&args.keys)?;
    let keys = Arc::new(RwLock::new(Arc::new(keys)));
    let provider = resolve::open_login(&inputs, keys, &ClientPool::default()).await?;
    let issuer = inputs.issuer.clone();
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
                .ok_or_else(|| {
                    anyhow!("DingTalkBinding {bname}: login.issuer: cannot resolve {host}")
                })?
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    println!(
        "OIDC issuer {issuer} (listening on {listen}); discovery at {issuer}/.well-known/openid-configuration"
    );
    axum::serve(listener, providers.router())
        .with_graceful_shutdown(crate::runtime::shutdown_signal())
        .await?;
    Ok(())
}
