//! Encrypted HTTP callback: registration with check_url, pushes, retries, failed list.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use dingsync::dingtalk::callback::CallbackCrypto;
use dingsync::sim::UserWrite;
use serde_json::{Value, json};

use super::common::*;

pub const TOKEN: &str = "cbtoken123";
pub const AES_KEY: &str = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7";
const MODE_OK: u8 = 0;
const MODE_HTTP_500: u8 = 1;
const MODE_PLAIN_SUCCESS: u8 = 2;

/// Each push received: query parameters and decrypted payload.
type Pushes = Arc<Mutex<Vec<(HashMap<String, String>, Value)>>>;

#[derive(Clone)]
pub struct Receiver {
    crypto: CallbackCrypto,
    pub mode: Arc<AtomicU8>,
    pub got: Pushes,
}

async fn receive(
    State(r): State<Receiver>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::Json<Value>,
) -> Response {
    let sig = q
        .get("msg_signature")
        .or_else(|| q.get("signature"))
        .cloned()
        .unwrap_or_default();
    let (ts, nonce) = (q["timestamp"].clone(), q["nonce"].clone());
    let plain = r
        .crypto
        .verify_and_decrypt(&sig, &ts, &nonce, body["encrypt"].as_str().unwrap_or(""))
        .expect("the simulator signs and encrypts correctly");
    r.got
        .lock()
        .unwrap()
        .push((q.clone(), serde_json::from_str(&plain).unwrap()));
    match r.mode.load(Ordering::SeqCst) {
        MODE_HTTP_500 => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        MODE_PLAIN_SUCCESS => "success".into_response(),
        _ => axum::Json(r.crypto.success_reply(&ts, &nonce)).into_response(),
    }
}

pub async fn start_receiver(owner: &str) -> (String, Receiver) {
    let r = Receiver {
        crypto: CallbackCrypto::new(TOKEN, AES_KEY, owner).unwrap(),
        mode: Arc::new(AtomicU8::new(MODE_OK)),
        got: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/cb", axum::routing::post(receive))
        .with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cb", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, r)
}

pub async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn legacy_registration_push_retry_and_failed_list() {
    let sim = start(sample_org()).await;
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    let (url, rx) = start_receiver(&sim.corp_id()).await;
    let reg = json!({"call_back_tag": ["user_add_org", "user_leave_org"], "token": TOKEN, "aes_key": AES_KEY, "url": url});
    let v = oapi(&sim, &tok, "/call_back/register_call_back", reg.clone()).await;
    assert_eq!(v["errcode"], 0, "{v}");
    {
        let got = rx.got.lock().unwrap();
        assert_eq!(got[0].1, json!({"EventType": "check_url"}));
        assert!(
            got[0].0.contains_key("signature"),
            "legacy pushes use ?signature="
        );
    }
    assert_eq!(
        oapi(&sim, &tok, "/call_back/register_call_back", reg).await["errcode"],
        71006
    );
    let v = oapi(&sim, &tok, "/call_back/get_call_back", json!({})).await;
    assert_eq!(v["url"], url.as_str());

    sim.hire(UserWrite {
        userid: Some("cb1".into()),
        name: Some("回调".into()),
        departments: Some(vec![1]),
        ..Default::default()
    })
    .unwrap();
    // A department event is not among the tags: not pushed.
    sim.rename_department(100007, "财务中心").unwrap();
    wait_for(|| rx.got.lock().unwrap().len() == 2).await;
    let ev = rx.got.lock().unwrap()[1].1.clone();
    assert_eq!(ev["EventType"], "user_add_org");
    assert_eq!(ev["UserId"], json!(["cb1"]));
    assert_eq!(ev["CorpId"], sim.corp_id().as_str());
    assert!(ev["TimeStamp"].is_i64());

    // The receiver breaks: the push is retried (2 more times), then lands in the failed list.
    rx.mode.store(MODE_HTTP_500, Ordering::SeqCst);
    sim.leave("cb1").unwrap();
    wait_for(|| sim.counters().callback_given_up == 1).await;
    assert_eq!(sim.counters().callback_failures, 3);
    let v = oapi(
        &sim,
        &tok,
        "/call_back/get_call_back_failed_result",
        json!({}),
    )
    .await;
    assert_eq!(v["has_more"], false);
    let failed = v["failed_list"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["call_back_tag"], "user_leave_org");
    assert_eq!(failed[0]["user_leave_org"]["userid"], json!(["cb1"]));
    // Pulled entries are gone.
    let v = oapi(
        &sim,
        &tok,
        "/call_back/get_call_back_failed_result",
        json!({}),
    )
    .await;
    assert_eq!(v["failed_list"], json!([]));
    sim.shutdown().await;
}

#[tokio::test]
async fn registration_requires_encrypted_success() {
    let sim = start(sample_org()).await;
    let tok = token(&sim, APP_KEY, APP_SECRET).await;
    let (url, rx) = start_receiver(&sim.corp_id()).await;
    rx.mode.store(MODE_PLAIN_SUCCESS, Ordering::SeqCst);
    let reg =
        json!({"call_back_tag": "user_add_org", "token": TOKEN, "aes_key": AES_KEY, "url": url});
    assert_eq!(
        oapi(&sim, &tok, "/call_back/register_call_back", reg.clone()).await["errcode"],
        71009
    );
    let bad_tag =
        json!({"call_back_tag": ["nonsense"], "token": TOKEN, "aes_key": AES_KEY, "url": url});
    assert_eq!(
        oapi(&sim, &tok, "/call_back/register_call_back", bad_tag).await["errcode"],
        71008
    );
    let bad_key =
        json!({"call_back_tag": ["user_add_org"], "token": TOKEN, "aes_key": "short", "url": url});
    assert_eq!(
        oapi(&sim, &tok, "/call_back/register_call_back", bad_key).await["errcode"],
        40035
    );
    assert_eq!(
        oapi(&sim, &tok, "/call_back/get_call_back", json!({})).await["errcode"],
        71007
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn console_subscription_uses_app_key_and_new_payload() {
    let sim = start(sample_org()).await;
    let (url, rx) = start_receiver(APP_KEY).await;
    sim.subscribe_callback(APP_KEY, &url, TOKEN, AES_KEY)
        .await
        .unwrap();
    sim.create_department(dingsync::sim::DeptWrite {
        name: Some("新部门".into()),
        parent_id: Some(1),
        ..Default::default()
    })
    .unwrap();
    wait_for(|| rx.got.lock().unwrap().len() == 2).await;
    let (q, ev) = rx.got.lock().unwrap()[1].clone();
    assert!(q.contains_key("msg_signature"));
    assert_eq!(ev["EventType"], "org_dept_create");
    assert!(ev["deptId"][0].is_i64());
    assert!(ev["eventId"].is_string() && ev["EventTime"].is_i64());
    sim.shutdown().await;
}
