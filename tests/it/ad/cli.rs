//! `dingsync plan` and `apply` with a SyncTarget whose directory is `activeDirectory`: the
//! simulator as DingTalk, the Samba DC as the domain, YAML on disk. The plan shows what an
//! apply then writes; a second plan finds nothing to do.

use std::process::{Command, Output};

use dingsync::{directory::Directory, sim};

use super::harness::open;
use crate::support::{CORP, World, samba};

fn manifests(sim_url: &str, dc: &samba::Samba, node: &str) -> String {
    let ca: String = dc.ca_pem().lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: app}}
stringData: {{appKey: "{key}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: DingTalkBinding
metadata: {{name: acme}}
spec:
  corpId: {CORP}
  credentialsSecretRef: {{name: app}}
  endpoints: {{oapi: "{sim_url}", api: "{sim_url}", login: "{sim_url}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: FieldMapping
metadata: {{name: map}}
spec:
  user:
    uniqueName: {{attribute: sAMAccountName, template: "{{{{ name | pinyin }}}}", maxLength: 20}}
    attributes:
      - {{target: cn, template: "{{{{ name }}}}"}}
      - {{target: displayName, template: "{{{{ name }}}}"}}
      - {{target: sn, template: "{{{{ name[:1] }}}}"}}
      - {{target: title, template: "{{{{ title }}}}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: SyncTarget
metadata: {{name: to-ad}}
spec:
  bindingRef: {{name: acme}}
  fieldMappingRef: {{name: map}}
  direction: Inbound
  directory:
    activeDirectory:
      url: "{url}"
      bindDN: "{upn}"
      passwordSecretRef: {{name: ad, key: password}}
      caSecretRef: {{name: ad, key: ca.crt}}
      newAccounts: EnabledWithRandomPassword
  node: "{node}"
  deletion: {{maxPercent: 100}}
---
apiVersion: v1
kind: Secret
metadata: {{name: ad}}
stringData:
  password: "{password}"
  ca.crt: |
{ca}"#,
        key = sim::DEFAULT_APP_KEY,
        url = dc.ldaps_url(),
        upn = samba::ADMIN_UPN,
        password = dc.admin_password(),
    )
}

fn dingsync(cmd: &str, dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dingsync"))
        .args([cmd, "-f"])
        .arg(dir)
        .env("DINGSYNC_SECRET_APP_APPSECRET", sim::DEFAULT_APP_SECRET)
        .output()
        .expect("run dingsync")
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_apply_into_active_directory() {
    let Some(dc) = samba::start_or_skip().await else {
        return;
    };
    let Some(w) = World::builder()
        .people(40)
        .departments(5)
        .seed(7)
        .build()
        .await
    else {
        return;
    };
    let node = dc.new_node("cli").expect("node");
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("all.yaml"),
        manifests(&w.sim.base_url(), &dc, &node),
    )
    .unwrap();
    let path = files.path().to_path_buf();
    let run = move |cmd: &'static str| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || dingsync(cmd, &path))
    };
    let out = run("plan").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "changes pending: {stdout}\n{stderr}"
    );
    assert!(stdout.contains("40 people"), "{stdout}");
    assert!(!stdout.contains(dc.admin_password()) && !stderr.contains(dc.admin_password()));
    let out = run("apply").await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "apply: {stdout}\n{stderr}");
    assert!(!stdout.contains(dc.admin_password()) && !stderr.contains(dc.admin_password()));
    let out = run("plan").await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "in step after apply: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let snap = open(&dc, &node, CORP, |_| {}).await.read().await.unwrap();
    assert_eq!(snap.people.len(), w.sim.org().people.len());
    assert!(snap.people.iter().all(|p| !p.disabled));
}
