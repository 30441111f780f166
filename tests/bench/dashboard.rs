//! Metrics of a real run, scraped the way Prometheus would, for the dashboard picture in
//! `docs/dashboard/`. The controller's own reconciles with its production seams (DingTalk
//! client, probe, engine, event feed) run on an in-memory Kubernetes API against the simulator
//! and a private slapd: two SyncTargets of one enterprise, one whose mapping fails for people
//! without a title and whose deletion gate is tight. HR changes arrive by Stream events
//! while the test scrapes `Metrics::encode()` every two seconds; every 20 s both targets run
//! a full sync (sync-now), and once many leave at once, which the tight target holds.
//!
//! Run on demand (`cargo bench --bench dashboard`; it takes a few minutes). With
//! `DINGSYNC_DASHBOARD_OUT` set it writes the scrapes there, each preceded by
//! `# scrape <unix seconds>`; `docs/dashboard/README.md` says how the picture is made from
//! them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use dingsync::{
    api::{DingTalkBinding, FieldMapping, SyncTarget, target::SYNC_NOW_ANNOTATION},
    controller::{self, binding, mapping, metrics::Metrics, target},
    sim::{self, SimConfig, SimHandle, UserWrite},
};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Api, Client, ResourceExt, api::ObjectMeta};
use kube_fake_client::ClientBuilder;
use serde_json::json;

// The integration tests' support code (servers, the simulated world), shared without a library.
#[path = "../it/support/mod.rs"]
mod support;

use crate::support::slapd::SERVICE_DN;

const NS: &str = "identity";
const SCRAPE_EVERY: Duration = Duration::from_secs(2);
const SCRAPES: usize = 90;
const FULL_SYNC_EVERY: usize = 10;

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn object<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

fn meta(name: &str) -> serde_json::Value {
    json!({"name": name, "namespace": NS, "generation": 1,
           "creationTimestamp": "2026-01-01T00:00:00Z"})
}

fn mapping_obj(name: &str, extra: &[(&str, &str)]) -> FieldMapping {
    let mut attributes = vec![
        json!({"target": "cn", "template": "{{ name }}"}),
        json!({"target": "sn", "template": "{{ name[:1] }}"}),
    ];
    attributes.extend(
        extra
            .iter()
            .map(|(t, tpl)| json!({"target": t, "template": tpl})),
    );
    object(json!({
        "apiVersion": "dingsync.io/v1alpha1", "kind": "FieldMapping", "metadata": meta(name),
        "spec": {"user": {
            "uniqueName": {"attribute": "uid", "template": "{{ name | pinyin }}"},
            "attributes": attributes,
        }},
    }))
}

fn target_obj(name: &str, mapping: &str, node: &str, url: &str, max_percent: u32) -> SyncTarget {
    object(json!({
        "apiVersion": "dingsync.io/v1alpha1", "kind": "SyncTarget", "metadata": meta(name),
        "spec": {
            "bindingRef": {"name": "acme"},
            "fieldMappingRef": {"name": mapping},
            "direction": "Inbound",
            "directory": {"ldap": {"url": url, "bindDN": SERVICE_DN,
                                   "passwordSecretRef": {"name": "ldap", "key": "password"}}},
            "node": node,
            "deletion": {"maxPercent": max_percent},
        },
    }))
}

async fn reconcile_target(
    client: &Client,
    ctx: &Arc<controller::Context>,
    name: &str,
    now: Option<&str>,
) {
    let mut t = Api::<SyncTarget>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .expect("target");
    if let Some(v) = now {
        t.annotations_mut()
            .insert(SYNC_NOW_ANNOTATION.into(), v.into());
    }
    target::reconcile(Arc::new(t), ctx.clone())
        .await
        .expect("reconcile");
}

fn hr_changes(sim: &SimHandle, step: usize, depts: &[i64], leavers: &mut Vec<String>) {
    for k in 0..2 {
        let id = format!("new{step}x{k}");
        let dept = depts[(step + k) % depts.len()];
        let title = if k == 0 {
            Some("工程师".to_string())
        } else {
            None
        };
        sim.hire(UserWrite {
            userid: Some(id.clone()),
            name: Some(format!("新员工{step}{k}")),
            departments: Some(vec![dept]),
            title,
            ..Default::default()
        })
        .expect("hire");
        leavers.push(id);
    }
}

