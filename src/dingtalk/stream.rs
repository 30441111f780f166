//! Stream mode: open a connection at the gateway, hold the WebSocket, answer SYSTEM
//! pings, hand each EVENT to the handler and acknowledge it only once the handler returned
//! `Ok` (LATER otherwise, so DingTalk delivers it again), and reconnect with backoff after a
//! drop or a SYSTEM `disconnect`. No public endpoint and no crypto needed.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{
    DingTalkClient, DingTalkError,
    client::{Auth, Host, jitter},
    events::{Event, EventHandler},
};

pub const API_OPEN: &str = "/v1.0/gateway/connections/open";

/// Why the stream could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    #[error("opening a Stream connection failed: {0}")]
    Open(#[from] DingTalkError),
    #[error("the Stream gateway answered without {0}")]
    BadGateway(&'static str),
    #[error("WebSocket: {0}")]
    WebSocket(String),
    #[error("not a Stream frame: {0}")]
    BadFrame(String),
}

/// One subscription of the connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    #[serde(rename = "type")]
    pub kind: String,
    pub topic: String,
}

/// How the stream behaves.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Default: every event (`EVENT` `*`: which events arrive is chosen in the console).
    pub subscriptions: Vec<Subscription>,
    pub ua: String,
    /// Reconnect delay after a failure: doubles from `reconnect_min` up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A WebSocket ping is sent this often.
    pub keepalive: Duration,
    /// Reconnect when nothing at all was heard for this long.
    pub idle_timeout: Duration,
    /// On a SYSTEM `disconnect`, how long in-flight events may finish (and be acked) on the
    /// old connection before it is closed.
    pub drain: Duration,
    /// How many handled event ids are remembered to skip duplicate deliveries.
    pub dedupe: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            subscriptions: vec![Subscription {
                kind: "EVENT".into(),
                topic: "*".into(),
            }],
            ua: concat!("dingsync/", env!("CARGO_PKG_VERSION")).into(),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            keepalive: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            drain: Duration::from_secs(5),
            dedupe: 4096,
        }
    }
}

/// Where the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamState {
    Connecting,
    Connected,
    /// Waiting to reconnect after `last_error` (attempt counts consecutive failures).
    Reconnecting {
        attempt: u32,
        last_error: String,
    },
    Stopped,
}

/// What the stream did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// WebSocket sessions established.
    pub connections: u64,
    pub pings: u64,
    pub server_disconnects: u64,
    pub events: u64,
    /// Acked SUCCESS after the handler returned Ok.
    pub acked: u64,
    /// Answered LATER after the handler failed.
    pub failed: u64,
    /// Deliveries of an already handled event (acked without calling the handler again).
    pub duplicates: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    pings: AtomicU64,
    server_disconnects: AtomicU64,
    events: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    duplicates: AtomicU64,
}

/// A running stream. Dropping it does not stop it; call [`StreamHandle::stop`].
pub struct StreamHandle {
    state: watch::Receiver<StreamState>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl StreamHandle {
    pub fn state(&self) -> StreamState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every state change.
    pub fn watch(&self) -> watch::Receiver<StreamState> {
        self.state.clone()
    }

    /// Wait until the state satisfies `pred` (or the stream ended).
    pub async fn wait_for(&self, pred: impl Fn(&StreamState) -> bool) -> StreamState {
        let mut rx = self.state.clone();
        match rx.wait_for(|s| pred(s) || *s == StreamState::Stopped).await {
            Ok(s) => s.clone(),
            Err(_) => StreamState::Stopped,
        }
    }

    pub fn stats(&self) -> StreamStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StreamStats {
            connections: l(&c.connections),
            pings: l(&c.pings),
            server_disconnects: l(&c.server_disconnects),
            events: l(&c.events),
            acked: l(&c.acked),
            failed: l(&c.failed),
            duplicates: l(&c.duplicates),
        }
    }

    /// Close the connection and end the task. Unacknowledged events are redelivered by
    /// DingTalk to the next connection.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A downstream frame (server → client). Headers are strings; `data` is a JSON string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Frame {
    #[serde(rename = "specVersion", default)]
    pub spec_version: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "string_map")]
    pub headers: HashMap<String, String>,
    #[serde(default, deserialize_with = "data_string")]
    pub data: String,
}

fn string_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HashMap<String, String>, D::Error> {
    let m = Option::<HashMap<String, Value>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, s)
        })
        .collect())
}

fn data_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        // Tolerate an un-encoded object.
        Some(other) => other.to_string(),
    })
}

