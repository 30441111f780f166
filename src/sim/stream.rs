//! Stream Mode: `POST /v1.0/gateway/connections/open` hands out a single-use 90 s ticket
//! and a `ws://host:port/connect` endpoint; the WebSocket then carries EVENT frames (headers
//! all strings, `data` a JSON string), SYSTEM `ping`/`disconnect`, and the client's ACKs.
//! EVENTs not acked with code 200 (and no `status:"LATER"`) are delivered again. A connection
//! gets only what it subscribed to: EVENTs if it named `EVENT`, CALLBACK pushes only for the
//! topics it named. A client's Close frame is answered before the socket closes (RFC 6455
//! 5.5.1): an SDK that sees no answer takes the close for a network error and backs off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::gate;
use super::new_host::envelope as v1;
use super::shared::Shared;
use super::state::delivery::{ConnCmd, ConnHandle, Inflight, Subscriptions};
use super::state::event::Event;

/// `/connect` here, and `connections/open` on the new host (it answers in that host's envelope);
/// `/__sim/stream/callback` pushes a CALLBACK (the admin API's part of the Stream gateway).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/gateway/connections/open", post(open_connection))
        .route("/connect", get(connect))
        .route("/__sim/stream/callback", post(admin_callback))
}

/// The `subscriptions` of a `connections/open` body; unknown types are ignored.
pub fn parse_subscriptions(body: &Value) -> Subscriptions {
    let mut subs = Subscriptions::default();
    for s in body
        .get("subscriptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let topic = s.get("topic").and_then(Value::as_str).unwrap_or("");
        match s.get("type").and_then(Value::as_str) {
            Some("EVENT") => subs.events = true,
            Some("CALLBACK") if !topic.is_empty() => {
                subs.callbacks.insert(topic.to_owned());
            }
            _ => {}
        }
    }
    subs
}

/// `POST /v1.0/gateway/connections/open`.
pub async fn open_connection(
    AxState(sh): AxState<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    const API: &str = "/v1.0/gateway/connections/open";
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = body
        .get("clientId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let secret = body
        .get("clientSecret")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(f) = gate::enter(&sh, API, Some(&key)).await {
        return v1::fault(&f);
    }
    let subs = parse_subscriptions(&body);
    let mut st = sh.lock();
    // A third-party (suite) app connects with its suiteKey and suiteSecret.
    let suite = st.suites.check_secret(&key, secret);
    if suite == Some(false)
        || (suite.is_none() && st.org().app(&key).is_none_or(|a| a.app_secret != secret))
    {
        return v1::error(401, "authFailed", "鉴权失败");
    }
    if st.over_qps(&key, API) {
        return v1::throttled();
    }
    let ticket = uuid::Uuid::new_v4().hyphenated().to_string();
    let expires = st.now_ms() + sh.config.ticket_ttl.as_millis() as i64;
    st.auth
        .tickets
        .insert(ticket.clone(), (key.clone(), expires));
    if subs.events {
        st.delivery.stream_apps.insert(key.clone());
    }
    st.delivery
        .ticket_subscriptions
        .insert(ticket.clone(), subs);
    if suite.is_some() {
        super::suite::on_stream_open(&mut st, &key);
    }
    drop(st);
    sh.stream_wake.notify_one();
    let base = sh.base_url();
    let ws = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or(base);
    // Explicit port and the /connect path: the Java SDK rebuilds the URL from host:port.
    axum::Json(json!({"endpoint": format!("{ws}/connect"), "ticket": ticket})).into_response()
}

#[derive(Deserialize)]
struct TicketQuery {
    #[serde(default)]
    ticket: String,
}

async fn connect(
    AxState(sh): AxState<Arc<Shared>>,
    Query(q): Query<TicketQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let (app_key, subs) = {
        let mut st = sh.lock();
        st.count_call("/connect");
        let now = st.now_ms();
        // Single use: the ticket is gone whether it was still valid or not.
        let subs = st
            .delivery
            .ticket_subscriptions
            .remove(&q.ticket)
            .unwrap_or_default();
        match st.auth.tickets.remove(&q.ticket) {
            Some((app, exp)) if exp > now => (app, subs),
            _ => return v1::error(401, "invalidTicket", "ticket 无效或已过期"),
        }
    };
    ws.max_message_size(256 * 1024)
        .on_upgrade(move |socket| run_connection(sh, socket, app_key, subs))
}

fn message_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{}_{}_{}_{}", &u[..8], &u[8..11], &u[11..22], &u[22..26])
}

