//! The Kubernetes layer: watches, reconcile, status, Events, leader election. It stays thin:
//! dereference → validate → run the engine (behind [`SyncRunner`]) → status.

pub mod access;
pub mod binding;
pub mod context;
pub mod engine;
pub mod error;
pub mod http;
pub mod login;
pub mod mapping;
pub mod metrics;
pub mod process;
pub mod reports;
pub mod secrets;
pub mod status;
pub mod suite_events;
pub mod suite_ticket;
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
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tokio_util::sync::CancellationToken;

use crate::api::{DingTalkBinding, FieldMapping, Reason, SyncTarget};

/// An object as watched: malformed ones arrive as an error instead of stopping the watch.
type Guarded<K> = DeserializeGuard<K>;
type Store<K> = kube::runtime::reflector::Store<Guarded<K>>;

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
fn guarded<K: Resource<DynamicType = ()> + Clone>(
    obj: &Guarded<K>,
    ctx: &Context,
) -> Result<Arc<K>, Action> {
    match &obj.0 {
        Ok(k) => Ok(Arc::new(k.clone())),
        Err(e) => {
            let kind = K::kind(&());
            tracing::warn!(kind = &*kind, name = %e.metadata.name.clone().unwrap_or_default(), error = %e.error, "malformed object skipped");
            ctx.metrics
                .count_failure(&kind, Reason::InvalidObject.as_str());
            Err(Action::await_change())
        }
    }
}

/// Reconcile a guarded object with `reconcile`, or skip it when it is malformed.
async fn reconcile_guarded<K, F, Fut>(
    obj: Arc<Guarded<K>>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    match guarded(&obj, &ctx) {
        Ok(k) => reconcile(k, ctx).await,
        Err(a) => Ok(a),
    }
}

fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<Guarded<K>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let kind = K::kind(&());
    ctx.metrics.count_failure(&kind, err.reason());
    tracing::warn!(kind = &*kind, name = %obj.name_any(), error = %err, "reconcile failed");
    if err.is_permanent() {
        Action::await_change()
    } else {
        Action::requeue(backoff_delay(2))
    }
}

/// What every controller shares: where to watch and how.
struct Watch {
    client: Client,
    ns: Option<String>,
    wc: watcher::Config,
    cfg: kube::runtime::controller::Config,
    shutdown: CancellationToken,
}

impl Watch {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        api(&self.client, &self.ns)
    }

    fn controller<K>(&self) -> Controller<Guarded<K>>
    where
        K: Watched + Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Controller::new(self.api::<Guarded<K>>(), self.wc.clone()).with_config(self.cfg.clone())
    }
}

/// What a watched kind must be for kube's controller runtime.
trait Watched: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync {}

impl<K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync> Watched for K {}

/// Run the three controllers until `shutdown` fires.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let w = Watch {
        client,
        ns: settings.namespace.clone(),
        wc: watcher::Config::default().any_semantic(),
        cfg: kube::runtime::controller::Config::default().concurrency(settings.concurrency),
        shutdown,
    };
    let bindings = w.controller::<DingTalkBinding>();
    let binding_store = bindings.store();
    tokio::join!(
        run_bindings(&w, bindings, ctx.clone()),
        run_mappings(&w, ctx.clone()),
        run_targets(&w, binding_store, ctx),
    );
}

/// The bindings in the Secret's namespace whose credentials live in it.
fn bindings_using_secret(
    store: &Store<DingTalkBinding>,
    secret: &Secret,
) -> Vec<Arc<Guarded<DingTalkBinding>>> {
    let (sns, sname) = (secret.namespace(), secret.name_any());
    store
        .state()
        .into_iter()
        .filter(|b| b.namespace() == sns)
        .filter(|b| {
            b.0.as_ref()
                .is_ok_and(|b| b.spec.credentials_secret_ref.name == sname)
        })
        .collect()
}

