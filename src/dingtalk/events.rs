//! Address-book change events, however they arrive (Stream frame or HTTP callback), parsed
//! into one [`Event`]; the handler trait both deliveries call; and the HTTP callback receiver
//! (check_url handshake, signature + decryption, encrypted `success` reply) as a plain
//! function plus an axum handler the controller can mount.

use std::{collections::HashMap, future::Future, sync::Arc};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::callback::CallbackCrypto;

/// One change event. Events only name what changed: re-read the objects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// `user_add_org`, `org_dept_modify`, `check_url`, ...
    pub event_type: String,
    /// Delivery id for de-duplication (Stream header `eventId`, callback `eventId`).
    pub event_id: Option<String>,
    pub corp_id: Option<String>,
    /// When DingTalk produced it, ms since the epoch.
    pub born_ms: Option<i64>,
    pub user_ids: Vec<String>,
    pub dept_ids: Vec<i64>,
    /// The decoded business payload as sent.
    pub data: Value,
}

impl Event {
    /// Build from the business payload, reading keys case-insensitively (`userId`/`UserId`,
    /// `deptId`/`DeptId`, `EventType`/`eventType`) and ids as numbers or strings.
    pub fn from_payload(data: Value) -> Self {
        let obj = data.as_object().cloned().unwrap_or_default();
        let get = |names: &[&str]| -> Option<&Value> {
            obj.iter()
                .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
                .map(|(_, v)| v)
        };
        let as_string = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let as_i64 = |v: &Value| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let list = |v: Option<&Value>| -> Vec<Value> {
            match v {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => vec![],
                // Comma strings show up in older payloads.
                Some(Value::String(s)) => s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.into()))
                    .collect(),
                Some(other) => vec![other.clone()],
            }
        };
        Event {
            event_type: get(&["EventType"]).and_then(as_string).unwrap_or_default(),
            event_id: get(&["eventId"]).and_then(as_string),
            corp_id: get(&["CorpId"]).and_then(as_string),
            born_ms: get(&["EventTime", "TimeStamp"]).and_then(as_i64),
            user_ids: list(get(&["userId"]))
                .iter()
                .filter_map(as_string)
                .collect(),
            dept_ids: list(get(&["deptId"])).iter().filter_map(as_i64).collect(),
            data,
        }
    }

    /// From a Stream EVENT frame: metadata in the string headers, payload in `data`.
    pub fn from_stream(headers: &HashMap<String, String>, data: &str) -> Self {
        let payload = serde_json::from_str(data).unwrap_or(Value::Object(Map::new()));
        let mut e = Event::from_payload(payload);
        if let Some(t) = headers.get("eventType") {
            e.event_type = t.clone();
        }
        if let Some(id) = headers.get("eventId") {
            e.event_id = Some(id.clone());
        }
        if let Some(c) = headers.get("eventCorpId") {
            e.corp_id = Some(c.clone());
        }
        if let Some(t) = headers.get("eventBornTime").and_then(|t| t.parse().ok()) {
            e.born_ms = Some(t);
        }
        e
    }
}

/// Receives events. Return `Ok` only once the event is handled: only then is it
/// acknowledged; an error asks DingTalk to deliver it again.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, event: Event) -> anyhow::Result<()>;
}

#[async_trait]
impl<F, Fut> EventHandler for F
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    async fn handle(&self, event: Event) -> anyhow::Result<()> {
        self(event).await
    }
}

