//! One event connection per binding, fanned out to every target that uses it: the feeds, the
//! targets they feed, and the HTTP callback routes of bindings with `events.delivery: Callback`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use sha2::Digest;

use super::relay::{self, CallbackRelay};

use crate::controller::{EventsChanges, EventsState, EventsView};
use crate::{
    api::binding::EventDelivery,
    controller::metrics::{EventLabels, Metrics},
    dingtalk::{
        CallbackReceiver, ClientPool, StreamConfig, StreamHandle, StreamState,
        callback::CallbackCrypto,
    },
    resolve::{Resolved, TargetKey, client_config},
    sync::events::{Observer, Pipeline, PipelineConfig},
};

/// A Stream outage longer than this may have lost events (UNCONFIRMED how long DingTalk keeps
/// unacknowledged Stream events; the shorter choice costs an extra full sync, never data).
const STREAM_GAP: Duration = Duration::from_secs(120);

/// Targets not reconciled for this long (deleted, or no longer using the binding) stop
/// receiving events.
const TRACK_TTL: Duration = Duration::from_secs(180);

/// A binding, as `namespace/binding`: the name of its feed and of its callback route.
pub type FeedName = String;

fn feed_name(t: &Resolved) -> FeedName {
    format!("{}/{}", t.key.namespace, t.spec.binding_ref.name)
}

/// The callback receivers of the bindings with `events.delivery: Callback`, by
/// `namespace/binding` (the path the controller's HTTP server serves them under).
#[derive(Default)]
pub struct CallbackRoutes(Mutex<HashMap<FeedName, Arc<CallbackReceiver>>>);

impl CallbackRoutes {
    fn insert(&self, route: FeedName, receiver: Arc<CallbackReceiver>) {
        self.0.lock().expect("callbacks").insert(route, receiver);
    }

    fn get(&self, route: &str) -> Option<Arc<CallbackReceiver>> {
        self.0.lock().expect("callbacks").get(route).cloned()
    }

    fn clear(&self) {
        self.0.lock().expect("callbacks").clear();
    }
}

/// `POST /dingtalk/callback/{namespace}/{binding}`: the URL to enter in DingTalk's developer
/// console for a binding with `events.delivery: Callback`. Unknown bindings get 404.
pub fn callback_router(routes: Arc<CallbackRoutes>) -> axum::Router {
    callback_router_relaying(routes, None)
}

/// [`callback_router`] for one of several replicas: a push for a binding whose feed runs on
/// another replica is checked and handed to the leader by `relay`.
pub fn callback_router_relaying(
    routes: Arc<CallbackRoutes>,
    relay: Option<Arc<CallbackRelay>>,
) -> axum::Router {
    axum::Router::new()
        .route(
            "/dingtalk/callback/{namespace}/{binding}",
            axum::routing::post(push),
        )
        .with_state((routes, relay))
}

