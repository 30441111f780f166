//! The Kubernetes layer: watches, reconcile, status, Events, leader election. It stays thin:
//! dereference → validate → run the engine (behind [`SyncRunner`]) → status.

pub mod access;
pub mod adapters;
pub mod binding;
pub mod context;
pub mod error;
pub mod http;
pub mod login;
pub mod mapping;
pub mod metrics;
pub mod secrets;
pub mod status;
pub mod target;

use std::{sync::Arc, time::Duration};

pub use context::*;
pub use error::Error;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::Action,
        events::{Recorder, Reporter},
        reflector::ObjectRef,
        watcher,
    },
};
use tokio_util::sync::CancellationToken;

use crate::api::{DingTalkBinding, FieldMapping, Reason, SyncTarget};

/// Settings of a controller process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch one namespace only (None: all namespaces).
    pub namespace: Option<String>,
    /// Concurrent reconciles per kind.
    pub concurrency: u16,
    /// Name of this replica (Events' reporter instance, lease holder identity).
    pub instance: String,
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Unwrap a guarded object; a malformed one is reported and waits for an edit instead of
/// stalling the watch for everyone else.
fn guarded<K: Clone>(
    obj: &DeserializeGuard<K>,
    kind: &str,
    ctx: &Context,
) -> Result<Arc<K>, Action> {
    match &obj.0 {
        Ok(k) => Ok(Arc::new(k.clone())),
        Err(e) => {
            tracing::warn!(kind, name = %e.metadata.name.clone().unwrap_or_default(), error = %e.error, "malformed object skipped");
            ctx.metrics
                .count_failure(kind, Reason::InvalidObject.as_str());
            Err(Action::await_change())
        }
    }
}

fn error_policy<K: Resource<DynamicType = ()>>(
    kind: &'static str,
) -> impl Fn(Arc<DeserializeGuard<K>>, &Error, Arc<Context>) -> Action {
    move |obj, err, ctx| {
        ctx.metrics.count_failure(kind, err.reason());
        tracing::warn!(kind, name = %obj.name_any(), error = %err, "reconcile failed");
        if err.is_permanent() {
            Action::await_change()
        } else {
            Action::requeue(backoff_delay(2))
        }
    }
}

