//! End to end in a real browser: headless Chromium → an OIDC app built on Authlib (a maintained
//! OIDC client library) → dingsync's provider → the simulator's DingTalk login page → "scan" →
//! back in the app with a verified ID token whose claims are the person's entry in a real
//! slapd. A former employee is refused; the Workbench entry lands in the app signed in.
//! Screenshots go to `target/screenshots/login/`.
//!
//! Needs Debian `chromium`, `chromium-driver` and the test venv (`tests/run` installs them).
//! Without them the test says why and passes, unless `DINGSYNC_REQUIRE_BROWSER=1`, `CI` or
//! `DINGSYNC_REQUIRE_SERVERS=1` is set (`tests/run` sets them), where a missing piece is a
//! failure.

use crate::support::World;
use std::{path::PathBuf, process::Command, sync::Arc};

use dingsync::{
    api::{mapping::FieldMappingSpec, target::Layout},
    directory::Directory,
    login::{Clients, DirectoryAccounts, KeySet, Provider, ProviderConfig, Providers, claim_rules},
    sim::SimConfig,
    sync::{self, Options},
};
use serde_json::Value;

const CORP: &str = "dingsimcorp";
const SECRET: &str = "relying-party-secret-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_logs_in_to_an_oidc_app_with_dingtalk() {
    if !crate::support::browser::available() {
        return;
    }
    // DingTalk (simulated) and the directory, synced once.
    let Some(w) = World::builder()
        .people(40)
        .departments(6)
        .seed(11)
        .sim_config(SimConfig::fast())
        .slapd()
        .build()
        .await
    else {
        return;
    };
    let (sim, client) = (&w.sim, w.client.clone());
    let dir: Arc<dyn Directory> = Arc::new(w.ldap(&w.node("login"), Layout::FlatWithGroups).await);
    let report = sync::run(
        &w.source(),
        dir.as_ref(),
        &crate::support::conformance::mapping(),
        &Options {
            max_percent: 100,
            ..Default::default()
        },
        false,
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    // The member logs in; a former employee (left after the sync, so the directory still has
    // an enabled account) must be refused because DingTalk no longer counts them as a member.
    let people = sim.org().people.clone();
    let member = people
        .iter()
        .find(|p| p.email.is_some() && p.departments.iter().any(|d| *d != 1))
        .unwrap()
        .userid
        .clone();
    let outsider = people
        .iter()
        .find(|p| p.userid != member)
        .unwrap()
        .userid
        .clone();
    sim.leave(&outsider).unwrap();

    // dingsync's provider.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dingtalk/acme", listener.local_addr().unwrap());
    let rp_port = crate::support::browser::free_port();
    let rp = format!("http://127.0.0.1:{rp_port}");
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "user:\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  - {target: mail, template: '{{ email }}'}\n  uniqueName: {attribute: uid, template: '{{ name | pinyin }}'}\n",
    )
    .unwrap();
    let provider = Provider::new(
        ProviderConfig {
            issuer: issuer.clone(),
            corp_id: CORP.into(),
            display_name: sim.org().name.clone(),
            session_ttl: jiff::SignedDuration::from_hours(8),
        },
        Clients::parse(&format!(
            "clients:\n- id: app\n  secret: {SECRET}\n  redirectUris: [{rp}/auth]\n  homepage: {rp}/login\n"
        ))
        .unwrap(),
        Arc::new(std::sync::RwLock::new(Arc::new(
            KeySet::generate(jiff::Timestamp::now()).unwrap(),
        ))),
        Arc::new(client),
        Arc::new(DirectoryAccounts::new(dir.clone(), claim_rules(&spec, &[]))),
    )
    .unwrap();
    let providers = Providers::default();
    providers.put(Arc::new(provider));
    let router = providers.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    // The browser run.
    let shots = root().join("target/screenshots/login");
    // Only this test's pictures: others (the in-app login's) share the folder.
    for f in [
        "01-dingtalk-qr-login.png",
        "02-app-signed-in.png",
        "03-outsider-refused.png",
        "04-workbench-signed-in.png",
    ] {
        let _ = std::fs::remove_file(shots.join(f));
    }
    let out = tokio::task::spawn_blocking({
        let (issuer, member, outsider, shots) = (
            issuer.clone(),
            member.clone(),
            outsider.clone(),
            shots.clone(),
        );
        move || {
            Command::new(root().join(".venv/bin/python"))
                .arg(root().join("tests/login/browser_login.py"))
                .args(["--issuer", &issuer, "--rp-port", &rp_port.to_string()])
                .args([
                    "--client-secret",
                    SECRET,
                    "--member",
                    &member,
                    "--outsider",
                    &outsider,
                ])
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

    // The claims the app verified are the directory entry.
    let snap = dir.read().await.unwrap();
    let entry = snap
        .people
        .iter()
        .find(|e| e.id.as_deref() == Some(member.as_str()))
        .unwrap();
    let attr = |a: &str| Value::String(entry.attrs.first(a).unwrap().to_owned());
    let m = &r["member"];
    assert_eq!(m["iss"], issuer.as_str());
    assert_eq!(m["aud"], "app");
    assert_eq!(m["preferred_username"], attr("uid"));
    assert_eq!(m["email"], attr("mail"));
    assert_eq!(m["name"], attr("cn"));
    let mut groups: Vec<String> = snap
        .departments
        .iter()
        .filter(|d| entry.departments.contains(&d.id))
        .map(|d| d.name.clone())
        .collect();
    groups.sort();
    assert_eq!(m["groups"], serde_json::json!(groups));
    assert_eq!(m["_userinfo"]["sub"], m["sub"]);
    assert_eq!(
        m["_userinfo"]["preferred_username"],
        m["preferred_username"]
    );
    assert!(
        r["login_page_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/oauth2/auth", sim.base_url())),
        "the browser went through DingTalk's login page"
    );

    // The former employee saw dingsync's refusal and the app has no session.
    assert!(
        r["outsider"]["text"]
            .as_str()
            .unwrap()
            .contains("not a member of"),
        "{}",
        r["outsider"]
    );
    assert!(r["outsider"]["url"].as_str().unwrap().starts_with(&issuer));
    assert_eq!(r["outsider"]["app_session"], Value::Null);

    // Workbench: same person, same sub, in the app; the second open needed no DingTalk page.
    assert_eq!(r["workbench"]["sub"], m["sub"]);
    assert_eq!(r["workbench_again"]["sub"], m["sub"]);
    assert!(r["workbench_again_url"].as_str().unwrap().starts_with(&rp));

    for f in [
        "01-dingtalk-qr-login.png",
        "02-app-signed-in.png",
        "03-outsider-refused.png",
        "04-workbench-signed-in.png",
    ] {
        let meta = std::fs::metadata(shots.join(f)).unwrap_or_else(|_| panic!("screenshot {f}"));
        assert!(meta.len() > 2000, "{f} is empty");
    }
    println!("screenshots in {}", shots.display());
}