fn system_frame(topic: &str, data: Value, now_ms: i64) -> (String, String) {
    let id = message_id();
    let frame = json!({
        "specVersion": "1.0",
        "type": "SYSTEM",
        "headers": {"topic": topic, "messageId": id, "contentType": "application/json", "time": now_ms.to_string()},
        "data": data.to_string(),
    });
    (id, frame.to_string())
}

fn event_frame(ev: &Event, app_key: &str, conn_id: &str, message_id: &str, now_ms: i64) -> String {
    json!({
        "specVersion": "1.0",
        "type": "EVENT",
        "headers": {
            "appId": app_key,
            "connectionId": conn_id,
            "contentType": "application/json",
            "messageId": message_id,
            "time": now_ms.to_string(),
            "topic": "*",
            "eventType": ev.event_type,
            "eventId": ev.event_id,
            "eventCorpId": ev.corp_id,
            "eventBornTime": ev.born_ms.to_string(),
            "eventUnifiedAppId": app_key,
        },
        "data": ev.stream_data().to_string(),
    })
    .to_string()
}

/// The Close frame the server sends when it ends a connection itself.
fn going_away() -> Message {
    Message::Close(Some(CloseFrame {
        code: close_code::NORMAL,
        reason: "connection is expired".into(),
    }))
}