/// Why a callback push was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("callback push without {0}")]
    Missing(&'static str),
    #[error("callback body is not {{\"encrypt\": \"...\"}} JSON")]
    BadBody,
    #[error("callback refused: {0}")]
    Crypto(#[from] super::callback::CallbackError),
    #[error("decrypted callback is not JSON")]
    BadPayload,
    /// Signed long ago (or in the future): a recorded push played back.
    #[error("callback timestamp outside the accepted window")]
    Stale,
    /// The handler failed; DingTalk will push the event again.
    #[error("event {event_type} not handled: {source}")]
    Handler {
        event_type: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ReceiveError {
    /// 400 for pushes that are not DingTalk's (forged, garbage), 500 when the handler failed
    /// (DingTalk retries).
    pub fn status(&self) -> u16 {
        match self {
            ReceiveError::Handler { .. } => 500,
            _ => 400,
        }
    }
}

/// The HTTP callback endpoint's logic, for one subscription.
pub struct CallbackReceiver {
    crypto: CallbackCrypto,
    handler: Arc<dyn EventHandler>,
    /// Signatures of pushes already handled: an exact replay is answered `success` again
    /// without handling the event twice.
    handled: std::sync::Mutex<(
        std::collections::HashSet<String>,
        std::collections::VecDeque<String>,
    )>,
}

/// Pushes signed further than this from now are refused. UNCONFIRMED how late DingTalk
/// retries a failed push with its original timestamp; an hour keeps replays of old captures
/// out, and a push refused for lateness is covered by the full sync that follows missed
/// events.
pub const CALLBACK_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// Handled signatures remembered for replay detection.
const REMEMBERED: usize = 8192;

impl std::fmt::Debug for CallbackReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackReceiver")
            .field("crypto", &self.crypto)
            .finish_non_exhaustive()
    }
}

impl CallbackReceiver {
    pub fn new(crypto: CallbackCrypto, handler: Arc<dyn EventHandler>) -> Self {
        Self {
            crypto,
            handler,
            handled: Default::default(),
        }
    }

    fn already_handled(&self, signature: &str) -> bool {
        self.handled
            .lock()
            .map(|h| h.0.contains(signature))
            .unwrap_or(false)
    }

    fn remember(&self, signature: &str) {
        if let Ok(mut h) = self.handled.lock() {
            if h.0.insert(signature.to_owned()) {
                h.1.push_back(signature.to_owned());
            }
            while h.1.len() > REMEMBERED {
                if let Some(old) = h.1.pop_front() {
                    h.0.remove(&old);
                }
            }
        }
    }

    /// Handle one push: `query` is the URL's query parameters, `body` the request body.
    /// Returns the JSON body to answer with (HTTP 200): the encrypted, signed `success`.
    /// `check_url` (URL verification) is answered without calling the handler.
    pub async fn receive(
        &self,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<Value, ReceiveError> {
        let push = verify_push(&self.crypto, query, body)?;
        if !push.is_check() && !self.already_handled(&push.signature) {
            let event_type = push.event.event_type.clone();
            self.handler
                .handle(push.event)
                .await
                .map_err(|e| ReceiveError::Handler {
                    event_type,
                    source: e.into(),
                })?;
            self.remember(&push.signature);
        }
        serde_json::to_value(self.crypto.success_reply(&push.timestamp, &push.nonce))
            .map_err(|_| ReceiveError::BadPayload)
    }
}

/// A push whose signature, sender and freshness were checked.
#[derive(Debug)]
pub struct VerifiedPush {
    pub signature: String,
    pub timestamp: String,
    pub nonce: String,
    pub event: Event,
}

impl VerifiedPush {
    /// URL verification pushes, answered without handling anything.
    pub fn is_check(&self) -> bool {
        matches!(
            self.event.event_type.as_str(),
            "check_url" | "check_create_suite_url" | "check_update_suite_url"
        )
    }
}

/// Checks one push without handling it: the signature, the owner key inside the ciphertext
/// (another app's or corp's push does not decrypt to ours) and, but for URL verification,
/// that it was signed within [`CALLBACK_WINDOW`] of now.
pub fn verify_push(
    crypto: &CallbackCrypto,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<VerifiedPush, ReceiveError> {
    // Newer pages name them msg_signature / timeStamp; accept both spellings.
    let pick = |a: &str, b: &str| query.get(a).or_else(|| query.get(b)).cloned();
    let signature = pick("msg_signature", "signature").ok_or(ReceiveError::Missing("signature"))?;
    let timestamp = pick("timestamp", "timeStamp").ok_or(ReceiveError::Missing("timestamp"))?;
    let nonce = query
        .get("nonce")
        .cloned()
        .ok_or(ReceiveError::Missing("nonce"))?;
    let encrypt = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("encrypt")?.as_str().map(str::to_string))
        .ok_or(ReceiveError::BadBody)?;
    let plain = crypto.verify_and_decrypt(&signature, &timestamp, &nonce, &encrypt)?;
    let payload: Value = serde_json::from_str(&plain).map_err(|_| ReceiveError::BadPayload)?;
    let push = VerifiedPush {
        signature,
        timestamp,
        nonce,
        event: Event::from_payload(payload),
    };
    // A replayed `check_url` calls nothing, so only real events must be fresh.
    if !push.is_check() {
        let signed_ms: i64 = push
            .timestamp
            .trim()
            .parse()
            .map_err(|_| ReceiveError::Stale)?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        if (now_ms - signed_ms).abs() > CALLBACK_WINDOW.as_millis() as i64 {
            return Err(ReceiveError::Stale);
        }
    }
    Ok(push)
}

/// Axum handler: `Router::new().route("/dingtalk/callback", post(callback_endpoint))
/// .with_state(Arc<CallbackReceiver>)`.
pub async fn callback_endpoint(
    axum::extract::State(receiver): axum::extract::State<Arc<CallbackReceiver>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match receiver.receive(&query, &body).await {
        Ok(reply) => axum::Json(reply).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "DingTalk callback refused");
            let status = axum::http::StatusCode::from_u16(e.status())
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            (status, e.to_string()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_of_every_channel_parse() {
        let stream =
            Event::from_payload(json!({"timeStamp": "1685501863357", "userId": ["u1", "u2"]}));
        assert_eq!(stream.user_ids, ["u1", "u2"]);
        assert_eq!(stream.born_ms, Some(1_685_501_863_357));
        let console = Event::from_payload(json!({
            "EventType": "org_dept_create", "EventTime": 1663143335567u64, "CorpId": "ding1",
            "eventId": "e1", "deptId": [432825033]
        }));
        assert_eq!(console.event_type, "org_dept_create");
        assert_eq!(console.dept_ids, [432_825_033]);
        assert_eq!(console.event_id.as_deref(), Some("e1"));
        let legacy = Event::from_payload(json!({
            "EventType": "org_dept_remove", "TimeStamp": 1608017258073u64, "DeptId": ["123", 456], "CorpId": "ding"
        }));
        assert_eq!(legacy.dept_ids, [123, 456]);
        let garbage = Event::from_payload(json!([1, 2]));
        assert!(garbage.event_type.is_empty() && garbage.user_ids.is_empty());
    }

    #[test]
    fn stream_headers_win() {
        let headers: HashMap<String, String> = [
            ("eventType", "user_leave_org"),
            ("eventId", "abc"),
            ("eventCorpId", "ding9"),
            ("eventBornTime", "1683533823336"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let e = Event::from_stream(&headers, r#"{"userId":["015"]}"#);
        assert_eq!(e.event_type, "user_leave_org");
        assert_eq!(e.event_id.as_deref(), Some("abc"));
        assert_eq!(e.user_ids, ["015"]);
        assert_eq!(e.born_ms, Some(1_683_533_823_336));
        let e = Event::from_stream(&headers, "not json");
        assert!(e.user_ids.is_empty());
    }

    fn receiver(calls: Arc<std::sync::Mutex<Vec<Event>>>, fail: bool) -> CallbackReceiver {
        let crypto = CallbackCrypto::new(
            "mryue",
            "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
            "ding6ccabc44d2c8d38b",
        )
        .unwrap();
        let handler = move |e: Event| {
            let calls = calls.clone();
            async move {
                calls.lock().unwrap().push(e);
                if fail {
                    anyhow::bail!("directory down")
                } else {
                    Ok(())
                }
            }
        };
        CallbackReceiver::new(crypto, Arc::new(handler))
    }

    fn q(sig: &str, ts: &str, nonce: &str) -> HashMap<String, String> {
        [("signature", sig), ("timestamp", ts), ("nonce", nonce)]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[tokio::test]
    async fn check_url_vector_is_answered_with_encrypted_success() {
        let calls = Arc::new(std::sync::Mutex::new(vec![]));
        let r = receiver(calls.clone(), false);
        let body = json!({"encrypt": "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"});
        let reply = r
            .receive(
                &q(
                    "03044561471240d4a14bb09372dfcfd4fd0e40cb",
                    "1608001896814",
                    "WL4PK6yA",
                ),
                body.to_string().as_bytes(),
            )
            .await
            .unwrap();
        let plain = r
            .crypto
            .verify_and_decrypt(
                reply["msg_signature"].as_str().unwrap(),
                reply["timeStamp"].as_str().unwrap(),
                reply["nonce"].as_str().unwrap(),
                reply["encrypt"].as_str().unwrap(),
            )
            .unwrap();
        assert_eq!(plain, "success");
        assert!(
            calls.lock().unwrap().is_empty(),
            "check_url is not an event"
        );
    }

    #[tokio::test]
    async fn forged_and_garbage_pushes_are_refused_and_failed_handlers_are_500() {
        let calls = Arc::new(std::sync::Mutex::new(vec![]));
        let r = receiver(calls.clone(), true);
        let good = "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3";
        let body = json!({"encrypt": good}).to_string();
        // Forged signature.
        let e = r
            .receive(&q("deadbeef", "1608001896814", "WL4PK6yA"), body.as_bytes())
            .await;
        assert_eq!(e.unwrap_err().status(), 400);
        // Missing parameters, garbage bodies.
        assert!(r.receive(&HashMap::new(), body.as_bytes()).await.is_err());
        for garbage in [&b"\xff\xfe"[..], b"{}", b"{\"encrypt\": 5}", b"[]"] {
            let e = r.receive(&q("x", "1", "n"), garbage).await.unwrap_err();
            assert_eq!(e.status(), 400);
        }
        // A genuine event whose handler fails: 500, so DingTalk pushes it again.
        let crypto = r.crypto.clone();
        let enc = crypto.encrypt(r#"{"EventType":"user_add_org","UserId":["u1"],"CorpId":"c"}"#);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let signature = signature_of(&crypto, &now, "nonce1", &enc);
        let e = r
            .receive(
                &q(&signature, &now, "nonce1"),
                json!({"encrypt": enc}).to_string().as_bytes(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), 500);
        // The same genuine push signed two hours ago: a recording played back, refused.
        let old = (now.parse::<i64>().unwrap() - 2 * 3600 * 1000).to_string();
        let signature = signature_of(&crypto, &old, "nonce2", &enc);
        let e = r
            .receive(
                &q(&signature, &old, "nonce2"),
                json!({"encrypt": enc}).to_string().as_bytes(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ReceiveError::Stale), "{e}");
        assert_eq!(
            calls.lock().unwrap().len(),
            1,
            "the stale push reached no handler"
        );
        assert_eq!(calls.lock().unwrap()[0].user_ids, ["u1"]);
    }

    /// The signature of a push, computed the way DingTalk does.
    fn signature_of(_c: &CallbackCrypto, ts: &str, nonce: &str, enc: &str) -> String {
        use sha1::Digest;
        let mut parts = ["mryue", ts, nonce, enc];
        parts.sort_unstable();
        hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()))
    }
}