/// Run `controller`, reconciling with `reconcile`, until shutdown.
async fn drive<K, F, Fut>(
    w: &Watch,
    controller: Controller<Guarded<K>>,
    reconcile: F,
    ctx: Arc<Context>,
) where
    K: Watched,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    controller
        .graceful_shutdown_on(w.shutdown.clone().cancelled_owned())
        .run(
            move |obj, ctx| reconcile_guarded(obj, ctx, reconcile),
            error_policy,
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// Bindings: re-run when their credentials Secret changes.
async fn run_bindings(
    w: &Watch,
    bindings: Controller<Guarded<DingTalkBinding>>,
    ctx: Arc<Context>,
) {
    let store = bindings.store();
    let mut bindings = bindings.watches(w.api::<Secret>(), w.wc.clone(), move |secret: Secret| {
        bindings_using_secret(&store, &secret)
            .iter()
            .map(|b| ObjectRef::from_obj(&**b))
            .collect::<Vec<_>>()
    });
    // A binding's event connection going up or down shows in its status at once. Every
    // binding is re-reconciled (kube's per-object trigger is an unstable feature): there are
    // few, and connections change state rarely.
    if let Some(changes) = ctx.runner.events_changes() {
        let ticks = futures::stream::unfold(changes, |mut rx| async move {
            rx.recv().await?;
            Some(((), rx))
        });
        bindings = bindings.reconcile_all_on(ticks);
    }
    drive(w, bindings, binding::reconcile, ctx).await;
}

/// Mappings: re-run on their own changes only.
async fn run_mappings(w: &Watch, ctx: Arc<Context>) {
    drive(w, w.controller::<FieldMapping>(), mapping::reconcile, ctx).await;
}

/// Whether the target's directory reads its credential or CA bundle from Secret `name`.
fn directory_uses_secret(d: &crate::api::target::DirectorySpec, name: &str) -> bool {
    d.ldap.as_ref().is_some_and(|l| {
        l.password_secret_ref.name == name
            || l.ca_secret_ref.as_ref().is_some_and(|c| c.name == name)
    }) || d.scim.as_ref().is_some_and(|s| {
        s.token_secret_ref.name == name || s.ca_secret_ref.as_ref().is_some_and(|c| c.name == name)
    }) || d.active_directory.as_ref().is_some_and(|a| {
        a.password_secret_ref.name == name
            || a.ca_secret_ref.as_ref().is_some_and(|c| c.name == name)
    })
}

/// The targets in namespace `ns` for which `uses` holds.
fn targets_where(
    store: &Store<SyncTarget>,
    ns: Option<String>,
    uses: impl Fn(&SyncTarget) -> bool,
) -> Vec<ObjectRef<Guarded<SyncTarget>>> {
    store
        .state()
        .into_iter()
        .filter(|t| t.namespace() == ns)
        .filter(|t| t.0.as_ref().is_ok_and(&uses))
        .map(|t| ObjectRef::from_obj(&*t))
        .collect()
}

/// A watch mapper: the targets in the changed object's namespace that name it by `pick`.
fn targets_naming<K: Resource>(
    store: Store<SyncTarget>,
    pick: fn(&SyncTarget) -> &str,
) -> impl Fn(K) -> Vec<ObjectRef<Guarded<SyncTarget>>> {
    move |obj| {
        let name = obj.name_any();
        targets_where(&store, obj.namespace(), |t| pick(t) == name)
    }
}

/// Targets: re-run when their binding, mapping, or any Secret they (or their binding) use
/// changes.
async fn run_targets(w: &Watch, bindings: Store<DingTalkBinding>, ctx: Arc<Context>) {
    let targets = w.controller::<SyncTarget>();
    let (by_binding, by_mapping, by_secret) = (targets.store(), targets.store(), targets.store());
    let targets = targets
        .watches(
            w.api::<Guarded<DingTalkBinding>>(),
            w.wc.clone(),
            targets_naming(by_binding, |t| &t.spec.binding_ref.name),
        )
        .watches(
            w.api::<Guarded<FieldMapping>>(),
            w.wc.clone(),
            targets_naming(by_mapping, |t| &t.spec.field_mapping_ref.name),
        )
        .watches(w.api::<Secret>(), w.wc.clone(), move |secret: Secret| {
            let sname = secret.name_any();
            let binding_names: Vec<String> = bindings_using_secret(&bindings, &secret)
                .iter()
                .map(|b| b.name_any())
                .collect();
            targets_where(&by_secret, secret.namespace(), |t| {
                binding_names.contains(&t.spec.binding_ref.name)
                    || directory_uses_secret(&t.spec.directory, &sname)
            })
        });
    drive(w, targets, target::reconcile, ctx).await;
}

/// Build the shared context with the production seams, its guards looking at every namespace.
pub fn production_context(
    client: Client,
    instance: &str,
    metrics: Arc<metrics::Metrics>,
) -> Arc<Context> {
    production_context_in(client, instance, metrics, None)
}

/// Build the shared context with the production seams for controllers watching `scope`
/// (`None`: all namespaces).
pub fn production_context_in(
    client: Client,
    instance: &str,
    metrics: Arc<metrics::Metrics>,
    scope: Option<String>,
) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "dingsync".into(),
            instance: Some(instance.to_string()),
        },
    );
    let clients = Arc::new(crate::dingtalk::ClientPool::default());
    let engine = Arc::new(engine::Engine::new(metrics.clone(), clients.clone()));
    let probe = engine::DingTalkProbe {
        clients: clients.clone(),
    };
    let mut ctx = Context::new(
        client,
        Arc::new(probe),
        Arc::new(mapping::TemplateValidator),
        engine.clone(),
        Some(recorder),
        metrics,
    );
    ctx.callbacks = engine.callbacks();
    ctx.clients = clients;
    ctx.scope = scope;
    Arc::new(ctx)
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
            ctx.metrics.forget_targets();
            ctx.runner.release();
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
