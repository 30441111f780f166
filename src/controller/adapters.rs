//! The production implementations of the controller's seams.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use sha2::Digest;

use super::{
    CredentialChecker, CredentialError, IncrementalView, Sensitive, SyncOutcome, SyncRequest,
    SyncRunError, SyncRunner,
};
use crate::{
    api::binding::EventDelivery,
    api::{
        DingTalkBindingSpec, FieldMappingSpec,
        binding::Permissions,
        target::{Failure, PendingApproval, PlanSummary, RunSummary},
    },
    dingtalk::{
        CallbackReceiver, ClientConfig, DingTalkClient, DingTalkError, Secret, StreamConfig,
        StreamHandle, callback::CallbackCrypto,
    },
    directory::{
        Directory, DirectoryError,
        ldap::{LdapDirectory, LdapTarget, client::Secret as LdapSecret},
        scim::{
            ScimDirectory,
            client::{BearerToken, ScimClient},
        },
    },
    mapping::{Mapping, outbound::OutboundMapping},
    sync::{
        self, Options, SyncError,
        dingtalk_source::DingTalkSource,
        events::{LiveTarget, Pipeline, PipelineConfig},
        outbound::{self, OutboundOptions},
    },
};

/// The client configuration a binding describes.
pub fn client_config(
    spec: &DingTalkBindingSpec,
    app_key: &str,
    app_secret: &Sensitive,
) -> ClientConfig {
    let mut c = ClientConfig::new(&spec.corp_id, app_key, Secret::new(app_secret.expose()));
    if let Some(e) = &spec.endpoints {
        if let Some(v) = &e.oapi {
            c.oapi_base = v.trim_end_matches('/').to_string();
        }
        if let Some(v) = &e.api {
            c.api_base = v.trim_end_matches('/').to_string();
        }
        if let Some(v) = &e.login {
            c.login_base = v.trim_end_matches('/').to_string();
        }
    }
    if let Some(n) = spec.rate_limits.as_ref().and_then(|r| r.per_api_per_second) {
        c.per_api_per_second = n;
    }
    c.attempts = 3;
    c
}

/// Confirms credentials by obtaining a token and probes the address-book read permission
/// with one `listsub` of the root department.
#[derive(Default)]
pub struct DingTalkProbe;

#[async_trait]
impl CredentialChecker for DingTalkProbe {
    async fn check(
        &self,
        spec: &DingTalkBindingSpec,
        app_key: &str,
        app_secret: &Sensitive,
    ) -> Result<Permissions, CredentialError> {
        let client = DingTalkClient::shared(client_config(spec, app_key, app_secret));
        match client.token().await {
            Ok(_) => {}
            Err(DingTalkError::InvalidCredentials { errcode, message }) => {
                return Err(CredentialError::Invalid(format!(
                    "errcode {errcode}: {message}"
                )));
            }
            Err(e) => return Err(CredentialError::Unreachable(e.to_string())),
        }
        let mut missing = vec![];
        let read = match client.list_sub_departments(1).await {
            Ok(_) => true,
            Err(DingTalkError::Denied { errcode: 60011, .. }) => {
                missing.push("qyapi_get_department_list".to_string());
                false
            }
            // Outside the contact scope at the root is normal for a scoped app.
            Err(DingTalkError::Denied { .. }) => true,
            Err(e) if e.is_transient() => return Err(CredentialError::Unreachable(e.to_string())),
            Err(_) => false,
        };
        let write = match client.can_write_contacts().await {
            Ok(true) => true,
            Ok(false) => {
                missing.push(
                    crate::dingtalk::error::permission_for("/topapi/v2/department/update")
                        .unwrap_or("qyapi_manage_addresslist")
                        .to_string(),
                );
                false
            }
            Err(e) if e.is_transient() => return Err(CredentialError::Unreachable(e.to_string())),
            Err(_) => false,
        };
        // Mobile and email visibility cannot be told apart from empty fields without a person
        // to look at; they follow read access here and the sync counts people missing them
        // (UNCONFIRMED: DingTalk offers internal apps no permission-listing API).
        Ok(Permissions {
            contact_read: read,
            contact_write: write,
            mobile: read,
            email: read,
            missing,
        })
    }
}

