//! End to end against a real cluster: the cluster `KUBECONFIG` names. Skipped, with the reason
//! printed, when it is unset. Needs nothing but a cluster where the test may create CRDs and a
//! namespace: the controller runs inside this test process.

use std::time::Duration;

use dingsync::{
    api::{DingTalkBinding, FieldMapping, SyncTarget, find_condition},
    controller::{self, Settings, metrics::Metrics},
};
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::wait::{await_condition, conditions},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn cluster_configured() -> bool {
    match std::env::var("KUBECONFIG") {
        Ok(v) if !v.is_empty() => true,
        _ => {
            eprintln!("skipped: KUBECONFIG is not set; the end-to-end suite needs a real cluster");
            false
        }
    }
}

async fn apply_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("dingsync-e2e").force();
    for crd in dingsync::api::crds() {
        let name = crd.name_any();
        crds.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .expect("apply CRD");
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established in time")
        .expect("watch CRD");
    }
}

/// Wait until `get` returns a value whose condition `type_` has the wanted status and reason.
async fn wait_condition<K, F>(
    api: &Api<K>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
    conds: F,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(obj) = api.get(name).await {
            let cs = conds(&obj);
            if let Some(c) = find_condition(&cs, type_)
                && c.status == status
                && c.reason == reason
            {
                assert_eq!(
                    c.observed_generation,
                    obj.meta().generation,
                    "{name}: observedGeneration"
                );
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{name}: wanted {type_}={status}/{reason}, have {cs:#?}");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap())
        .collect()
}

/// A fresh namespace watched by the controller (run in this process): `scenario` runs there,
/// then the controller stops and the namespace goes, whatever the scenario did.
async fn with_controller<F, Fut>(instance: &str, scenario: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    dingsync::telemetry::init();
    let client = Client::try_default()
        .await
        .expect("a client for KUBECONFIG");
    apply_crds(&client).await;
    let ns = format!(
        "dingsync-e2e-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let body = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    namespaces
        .create(&PostParams::default(), &body)
        .await
        .expect("create namespace");
    let shutdown = CancellationToken::new();
    let ctx = controller::production_context(
        client.clone(),
        instance,
        std::sync::Arc::new(Metrics::default()),
    );
    let settings = Settings {
        namespace: Some(ns.clone()),
        concurrency: 2,
        instance: instance.into(),
    };
    let running = tokio::spawn(controller::run(
        client.clone(),
        ctx,
        settings,
        shutdown.clone(),
    ));
    let result = std::panic::AssertUnwindSafe(scenario(client, ns.clone()));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn controller_against_a_real_cluster() {
    if !cluster_configured() {
        return;
    }
    with_controller(
        "e2e",
        |client, ns| async move { scenario(&client, &ns).await },
    )
    .await;
}

async fn scenario(client: &Client, ns: &str) {
    // A dynamic apply of plain YAML, as kubectl would.
    let apply = |doc: serde_json::Value| {
        let client = client.clone();
        let ns = ns.to_string();
        async move {
            let kind = doc["kind"].as_str().unwrap().to_string();
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let pp = PatchParams::apply("dingsync-e2e");

            match kind.as_str() {
                "Secret" => Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, &ns)
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .map(|_| ()),
                "DingTalkBinding" => Api::<DingTalkBinding>::namespaced(client, &ns)
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .map(|_| ()),
                "FieldMapping" => Api::<FieldMapping>::namespaced(client, &ns)
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .map(|_| ()),
                "SyncTarget" => Api::<SyncTarget>::namespaced(client, &ns)
                    .patch(&name, &pp, &Patch::Apply(&doc))
                    .await
                    .map(|_| ()),
                other => panic!("unexpected kind {other}"),
            }
        }
    };

    // DingTalk is unreachable from here on purpose: the binding must say so, not crash.
    let objects = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: app, namespace: {ns}}}
stringData: {{appKey: e2e-key, appSecret: e2e-secret}}
---
apiVersion: v1
kind: Secret
metadata: {{name: ldap, namespace: {ns}}}
stringData: {{password: e2e-password}}
---
apiVersion: dingsync.io/v1alpha1
kind: DingTalkBinding
metadata: {{name: acme, namespace: {ns}}}
spec:
  corpId: dinge2e
  credentialsSecretRef: {{name: app}}
  endpoints: {{oapi: "http://127.0.0.1:9", api: "http://127.0.0.1:9"}}
---
apiVersion: dingsync.io/v1alpha1
kind: FieldMapping
metadata: {{name: map, namespace: {ns}}}
spec:
  user:
    uniqueName: {{attribute: uid, template: "{{{{ name | pinyin }}}}"}}
    attributes:
      - {{target: cn, template: "{{{{ name }}}}"}}
---
apiVersion: dingsync.io/v1alpha1
kind: FieldMapping
metadata: {{name: broken, namespace: {ns}}}
spec:
  user:
    uniqueName: {{attribute: uid, template: "{{{{ name | pinyin }}}}"}}
    attributes:
      - {{target: cn, template: "{{{{ name "}}
---
apiVersion: dingsync.io/v1alpha1
kind: SyncTarget
metadata: {{name: paused, namespace: {ns}}}
spec:
  bindingRef: {{name: acme}}
  fieldMappingRef: {{name: map}}
  direction: Inbound
  directory:
    ldap: {{url: "ldap://ldap.invalid:389", bindDN: "cn=admin,dc=example,dc=com", passwordSecretRef: {{name: ldap, key: password}}}}
  node: ou=paused,dc=example,dc=com
  suspend: true
---
apiVersion: dingsync.io/v1alpha1
kind: SyncTarget
metadata: {{name: waiting, namespace: {ns}}}
spec:
  bindingRef: {{name: acme}}
  fieldMappingRef: {{name: map}}
  direction: Inbound
  directory:
    ldap: {{url: "ldap://ldap.invalid:389", bindDN: "cn=admin,dc=example,dc=com", passwordSecretRef: {{name: ldap, key: password}}}}
  node: ou=waiting,dc=example,dc=com
"#
    );
    for doc in docs(&objects) {
        apply(doc).await.expect("apply");
    }

    let bindings: Api<DingTalkBinding> = Api::namespaced(client.clone(), ns);
    let mappings: Api<FieldMapping> = Api::namespaced(client.clone(), ns);
    let targets: Api<SyncTarget> = Api::namespaced(client.clone(), ns);
    let b_conds = |b: &DingTalkBinding| b.status.clone().unwrap_or_default().conditions;
    let m_conds = |m: &FieldMapping| m.status.clone().unwrap_or_default().conditions;
    let t_conds = |t: &SyncTarget| t.status.clone().unwrap_or_default().conditions;
    wait_condition(
        &bindings,
        "acme",
        "Ready",
        "False",
        "ApiUnreachable",
        b_conds,
    )
    .await;
    wait_condition(&mappings, "map", "Ready", "True", "Valid", m_conds).await;
    wait_condition(
        &mappings,
        "broken",
        "Ready",
        "False",
        "InvalidRule",
        m_conds,
    )
    .await;
    wait_condition(&targets, "paused", "Ready", "False", "Suspended", t_conds).await;
    wait_condition(
        &targets,
        "waiting",
        "Ready",
        "False",
        "BindingNotReady",
        t_conds,
    )
    .await;

    // Secrets never reach status.
    let status = serde_json::to_string(&bindings.get("acme").await.unwrap().status).unwrap();
    assert!(!status.contains("e2e-secret"));

    // The API server refuses malformed objects, naming the field.
    let bad = [
        (
            "two-backends",
            r#"{"ldap": {"url": "ldap://x:389", "bindDN": "cn=a", "passwordSecretRef": {"name": "ldap", "key": "password"}},
                "scim": {"url": "https://x/scim/v2", "tokenSecretRef": {"name": "t", "key": "token"}}}"#,
            "Inbound",
            "exactly one of ldap or scim",
        ),
        (
            "wrong-enum",
            r#"{"ldap": {"url": "ldap://x:389", "bindDN": "cn=a", "passwordSecretRef": {"name": "ldap", "key": "password"}}}"#,
            "Sideways",
            "spec.direction",
        ),
    ];
    for (name, directory, direction, expect) in bad {
        let doc = json!({
            "apiVersion": "dingsync.io/v1alpha1",
            "kind": "SyncTarget",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "bindingRef": {"name": "acme"},
                "fieldMappingRef": {"name": "map"},
                "direction": direction,
                "directory": serde_json::from_str::<serde_json::Value>(directory).unwrap(),
                "node": format!("ou={name},dc=example,dc=com"),
            }
        });
        let err = apply(doc).await.expect_err("the API server must refuse it");
        assert!(err.to_string().contains(expect), "{name}: {err}");
    }

    // Login: a binding that enables it says LoginReady=True with its issuer (DingTalk being
    // unreachable does not stop the login from being configured), and the signing keys are
    // created in a Secret, once.
    let login = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: login-clients, namespace: {ns}}}
