//! `dingsync plan` end to end: the simulator as DingTalk, a real slapd, YAML on disk.
//! It prints the pending changes, exits 2, and writes nothing; once synced it exits 0.

use crate::support::{manifests, slapd};
use std::process::Command;

use dingsync::{
    dingtalk::{ClientConfig, DingTalkClient, Secret},
    directory::ldap::{
        LdapDirectory,
        client::{ConnectOptions, Pool, Secret as LdapSecret},
        store::Store,
    },
    sim::{
        self, SimConfig, Simulator,
        generate::{GenSpec, generate},
    },
    sync::{self, Options, dingtalk_source::DingTalkSource},
};

fn manifests(sim_url: &str, ldap_url: &str, node: &str, password: &str) -> String {
    manifests::InboundLdap {
        sim_url,
        app_key: sim::DEFAULT_APP_KEY,
        app_secret: None,
        ldap_url,
        bind_dn: slapd::SERVICE_DN,
        node,
        password,
        attributes: &[
            ("mail", "{{ email | lower }}"),
            ("mobile", "{{ mobile }}"),
            ("title", "{{ title }}"),
        ],
    }
    .yaml()
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_changes_writes_nothing_and_exits_by_state() {
    let Some(server) = slapd::start_or_skip() else {
        return;
    };
    let config = SimConfig {
        qps_limit: None,
        ..Default::default()
    };
    let org = generate(&GenSpec {
        people: 60,
        departments: 6,
        seed: 4,
        corp_id: "dingsimcorp".into(),
        ..Default::default()
    });
    let handle = Simulator::start(config, org, "127.0.0.1:0").await.unwrap();
    let node = server.new_node("plan").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("all.yaml"),
        manifests(
            &handle.base_url(),
            &server.url(),
            &node,
            server.service_password(),
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_dingsync");
    let run = |dir: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            // The AppSecret comes from the environment, not the manifests.
            Command::new(bin)
                .args(["plan", "-f"])
                .arg(dir)
                .env("DINGSYNC_SECRET_APP_APPSECRET", sim::DEFAULT_APP_SECRET)
                .output()
                .unwrap()
        })
    };
    let out = run(dir.path().to_path_buf()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "changes pending: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("+ create"), "{stdout}");
    assert!(stdout.contains("60 people"), "{stdout}");
    assert!(!stdout.contains(sim::DEFAULT_APP_SECRET));
    // Nothing was written: the node still has no children.
    let listing = server.search(&node, "(objectClass=*)", &["1.1"]).unwrap();
    assert_eq!(
        listing.matches("dn: ").count(),
        1,
        "only the node itself: {listing}"
    );

    // Sync for real, then the plan is empty and exits 0.
    let pool = Pool::connect(ConnectOptions::new(
        server.url(),
        slapd::SERVICE_DN,
        LdapSecret::new(server.service_password()),
    ))
    .await
    .unwrap();
    let ldap = LdapDirectory::new(
        Store::open(pool, &node, Default::default(), "dingsimcorp")
            .await
            .unwrap(),
    );
    let client = DingTalkClient::new(
        ClientConfig::new(
            "dingsimcorp",
            sim::DEFAULT_APP_KEY,
            Secret::new(sim::DEFAULT_APP_SECRET.to_owned()),
        )
        .with_base(&handle.base_url()),
    );
    let source = DingTalkSource::new(client, vec![1]);
    let mapping = dingsync::mapping::Mapping::compile(
        &serde_yaml::from_str::<dingsync::api::FieldMapping>(
            manifests("x", "x", "x", "x").split("---").nth(2).unwrap(),
        )
        .unwrap()
        .spec,
    )
    .unwrap();
    let r = sync::run(
        &source,
        &ldap,
        &mapping,
        &Options::default(),
        false,
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let out = run(dir.path().to_path_buf()).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
