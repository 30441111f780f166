//! The Workbench's in-app login in a real browser: headless Chromium at a phone's size, the
//! simulator's stand-in for DingTalk's JSAPI, dingsync's provider and the Authlib app of
//! `tests/login/browser_login.py`. Inside DingTalk the person lands in the app signed in with no
//! DingTalk page (the code comes from the JSAPI and `getuserinfo`, never from the QR login); a
//! former employee and a disabled account get dingsync's refusal page; outside DingTalk the QR
//! login runs. Screenshots go to `target/screenshots/login/`.
//!
//! Needs what `login_browser.rs` needs (Chromium, chromedriver, the venv); without them the test
//! says why and passes, unless servers are required (CI, `tests/run`).

use std::{path::PathBuf, process::Command, sync::Arc};

use dingsync::{
    api::mapping::FieldMappingSpec,
    directory::{Directory, memory::MemoryDirectory},
    login::{
        Clients, DirectoryAccounts, KeySet, PasswordError, PasswordStore, Provider, ProviderConfig,
        Providers, claim_rules,
    },
    secret::Secret,
    sim::SimConfig,
};
use serde_json::Value;

use crate::support;

const CORP: &str = "dingsimcorp";
const SECRET: &str = "relying-party-secret-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory whose password policy wants 8 characters, refusing like slapd's ppolicy (the
/// real one is exercised in `login_account.rs`; here only the pages are photographed).
struct MinLength;

#[async_trait::async_trait]
impl PasswordStore for MinLength {
    async fn set_password(&self, _userid: &str, new: &Secret) -> Result<(), PasswordError> {
        if new.expose().len() < 8 {
            return Err(PasswordError::Refused(
                "Password fails quality checking policy".into(),
            ));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workbench_in_app_login_needs_no_page_and_refuses_leavers() {
    if !crate::support::browser::available() {
        return;
    }
    let w = support::World::builder()
        .people(20)
        .departments(4)
        .seed(31)
        .sim_config(SimConfig::fast())
        .build()
        .await
        .expect("a world without servers");
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let report = support::import::sync_once(&w, dir.as_ref(), "login").await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let people: Vec<String> = w
        .sim
        .org()
        .people
        .iter()
        .map(|p| p.userid.clone())
        .collect();
    let (member, former, disabled) = (people[0].clone(), people[1].clone(), people[2].clone());
    // Left DingTalk after the last sync: the directory still has them, DingTalk does not.
    w.sim.leave(&former).unwrap();
    // Still in DingTalk, but the account is disabled.
    dir.disable_person(&disabled).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dingtalk/acme", listener.local_addr().unwrap());
    let rp_port = crate::support::browser::free_port();
    let rp = format!("http://127.0.0.1:{rp_port}");
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "user:\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  uniqueName: {attribute: uid, template: '{{ name | pinyin }}'}\n",
    )
    .unwrap();
    let client = Arc::new(w.client.clone());
    let provider = Provider::new(
        ProviderConfig {
            issuer: issuer.clone(),
            corp_id: CORP.into(),
            display_name: w.sim.org().name.clone(),
            session_ttl: jiff::SignedDuration::from_hours(8),
        },
        Clients::parse(&format!(
            "clients:\n- id: app\n  secret: {SECRET}\n  redirectUris: [{rp}/auth]\n  homepage: {rp}/login\n"
        ))
        .unwrap(),
        Arc::new(std::sync::RwLock::new(Arc::new(
            KeySet::generate(jiff::Timestamp::now()).unwrap(),
        ))),
        client.clone(),
        Arc::new(DirectoryAccounts::new(
            dir.clone() as Arc<dyn Directory>,
            claim_rules(&spec, &[]),
        )),
    )
    .unwrap()
    .with_self_service(Arc::new(MinLength))
    .with_jsapi(format!(
        "{}/jsapi-standin/dingtalk.open.js",
        w.sim.base_url()
    ));
    let providers = Providers::default();
    providers.put(Arc::new(provider));
    let router = providers.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let shots = root().join("target/screenshots/login");
    std::fs::create_dir_all(&shots).unwrap();
    let sim_url = w.sim.base_url();
    let out = tokio::task::spawn_blocking({
        let (issuer, shots) = (issuer.clone(), shots.clone());
        let (member, former, disabled) = (member.clone(), former.clone(), disabled.clone());
        move || {
            Command::new(root().join(".venv/bin/python"))
                .arg(root().join("tests/login/browser_inapp.py"))
                .args(["--issuer", &issuer, "--sim", &sim_url])
                .args(["--rp-port", &rp_port.to_string(), "--client-secret", SECRET])
                .args(["--member", &member, "--former", &former])
                .args(["--disabled", &disabled])
                .arg("--screenshots")
                .arg(&shots)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser run failed:\n{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    // In DingTalk: signed in to the app, and the only DingTalk call was getuserinfo.
    let snap = dir.read().await.unwrap();
    let uid = |id: &str| {
        snap.people
            .iter()
            .find(|e| e.id.as_deref() == Some(id))
            .and_then(|e| e.attrs.first("uid"))
            .map(str::to_owned)
            .unwrap()
    };
    assert_eq!(r["member"]["preferred_username"], uid(&member).as_str());
    assert!(r["member_url"].as_str().unwrap().starts_with(&rp));
    assert_eq!(r["account_login"], uid(&member).as_str());
    assert!(
        r["password_refused"]
            .as_str()
            .unwrap()
            .contains("too short or too simple"),
        "{}",
        r["password_refused"]
    );
    for (key, says) in [("former", "not a member of"), ("disabled", "disabled")] {
        let text = r[key]["text"].as_str().unwrap();
        assert!(text.contains(says), "{key}: {text}");
        assert!(
            r[key]["url"].as_str().unwrap().starts_with(&issuer),
            "{key}"
        );
        assert_eq!(r[key]["app_session"], Value::Null, "{key}");
    }
    assert!(
        r["no_code"]["text"]
            .as_str()
            .unwrap()
            .contains("could not confirm"),
        "{}",
        r["no_code"]
    );
    // Outside DingTalk: DingTalk's QR page, then the app.
    assert!(
        r["qr_page_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/oauth2/auth", w.sim.base_url())),
        "{}",
        r["qr_page_url"]
    );
    assert_eq!(r["qr"]["sub"], r["member"]["sub"]);
    let calls = client.calls();
    let count = |api: &str| calls.get(api).copied().unwrap_or(0);
    assert_eq!(
        count("/topapi/v2/user/getuserinfo"),
        3,
        "member, former employee, disabled account: {calls:?}"
    );
    assert_eq!(
        count("/v1.0/oauth2/userAccessToken"),
        1,
        "the QR login only when outside DingTalk: {calls:?}"
    );
    for f in [
        "05-inapp-signed-in.png",
        "06-inapp-former-refused.png",
        "07-inapp-disabled-refused.png",
        "08-inapp-page-no-code.png",
        "09-account-page.png",
        "10-password-rule-refused.png",
    ] {
        let meta = std::fs::metadata(shots.join(f)).unwrap_or_else(|_| panic!("screenshot {f}"));
        assert!(meta.len() > 2000, "{f} is empty");
    }
}
