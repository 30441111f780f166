//! Secrets never reach the output: `dingsync plan` and `dingsync apply` run at `RUST_LOG=trace`
//! (every crate's logs on) against the simulator, a real slapd and a real scim2-server, with
//! right and wrong credentials; the captured stdout and stderr must not contain the AppSecret,
//! the LDAP bind password, the SCIM token, or any access token DingTalk issued.

use crate::support::{World, manifests, scim_server, slapd};
use std::process::Command;

use dingsync::sim::{self, SimConfig};

fn manifests(
    sim_url: &str,
    app_secret: &str,
    ldap: (&str, &str, &str),
    scim: Option<(&str, &str)>,
) -> String {
    let (ldap_url, node, password) = ldap;
    let mut out = manifests::InboundLdap {
        sim_url,
        app_key: sim::DEFAULT_APP_KEY,
        app_secret: Some(app_secret),
        ldap_url,
        bind_dn: slapd::SERVICE_DN,
        node,
        password,
        attributes: &[],
    }
    .yaml();
    if let Some((scim_url, token)) = scim {
        out.push_str(&format!(
            r#"---
apiVersion: dingsync.io/v1alpha1
kind: FieldMapping
metadata: {{name: scim-map}}
spec:
  user:
    uniqueName: {{attribute: userName, template: "{{{{ name | pinyin }}}}"}}
    attributes:
      - {{target: displayName, template: "{{{{ name }}}}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: SyncTarget
metadata: {{name: to-scim}}
spec:
  bindingRef: {{name: acme}}
  fieldMappingRef: {{name: scim-map}}
  direction: Inbound
  directory:
    scim: {{url: "{scim_url}", tokenSecretRef: {{name: scim, key: token}}}}
  node: acme
---
apiVersion: v1
kind: Secret
metadata: {{name: scim}}
stringData: {{token: "{token}"}}
"#
        ));
    }
    out
}

fn run(cmd: &str, dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dingsync"))
        .args([cmd, "-f"])
        .arg(dir)
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run dingsync");
    format!(
        "--- dingsync {cmd} (exit {:?})\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_any_output_at_trace_level() {
    let Some(w) = World::builder()
        .people(40)
        .departments(5)
        .seed(3)
        .sim_config(SimConfig {
            qps_limit: None,
            ..Default::default()
        })
        .slapd()
        .build()
        .await
    else {
        return;
    };
    let (server, handle) = (w.slapd(), &w.sim);
    // Optional: without scim2-server (and servers not required) the SCIM target is left out.
    let scim = scim_server::ScimServer::start();
    let node = w.node("secrets");
    let password = server.service_password().to_owned();
    let ldap = (server.url(), node.clone(), password.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    let write = |app_secret: &str| {
        std::fs::write(
            &file,
            manifests(
                &handle.base_url(),
                app_secret,
                (&ldap.0, &ldap.1, &ldap.2),
                scim.as_ref()
                    .map(|s| (s.base_url.as_str(), s.token.as_str())),
            ),
        )
        .unwrap();
    };

    let mut captured = String::new();
    write(sim::DEFAULT_APP_SECRET);
    for cmd in ["plan", "apply", "apply", "plan"] {
        captured.push_str(&run(cmd, dir.path()));
    }
    // The runs really happened: people reached slapd.
    let listing = server
        .search(&format!("ou=people,{node}"), "(uid=*)", &["1.1"])
        .unwrap();
    assert_eq!(listing.matches("dn: ").count(), 40, "{captured}");
    // Wrong credentials: the refusals are reported, the secrets still are not.
    let wrong_app_secret = "wrong-app-secret-5f0c1d2e3a4b";
    write(wrong_app_secret);
    let refused = run("apply", dir.path());
    assert!(
        refused.contains("40096") || refused.to_lowercase().contains("credential"),
        "a wrong AppSecret is reported: {refused}"
    );
    captured.push_str(&refused);

    let issued: Vec<String> = handle.with_state(|s| {
        s.auth
            .tokens
            .keys()
            .cloned()
            .chain(s.auth.app_tokens.values().cloned())
            .collect()
    });
    assert!(!issued.is_empty(), "DingTalk issued tokens");
    let mut secrets = vec![
        ("AppSecret", sim::DEFAULT_APP_SECRET.to_owned()),
        ("wrong AppSecret", wrong_app_secret.to_owned()),
        ("LDAP bind password", password),
    ];
    if let Some(s) = &scim {
        secrets.push(("SCIM token", s.token.clone()));
    } else {
        eprintln!("SCIM part skipped: scim2-server not installed");
    }
    secrets.extend(issued.into_iter().map(|t| ("DingTalk access token", t)));
    assert!(
        captured.len() > 10_000,
        "trace logging was on: {} bytes",
        captured.len()
    );
    for (what, value) in &secrets {
        assert!(value.len() >= 8, "{what} is long enough to grep for");
        if let Some(at) = captured.find(value.as_str()) {
            let from = at.saturating_sub(200);
            panic!(
                "{what} leaked into the output near: {}",
                &captured[from..at].replace(value.as_str(), "<SECRET>")
            );
        }
    }
    w.sim.shutdown().await;
}