#[tokio::main]
async fn main() {
    let Some(w) = support::World::builder()
        .people(400)
        .departments(24)
        .seed(7)
        .sim_config(SimConfig {
            qps_limit: Some(20),
            ..SimConfig::fast()
        })
        .slapd()
        .build()
        .await
    else {
        panic!("the dashboard's run needs slapd");
    };
    let server = w.slapd();
    let base = w.sim.base_url();
    let binding: DingTalkBinding = object(json!({
        "apiVersion": "dingsync.io/v1alpha1", "kind": "DingTalkBinding", "metadata": meta("acme"),
        "spec": {"corpId": w.corp(), "credentialsSecretRef": {"name": "app"},
                 "endpoints": {"oapi": base, "api": base, "login": base}},
    }));
    // Fails at render time for people without a title: their failures are real TemplateErrors.
    let strict = [("description", "{{ 100 // (title | default('') | length) }}")];
    let client = ClientBuilder::new()
        .with_resource::<DingTalkBinding>()
        .with_resource::<FieldMapping>()
        .with_resource::<SyncTarget>()
        .with_status_subresource::<DingTalkBinding>()
        .with_status_subresource::<FieldMapping>()
        .with_status_subresource::<SyncTarget>()
        .with_objects(vec![
            secret(
                "app",
                &[
                    ("appKey", sim::DEFAULT_APP_KEY),
                    ("appSecret", sim::DEFAULT_APP_SECRET),
                ],
            ),
            secret("ldap", &[("password", server.service_password())]),
        ])
        .with_objects(vec![binding])
        .with_objects(vec![
            mapping_obj("people", &[]),
            mapping_obj("strict", &strict),
        ])
        .with_objects(vec![
            target_obj("staff", "people", &w.node("staff"), &server.url(), 100),
            target_obj(
                "contractors",
                "strict",
                &w.node("contractors"),
                &server.url(),
                1,
            ),
        ])
        .build()
        .await
        .expect("fake client");
    let metrics = Arc::new(Metrics::default());
    let ctx = controller::production_context(client.clone(), "dashboard", metrics.clone());
    let binding = Api::<DingTalkBinding>::namespaced(client.clone(), NS);
    binding::reconcile(Arc::new(binding.get("acme").await.unwrap()), ctx.clone())
        .await
        .expect("binding");
    let mappings = Api::<FieldMapping>::namespaced(client.clone(), NS);
    for m in ["people", "strict"] {
        mapping::reconcile(Arc::new(mappings.get(m).await.unwrap()), ctx.clone())
            .await
            .expect("mapping");
    }

    let depts: Vec<i64> = w
        .sim
        .org()
        .departments
        .iter()
        .filter(|d| d.parent_id.is_some())
        .map(|d| d.id)
        .collect();
    let mut leavers: Vec<String> = Vec::new();
    let mut out = String::new();
    for step in 0..SCRAPES {
        if step % FULL_SYNC_EVERY == 0 {
            if step == 6 * FULL_SYNC_EVERY {
                // Many leave at once: the tight gate holds the contractors' removals.
                for id in leavers.drain(..).take(12) {
                    w.sim.leave(&id).expect("leave");
                }
            }
            let now = format!("run-{step}");
            for t in ["staff", "contractors"] {
                reconcile_target(&client, &ctx, t, Some(&now)).await;
            }
        } else {
            hr_changes(&w.sim, step, &depts, &mut leavers);
            // The controller looks again every 30 s while events flow; here every scrape,
            // so the connection gauge follows the feed.
            for t in ["staff", "contractors"] {
                reconcile_target(&client, &ctx, t, None).await;
            }
        }
        tokio::time::sleep(SCRAPE_EVERY).await;
        let at = jiff::Timestamp::now().as_second();
        out.push_str(&format!("# scrape {at}\n{}", metrics.encode()));
    }
    let last = metrics.encode();
    for series in [
        "dingsync_target_people{",
        "dingsync_sync_failed_objects_total{",
        "dingsync_dingtalk_calls_total{",
        "dingsync_event_lag_seconds_count",
        r#"dingsync_event_connection_up{corp_id="dingsimcorp"} 1"#,
    ] {
        assert!(last.contains(series), "{series} missing in\n{last}");
    }
    let held =
        r#"dingsync_target_held_removals{target_namespace="identity",target="contractors"} "#;
    assert!(
        last.lines()
            .any(|l| l.strip_prefix(held).is_some_and(|n| n != "0")),
        "the tight gate held the leavers:\n{last}"
    );
    if let Ok(path) = std::env::var("DINGSYNC_DASHBOARD_OUT") {
        std::fs::write(&path, out).expect("write the scrapes");
        eprintln!("wrote {SCRAPES} scrapes to {path}");
    }
}
