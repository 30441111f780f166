//! The provider against a second, strict OIDC client in another language: Node's
//! `openid-client` runs `tests/oidc/strict.mjs` (discovery, code + PKCE + nonce, `max_age`,
//! RFC 9207 `iss`, `prompt` combinations, refresh token rotation, lower-case `bearer`, code
//! replay revoking tokens, two replicas refusing a second redemption). The two replicas are two
//! providers on two ports that share the keys and the single-use ledger, as replicas of the
//! controller share the keys Secret and the Kubernetes objects of the ledger.
//!
//! Needs `node` and `tests/oidc/node_modules` (`tests/run` installs them with `npm ci`).
//! Without them the test says why and passes, unless servers are required (CI).

use std::{path::PathBuf, process::Command, sync::Arc};

use dingsync::{
    api::mapping::FieldMappingSpec,
    directory::{Directory, memory::MemoryDirectory},
    login::{
        Clients, DirectoryAccounts, KeySet, Ledger, MemoryLedger, Provider, ProviderConfig,
        Providers, claim_rules,
    },
    sim::SimConfig,
};
use jiff::{SignedDuration, Timestamp};

use crate::support;

const CORP: &str = "dingsimcorp";
const SECRET: &str = "strict-client-secret-0123456789";
const CB: &str = "http://127.0.0.1:9/strict/cb";

/// The claims' source: what the synced entries carry (`uid` names them).
fn spec() -> FieldMappingSpec {
    serde_yaml::from_str(
        "user:\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  - {target: mail, template: '{{ email | lower }}'}\n  uniqueName: {attribute: uid, template: '{{ name | pinyin }}'}\n",
    )
    .unwrap()
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// What is missing to run the strict client, if anything.
fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node".into());
    }
    if !oidc_dir()
        .join("node_modules/openid-client/package.json")
        .exists()
    {
        return Some("tests/oidc/node_modules (npm ci in tests/oidc)".into());
    }
    None
}

async fn serve(providers: Providers) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = providers.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread")]
async fn a_strict_openid_client_finds_no_fault() {
    if let Some(m) = missing() {
        support::require::unavailable("the strict OIDC client (node, openid-client)", &m);
        return;
    }
    let w = support::World::builder()
        .people(12)
        .departments(3)
        .seed(22)
        .sim_config(SimConfig::fast())
        .build()
        .await
        .expect("a world without servers");
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let report = support::import::sync_once(&w, dir.as_ref(), "login").await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let userid = w.sim.org().people[0].userid.clone();

    // Two replicas: same keys, same ledger, same issuer (named by replica 1's address).
    let one = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dingtalk/strict", one.local_addr().unwrap());
    let keys = Arc::new(std::sync::RwLock::new(Arc::new(
        KeySet::generate(Timestamp::now()).unwrap(),
    )));
    let ledger: Arc<dyn Ledger> = Arc::new(MemoryLedger::new());
    let client = Arc::new(w.client.clone());
    let replica = || {
        let clients = Clients::parse(&format!(
            "clients:\n- id: strict\n  secret: {SECRET}\n  redirectUris: [{CB}]\n"
        ))
        .unwrap();
        let p = Provider::new(
            ProviderConfig {
                issuer: issuer.clone(),
                corp_id: CORP.into(),
                display_name: "Acme".into(),
                session_ttl: SignedDuration::from_hours(8),
            },
            clients,
            keys.clone(),
            client.clone(),
            Arc::new(DirectoryAccounts::new(
                dir.clone() as Arc<dyn Directory>,
                claim_rules(&spec(), &[]),
            )),
        )
        .unwrap()
        .with_ledger(ledger.clone());
        let ps = Providers::default();
        ps.put(Arc::new(p));
        ps
    };
    let router = replica().router();
    tokio::spawn(async move { axum::serve(one, router).await.unwrap() });
    let replica2 = serve(replica()).await;

    let out = tokio::process::Command::new("node")
        .arg("strict.mjs")
        .current_dir(oidc_dir())
        .env("ISSUER", &issuer)
        .env("REPLICA2", &replica2)
        .env("SIM", w.sim.base_url())
        .env("CLIENT_ID", "strict")
        .env("CLIENT_SECRET", SECRET)
        .env("REDIRECT_URI", CB)
        .env("USERID", &userid)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the strict client failed:\n{text}");
    assert!(text.contains("strict client: all checks passed"), "{text}");
}