/// Compile every template of a mapping with the engine's compiler; the error names the rule.
pub fn validate_mapping(spec: &FieldMappingSpec) -> Result<(), String> {
    match spec.direction {
        crate::api::target::Direction::Inbound => Mapping::compile(spec).map(|_| ()),
        crate::api::target::Direction::Outbound => {
            crate::mapping::outbound::OutboundMapping::compile(spec).map(|_| ())
        }
    }
    .map_err(|e| e.to_string())
}

/// What a run of one target works with.
struct Opened {
    dir: Arc<dyn Directory>,
    source: Arc<DingTalkSource>,
    mapping: Mapping,
    opts: Options,
}

/// Open the target's directory (LDAP or SCIM) with the request's credentials. `read_only`
/// (Outbound sources, login lookups) creates nothing in it.
pub async fn open_directory(
    req: &SyncRequest,
    read_only: bool,
) -> Result<Arc<dyn Directory>, SyncRunError> {
    let ca = match &req.directory_ca {
        Some(b) => Some(String::from_utf8(b.clone()).map_err(|_| {
            SyncRunError::Permanent("caSecretRef: the CA bundle is not PEM text".into())
        })?),
        None => None,
    };
    let open_error = |e: DirectoryError| match e {
        DirectoryError::Auth(m) => SyncRunError::DirectoryAuth(m),
        DirectoryError::Unavailable(m) => SyncRunError::Transient(m),
        other => SyncRunError::Permanent(other.to_string()),
    };
    let dir: Arc<dyn Directory> = match (&req.spec.directory.ldap, &req.spec.directory.scim) {
        (Some(ldap), _) => {
            let target = LdapTarget::from_spec(
                ldap,
                LdapSecret::new(req.directory_secret.expose()),
                ca,
                &req.spec.node,
                req.spec.layout,
                &req.binding.corp_id,
            );
            let store = if read_only {
                target.open_read_only().await
            } else {
                target.open().await
            }
            .map_err(|e| open_error(e.into()))?;
            Arc::new(LdapDirectory::new(store))
        }
        (None, Some(scim)) => {
            let client = ScimClient::connect(
                &scim.url,
                BearerToken::new(req.directory_secret.expose()),
                ca.as_deref().map(str::as_bytes),
            )
            .await
            .map_err(|e| open_error(e.into()))?;
            Arc::new(ScimDirectory::new(
                client,
                &req.binding.corp_id,
                &req.spec.node,
            ))
        }
        (None, None) => {
            return Err(SyncRunError::Permanent(
                "spec.directory: set exactly one of ldap or scim".into(),
            ));
        }
    };
    Ok(dir)
}

/// Open the target's directory and DingTalk source as the request describes them.
async fn open(req: &SyncRequest) -> Result<Opened, SyncRunError> {
    use crate::api::target::Direction;
    if req.spec.direction == Direction::Outbound {
        return Err(SyncRunError::Permanent(
            "Outbound targets run through the Outbound engine, not the Inbound one".into(),
        ));
    }
    let mapping =
        Mapping::compile(&req.mapping).map_err(|e| SyncRunError::Permanent(e.to_string()))?;
    let dir = open_directory(req, false).await?;
    let client = DingTalkClient::shared(client_config(&req.binding, &req.app_key, &req.app_secret));
    let source = Arc::new(DingTalkSource::new(
        client,
        req.spec.scope.department_ids.clone(),
    ));
    let deletion = req.spec.deletion.clone().unwrap_or_default();
    let opts = Options {
        policy: deletion.policy,
        max_count: deletion.max_count.unwrap_or(50),
        max_percent: deletion.max_percent.unwrap_or(10),
        ou_tree: req.spec.layout == Some(crate::api::target::Layout::OuTree),
        approval: req.approval.clone(),
    };
    Ok(Opened {
        dir,
        source,
        mapping,
        opts,
    })
}

/// Runs full syncs with the real engine (DingTalk as the source, the target's directory), and
/// keeps one event connection per binding feeding every target that uses it.
#[derive(Default)]
pub struct Engine {
    metrics: Option<Arc<super::metrics::Metrics>>,
    feeds: Mutex<HashMap<String, Feed>>,
    tracked: Mutex<HashMap<String, Tracked>>,
    /// One writer at a time per target: its full sync and its event batches.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Outbound targets: where the directory stood at the last run, by target and spec.
    marks: Mutex<HashMap<String, (String, outbound::PollMark)>>,
}

/// One binding's event connection and pipeline.
struct Feed {
    key: String,
    pipeline: Arc<Pipeline>,
    stream: Option<StreamHandle>,
}

