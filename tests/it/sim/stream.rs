//! Stream Mode: gateway, tickets, frames, ping, ACK, redelivery, disconnect (raw WebSocket client).

use std::time::Duration;

use dingsync::sim::{SimHandle, UserWrite};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::common::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(sim: &SimHandle) -> (String, String) {
    let v: Value = http()
        .post(format!("{}/v1.0/gateway/connections/open", sim.base_url()))
        .json(&json!({
            "clientId": APP_KEY, "clientSecret": APP_SECRET,
            "subscriptions": [{"type": "EVENT", "topic": "*"}],
            "ua": "dingsync-test/1", "localIp": "127.0.0.1",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = v["endpoint"].as_str().unwrap().to_owned();
    assert_eq!(endpoint, format!("ws://{}/connect", sim.addr()));
    (endpoint, v["ticket"].as_str().unwrap().to_owned())
}

async fn connect(sim: &SimHandle) -> Ws {
    let (endpoint, ticket) = open(sim).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("{endpoint}?ticket={ticket}"))
        .await
        .unwrap();
    wait_for(|| sim.counters().stream_connections_active >= 1).await;
    ws
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

/// Next frame within `secs`, answering pings on the way (pings are returned only if `pings`).
async fn next(ws: &mut Ws, secs: u64, pings: bool) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        let Message::Text(t) = msg else {
            if let Message::Close(_) = msg {
                return None;
            }
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["type"] == "SYSTEM" && v["headers"]["topic"] == "ping" {
            let ack = json!({"code": 200, "headers": {"contentType": "application/json", "messageId": v["headers"]["messageId"]}, "message": "OK", "data": v["data"]});
            ws.send(Message::Text(ack.to_string().into()))
                .await
                .unwrap();
            if pings {
                return Some(v);
            }
            continue;
        }
        return Some(v);
    }
}

async fn ack(ws: &mut Ws, frame: &Value, code: u16, status: Option<&str>) {
    let data = match status {
        Some(s) => json!({"status": s, "message": "x"}).to_string(),
        // The Python SDK's quirk: echo the event data, no status.
        None => frame["data"].as_str().unwrap().to_owned(),
    };
    let ack = json!({"code": code, "headers": {"contentType": "application/json", "messageId": frame["headers"]["messageId"]}, "message": "OK", "data": data});
    ws.send(Message::Text(ack.to_string().into()))
        .await
        .unwrap();
}

fn hire(sim: &SimHandle, userid: &str) {
    sim.hire(UserWrite {
        userid: Some(userid.into()),
        name: Some("流测试".into()),
        departments: Some(vec![100003]),
        ..Default::default()
    })
    .unwrap();
}

#[tokio::test]
async fn event_frame_ack_and_no_redelivery() {
    let sim = start(sample_org()).await;
    let (endpoint, ticket) = open(&sim).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{endpoint}?ticket={ticket}"))
        .await
        .unwrap();
    // Tickets are single use.
    assert!(
        tokio_tungstenite::connect_async(format!("{endpoint}?ticket={ticket}"))
            .await
            .is_err()
    );
    wait_for(|| sim.counters().stream_connections_active == 1).await;
    hire(&sim, "s1");
    let f = next(&mut ws, 5, false).await.expect("event frame");
    assert_eq!(f["specVersion"], "1.0");
    assert_eq!(f["type"], "EVENT");
    let h = f["headers"].as_object().unwrap();
    assert!(
        h.values().all(Value::is_string),
        "all header values are strings: {h:?}"
    );
    assert_eq!(h["eventType"], "user_add_org");
    assert_eq!(h["eventCorpId"], "dingsimcorp0000000001");
    assert_eq!(h["contentType"], "application/json");
    for k in [
        "messageId",
        "time",
        "topic",
        "eventId",
        "eventBornTime",
        "eventUnifiedAppId",
    ] {
        assert!(h.contains_key(k), "{k}");
    }
    let data: Value =
        serde_json::from_str(f["data"].as_str().expect("data is a JSON string")).unwrap();
    assert_eq!(data["userId"], json!(["s1"]));
    assert!(data["timeStamp"].is_string());
    ack(&mut ws, &f, 200, None).await;
    // The next frame must be a ping (2 s), not a redelivery (ack timeout 1 s).
    let p = next(&mut ws, 4, true).await.expect("ping");
    assert_eq!(p["type"], "SYSTEM");
    let opaque: Value = serde_json::from_str(p["data"].as_str().unwrap()).unwrap();
    assert!(opaque["opaque"].is_string());
    wait_for(|| sim.counters().stream_pongs >= 1).await;
    let c = sim.counters();
    assert_eq!(
        (
            c.stream_acks_success,
            c.stream_redeliveries,
            c.stream_events_sent
        ),
        (1, 0, 1)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unacked_and_later_are_redelivered() {
    let sim = start(sample_org()).await;
    let mut ws = connect(&sim).await;
    hire(&sim, "s2");
    let first = next(&mut ws, 5, false).await.unwrap();
    // No ACK: delivered again after the ack timeout, same eventId, new messageId.
    let second = next(&mut ws, 5, false).await.unwrap();
    assert_eq!(first["headers"]["eventId"], second["headers"]["eventId"]);
    assert_ne!(
        first["headers"]["messageId"],
        second["headers"]["messageId"]
    );
    // LATER → redelivered.
    ack(&mut ws, &second, 200, Some("LATER")).await;
    let third = next(&mut ws, 5, false).await.unwrap();
    assert_eq!(third["headers"]["eventId"], first["headers"]["eventId"]);
    // Non-200 code → redelivered.
    ack(&mut ws, &third, 500, None).await;
    let fourth = next(&mut ws, 5, false).await.unwrap();
    ack(&mut ws, &fourth, 200, Some("SUCCESS")).await;
    wait_for(|| sim.counters().stream_acks_success == 1).await;
    let c = sim.counters();
    assert_eq!(c.stream_acks_later, 2);
    assert_eq!(c.stream_redeliveries, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn disconnect_then_redeliver_on_new_connection() {
    let sim = start(sample_org()).await;
    let mut ws = connect(&sim).await;
    hire(&sim, "s3");
    let f = next(&mut ws, 5, false).await.unwrap();
    assert_eq!(sim.disconnect_streams(Some(APP_KEY), true), 1);
    let d = next(&mut ws, 5, false).await.expect("disconnect frame");
    assert_eq!(
        (d["type"].clone(), d["headers"]["topic"].clone()),
        (json!("SYSTEM"), json!("disconnect"))
    );
    // The server closes after the grace period.
    assert!(next(&mut ws, 5, false).await.is_none());
    wait_for(|| sim.counters().stream_connections_active == 0).await;
    let mut ws2 = connect(&sim).await;
    let again = next(&mut ws2, 5, false).await.unwrap();
    assert_eq!(again["headers"]["eventId"], f["headers"]["eventId"]);
    ack(&mut ws2, &again, 200, None).await;
    wait_for(|| sim.counters().stream_acks_success == 1).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_ticket_is_refused() {
    let sim = start(sample_org()).await;
    let (endpoint, ticket) = open(&sim).await;
    sim.advance_clock(Duration::from_secs(91));
    assert!(
        tokio_tungstenite::connect_async(format!("{endpoint}?ticket={ticket}"))
            .await
            .is_err()
    );
    assert!(
        tokio_tungstenite::connect_async(format!("{endpoint}?ticket=made-up"))
            .await
            .is_err()
    );
    sim.shutdown().await;
}

/// A connection that subscribed only to a CALLBACK topic.
async fn connect_callback_only(sim: &SimHandle, topic: &str) -> Ws {
    let v: Value = http()
        .post(format!("{}/v1.0/gateway/connections/open", sim.base_url()))
        .json(&json!({
            "clientId": APP_KEY, "clientSecret": APP_SECRET,
            "subscriptions": [{"type": "CALLBACK", "topic": topic}],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}?ticket={}",
        v["endpoint"].as_str().unwrap(),
        v["ticket"].as_str().unwrap()
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

#[tokio::test]
async fn only_subscribers_get_pushes_and_a_client_close_is_answered() {
    const BOT: &str = "/v1.0/im/bot/messages/get";
    let sim = start(sample_org()).await;
    let mut events = connect(&sim).await;
    let mut bot = connect_callback_only(&sim, BOT).await;
    wait_for(|| sim.counters().stream_connections_active == 2).await;
    for i in 0..4 {
        hire(&sim, &format!("sub{i}"));
    }
    for _ in 0..4 {
        let f = next(&mut events, 5, false).await.expect("an event");
        assert_eq!(f["type"], "EVENT");
        ack(&mut events, &f, 200, None).await;
    }
    assert!(
        next(&mut bot, 1, false).await.is_none(),
        "no EVENT without an EVENT subscription"
    );
    let pushed: Value = http()
        .post(format!("{}/__sim/stream/callback", sim.base_url()))
        .json(&json!({"app_key": APP_KEY, "topic": BOT, "data": {"text": "hi"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(pushed["delivered"].is_u64(), "{pushed}");
    let cb = next(&mut bot, 5, false).await.expect("the CALLBACK push");
    assert_eq!(
        (cb["type"].clone(), cb["headers"]["topic"].clone()),
        (json!("CALLBACK"), json!(BOT))
    );
    assert!(
        next(&mut events, 1, false).await.is_none(),
        "the CALLBACK went to its subscriber only"
    );

    // RFC 6455 5.5.1: the client's Close frame is answered with one before the socket closes.
    events.send(Message::Close(None)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap();
    assert!(matches!(answer, Some(Ok(Message::Close(_)))), "{answer:?}");
    wait_for(|| sim.counters().stream_connections_active == 1).await;
    sim.shutdown().await;
}