/// One callback push: handled here when this replica feeds the binding, else handed on.
async fn push(
    axum::extract::State((routes, relay)): axum::extract::State<(
        Arc<CallbackRoutes>,
        Option<Arc<CallbackRelay>>,
    )>,
    axum::extract::Path((ns, binding)): axum::extract::Path<(String, String)>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::{http::StatusCode, response::IntoResponse};
    let refused = |status: StatusCode, e: &dyn std::error::Error| {
        tracing::warn!(namespace = %ns, binding = %binding, error = %e, "DingTalk callback refused");
        (status, e.to_string()).into_response()
    };
    if let Some(receiver) = routes.get(&format!("{ns}/{binding}")) {
        return match receiver.receive(&query, &body).await {
            Ok(reply) => axum::Json(reply).into_response(),
            Err(e) => refused(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                &e,
            ),
        };
    }
    if headers.contains_key(relay::RELAYED_BY) {
        // Handed on by a replica that took this one for the leader: this replica's feed may
        // still be starting, and DingTalk retries a 503.
        let msg = "this replica does not feed the binding yet";
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    let Some(relay) = relay else {
        return (StatusCode::NOT_FOUND, "no callback subscription here").into_response();
    };
    let raw = raw.unwrap_or_default();
    match relay.relay((&ns, &binding), &query, &raw, body).await {
        Ok(answer) => answer,
        Err(e) => refused(e.status(), &e),
    }
}

/// One binding's event connection and pipeline.
struct Feed {
    /// Connection settings and secret digests it was started with.
    settings: String,
    pipeline: Arc<Pipeline>,
    stream: Option<StreamHandle>,
    /// When the last event arrived.
    last_event: Arc<Mutex<Option<SystemTime>>>,
}

/// A target fed by events: which feed, at which spec, last seen when.
struct Tracked {
    feed: FeedName,
    fingerprint: String,
    seen: Instant,
}

/// The feeds of this replica and the targets they feed.
#[derive(Default)]
pub struct Feeds {
    metrics: Option<Arc<Metrics>>,
    clients: Arc<ClientPool>,
    feeds: Mutex<HashMap<FeedName, Feed>>,
    tracked: Mutex<HashMap<TargetKey, Tracked>>,
    callbacks: Arc<CallbackRoutes>,
    /// Announces feeds whose connection changed state, by (namespace, binding).
    changed: Option<tokio::sync::mpsc::UnboundedSender<(String, String)>>,
    changes: Mutex<Option<EventsChanges>>,
}

impl Feeds {
    pub fn new(metrics: Option<Arc<Metrics>>, clients: Arc<ClientPool>) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            metrics,
            clients,
            changed: Some(tx),
            changes: Mutex::new(Some(rx)),
            ..Default::default()
        }
    }

    /// The announcements of connection state changes (once: the first caller takes them).
    pub fn changes(&self) -> Option<EventsChanges> {
        self.changes.lock().expect("changes").take()
    }

    /// The event connection of binding `namespace/name`, if this replica holds one.
    pub fn state(&self, namespace: &str, name: &str) -> Option<EventsView> {
        let feeds = self.feeds.lock().expect("feeds");
        let f = feeds.get(&format!("{namespace}/{name}"))?;
        let state = match f.stream.as_ref().map(|s| s.state()) {
            None => EventsState::Callback,
            Some(StreamState::Connected) => EventsState::Connected,
            Some(StreamState::Connecting) => EventsState::Connecting,
            Some(StreamState::Reconnecting { last_error, .. }) => {
                EventsState::Disconnected(last_error)
            }
            Some(StreamState::Stopped) => EventsState::Disconnected("stopped".into()),
        };
        let last_event = *f.last_event.lock().expect("last event");
        Some(EventsView { state, last_event })
    }

    /// The routes the HTTP server serves callbacks under.
    pub fn callbacks(&self) -> Arc<CallbackRoutes> {
        self.callbacks.clone()
    }

    /// The binding's pipeline, (re)started when its connection settings changed.
    pub fn pipeline(&self, t: &Resolved) -> Result<Arc<Pipeline>, String> {
        let settings = settings_key(t);
        let name = feed_name(t);
        let mut feeds = self.feeds.lock().expect("feeds");
        if let Some(f) = feeds.get(&name)
            && f.settings == settings
        {
            return Ok(f.pipeline.clone());
        }
        if let Some(old) = feeds.remove(&name)
            && let Some(s) = old.stream
        {
            tokio::spawn(s.stop());
        }
        let last_event = Arc::new(Mutex::new(None));
        let pipeline = Pipeline::start(PipelineConfig {
            observer: Some(observer(self.metrics.clone(), last_event.clone())),
            ..Default::default()
        });
        let stream = self.connect(t, &name, &pipeline)?;
        if let Some(s) = &stream {
            self.announce_changes(s, &t.key.namespace, &t.spec.binding_ref.name);
        }
        let feed = Feed {
            settings,
            pipeline: pipeline.clone(),
            stream,
            last_event,
        };
        feeds.insert(name, feed);
        Ok(pipeline)
    }

    /// Starts the binding's event delivery into `pipeline`: a Stream connection, or a
    /// callback route.
    fn connect(
        &self,
        t: &Resolved,
        route: &str,
        pipeline: &Arc<Pipeline>,
    ) -> Result<Option<StreamHandle>, String> {
        let delivery = t.binding.events.as_ref().map(|e| e.delivery);
        match delivery.unwrap_or_default() {
            EventDelivery::Stream => {
                let client =
                    (self.clients).client(client_config(&t.binding, &t.app_key, &t.app_secret));
                let mut handler = pipeline.handler();
                if t.binding.suite.is_some() {
                    handler = Arc::new(crate::controller::suite_events::SuiteEvents {
                        inner: handler,
                        corp_id: t.binding.corp_id.clone(),
                        wake: self.changed.clone(),
                        binding: (t.key.namespace.clone(), t.spec.binding_ref.name.clone()),
                    });
                }
                let s = client.start_stream(StreamConfig::default(), handler);
                pipeline.watch_stream(&s, STREAM_GAP);
                Ok(Some(s))
            }
            EventDelivery::Callback => {
                let Some((token, aes)) = &t.callback else {
                    return Err("events.delivery is Callback, but events.callbackSecretRef \
                                does not hold keys token and aesKey"
                        .into());
                };
                let crypto = CallbackCrypto::new(token.expose(), aes.expose(), &t.app_key)
                    .map_err(|e| format!("events.callbackSecretRef: {e}"))?;
                let receiver = CallbackReceiver::new(crypto, pipeline.handler());
                self.callbacks.insert(route.to_string(), Arc::new(receiver));
                Ok(None)
            }
            EventDelivery::None => Err("events.delivery is None".into()),
        }
    }

    /// Announces each state change of `stream` as binding `namespace/name`'s, until the
    /// stream ends.
    fn announce_changes(&self, stream: &StreamHandle, namespace: &str, name: &str) {
        let Some(tx) = self.changed.clone() else {
            return;
        };
        let mut states = stream.watch();
        let binding = (namespace.to_string(), name.to_string());
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                if tx.send(binding.clone()).is_err() {
                    break;
                }
            }
        });
    }

    /// Whether the binding's Stream connection is up (false for callbacks).
    pub fn connected(&self, t: &Resolved) -> bool {
        self.feeds
            .lock()
            .expect("feeds")
            .get(&feed_name(t))
            .and_then(|f| f.stream.as_ref())
            .is_some_and(|s| s.state() == crate::dingtalk::StreamState::Connected)
    }

    /// Whether the target is fed by its binding's feed at this `fingerprint` already.
    pub fn knows(&self, t: &Resolved, fingerprint: &str) -> bool {
        let tracked = self.tracked.lock().expect("tracked");
        tracked
            .get(&t.key)
            .is_some_and(|k| k.fingerprint == fingerprint && k.feed == feed_name(t))
    }

    /// Notes that the target was reconciled now, at this `fingerprint`.
    pub fn track(&self, t: &Resolved, fingerprint: String) {
        let tracked = Tracked {
            feed: feed_name(t),
            fingerprint,
            seen: Instant::now(),
        };
        self.tracked
            .lock()
            .expect("tracked")
            .insert(t.key.clone(), tracked);
    }

    /// Whether events were missed for the target since it was last asked.
    pub fn full_sync_wanted(&self, target: &TargetKey) -> bool {
        let Some(feed) = self
            .tracked
            .lock()
            .expect("tracked")
            .get(target)
            .map(|t| t.feed.clone())
        else {
            return false;
        };
        let feeds = self.feeds.lock().expect("feeds");
        feeds.get(&feed).is_some_and(|f| {
            f.pipeline
                .take_full_sync_requests()
                .iter()
                .any(|t| *t == target.to_string())
        })
    }

    /// What the target's event batches did since the last call, oldest first.
    pub fn take_batches(&self, target: &TargetKey) -> Vec<crate::sync::events::BatchRecord> {
        let tracked = self.tracked.lock().expect("tracked");
        let Some(feed) = tracked.get(target).map(|t| t.feed.clone()) else {
            return vec![];
        };
        drop(tracked);
        let feeds = self.feeds.lock().expect("feeds");
        feeds
            .get(&feed)
            .map(|f| f.pipeline.take_batches(&target.to_string()))
            .unwrap_or_default()
    }

    /// Stops every feed and forgets every target (this replica no longer leads): callback
    /// pushes then go to the new leader through the relay.
    pub fn stop_all(&self) {
        self.tracked.lock().expect("tracked").clear();
        for (_, mut f) in self.feeds.lock().expect("feeds").drain() {
            if let Some(s) = f.stream.take() {
                tokio::spawn(s.stop());
            }
        }
        self.callbacks.clear();
    }

    /// Forget targets nobody reconciled for a while, and feeds nobody uses.
    pub fn prune(&self) {
        let mut tracked = self.tracked.lock().expect("tracked");
        let mut feeds = self.feeds.lock().expect("feeds");
        tracked.retain(|key, t| {
            let keep = t.seen.elapsed() < TRACK_TTL;
            if !keep && let Some(f) = feeds.get(&t.feed) {
                f.pipeline.remove_target(&key.to_string());
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

/// Connection settings, secrets (as digests) and the delivery: any change restarts a feed.
fn settings_key(t: &Resolved) -> String {
    let config = client_config(&t.binding, &t.app_key, &t.app_secret);
    let mut digest = sha2::Sha256::new();
    digest.update(t.app_secret.expose().as_bytes());
    if let Some((token, aes)) = &t.callback {
        digest.update(token.expose().as_bytes());
        digest.update(aes.expose().as_bytes());
    }
    format!(
        "{:?}|{:?}|{}",
        config,
        t.binding.events,
        hex::encode(digest.finalize())
    )
}

/// Notes when the last event arrived, and counts events and their lag in the controller's
/// metrics.
fn observer(m: Option<Arc<Metrics>>, last_event: Arc<Mutex<Option<SystemTime>>>) -> Observer {
    Arc::new(move |event_type, outcome, lag| {
        *last_event.lock().expect("last event") = Some(SystemTime::now());
        let Some(m) = &m else { return };
        let labels = EventLabels {
            event_type: event_type.to_owned(),
            outcome: outcome.to_owned(),
        };
        m.events.get_or_create(&labels).inc();
        if let Some(lag) = lag {
            m.event_lag.observe(lag.as_secs_f64());
        }
    })
}
