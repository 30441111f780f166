//! Encrypted HTTP callback delivery: registration with a `check_url` push, events
//! encrypted and signed with [`crate::dingtalk::callback`], the encrypted `success` reply
//! required within the timeout, retries, and the failed list that
//! `/call_back/get_call_back_failed_result` reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use serde_json::{Value, json};

use super::error::{ApiError, api_err};
use super::shared::Shared;
use super::state::delivery::{CallbackReg, CallbackStyle, Pending};
use super::state::event::Event;
use crate::dingtalk::callback::{CallbackCrypto, EncryptedReply};

/// Tags `register_call_back` accepts (71008 for anything else).
const TAGS: &[&str] = &[
    "user_add_org",
    "user_modify_org",
    "user_leave_org",
    "user_active_org",
    "org_admin_add",
    "org_admin_remove",
    "org_dept_create",
    "org_dept_modify",
    "org_dept_remove",
    "org_remove",
    "org_change",
    "label_user_change",
    "label_conf_add",
    "label_conf_modify",
    "label_conf_del",
];

fn crypto_for(sh: &Shared, app_key: &str, reg: &CallbackReg) -> Result<CallbackCrypto, ApiError> {
    let owner = match reg.style {
        CallbackStyle::Legacy => sh.lock().org().corp_id.clone(),
        CallbackStyle::Console => app_key.to_owned(),
    };
    CallbackCrypto::new(&reg.token, &reg.aes_key, &owner)
        .map_err(|e| api_err(40035, format!("不合法的参数 aes_key/token: {e}")))
}

/// One encrypted push; `Ok` only for a correctly signed, encrypted `success` in time.
async fn post_once(
    sh: &Shared,
    reg: &CallbackReg,
    crypto: &CallbackCrypto,
    payload: &str,
) -> Result<(), String> {
    let ts = sh.lock().now_ms().to_string();
    let nonce: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    let encrypt = crypto.encrypt(payload);
    let sig = crypto.sign(&ts, &nonce, &encrypt);
    let sig_name = match reg.style {
        CallbackStyle::Legacy => "signature",
        CallbackStyle::Console => "msg_signature",
    };
    let mut url = url::Url::parse(&reg.url).map_err(|e| format!("bad url: {e}"))?;
    url.query_pairs_mut()
        .append_pair(sig_name, &sig)
        .append_pair("timestamp", &ts)
        .append_pair("nonce", &nonce);
    sh.lock().counters.callback_posts += 1;
    let resp = sh
        .http
        .post(url)
        .timeout(sh.config.callback_timeout)
        .json(&json!({"encrypt": encrypt}))
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let body: EncryptedReply = resp
        .json()
        .await
        .map_err(|e| format!("reply is not the encrypted JSON: {e}"))?;
    match crypto.verify_success_reply(&body) {
        Ok(true) => Ok(()),
        Ok(false) => Err("reply does not decrypt to success".into()),
        Err(e) => Err(format!("reply rejected: {e}")),
    }
}

/// Registers (or replaces) an app's callback after a successful `check_url` push.
pub async fn register(
    sh: &Shared,
    app_key: &str,
    style: CallbackStyle,
    url: &str,
    token: &str,
    aes_key: &str,
    tags: Vec<String>,
) -> Result<(), ApiError> {
    if token.is_empty() || token.chars().count() > 64 {
        return Err(api_err(40035, "不合法的参数 token"));
    }
    if url::Url::parse(url).is_err() {
        return Err(api_err(40035, "不合法的参数 url"));
    }
    for t in &tags {
        if !TAGS.contains(&t.as_str()) {
            return Err(api_err(71008, format!("不合法的回调标签: {t}")));
        }
    }
    let reg = CallbackReg {
        style,
        url: url.to_owned(),
        token: token.to_owned(),
        aes_key: aes_key.to_owned(),
        tags,
    };
    let crypto = crypto_for(sh, app_key, &reg)?;
    if let Err(why) = post_once(sh, &reg, &crypto, r#"{"EventType":"check_url"}"#).await {
        tracing::info!(app_key, %why, "callback check_url failed");
        return Err(api_err(71009, "返回数据不是success"));
    }
    sh.lock()
        .delivery
        .callbacks
        .entry(app_key.to_owned())
        .or_default()
        .reg = Some(reg);
    Ok(())
}

fn failed_entry(ev: &Event) -> Value {
    let mut inner = json!({"corpid": ev.corp_id});
    if !ev.user_ids.is_empty() {
        inner["userid"] = json!(ev.user_ids);
    }
    if !ev.dept_ids.is_empty() {
        inner["deptid"] = json!(ev.dept_ids);
    }
    let mut v = json!({"call_back_tag": ev.event_type, "event_time": ev.born_ms});
    v[ev.event_type.as_str()] = inner;
    v
}

/// Pushes due events, one at a time per app, forever.
pub async fn pump(sh: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            _ = sh.callback_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let now = Instant::now();
        let mut jobs = Vec::new();
        {
            let mut st = sh.lock();
            for (app, c) in st.delivery.callbacks.iter_mut() {
                let Some(reg) = c.reg.clone() else { continue };
                if c.busy {
                    continue;
                }
                let Some(pos) = c.pending.iter().position(|p| p.not_before <= now) else {
                    continue;
                };
                if let Some(p) = c.pending.remove(pos) {
                    c.busy = true;
                    jobs.push((app.clone(), reg, p));
                }
            }
        }
        for (app, reg, p) in jobs {
            let sh = sh.clone();
            tokio::spawn(async move { deliver_one(sh, app, reg, p).await });
        }
    }
}

async fn deliver_one(sh: Arc<Shared>, app: String, reg: CallbackReg, mut p: Pending) {
    let payload = match reg.style {
        CallbackStyle::Legacy => p.event.legacy_payload(),
        CallbackStyle::Console => p.event.console_payload(),
    }
    .to_string();
    let outcome = match crypto_for(&sh, &app, &reg) {
        Ok(c) => post_once(&sh, &reg, &c, &payload).await,
        Err(e) => Err(e.errmsg),
    };
    let delays = &sh.config.callback_retry_delays;
    let mut st = sh.lock();
    let st = &mut *st;
    let Some(c) = st.delivery.callbacks.get_mut(&app) else {
        return;
    };
    c.busy = false;
    match outcome {
        Ok(()) => st.counters.callback_success += 1,
        Err(why) => {
            tracing::debug!(app, %why, "callback push failed");
            st.counters.callback_failures += 1;
            p.attempts += 1;
            match delays.get(p.attempts as usize - 1) {
                Some(d) if c.reg.is_some() => {
                    p.not_before = Instant::now() + *d;
                    c.pending.push_back(p);
                }
                _ => {
                    st.counters.callback_given_up += 1;
                    c.failed.push_back(failed_entry(&p.event));
                }
            }
        }
    }
    sh.callback_wake.notify_one();
}