impl Frame {
    pub fn parse(text: &str) -> Result<Frame, StreamError> {
        serde_json::from_str(text).map_err(|e| StreamError::BadFrame(e.to_string()))
    }
    pub fn topic(&self) -> &str {
        self.headers.get("topic").map_or("", String::as_str)
    }
    pub fn message_id(&self) -> &str {
        self.headers.get("messageId").map_or("", String::as_str)
    }
}

/// The upstream answer to a frame: same `messageId`, `data` a JSON string.
pub fn ack_frame(message_id: &str, code: u16, message: &str, data: &str) -> String {
    json!({
        "code": code,
        "headers": {"contentType": "application/json", "messageId": message_id},
        "message": message,
        "data": data,
    })
    .to_string()
}

/// EVENT ack: SUCCESS (consumed) or LATER (failed, deliver again).
pub fn event_ack(message_id: &str, ok: bool) -> String {
    if ok {
        let data = json!({"status": "SUCCESS", "message": "OK"}).to_string();
        ack_frame(message_id, 200, "OK", &data)
    } else {
        let data = json!({"status": "LATER", "message": "handler failed"}).to_string();
        // As the Go SDK: code 500 with LATER, so either reading says "not consumed".
        ack_frame(message_id, 500, "handler failed", &data)
    }
}

/// `endpoint?ticket=...` (`&` when the endpoint already has a query; the ticket encoded).
pub fn ws_url(endpoint: &str, ticket: &str) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let enc: String = url::form_urlencoded::byte_serialize(ticket.as_bytes()).collect();
    format!("{endpoint}{sep}ticket={enc}")
}

/// Remembers handled event ids, bounded.
struct Seen {
    order: VecDeque<String>,
    set: HashSet<String>,
    cap: usize,
}