stringData:
  clients.yaml: |
    clients:
      - id: grafana
        secret: e2e-client-secret-0123456789
        redirectUris: [https://grafana.example.com/login/generic_oauth]
---
apiVersion: dingsync.io/v1alpha1
kind: DingTalkBinding
metadata: {{name: acme, namespace: {ns}}}
spec:
  corpId: dinge2e
  credentialsSecretRef: {{name: app}}
  endpoints: {{oapi: "http://127.0.0.1:9", api: "http://127.0.0.1:9"}}
  login:
    enabled: true
    issuer: https://login.example.com/dingtalk/e2e
    clientsSecretRef: {{name: login-clients}}
    targetRef: {{name: waiting}}
"#
    );
    for doc in docs(&login) {
        apply(doc).await.expect("apply login");
    }
    wait_condition(&bindings, "acme", "LoginReady", "True", "Serving", b_conds).await;
    let status = serde_json::to_string(&bindings.get("acme").await.unwrap().status).unwrap();
    assert!(!status.contains("e2e-client-secret"));
    let keys = dingsync::controller::login::Login::new();
    keys.load_keys(client, ns, "dingsync-login-keys", jiff::Timestamp::now())
        .await
        .expect("keys Secret created");
    let again = dingsync::controller::login::Login::new();
    again
        .load_keys(client, ns, "dingsync-login-keys", jiff::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        keys.kids(),
        again.kids(),
        "the second replica uses the stored keys"
    );
    // The API server refuses enabling login without its pieces (CEL rule on the CRD).
    let err = apply(json!({
        "apiVersion": "dingsync.io/v1alpha1",
        "kind": "DingTalkBinding",
        "metadata": {"name": "half-login", "namespace": ns},
        "spec": {"corpId": "dinghalf", "credentialsSecretRef": {"name": "app"}, "login": {"enabled": true}},
    }))
    .await
    .expect_err("login without issuer must be refused");
    assert!(
        err.to_string().contains("login: enabled needs issuer"),
        "{err}"
    );
}

