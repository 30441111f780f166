//! DingTalk's new host, `api.dingtalk.com/v1.0/...`: app and personal tokens and the signed-in
//! user. Errors are real HTTP statuses with `{"code","message","requestid"}` bodies;
//! tokens travel in `x-acs-dingtalk-access-token`. The Stream gateway's
//! `/v1.0/gateway/connections/open` is served by `sim/stream.rs`.

pub mod envelope;

use std::sync::{Arc, MutexGuard};

use axum::Router;
use axum::extract::State as AxState;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::gate;
use super::org;
use super::shared::Shared;
use super::state::auth::TokenInfo;
use super::state::{State, TokenCheck, TokenKind};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/oauth2/accessToken", post(access_token))
        .route("/v1.0/oauth2/userAccessToken", post(user_access_token))
        .route("/v1.0/contact/users/me", get(users_me))
}

/// Header token check for `/v1.0` APIs (query or Bearer tokens are rejected).
fn header_token(sh: &Shared, headers: &HeaderMap) -> Result<TokenInfo, Box<Response>> {
    let Some(tok) = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return Err(Box::new(envelope::error(
            400,
            "AuthenticationFailed.MissingParameter",
            "缺少参数：x-acs-dingtalk-access-token",
        )));
    };
    match sh.lock().check_token(tok) {
        TokenCheck::Valid(t) => Ok(t),
        _ => Err(Box::new(envelope::invalid_token())),
    }
}

fn field(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// An app authenticating with its key and secret in a JSON body: the body and the app key
/// with the state locked, or the answer to a bad body, a fault, bad credentials or the quota.
async fn app_call<'a>(
    sh: &'a Shared,
    api: &str,
    body: &[u8],
    key_field: &str,
    secret_field: &str,
) -> Result<(Value, String, MutexGuard<'a, State>), Response> {
    let Some(body) = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
    else {
        sh.lock().count_call(api);
        return Err(envelope::error(
            400,
            "InvalidParameter",
            "请求体必须是JSON对象",
        ));
    };
    let (key, secret) = (field(&body, key_field), field(&body, secret_field));
    if let Some(f) = gate::enter(sh, api, Some(&key)).await {
        return Err(envelope::fault(&f));
    }
    let mut st = sh.lock();
    if st.org().app(&key).is_none_or(|a| a.app_secret != secret) {
        return Err(envelope::error(
            400,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        ));
    }
    if st.over_qps(&key, api) {
        return Err(envelope::throttled());
    }
    Ok((body, key, st))
}

async fn access_token(AxState(sh): AxState<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    const API: &str = "/v1.0/oauth2/accessToken";
    let (_, key, mut st) = match app_call(&sh, API, &body, "appKey", "appSecret").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (tok, exp) = st.issue_app_token(&key, sh.config.token_ttl.as_millis() as i64);
    envelope::ok(json!({"accessToken": tok, "expireIn": exp}))
}

async fn user_access_token(AxState(sh): AxState<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    const API: &str = "/v1.0/oauth2/userAccessToken";
    let (body, key, mut st) = match app_call(&sh, API, &body, "clientId", "clientSecret").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ttl = sh.config.token_ttl.as_millis() as i64;
    let now = st.now_ms();
    match field(&body, "grantType").as_str() {
        "authorization_code" => {
            let Some(c) = st.auth.redeem_code(&field(&body, "code"), &key, now) else {
                // UNCONFIRMED exact code name for a bad/used code on this endpoint.
                return envelope::error(400, "invalidAuthCode", "不合法的临时授权码");
            };
            let (tok, refresh) = st.issue_user_token(&key, &c.userid, ttl);
            let mut out =
                json!({"accessToken": tok, "refreshToken": refresh, "expireIn": ttl / 1000});
            if c.with_corpid {
                out["corpId"] = json!(st.org().corp_id);
            }
            envelope::ok(out)
        }
        "refresh_token" => {
            let refresh = field(&body, "refreshToken");
            let Some((app, userid, exp)) = st.auth.refresh_tokens.remove(&refresh) else {
                return envelope::error(400, "invalidRefreshToken", "不合法的refreshToken");
            };
            if app != key || exp <= now {
                return envelope::error(400, "invalidRefreshToken", "不合法的refreshToken");
            }
            let (tok, refresh) = st.issue_user_token(&key, &userid, ttl);
            envelope::ok(
                json!({"accessToken": tok, "refreshToken": refresh, "expireIn": ttl / 1000}),
            )
        }
        _ => envelope::error(400, "invalidParameter.grantType", "grantType 不合法"),
    }
}

async fn users_me(AxState(sh): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    const API: &str = "/v1.0/contact/users/me";
    let info = header_token(&sh, &headers);
    let app_key = info.as_ref().ok().map(|i| i.app_key.clone());
    if let Some(f) = gate::enter(&sh, API, app_key.as_deref()).await {
        return envelope::fault(&f);
    }
    let info = match info {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let TokenKind::User { userid } = &info.kind else {
        // An app token has no "me".
        return envelope::invalid_token();
    };
    let mut st = sh.lock();
    if st.over_qps(&info.app_key, API) {
        return envelope::throttled();
    }
    let Some(app) = st.org().app(&info.app_key).cloned() else {
        return envelope::invalid_token();
    };
    if !app.has(org::PERM_USER_READ) {
        return envelope::error(
            403,
            "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            "没有调用该接口的权限，接口权限申请参考：Contact.User.Read",
        );
    }
    let Some(p) = st.book.account(userid).cloned() else {
        return envelope::error(404, "invalidParameter.user.notFound", "用户不存在");
    };
    let open_id = org::derive_unionid(&info.app_key, &p.unionid);
    let mut out = json!({
        "nick": p.name,
        "avatarUrl": p.avatar.clone().unwrap_or_default(),
        "openId": open_id,
        "unionId": p.unionid,
        "visitor": false,
    });
    if app.has(org::PERM_FIELD_MOBILE)
        && let Some(m) = &p.mobile
    {
        out["mobile"] = json!(m);
        out["stateCode"] = json!(p.state_code);
    }
    if let Some(e) = &p.email {
        out["email"] = json!(e);
    }
    envelope::ok(out)
}