impl Seen {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
    fn insert(&mut self, id: String) {
        if self.cap == 0 || !self.set.insert(id.clone()) {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

enum SessionEnd {
    Stopped,
    /// SYSTEM disconnect: reconnect at once.
    Disconnect,
    Dropped(String),
}

struct Runner {
    client: DingTalkClient,
    config: StreamConfig,
    handler: Arc<dyn EventHandler>,
    state: watch::Sender<StreamState>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    seen: Arc<Mutex<Seen>>,
}

impl DingTalkClient {
    /// Open a Stream connection once: the WebSocket URL (with its single-use ticket).
    pub async fn open_stream_connection(
        &self,
        config: &StreamConfig,
    ) -> Result<String, StreamError> {
        let c = self.config();
        let body = json!({
            "clientId": c.app_key,
            "clientSecret": c.app_secret.expose(),
            "subscriptions": config.subscriptions,
            "ua": config.ua,
        });
        let v = self
            .call(
                Host::Api,
                Method::POST,
                API_OPEN,
                &[],
                Some(&body),
                Auth::None,
            )
            .await?;
        let endpoint = v
            .get("endpoint")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .ok_or(StreamError::BadGateway("endpoint"))?;
        let ticket = v
            .get("ticket")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(StreamError::BadGateway("ticket"))?;
        Ok(ws_url(endpoint, ticket))
    }

    /// Start receiving events over Stream mode in a background task.
    pub fn start_stream(
        &self,
        config: StreamConfig,
        handler: Arc<dyn EventHandler>,
    ) -> StreamHandle {
        let (tx, rx) = watch::channel(StreamState::Connecting);
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let runner = Runner {
            client: self.clone(),
            seen: Arc::new(Mutex::new(Seen {
                order: VecDeque::new(),
                set: HashSet::new(),
                cap: config.dedupe,
            })),
            config,
            handler,
            state: tx,
            counters: counters.clone(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(runner.run());
        StreamHandle {
            state: rx,
            counters,
            stop,
            task,
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Runner {
    async fn run(self) {
        let mut failures: u32 = 0;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            if failures == 0 {
                self.state.send_replace(StreamState::Connecting);
            }
            let end = match self.connect().await {
                Ok(ws) => {
                    self.counters.connections.fetch_add(1, Ordering::Relaxed);
                    self.state.send_replace(StreamState::Connected);
                    tracing::info!("DingTalk Stream connected");
                    let started = Instant::now();
                    let end = self.session(ws).await;
                    // A connection that held for a while resets the backoff.
                    if started.elapsed() > self.config.reconnect_max {
                        failures = 0;
                    }
                    end
                }
                Err(e) => SessionEnd::Dropped(e.to_string()),
            };
            match end {
                SessionEnd::Stopped => break,
                SessionEnd::Disconnect => {
                    failures = 0;
                    self.state.send_replace(StreamState::Connecting);
                }
                SessionEnd::Dropped(why) => {
                    failures += 1;
                    tracing::warn!(error = %why, attempt = failures, "DingTalk Stream down; reconnecting");
                    self.state.send_replace(StreamState::Reconnecting {
                        attempt: failures,
                        last_error: why,
                    });
                    let exp = failures.saturating_sub(1).min(16);
                    let delay = self
                        .config
                        .reconnect_min
                        .saturating_mul(1u32 << exp)
                        .min(self.config.reconnect_max);
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = tokio::time::sleep(jitter(delay)) => {}
                    }
                }
            }
        }
        self.state.send_replace(StreamState::Stopped);
    }

    async fn connect(&self) -> Result<Ws, StreamError> {
        let url = tokio::select! {
            _ = self.stop.cancelled() => return Err(StreamError::WebSocket("stopped".into())),
            r = self.client.open_stream_connection(&self.config) => r?,
        };
        if url.starts_with("wss:") {
            // Several TLS providers are compiled in; rustls cannot pick one by itself.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let timeout = self.client.config().connect_timeout + self.client.config().timeout;
        match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url.as_str())).await {
            Ok(Ok((ws, _))) => Ok(ws),
            // The URL carries the ticket: report only the kind of failure.
            Ok(Err(e)) => Err(StreamError::WebSocket(ws_error_kind(&e))),
            Err(_) => Err(StreamError::WebSocket("connect timed out".into())),
        }
    }

    async fn session(&self, ws: Ws) -> SessionEnd {
        let (mut sink, mut source) = ws.split();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut inflight: JoinSet<()> = JoinSet::new();
        let mut keepalive = tokio::time::interval(self.config.keepalive);
        keepalive.tick().await;
        let mut last_heard = Instant::now();
        let end = loop {
            tokio::select! {
                _ = self.stop.cancelled() => break SessionEnd::Stopped,
                Some(out) = rx.recv() => {
                    if let Err(e) = sink.send(Message::text(out)).await {
                        break SessionEnd::Dropped(ws_error_kind(&e));
                    }
                }
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
                _ = keepalive.tick() => {
                    if last_heard.elapsed() > self.config.idle_timeout {
                        break SessionEnd::Dropped("nothing heard from DingTalk".into());
                    }
                    if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                        break SessionEnd::Dropped(ws_error_kind(&e));
                    }
                }
                msg = source.next() => {
                    last_heard = Instant::now();
                    match msg {
                        None => break SessionEnd::Dropped("connection closed".into()),
                        Some(Err(e)) => break SessionEnd::Dropped(ws_error_kind(&e)),
                        Some(Ok(Message::Text(text))) => {
                            if self.on_text(text.as_str(), &tx, &mut inflight) {
                                break SessionEnd::Disconnect;
                            }
                        }
                        Some(Ok(Message::Close(_))) => break SessionEnd::Dropped("closed by DingTalk".into()),
                        // Pings are answered by the WebSocket layer; the flush sends the pong.
                        Some(Ok(Message::Ping(_))) => {
                            if let Err(e) = sink.flush().await {
                                break SessionEnd::Dropped(ws_error_kind(&e));
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
            }
        };
        if matches!(end, SessionEnd::Disconnect) {
            // Let events already handed to the handler finish and be acked on this
            // connection; DingTalk routes nothing new to it.
            let deadline = tokio::time::sleep(self.config.drain);
            tokio::pin!(deadline);
            while !inflight.is_empty() {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = self.stop.cancelled() => break,
                    Some(_) = inflight.join_next() => {}
                }
            }
            while let Ok(out) = rx.try_recv() {
                let _ = sink.send(Message::text(out)).await;
            }
        }
        inflight.abort_all();
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
        end
    }

    /// Handle one text frame; `true` when DingTalk asked us to reconnect.
    fn on_text(
        &self,
        text: &str,
        tx: &tokio::sync::mpsc::UnboundedSender<String>,
        inflight: &mut JoinSet<()>,
    ) -> bool {
        let frame = match Frame::parse(text) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable Stream frame");
                return false;
            }
        };
        let id = frame.message_id().to_string();
        match frame.kind.as_str() {
            "SYSTEM" => match frame.topic() {
                "ping" => {
                    self.counters.pings.fetch_add(1, Ordering::Relaxed);
                    // Echo the data: it carries the opaque the server checks.
                    let _ = tx.send(ack_frame(&id, 200, "OK", &frame.data));
                }
                "disconnect" => {
                    self.counters
                        .server_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!("DingTalk asked to reconnect");
                    return true;
                }
                other => tracing::debug!(topic = other, "SYSTEM frame ignored"),
            },
            "EVENT" => {
                self.counters.events.fetch_add(1, Ordering::Relaxed);
                let event = Event::from_stream(&frame.headers, &frame.data);
                // A suite's ticket is kept before anything else sees the event: the next corp
                // token needs it.
                if let Some(suite) = &self.client.config().suite
                    && let Some(ticket) = super::suite::ticket_of(&event)
                {
                    suite.tickets.set(ticket);
                }
                let key = event.event_id.clone();
                if let Some(k) = &key
                    && self.seen.lock().is_ok_and(|s| s.contains(k))
                {
                    self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(event_ack(&id, true));
                    return false;
                }
                let handler = self.handler.clone();
                let tx = tx.clone();
                let counters = self.counters.clone();
                let seen = self.seen.clone();
                inflight.spawn(async move {
                    let event_type = event.event_type.clone();
                    let ok = match handler.handle(event).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(event_type, error = %e, "event handler failed; DingTalk will redeliver");
                            false
                        }
                    };
                    if ok {
                        counters.acked.fetch_add(1, Ordering::Relaxed);
                        if let (Some(k), Ok(mut s)) = (key, seen.lock()) {
                            s.insert(k);
                        }
                    } else {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tx.send(event_ack(&id, ok));
                });
            }
            "CALLBACK" => {
                // Not subscribed: say the topic has no handler.
                let data = json!({"response": null}).to_string();
                let _ = tx.send(ack_frame(&id, 404, "no handler", &data));
            }
            other => tracing::debug!(kind = other, "unknown Stream frame type ignored"),
        }
        false
    }
}

fn ws_error_kind(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => "connection closed".into(),
        E::Io(io) => format!("I/O: {}", io.kind()),
        E::Http(resp) => format!("HTTP {} on upgrade", resp.status()),
        E::Tls(_) => "TLS failure".into(),
        E::Protocol(p) => format!("protocol: {p}"),
        E::Url(_) => "bad WebSocket URL".into(),
        _ => "WebSocket failure".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_with_string_headers_and_string_data() {
        let f = Frame::parse(r#"{"specVersion":"1.0","type":"EVENT","headers":{"appId":"a","messageId":"m1","time":"1693221579964","topic":"*","eventType":"user_add_org","eventId":"e1"},"data":"{\"userId\":[\"u\"]}"}"#).unwrap();
        assert_eq!(f.kind, "EVENT");
        assert_eq!(f.message_id(), "m1");
        assert_eq!(f.data, r#"{"userId":["u"]}"#);
        // Numbers in headers and an object as data are tolerated.
        let f = Frame::parse(r#"{"type":"SYSTEM","headers":{"topic":"ping","messageId":"p","time":169},"data":{"opaque":"x"}}"#).unwrap();
        assert_eq!(f.headers["time"], "169");
        assert_eq!(
            serde_json::from_str::<Value>(&f.data).unwrap()["opaque"],
            "x"
        );
        assert!(Frame::parse("garbage").is_err());
        assert!(Frame::parse(r#"{"headers":{}}"#).is_err());
    }

    #[test]
    fn acks_echo_message_id_and_status() {
        let a: Value = serde_json::from_str(&event_ack("m1", true)).unwrap();
        assert_eq!(a["code"], 200);
        assert_eq!(a["headers"]["messageId"], "m1");
        let data: Value = serde_json::from_str(a["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["status"], "SUCCESS");
        let l: Value = serde_json::from_str(&event_ack("m2", false)).unwrap();
        assert_ne!(l["code"], 200);
        let data: Value = serde_json::from_str(l["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["status"], "LATER");
        let p: Value =
            serde_json::from_str(&ack_frame("p1", 200, "OK", r#"{"opaque":"123-dsfs"}"#)).unwrap();
        assert_eq!(p["data"], r#"{"opaque":"123-dsfs"}"#);
    }

    #[test]
    fn ws_url_appends_the_ticket() {
        assert_eq!(
            ws_url("ws://127.0.0.1:9/connect", "t-1"),
            "ws://127.0.0.1:9/connect?ticket=t-1"
        );
        assert_eq!(
            ws_url("wss://h/connect?x=1", "a b+c"),
            "wss://h/connect?x=1&ticket=a+b%2Bc"
        );
    }

    #[test]
    fn seen_ids_are_bounded() {
        let mut s = Seen {
            order: VecDeque::new(),
            set: HashSet::new(),
            cap: 2,
        };
        for id in ["a", "b", "c"] {
            s.insert(id.into());
        }
        assert!(!s.contains("a") && s.contains("b") && s.contains("c"));
    }
}