/// Run the three controllers until `shutdown` fires.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let ns = settings.namespace.clone();
    let wc = watcher::Config::default().any_semantic();
    let cfg = kube::runtime::controller::Config::default().concurrency(settings.concurrency);

    // Bindings: re-run when their credentials Secret changes.
    let bindings = Controller::new(
        api::<DeserializeGuard<DingTalkBinding>>(&client, &ns),
        wc.clone(),
    )
    .with_config(cfg.clone());
    let binding_store = bindings.store();
    let bindings = bindings
        .watches(api::<Secret>(&client, &ns), wc.clone(), {
            let store = binding_store.clone();
            move |secret: Secret| {
                let (sns, sname) = (secret.namespace(), secret.name_any());
                store
                    .state()
                    .into_iter()
                    .filter(|b| b.namespace() == sns)
                    .filter(|b| {
                        b.0.as_ref()
                            .is_ok_and(|b| b.spec.credentials_secret_ref.name == sname)
                    })
                    .map(|b| ObjectRef::from_obj(&*b))
                    .collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            |obj, ctx: Arc<Context>| async move {
                match guarded(&obj, "DingTalkBinding", &ctx) {
                    Ok(b) => binding::reconcile(b, ctx).await,
                    Err(a) => Ok(a),
                }
            },
            error_policy::<DingTalkBinding>("DingTalkBinding"),
            ctx.clone(),
        )
        .for_each(|_| async {});

    let mappings = Controller::new(
        api::<DeserializeGuard<FieldMapping>>(&client, &ns),
        wc.clone(),
    )
    .with_config(cfg.clone())
    .graceful_shutdown_on(shutdown.clone().cancelled_owned())
    .run(
        |obj, ctx: Arc<Context>| async move {
            match guarded(&obj, "FieldMapping", &ctx) {
                Ok(m) => mapping::reconcile(m, ctx).await,
                Err(a) => Ok(a),
            }
        },
        error_policy::<FieldMapping>("FieldMapping"),
        ctx.clone(),
    )
    .for_each(|_| async {});

    // Targets: re-run when their binding, mapping, or any Secret they (or their binding) use
    // changes.
    let targets = Controller::new(
        api::<DeserializeGuard<SyncTarget>>(&client, &ns),
        wc.clone(),
    )
    .with_config(cfg);
    let target_store = targets.store();
    let depends = |store: kube::runtime::reflector::Store<DeserializeGuard<SyncTarget>>,
                   pick: fn(&SyncTarget) -> String| {
        move |obj_ns: Option<String>, name: String| {
            store
                .state()
                .into_iter()
                .filter(|t| t.namespace() == obj_ns)
                .filter(|t| t.0.as_ref().is_ok_and(|t| pick(t) == name))
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        }
    };
    let by_binding = depends(target_store.clone(), |t| t.spec.binding_ref.name.clone());
    let by_mapping = depends(target_store.clone(), |t| {
        t.spec.field_mapping_ref.name.clone()
    });
    let targets = targets
        .watches(
            api::<DeserializeGuard<DingTalkBinding>>(&client, &ns),
            wc.clone(),
            move |b| by_binding(b.namespace(), b.name_any()),
        )
        .watches(
            api::<DeserializeGuard<FieldMapping>>(&client, &ns),
            wc.clone(),
            move |m| by_mapping(m.namespace(), m.name_any()),
        )
        .watches(api::<Secret>(&client, &ns), wc, {
            let store = target_store.clone();
            let bindings = binding_store.clone();
            move |secret: Secret| {
                let (sns, sname) = (secret.namespace(), secret.name_any());
                let binding_names: Vec<String> = bindings
                    .state()
                    .into_iter()
                    .filter(|b| b.namespace() == sns)
                    .filter(|b| {
                        b.0.as_ref()
                            .is_ok_and(|b| b.spec.credentials_secret_ref.name == sname)
                    })
                    .map(|b| b.name_any())
                    .collect();
                store
                    .state()
                    .into_iter()
                    .filter(|t| t.namespace() == sns)
                    .filter(|t| {
                        t.0.as_ref().is_ok_and(|t| {
                            let d = &t.spec.directory;
                            binding_names.contains(&t.spec.binding_ref.name)
                                || d.ldap.as_ref().is_some_and(|l| {
                                    l.password_secret_ref.name == sname
                                        || l.ca_secret_ref.as_ref().is_some_and(|c| c.name == sname)
                                })
                                || d.scim.as_ref().is_some_and(|s| {
                                    s.token_secret_ref.name == sname
                                        || s.ca_secret_ref.as_ref().is_some_and(|c| c.name == sname)
                                })
                        })
                    })
                    .map(|t| ObjectRef::from_obj(&*t))
                    .collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            |obj, ctx: Arc<Context>| async move {
                match guarded(&obj, "SyncTarget", &ctx) {
                    Ok(t) => target::reconcile(t, ctx).await,
                    Err(a) => Ok(a),
                }
            },
            error_policy::<SyncTarget>("SyncTarget"),
            ctx.clone(),
        )
        .for_each(|_| async {});

    tokio::join!(bindings, mappings, targets);
}

/// Build the shared context with the production seams.
pub fn production_context(
    client: Client,
    instance: &str,
    metrics: Arc<metrics::Metrics>,
) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "dingsync".into(),
            instance: Some(instance.to_string()),
        },
    );
    Arc::new(Context::new(
        client,
        Arc::new(adapters::DingTalkProbe),
        Arc::new(mapping::TemplateValidator),
        Arc::new(adapters::Engine::with_metrics(metrics.clone())),
        Some(recorder),
        metrics,
    ))
}

/// Hold a Lease and run the controllers only while holding it. Returns when `shutdown` fires.
pub async fn run_with_leader_election(
    client: Client,
    ctx: Arc<Context>,
    settings: Settings,
    lease_namespace: String,
    lease_name: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), lease_name)
        .with_namespace(lease_namespace)
        .with_identity(settings.instance.clone())
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leading, handle) = manager.watch().await;
    loop {
        if *leading.borrow_and_update() {
            ctx.metrics.leader.set(1);
            tracing::info!("leading: controllers started");
            let stop = shutdown.child_token();
            let run = tokio::spawn(run(
                client.clone(),
                ctx.clone(),
                settings.clone(),
                stop.clone(),
            ));
            tokio::select! {
                _ = shutdown.cancelled() => { stop.cancel(); let _ = run.await; break; }
                _ = leading.changed() => { stop.cancel(); let _ = run.await; }
            }
            ctx.metrics.leader.set(0);
            tracing::info!("lost the lease: controllers stopped");
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = leading.changed() => if r.is_err() { break },
            }
        }
    }
    drop(leading);
    let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
    Ok(())
}