/// Approval on a real API server: a run held by the deletion gate waits, and setting the
/// approval annotation to the pending token runs it within seconds — with no sync-now and no
/// interval — after which the API server no longer shows `pendingApproval`. DingTalk (the
/// simulator) and the directory (slapd) run beside this process, which hosts the controller.
#[tokio::test(flavor = "multi_thread")]
async fn approval_against_a_real_cluster() {
    if !cluster_configured() {
        return;
    }
    let Some(w) = crate::support::World::builder()
        .people(12)
        .departments(3)
        .slapd()
        .build()
        .await
    else {
        panic!("the approval scenario needs slapd");
    };
    let w = &w;
    with_controller("e2e-approval", |client, ns| async move {
        approval_scenario(&client, &ns, w).await
    })
    .await;
}

async fn approval_scenario(client: &Client, ns: &str, w: &crate::support::World) {
    let node = w.node("e2e-approval");
    // Events off, so only full syncs act; at most 2 removals pass without approval.
    let yaml = w
        .inbound_ldap_yaml(&node, Some(dingsync::sim::DEFAULT_APP_SECRET), &[])
        .replace(
            "deletion: {maxPercent: 100}",
            "deletion: {maxCount: 2, maxPercent: 100}",
        )
        .replace(
            "  credentialsSecretRef: {name: app}\n",
            "  credentialsSecretRef: {name: app}\n  events: {delivery: None}\n",
        );
    let pp = PatchParams::apply("dingsync-e2e");
    for doc in docs(&yaml) {
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        let patch = Patch::Apply(&doc);
        match doc["kind"].as_str().unwrap() {
            "Secret" => Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "DingTalkBinding" => Api::<DingTalkBinding>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "FieldMapping" => Api::<FieldMapping>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            "SyncTarget" => Api::<SyncTarget>::namespaced(client.clone(), ns)
                .patch(&name, &pp, &patch)
                .await
                .map(|_| ()),
            other => panic!("unexpected kind {other}"),
        }
        .expect("apply");
    }
    let targets: Api<SyncTarget> = Api::namespaced(client.clone(), ns);
    let t_conds = |t: &SyncTarget| t.status.clone().unwrap_or_default().conditions;
    wait_condition(&targets, "to-ldap", "Ready", "True", "Synced", t_conds).await;

    // Four leave: above the threshold, so the requested run is held and writes nothing.
    let leavers: Vec<String> = w.sim.org().people[..4]
        .iter()
        .map(|p| p.userid.clone())
        .collect();
    for userid in &leavers {
        w.sim.leave(userid).expect("leave");
    }
    let people = format!("ou=people,{node}");
    let before = w
        .slapd()
        .search(&people, "(objectClass=*)", &["*"])
        .unwrap();
    let annotate = |key: &'static str, value: String| {
        let targets = targets.clone();
        async move {
            let patch = json!({"metadata": {"annotations": {key: value}}});
            targets
                .patch("to-ldap", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("annotate");
        }
    };
    annotate(dingsync::api::target::SYNC_NOW_ANNOTATION, "1".into()).await;
    let t_conds = |t: &SyncTarget| t.status.clone().unwrap_or_default().conditions;
    wait_condition(
        &targets,
        "to-ldap",
        "Ready",
        "False",
        "AwaitingApproval",
        t_conds,
    )
    .await;
    let held = targets.get("to-ldap").await.unwrap().status.unwrap();
    let pending = held.pending_approval.expect("pendingApproval in status");
    assert_eq!(pending.removals, 4, "{pending:?}");
    let after_hold = w
        .slapd()
        .search(&people, "(objectClass=*)", &["*"])
        .unwrap();
    assert_eq!(before, after_hold, "a held run writes nothing");

    // A wrong token changes nothing and says so.
    annotate(
        dingsync::api::target::APPROVE_ANNOTATION,
        "not-the-token".into(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let t = targets.get("to-ldap").await.unwrap();
        let ready = find_condition(&t_conds(&t), "Ready").cloned().unwrap();
        if ready.message.contains("not-the-token") {
            assert_eq!(ready.reason, "AwaitingApproval");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ready:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The pending token: the held run is applied at once.
    annotate(
        dingsync::api::target::APPROVE_ANNOTATION,
        pending.token.clone(),
    )
    .await;
    let t_conds = |t: &SyncTarget| t.status.clone().unwrap_or_default().conditions;
    wait_condition(&targets, "to-ldap", "Ready", "True", "Synced", t_conds).await;
    let st = targets.get("to-ldap").await.unwrap().status.unwrap();
    let last = st.last_sync.expect("lastSync");
    assert_eq!(last.trigger, "Approved");
    assert_eq!(last.disabled, 4, "{last:?}");
    assert!(
        st.pending_approval.is_none(),
        "the API server dropped the hold"
    );
    let after = w
        .slapd()
        .search(&people, "(objectClass=*)", &["*"])
        .unwrap();
    assert_ne!(before, after, "the approved removals were written");
}
