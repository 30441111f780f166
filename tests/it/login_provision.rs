//! Provision on first login: people hired in DingTalk after the last sync (and no event
//! applied) log in and get their account from the sync engine, run for them alone with the
//! target's scope, mapping and gates; a hire outside the target's scope gets no account and is
//! refused.

use std::sync::Arc;

use dingsync::{
    api::mapping::FieldMappingSpec,
    directory::{Directory, memory::MemoryDirectory},
    login::{
        Clients, DirectoryAccounts, EngineProvisioner, KeySet, Provider, ProviderConfig, Providers,
        claim_rules,
    },
    sim::{SimConfig, UserWrite},
    sync::{self, Options, Source, dingtalk_source::DingTalkSource},
};
use jiff::{SignedDuration, Timestamp};
use reqwest::{StatusCode, redirect::Policy};

use crate::{login_account::Browser, support};

const HOME: &str = "http://127.0.0.1:9/app/login";

#[tokio::test]
async fn a_new_hire_gets_an_account_at_first_login_within_the_targets_scope() {
    let w = support::World::builder()
        .people(12)
        .departments(6)
        .seed(51)
        .sim_config(SimConfig::fast())
        .build()
        .await
        .expect("a world without servers");
    // The target covers one department's subtree; another department is outside it.
    let org = w.sim.org();
    let in_subtree = |mut id: i64, root: i64| loop {
        if id == root {
            return true;
        }
        match org
            .departments
            .iter()
            .find(|d| d.id == id)
            .and_then(|d| d.parent_id)
        {
            Some(p) => id = p,
            None => return false,
        }
    };
    let (inside, outside) = org
        .departments
        .iter()
        .filter(|d| d.id != 1)
        .flat_map(|a| org.departments.iter().map(move |b| (a.id, b.id)))
        .find(|&(a, b)| b != 1 && !in_subtree(b, a))
        .expect("a department outside another one's subtree");
    let source: Arc<dyn Source> = Arc::new(DingTalkSource::new(w.client.clone(), vec![inside]));
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let mapping = Arc::new(support::conformance::mapping());
    let opts = Options {
        max_percent: 100,
        ..Default::default()
    };
    let report = sync::run(
        source.as_ref(),
        dir.as_ref(),
        &mapping,
        &opts,
        false,
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    for (userid, name, dept) in [("newhire1", "林新", inside), ("newhire2", "周外", outside)] {
        w.sim
            .hire(UserWrite {
                userid: Some(userid.into()),
                name: Some(name.into()),
                mobile: Some(format!("1390000{:04}", dept % 10000)),
                departments: Some(vec![dept]),
                ..Default::default()
            })
            .unwrap();
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dingtalk/acme", listener.local_addr().unwrap());
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "user:\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  uniqueName: {attribute: uid, template: '{{ name | pinyin }}'}\n",
    )
    .unwrap();
    let provider = Provider::new(
        ProviderConfig {
            issuer: issuer.clone(),
            corp_id: w.corp().to_string(),
            display_name: "Acme".into(),
            session_ttl: SignedDuration::from_hours(8),
        },
        Clients::parse(&format!(
            "clients:\n- id: app\n  redirectUris: [https://app.example/cb]\n  homepage: {HOME}\n"
        ))
        .unwrap(),
        Arc::new(std::sync::RwLock::new(Arc::new(
            KeySet::generate(Timestamp::now()).unwrap(),
        ))),
        Arc::new(w.client.clone()),
        Arc::new(DirectoryAccounts::new(
            dir.clone() as Arc<dyn Directory>,
            claim_rules(&spec, &[]),
        )),
    )
    .unwrap()
    .with_provisioning(Arc::new(EngineProvisioner::new(
        source.clone(),
        dir.clone(),
        mapping.clone(),
        opts.clone(),
    )));
    let providers = Providers::default();
    providers.put(Arc::new(provider));
    let router = providers.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let login = |userid: &str| Browser {
        http: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
        cookies: Vec::new(),
        sim: w.sim.base_url(),
        issuer: issuer.clone(),
        userid: userid.to_string(),
    };
    let has_account = |userid: &'static str| {
        let dir = dir.clone();
        async move {
            dir.read()
                .await
                .unwrap()
                .people
                .iter()
                .any(|p| p.id.as_deref() == Some(userid) && !p.disabled)
        }
    };
    assert!(!has_account("newhire1").await && !has_account("newhire2").await);

    // In scope: the first login creates the account, and the person lands in the app.
    let mut b = login("newhire1");
    let r = b
        .get_raw(&format!("{issuer}/workbench?client_id=app&qr=1"))
        .await;
    let (status, url, body, logins) = b.follow_until(r, Some(HOME)).await;
    assert_eq!((status, logins), (StatusCode::OK, 1), "{url}: {body}");
    assert_eq!(url, HOME, "{body}");
    assert!(
        has_account("newhire1").await,
        "the engine created the account"
    );
    let snap = dir.read().await.unwrap();
    let entry = snap
        .people
        .iter()
        .find(|p| p.id.as_deref() == Some("newhire1"))
        .unwrap();
    assert_eq!(entry.attrs.first("cn"), Some("林新"));

    // Out of the target's scope: no account, refused.
    let mut b = login("newhire2");
    let r = b
        .get_raw(&format!("{issuer}/workbench?client_id=app&qr=1"))
        .await;
    let (status, _, body, _) = b.follow_until(r, Some(HOME)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("no account"), "{body}");
    assert!(!has_account("newhire2").await);
}
