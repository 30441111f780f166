//! DingTalk's old host, `oapi.dingtalk.com`: `/gettoken`, `/topapi/...`, `/auth/scopes`,
//! `/call_back/...`. Always HTTP 200 with the `errcode/errmsg/request_id` envelope.
//!
//! A call goes: parameters read, API found in [`routes`], token checked, the [`crate::sim::gate`]
//! passed, quota checked, then the API's handler runs on the locked state.

mod callbacks;
mod departments;
pub mod envelope;
pub mod params;
mod render;
mod requests;
mod routes;
mod scope;
mod users;

use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use serde_json::json;

use self::envelope::{err88, error, reply};
use self::params::Params;
use self::routes::{Answer, Handler};
use super::error::api_err;
use super::gate;
use super::shared::Shared;
use super::state::{FaultKind, TokenCheck, TokenKind};

/// Answers one request to the old host.
pub async fn dispatch(
    sh: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let path = uri.path();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body = if method == Method::GET { &[] } else { body };
    let params = match Params::parse(uri.query(), content_type, body) {
        Ok(p) => p,
        Err(e) => {
            sh.lock().count_call(path);
            return error(&e);
        }
    };
    if path == "/gettoken" {
        return gettoken(sh, &params).await;
    }
    let Some(api) = routes::find(path) else {
        sh.lock().count_call(path);
        return envelope::unknown_api(path);
    };
    // Token first (the gateway checks it before anything else).
    let token = params
        .str("access_token")
        .ok()
        .flatten()
        .unwrap_or_default();
    let checked = (!token.is_empty()).then(|| sh.lock().check_token(&token));
    let app_key = match &checked {
        Some(TokenCheck::Valid(t)) => Some(t.app_key.clone()),
        _ => None,
    };
    let broken_page = match gate::enter(sh, path, app_key.as_deref()).await {
        Some(FaultKind::BrokenPage { oversized }) => Some(oversized),
        Some(f) => return envelope::fault(&f),
        None => None,
    };
    let app_key = match app_of(checked) {
        Ok(k) => k,
        Err((sub_code, sub_msg)) => return err88(sub_code, sub_msg),
    };
    if sh.lock().over_qps(&app_key, path) {
        return envelope::throttled();
    }
    match api.answer {
        Answer::Callbacks => callbacks::handle(sh, path, &app_key, &params).await,
        Answer::Contacts(handler) => {
            contacts(sh, &app_key, api.perm, handler, &params, broken_page).await
        }
    }
}

/// The app an app token belongs to, or the gateway's `(sub_code, sub_msg)` for a missing,
/// unknown, expired or personal token.
fn app_of(checked: Option<TokenCheck>) -> Result<String, (&'static str, &'static str)> {
    let refused = match checked {
        Some(TokenCheck::Valid(info)) if matches!(info.kind, TokenKind::App) => {
            return Ok(info.app_key);
        }
        None => ("40000", "access_token is blank"),
        // UNCONFIRMED whether an expired token answers 42001 or 88/40014; 42001 (wrapped) here,
        // 40014 for unknown or invalidated tokens, so clients meet both.
        Some(TokenCheck::Expired) => ("42001", "access_token超时"),
        Some(TokenCheck::Invalid | TokenCheck::Valid(_)) => ("40014", "不合法的access_token"),
    };
    Err(refused)
}

/// Runs an address-book API for `app_key` if the app has its permission, then wakes the
/// event pumps (a write may have queued events).
async fn contacts(
    sh: &Shared,
    app_key: &str,
    perm: Option<&str>,
    handler: Handler,
    params: &Params,
    broken_page: Option<bool>,
) -> Response {
    let out = {
        let mut st = sh.lock();
        let Some(app) = st.org().app(app_key).cloned() else {
            return err88("40014", "不合法的access_token");
        };
        if let Some(p) = perm
            && !app.has(p)
        {
            return err88("60011", "没有调用该接口的权限");
        }
        handler(&mut st, &app, params)
    };
    sh.wake_pumps();
    match (out, broken_page) {
        (Ok(r), Some(oversized)) => {
            let cursor = params.i64("cursor").ok().flatten().unwrap_or(0);
            break_page(r, oversized, cursor).await
        }
        (Ok(r), None) => r,
        (Err(e), _) => error(&e),
    }
}

/// The page fault: the answer as it was, but with 150 people in it, or `has_more` pointing
/// back at the cursor just read.
async fn break_page(r: Response, oversized: bool, cursor: i64) -> Response {
    let Ok(bytes) = axum::body::to_bytes(r.into_body(), usize::MAX).await else {
        return error(&api_err(-1, "系统繁忙"));
    };
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return error(&api_err(-1, "系统繁忙"));
    };
    if let Some(result) = v.get_mut("result") {
        if oversized {
            if let Some(list) = result.get_mut("list").and_then(|l| l.as_array_mut())
                && let Some(first) = list.first().cloned()
            {
                while list.len() < 150 {
                    list.push(first.clone());
                }
            }
        } else {
            result["has_more"] = json!(true);
            result["next_cursor"] = json!(cursor);
        }
    }
    reply(v)
}

async fn gettoken(sh: &Shared, params: &Params) -> Response {
    let either = |a: &str, b: &str| {
        params
            .str(a)
            .ok()
            .flatten()
            .or_else(|| params.str(b).ok().flatten())
            .unwrap_or_default()
    };
    let key = either("appkey", "corpid");
    let secret = either("appsecret", "corpsecret");
    if let Some(f) = gate::enter(sh, "/gettoken", (!key.is_empty()).then_some(key.as_str())).await {
        return envelope::fault(&f);
    }
    if key.is_empty() || secret.is_empty() {
        return reply(json!({"errcode": 40035, "errmsg": "缺少参数 corpid or appkey"}));
    }
    let mut st = sh.lock();
    let valid = st.org().app(&key).is_some_and(|a| a.app_secret == secret);
    if !valid {
        return reply(json!({"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}));
    }
    if st.over_qps(&key, "/gettoken") {
        return envelope::throttled();
    }
    let (tok, exp) = st.issue_app_token(&key, sh.config.token_ttl.as_millis() as i64);
    reply(json!({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": exp}))
}