/// A target fed by events: which feed, at which spec, last seen when.
struct Tracked {
    feed: String,
    fingerprint: String,
    seen: std::time::Instant,
}

/// The callback receivers of the bindings with `events.delivery: Callback`, by
/// `namespace/binding` (the path the controller's HTTP server serves them under).
static CALLBACKS: std::sync::LazyLock<Mutex<HashMap<String, Arc<CallbackReceiver>>>> =
    std::sync::LazyLock::new(Default::default);

fn callback_route(target: &str, binding: &str) -> String {
    let ns = target.split('/').next().unwrap_or_default();
    format!("{ns}/{binding}")
}

/// `POST /dingtalk/callback/{namespace}/{binding}`: the URL to enter in DingTalk's developer
/// console for a binding with `events.delivery: Callback`. Unknown bindings get 404.
pub fn callback_router() -> axum::Router {
    use axum::{
        body::Bytes,
        extract::{Path, Query},
        http::StatusCode,
        response::IntoResponse,
    };
    async fn push(
        Path((ns, binding)): Path<(String, String)>,
        Query(query): Query<HashMap<String, String>>,
        body: Bytes,
    ) -> axum::response::Response {
        let receiver = CALLBACKS
            .lock()
            .expect("callbacks")
            .get(&format!("{ns}/{binding}"))
            .cloned();
        let Some(receiver) = receiver else {
            return (StatusCode::NOT_FOUND, "no callback subscription here").into_response();
        };
        match receiver.receive(&query, &body).await {
            Ok(reply) => axum::Json(reply).into_response(),
            Err(e) => {
                tracing::warn!(namespace = %ns, binding = %binding, error = %e, "DingTalk callback refused");
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                (status, e.to_string()).into_response()
            }
        }
    }
    axum::Router::new().route(
        "/dingtalk/callback/{namespace}/{binding}",
        axum::routing::post(push),
    )
}

/// A Stream outage longer than this may have lost events (UNCONFIRMED how long DingTalk keeps
/// unacknowledged Stream events; the shorter choice costs an extra full sync, never data).
const STREAM_GAP: Duration = Duration::from_secs(120);

/// Targets not reconciled for this long (deleted, or no longer using the binding) stop
/// receiving events.
const TRACK_TTL: Duration = Duration::from_secs(180);

impl Engine {
    /// An engine whose event feeds report to `metrics`.
    pub fn with_metrics(metrics: Arc<super::metrics::Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..Default::default()
        }
    }

    fn lock_for(&self, target: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("locks")
            .entry(target.to_owned())
            .or_default()
            .clone()
    }

    /// The binding's feed, (re)started when its connection settings changed.
    fn feed(&self, req: &SyncRequest) -> Result<Arc<Pipeline>, String> {
        let config = client_config(&req.binding, &req.app_key, &req.app_secret);
        // Connection settings, secrets (as digests) and the delivery: any change restarts it.
        let mut digest = sha2::Sha256::new();
        digest.update(req.app_secret.expose().as_bytes());
        if let Some((t, a)) = &req.callback {
            digest.update(t.expose().as_bytes());
            digest.update(a.expose().as_bytes());
        }
        let key = format!(
            "{:?}|{:?}|{}",
            config,
            req.binding.events,
            hex::encode(digest.finalize())
        );
        let feed_name = callback_route(&req.target, &req.spec.binding_ref.name);
        let mut feeds = self.feeds.lock().expect("feeds");
        if let Some(f) = feeds.get(&feed_name)
            && f.key == key
        {
            return Ok(f.pipeline.clone());
        }
        if let Some(old) = feeds.remove(&feed_name)
            && let Some(s) = old.stream
        {
            tokio::spawn(s.stop());
        }
        let observer = self.metrics.clone().map(|m| {
            let o: sync::events::Observer = Arc::new(move |event_type, outcome, lag| {
                m.events
                    .get_or_create(&super::metrics::EventLabels {
                        event_type: event_type.to_owned(),
                        outcome: outcome.to_owned(),
                    })
                    .inc();
                if let Some(lag) = lag {
                    m.event_lag.observe(lag.as_secs_f64());
                }
            });
            o
        });
        let pipeline = Pipeline::start(PipelineConfig {
            observer,
            ..Default::default()
        });
        let delivery = req
            .binding
            .events
            .as_ref()
            .map(|e| e.delivery)
            .unwrap_or_default();
        let stream = match delivery {
            EventDelivery::Stream => {
                let client = DingTalkClient::shared(config);
                let s = client.start_stream(StreamConfig::default(), pipeline.handler());
                pipeline.watch_stream(&s, STREAM_GAP);
                Some(s)
            }
            EventDelivery::Callback => {
                let Some((token, aes)) = &req.callback else {
                    return Err("events.delivery is Callback, but events.callbackSecretRef \
                                does not hold keys token and aesKey"
                        .into());
                };
                let crypto = CallbackCrypto::new(token.expose(), aes.expose(), &req.app_key)
                    .map_err(|e| format!("events.callbackSecretRef: {e}"))?;
                let route = callback_route(&req.target, &req.spec.binding_ref.name);
                CALLBACKS.lock().expect("callbacks").insert(
                    route,
                    Arc::new(CallbackReceiver::new(crypto, pipeline.handler())),
                );
                None
            }
            EventDelivery::None => return Err("events.delivery is None".into()),
        };
        feeds.insert(
            feed_name,
            Feed {
                key,
                pipeline: pipeline.clone(),
                stream,
            },
        );
        Ok(pipeline)
    }

    /// Forget targets nobody reconciled for a while, and feeds nobody uses.
    fn prune(&self) {
        let mut tracked = self.tracked.lock().expect("tracked");
        let mut feeds = self.feeds.lock().expect("feeds");
        tracked.retain(|name, t| {
            let keep = t.seen.elapsed() < TRACK_TTL;
            if !keep && let Some(f) = feeds.get(&t.feed) {
                f.pipeline.remove_target(name);
            }
            keep
        });
        feeds.retain(|name, f| {
            let used = tracked.values().any(|t| &t.feed == name);
            if !used && let Some(s) = f.stream.take() {
                tokio::spawn(s.stop());
            }
            used
        });
    }
}