async fn run_connection(sh: Arc<Shared>, socket: WebSocket, app_key: String, subs: Subscriptions) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn_id = {
        let mut st = sh.lock();
        let opened_ms = st.now_ms();
        st.counters.stream_connections_opened += 1;
        st.delivery.open_conn(ConnHandle {
            app_key: app_key.clone(),
            subscriptions: subs,
            tx,
            opened_ms,
            draining: false,
        })
    };
    sh.stream_wake.notify_one();
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(sh.config.stream_ping_interval);
    ping.tick().await;
    let mut pings: HashMap<String, String> = HashMap::new();
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match close_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sh.shutdown.cancelled() => {
                let _ = sink.send(going_away()).await;
                break;
            }
            _ = grace => {
                let _ = sink.send(going_away()).await;
                break;
            }
            cmd = rx.recv() => match cmd {
                Some(ConnCmd::Frame(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(ConnCmd::Disconnect { graceful: true }) => {
                    let now = sh.lock().now_ms();
                    let (_, f) = system_frame("disconnect", json!({"reason": "connection is expired"}), now);
                    let _ = sink.send(Message::Text(f.into())).await;
                    close_at = Some(tokio::time::Instant::now() + sh.config.stream_disconnect_grace);
                }
                Some(ConnCmd::Disconnect { graceful: false }) | None => break,
            },
            _ = ping.tick() => {
                let now = sh.lock().now_ms();
                let opaque = uuid::Uuid::new_v4().to_string();
                let (id, f) = system_frame("ping", json!({"opaque": opaque}), now);
                pings.insert(id, opaque);
                if sink.send(Message::Text(f.into())).await.is_err() {
                    break;
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => upstream(&sh, &app_key, &mut pings, t.as_str()),
                Some(Ok(Message::Binary(b))) => {
                    if let Ok(t) = std::str::from_utf8(&b) {
                        upstream(&sh, &app_key, &mut pings, t);
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // The WebSocket layer has queued the answering Close frame; closing the
                    // sink flushes it before the TCP connection goes.
                    let _ = sink.close().await;
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    // Whatever this connection had in flight goes back to the queue for another connection.
    sh.lock().delivery.close_conn(conn_id, &app_key);
    sh.stream_wake.notify_one();
}

/// An upstream frame: a pong (ACK of our ping) or an EVENT ACK.
fn upstream(sh: &Shared, app_key: &str, pings: &mut HashMap<String, String>, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(id) = v.pointer("/headers/messageId").and_then(Value::as_str) else {
        return;
    };
    let code = v
        .get("code")
        .and_then(|c| c.as_i64().or_else(|| c.as_str()?.parse().ok()))
        .unwrap_or(0);
    let data: Value = match v.get("data") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    let mut st = sh.lock();
    if let Some(opaque) = pings.remove(id) {
        if code == 200 && data.get("opaque").and_then(Value::as_str) == Some(opaque.as_str()) {
            st.counters.stream_pongs += 1;
        }
        return;
    }
    let retry = sh.config.stream_retry_delay;
    let st = &mut *st;
    let Some(q) = st.delivery.queues.get_mut(app_key) else {
        return;
    };
    let Some(inflight) = q.inflight.remove(id) else {
        return;
    };
    // The Python SDK echoes the event data with code 200 and no status: that is success too.
    let later = data.get("status").and_then(Value::as_str) == Some("LATER");
    if code == 200 && !later {
        st.counters.stream_acks_success += 1;
    } else {
        st.counters.stream_acks_later += 1;
        q.pending
            .push_back(inflight.requeue(Instant::now() + retry));
        sh.stream_wake.notify_one();
    }
}

/// Delivers due events to open connections, forever (woken on changes, or every 100 ms).
pub async fn pump(sh: Arc<Shared>) {
    let mut rr: u64 = 0;
    loop {
        tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            _ = sh.stream_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        deliver(&sh, &mut rr);
    }
}

fn deliver(sh: &Shared, rr: &mut u64) {
    let mut guard = sh.lock();
    let now_ms = guard.now_ms();
    let st = &mut *guard;
    let now = Instant::now();
    let ack_timeout = sh.config.stream_ack_timeout;
    let retention = sh.config.stream_retention;
    for (app, q) in st.delivery.queues.iter_mut() {
        // Unacked for too long: deliver again.
        let late: Vec<String> = q
            .inflight
            .iter()
            .filter(|(_, i)| now.duration_since(i.sent) >= ack_timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for id in late {
            if let Some(i) = q.inflight.remove(&id) {
                q.pending.push_back(i.requeue(now));
            }
        }
        let conns: Vec<(u64, &ConnHandle)> = st
            .delivery
            .conns
            .iter()
            .filter(|(_, c)| &c.app_key == app && !c.draining && c.subscriptions.events)
            .map(|(id, c)| (*id, c))
            .collect();
        if conns.is_empty() {
            let before = q.pending.len();
            q.pending
                .retain(|p| now.duration_since(p.enqueued) < retention);
            st.counters.stream_events_dropped += (before - q.pending.len()) as u64;
            continue;
        }
        let mut keep = std::collections::VecDeque::new();
        while let Some(p) = q.pending.pop_front() {
            if p.not_before > now {
                keep.push_back(p);
                continue;
            }
            *rr += 1;
            let (conn_id, conn) = conns[(*rr as usize) % conns.len()];
            let mid = message_id();
            let frame = event_frame(&p.event, app, &conn_id.to_string(), &mid, now_ms);
            if conn.tx.send(ConnCmd::Frame(frame)).is_err() {
                keep.push_back(p);
                continue;
            }
            st.counters.stream_events_sent += 1;
            if p.attempts > 0 {
                st.counters.stream_redeliveries += 1;
            }
            q.inflight.insert(
                mid,
                Inflight {
                    event: p.event,
                    sent: now,
                    conn: conn_id,
                    attempts: p.attempts + 1,
                    enqueued: p.enqueued,
                },
            );
        }
        q.pending = keep;
    }
}

/// Sends a CALLBACK push on `topic` to one open connection of `app_key` subscribed to it
/// (fire and forget, like DingTalk's robot messages); the connection's id, or `None` if no
/// connection subscribed to the topic.
pub fn push_callback(sh: &Shared, app_key: &str, topic: &str, data: &Value) -> Option<u64> {
    let st = sh.lock();
    let now_ms = st.now_ms();
    let (id, conn) = st.delivery.conns.iter().find(|(_, c)| {
        c.app_key == app_key && !c.draining && c.subscriptions.callbacks.contains(topic)
    })?;
    let frame = json!({
        "specVersion": "1.0",
        "type": "CALLBACK",
        "headers": {
            "appId": app_key,
            "connectionId": id.to_string(),
            "contentType": "application/json",
            "messageId": message_id(),
            "time": now_ms.to_string(),
            "topic": topic,
        },
        "data": data.to_string(),
    });
    conn.tx.send(ConnCmd::Frame(frame.to_string())).ok()?;
    Some(*id)
}

#[derive(Deserialize)]
struct CallbackPush {
    app_key: String,
    topic: String,
    #[serde(default)]
    data: Value,
}

/// `POST /__sim/stream/callback {"app_key","topic","data"}` → `{"delivered": conn id | null}`.
async fn admin_callback(
    AxState(sh): AxState<Arc<Shared>>,
    axum::Json(p): axum::Json<CallbackPush>,
) -> Response {
    let id = push_callback(&sh, &p.app_key, &p.topic, &p.data);
    axum::Json(json!({"delivered": id})).into_response()
}