#[async_trait]
impl SyncRunner for Engine {
    async fn run(&self, req: SyncRequest) -> Result<SyncOutcome, SyncRunError> {
        if req.spec.direction == crate::api::target::Direction::Outbound {
            return self.run_outbound(&req).await;
        }
        let o = open(&req).await?;
        let lock = self.lock_for(&req.target);
        let _writer = lock.lock().await;
        let progress = req.progress.clone();
        let report_progress = move |phase: &str, done: usize, total: Option<usize>| {
            if let Some(p) = &progress {
                p(phase, done, total);
            }
        };
        let report = sync::run(
            o.source.as_ref(),
            o.dir.as_ref(),
            &o.mapping,
            &o.opts,
            req.spec.dry_run,
            &report_progress,
        )
        .await
        .map_err(|e| match e {
            SyncError::Directory(DirectoryError::Auth(m)) => SyncRunError::DirectoryAuth(m),
            SyncError::Directory(d) if !d.is_per_object() => SyncRunError::Transient(d.to_string()),
            other => SyncRunError::Transient(other.to_string()),
        })?;
        Ok(outcome(&report))
    }

    async fn track_events(&self, req: &SyncRequest, baseline: bool) -> Option<IncrementalView> {
        use crate::api::target::Direction;
        if req.spec.direction == Direction::Outbound {
            return Some(self.poll_outbound(req, baseline).await);
        }
        if req.spec.direction != Direction::Inbound
            || req
                .binding
                .events
                .as_ref()
                .is_some_and(|e| e.delivery == EventDelivery::None)
        {
            return None;
        }
        self.prune();
        let pipeline = match self.feed(req) {
            Ok(p) => p,
            Err(why) => {
                return Some(IncrementalView {
                    active: false,
                    reason: "NoEvents".into(),
                    message: why,
                });
            }
        };
        let feed_name = callback_route(&req.target, &req.spec.binding_ref.name);
        if let Some(m) = &self.metrics {
            let up = self
                .feeds
                .lock()
                .expect("feeds")
                .get(&feed_name)
                .and_then(|f| f.stream.as_ref())
                .is_some_and(|s| s.state() == crate::dingtalk::StreamState::Connected);
            m.event_connection
                .get_or_create(&super::metrics::CorpLabels {
                    corp_id: req.binding.corp_id.clone(),
                })
                .set(i64::from(up));
        }
        let fingerprint = format!("{:?}|{:?}|{baseline}", req.spec, req.mapping);
        let known = self
            .tracked
            .lock()
            .expect("tracked")
            .get(&req.target)
            .map(|t| t.fingerprint == fingerprint && t.feed == feed_name)
            .unwrap_or(false);
        if !known || pipeline.status(&req.target).is_none() {
            match open(req).await {
                Ok(o) => pipeline.set_target(
                    &req.target,
                    LiveTarget {
                        source: o.source,
                        dir: o.dir,
                        mapping: Arc::new(o.mapping),
                        opts: o.opts,
                        lock: self.lock_for(&req.target),
                    },
                    baseline,
                ),
                Err(e) => {
                    return Some(IncrementalView {
                        active: false,
                        reason: "DirectoryUnavailable".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
        self.tracked.lock().expect("tracked").insert(
            req.target.clone(),
            Tracked {
                feed: feed_name,
                fingerprint,
                seen: std::time::Instant::now(),
            },
        );
        let st = pipeline.status(&req.target)?;
        Some(IncrementalView {
            active: st.active,
            reason: st.reason.to_string(),
            message: st.message,
        })
    }

    fn full_sync_wanted(&self, target: &str) -> bool {
        let feed = match self.tracked.lock().expect("tracked").get(target) {
            Some(t) => t.feed.clone(),
            None => return false,
        };
        self.feeds
            .lock()
            .expect("feeds")
            .get(&feed)
            .is_some_and(|f| {
                f.pipeline
                    .take_full_sync_requests()
                    .iter()
                    .any(|t| t == target)
            })
    }
}

/// What an Outbound run works with.
struct OutboundRun {
    client: DingTalkClient,
    dir: Arc<dyn Directory>,
    mapping: OutboundMapping,
    opts: OutboundOptions,
}

fn outbound_inputs(req: &SyncRequest) -> Result<OutboundMapping, SyncRunError> {
    OutboundMapping::compile(&req.mapping).map_err(|e| SyncRunError::Permanent(e.to_string()))
}

async fn open_outbound(req: &SyncRequest) -> Result<OutboundRun, SyncRunError> {
    let mapping = outbound_inputs(req)?;
    let opts = OutboundOptions::for_target(&req.spec, req.approval.clone())
        .map_err(SyncRunError::Permanent)?;
    // The directory is the source: opened read-only, dingsync never writes it.
    let dir = open_directory(req, true).await?;
    let client = DingTalkClient::shared(client_config(&req.binding, &req.app_key, &req.app_secret));
    Ok(OutboundRun {
        client,
        dir,
        mapping,
        opts,
    })
}

fn spec_key(req: &SyncRequest) -> String {
    format!("{:?}|{:?}|{:?}", req.spec, req.mapping, req.binding)
}

impl Engine {
    async fn run_outbound(&self, req: &SyncRequest) -> Result<SyncOutcome, SyncRunError> {
        let o = open_outbound(req).await?;
        let lock = self.lock_for(&req.target);
        let _writer = lock.lock().await;
        if let Some(p) = &req.progress {
            p("Pushing", 0, None);
        }
        let r = outbound::run(
            &o.client,
            o.dir.as_ref(),
            &o.mapping,
            &o.opts,
            req.spec.dry_run,
        )
        .await
        .map_err(|e| match e {
            SyncError::Directory(DirectoryError::Auth(m)) => SyncRunError::DirectoryAuth(m),
            SyncError::Directory(DirectoryError::Config(m)) => SyncRunError::Permanent(m),
            other => SyncRunError::Transient(other.to_string()),
        })?;
        if let Some(mark) = r.mark.clone().filter(|_| r.complete && r.held.is_none()) {
            self.marks
                .lock()
                .expect("marks")
                .insert(req.target.clone(), (spec_key(req), mark));
        }
        Ok(outbound_outcome(&r))
    }

    /// Outbound incremental sync: directories do not push changes, so each look asks the
    /// directory what changed since the last run and pushes only when something did.
    async fn poll_outbound(&self, req: &SyncRequest, baseline: bool) -> IncrementalView {
        let view = |active: bool, reason: &str, message: String| IncrementalView {
            active,
            reason: reason.into(),
            message,
        };
        let mark = self
            .marks
            .lock()
            .expect("marks")
            .get(&req.target)
            .filter(|(k, _)| *k == spec_key(req))
            .map(|(_, m)| m.clone());
        let (true, Some(mark)) = (baseline, mark) else {
            return view(
                false,
                "NoBaseline",
                "polling starts after a complete full sync at the current spec".into(),
            );
        };
        let dir = match open_directory(req, true).await {
            Ok(d) => d,
            Err(e) => return view(false, "ApplyFailed", e.to_string()),
        };
        let every = req
            .spec
            .incremental_sync
            .as_ref()
            .and_then(|i| i.poll_interval)
            .map(Duration::from)
            .unwrap_or(OUTBOUND_POLL);
        match outbound::poll(dir.as_ref(), &mark).await {
            Ok(false) => view(
                true,
                "Active",
                format!(
                    "polling the directory every {}s; nothing changed",
                    every.as_secs()
                ),
            ),
            Ok(true) => match self.run_outbound(req).await {
                Ok(out) => view(
                    true,
                    "Active",
                    format!(
                        "polling the directory every {}s; last poll pushed {} created, {} updated, {} moved, {} removed, {} failed",
                        every.as_secs(),
                        out.summary.created,
                        out.summary.updated,
                        out.summary.moved,
                        out.summary.deleted,
                        out.summary.failed
                    ),
                ),
                Err(e) => view(false, "ApplyFailed", e.to_string()),
            },
            Err(e) => view(false, "ApplyFailed", e.to_string()),
        }
    }
}

fn failures_of(failures: &[sync::Failure]) -> Vec<Failure> {
    failures
        .iter()
        .map(|f| Failure {
            kind: f.kind.into(),
            id: f.id.clone(),
            name: Some(f.name.clone()),
            reason: f.reason.clone(),
            message: f.message.clone(),
        })
        .collect()
}

fn held_of(h: &sync::Held) -> PendingApproval {
    PendingApproval {
        removals: h.removals as i64,
        owned: h.owned as i64,
        token: h.token.clone(),
        message: h.message.clone(),
    }
}

/// Default time between Outbound polls.
pub const OUTBOUND_POLL: Duration = Duration::from_secs(60);

fn outbound_outcome(r: &outbound::OutboundReport) -> SyncOutcome {
    let n = |x: usize| x as i64;
    SyncOutcome {
        summary: RunSummary {
            created: n(r.created),
            updated: n(r.updated),
            moved: n(r.moved),
            deleted: n(r.deleted),
            unchanged: n(r.unchanged),
            failed: n(r.failures.len()),
            ..Default::default()
        },
        failures: failures_of(&r.failures),
        people: n(r.people),
        departments: n(r.departments),
        complete: r.complete,
        held: r.held.as_ref().map(held_of),
        plan: None,
    }
}

/// A run report as the controller writes it into status.
pub fn outcome(r: &sync::Report) -> SyncOutcome {
    let n = |x: usize| x as i64;
    let plan = &r.plan;
    SyncOutcome {
        summary: RunSummary {
            created: n(r.created),
            updated: n(r.updated),
            moved: n(r.moved),
            disabled: n(r.disabled),
            enabled: n(r.enabled),
            deleted: n(r.deleted),
            unchanged: n(r.unchanged),
            failed: n(r.failures.len()),
            missing_mobile: n(r.missing_mobile),
            missing_email: n(r.missing_email),
            ..Default::default()
        },
        failures: failures_of(&r.failures),
        people: n(r.people),
        departments: n(r.departments),
        complete: r.complete,
        held: r.held.as_ref().map(held_of),
        plan: Some(PlanSummary {
            create: n(plan.count("create")),
            update: n(plan.count("update") + plan.count("link")),
            moves: n(plan.count("move")),
            disable: n(plan.count("disable")),
            enable: n(plan.count("enable")),
            delete: n(plan.count("delete")),
            sample: plan
                .steps
                .iter()
                .take(20)
                .map(|s| format!("{} {}: {}", s.op.verb(), s.label, s.reason))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_template_names_its_rule() {
        let mut spec = FieldMappingSpec::default();
        spec.user.unique_name.template = "{{ name | pinyin }}".into();
        spec.user
            .attributes
            .push(crate::api::mapping::AttributeRule {
                target: "mail".into(),
                template: "{{ email | lower ".into(),
                ..Default::default()
            });
        let err = validate_mapping(&spec).unwrap_err();
        assert!(err.starts_with("user.attributes[0] (mail)"), "{err}");
        spec.user.attributes[0].template = "{{ email | lower }}".into();
        validate_mapping(&spec).unwrap();
    }
}
