//! The new API (`api.dingtalk.com/v1.0/...`) and the browser login page
//! (`login.dingtalk.com/oauth2/auth`). Errors are real HTTP statuses with
//! `{"code","message","requestid"}` bodies (§1.3); tokens travel in `x-acs-dingtalk-access-token`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::oapi::prelude;
use super::org;
use super::state::{AuthCode, FaultKind, TokenCheck, TokenInfo, TokenKind};
use super::{Shared, SimError};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/oauth2/accessToken", post(access_token))
        .route("/v1.0/oauth2/userAccessToken", post(user_access_token))
        .route("/v1.0/contact/users/me", get(users_me))
        .route(
            "/v1.0/gateway/connections/open",
            post(super::stream::open_connection),
        )
        .route("/oauth2/auth", get(login_page))
        .route("/oauth2/auth/scan", post(scan))
}

/// `{"code","message","requestid"}` with a real HTTP status.
pub fn v1_error(status: u16, code: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        s,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        json!({"code": code, "message": message, "requestid": v1_request_id()}).to_string(),
    )
        .into_response()
}

fn v1_ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// UUID-like, upper case, as DingTalk's `requestid`.
fn v1_request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase()
}

/// Unknown `/v1.0` path.
pub fn not_found(path: &str) -> Response {
    v1_error(
        404,
        "InvalidAction.NotFound",
        &format!("Specified api is not found: {path}"),
    )
}

pub fn v1_fault(f: &FaultKind) -> Response {
    match f {
        FaultKind::Http { status } => {
            let s = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            (s, "<html><body><h1>Bad Gateway</h1></body></html>").into_response()
        }
        FaultKind::SystemBusy => v1_error(429, "system.busy", "系统繁忙"),
        FaultKind::UpstreamTimeout => v1_error(504, "GatewayTimeout", "远程服务调用超时"),
        FaultKind::Errcode { errcode, errmsg } => v1_error(
            500,
            &errcode.to_string(),
            errmsg.as_deref().unwrap_or("injected fault"),
        ),
        FaultKind::Throttle => v1_throttled(),
        FaultKind::IpBan => {
            v1_ok(json!({"status": 1111, "wait": 5, "source": "x5", "punish": "deny"}))
        }
        FaultKind::InvalidToken => v1_error(400, "InvalidAuthentication", "不合法的access_token"),
        FaultKind::Latency { .. } | FaultKind::BrokenPage { .. } => {
            v1_error(429, "system.busy", "系统繁忙")
        }
    }
}

fn v1_throttled() -> Response {
    v1_error(
        403,
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        "请求过于频繁，请稍后重试",
    )
}

/// Header token check for `/v1.0` APIs (query or Bearer tokens are rejected, §1.3).
fn v1_token(sh: &Shared, headers: &HeaderMap) -> Result<TokenInfo, Box<Response>> {
    let Some(tok) = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return Err(Box::new(v1_error(
            400,
            "AuthenticationFailed.MissingParameter",
            "缺少参数：x-acs-dingtalk-access-token",
        )));
    };
    match sh.lock().check_token(tok) {
        TokenCheck::Valid(t) => Ok(t),
        _ => Err(Box::new(v1_error(
            400,
            "InvalidAuthentication",
            "不合法的access_token",
        ))),
    }
}

fn json_body(body: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| Box::new(v1_error(400, "InvalidParameter", "请求体必须是JSON对象")))
}

fn field(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

async fn access_token(AxState(sh): AxState<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    const API: &str = "/v1.0/oauth2/accessToken";
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => {
            sh.lock().count_call(API);
            return *r;
        }
    };
    let (key, secret) = (field(&body, "appKey"), field(&body, "appSecret"));
    if let Some(f) = prelude(&sh, API, Some(&key)).await {
        return v1_fault(&f);
    }
    let mut st = sh.lock();
    if st.org.app(&key).is_none_or(|a| a.app_secret != secret) {
        return v1_error(
            400,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        );
    }
    if st.over_qps(&key, API) {
        return v1_throttled();
    }
    let (tok, exp) = st.issue_app_token(&key, sh.config.token_ttl.as_millis() as i64);
    v1_ok(json!({"accessToken": tok, "expireIn": exp}))
}

async fn user_access_token(AxState(sh): AxState<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    const API: &str = "/v1.0/oauth2/userAccessToken";
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => {
            sh.lock().count_call(API);
            return *r;
        }
    };
    let (key, secret) = (field(&body, "clientId"), field(&body, "clientSecret"));
    if let Some(f) = prelude(&sh, API, Some(&key)).await {
        return v1_fault(&f);
    }
    let mut st = sh.lock();
    if st.org.app(&key).is_none_or(|a| a.app_secret != secret) {
        return v1_error(
            400,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        );
    }
    if st.over_qps(&key, API) {
        return v1_throttled();
    }
    let ttl = sh.config.token_ttl.as_millis() as i64;
    let now = st.now_ms();
    let corp_id = st.org.corp_id.clone();
    match field(&body, "grantType").as_str() {
        "authorization_code" => {
            let code = field(&body, "code");
            // Codes are single use: removed whether or not they are still valid.
            let Some(c) = st
                .auth_codes
                .remove(&code)
                .filter(|c| c.expires_ms > now && c.app_key == key)
            else {
                // UNCONFIRMED exact code name for a bad/used code on this endpoint.
                return v1_error(400, "invalidAuthCode", "不合法的临时授权码");
            };
            let (tok, refresh) = st.issue_user_token(&key, &c.userid, ttl);
            let mut out =
                json!({"accessToken": tok, "refreshToken": refresh, "expireIn": ttl / 1000});
            if c.with_corpid {
                out["corpId"] = json!(corp_id);
            }
            v1_ok(out)
        }
        "refresh_token" => {
            let refresh = field(&body, "refreshToken");
            let Some((app, userid, exp)) = st.refresh_tokens.remove(&refresh) else {
                return v1_error(400, "invalidRefreshToken", "不合法的refreshToken");
            };
            if app != key || exp <= now {
                return v1_error(400, "invalidRefreshToken", "不合法的refreshToken");
            }
            let (tok, refresh) = st.issue_user_token(&key, &userid, ttl);
            v1_ok(json!({"accessToken": tok, "refreshToken": refresh, "expireIn": ttl / 1000}))
        }
        _ => v1_error(400, "invalidParameter.grantType", "grantType 不合法"),
    }
}

async fn users_me(AxState(sh): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    const API: &str = "/v1.0/contact/users/me";
    let info = v1_token(&sh, &headers);
    let app_key = info.as_ref().ok().map(|i| i.app_key.clone());
    if let Some(f) = prelude(&sh, API, app_key.as_deref()).await {
        return v1_fault(&f);
    }
    let info = match info {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let TokenKind::User { userid } = &info.kind else {
        // An app token has no "me".
        return v1_error(400, "InvalidAuthentication", "不合法的access_token");
    };
    let mut st = sh.lock();
    if st.over_qps(&info.app_key, API) {
        return v1_throttled();
    }
    let Some(app) = st.org.app(&info.app_key).cloned() else {
        return v1_error(400, "InvalidAuthentication", "不合法的access_token");
    };
    if !app.has(org::PERM_USER_READ) {
        return v1_error(
            403,
            "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            "没有调用该接口的权限，接口权限申请参考：Contact.User.Read",
        );
    }
    let Some(p) = st.account(userid).cloned() else {
        return v1_error(404, "invalidParameter.user.notFound", "用户不存在");
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
    v1_ok(out)
}

/// Creates a single-use auth code (5 minutes) for `userid` logging in to `app_key`.
pub fn mint_auth_code(
    sh: &Shared,
    app_key: &str,
    userid: &str,
    with_corpid: bool,
) -> Result<String, SimError> {
    let mut st = sh.lock();
    if st.org.app(app_key).is_none() {
        return Err(SimError::UnknownApp(app_key.to_owned()));
    }
    if st.account(userid).is_none() {
        return Err(SimError::Api(super::state::api_err(60121, "找不到该用户")));
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let expires_ms = st.now_ms() + 5 * 60_000;
    st.auth_codes.insert(
        code.clone(),
        AuthCode {
            app_key: app_key.to_owned(),
            userid: userid.to_owned(),
            with_corpid,
            expires_ms,
        },
    );
    Ok(code)
}

#[derive(Deserialize)]
struct AuthQuery {
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
}

fn page(title: &str, body: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{title}</title></head><body>{body}</body></html>"
    ))
    .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A QR-code-looking SVG (deterministic pattern; nobody scans it, tests use the form).
fn qr_svg(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(seed.as_bytes());
    let n = 21;
    let mut cells = String::new();
    for y in 0..n {
        for x in 0..n {
            let finder = |cx: usize, cy: usize| x >= cx && x < cx + 7 && y >= cy && y < cy + 7;
            let on = if finder(0, 0) || finder(n - 7, 0) || finder(0, n - 7) {
                let (fx, fy) = (x % (n - 7), y % (n - 7));
                let (fx, fy) = (fx.min(6), fy.min(6));
                !(fx == 1 || fx == 5 || fy == 1 || fy == 5)
                    || (fx == 0 || fx == 6 || fy == 0 || fy == 6)
            } else {
                let bit = (y * n + x) % 256;
                h[bit / 8 % 32] >> (bit % 8) & 1 == 1
            };
            if on {
                cells.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y}\" width=\"1\" height=\"1\"/>"
                ));
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"-2 -2 25 25\" width=\"220\" height=\"220\" shape-rendering=\"crispEdges\"><rect x=\"-2\" y=\"-2\" width=\"25\" height=\"25\" fill=\"#fff\"/><g fill=\"#000\">{cells}</g></svg>"
    )
}

/// `GET /oauth2/auth?redirect_uri=&response_type=code&client_id=&scope=openid&state=`.
async fn login_page(AxState(sh): AxState<Arc<Shared>>, Query(q): Query<AuthQuery>) -> Response {
    let st = sh.lock();
    let Some(app) = st.org.app(&q.client_id) else {
        return page(
            "钉钉登录",
            "<p id=\"error\">应用不存在 (client_id 无效)</p>",
        );
    };
    if q.response_type != "code" || q.redirect_uri.is_empty() {
        return page(
            "钉钉登录",
            "<p id=\"error\">参数错误: response_type 必须为 code，redirect_uri 不能为空</p>",
        );
    }
    if !app.redirect_uris.is_empty()
        && !app
            .redirect_uris
            .iter()
            .any(|u| q.redirect_uri.starts_with(u))
    {
        return page(
            "钉钉登录",
            "<p id=\"error\">redirect_uri 与应用配置不一致</p>",
        );
    }
    let mut options = String::new();
    for p in st
        .org
        .people
        .iter()
        .filter(|p| st.org.person_in_scope(app, p) || app.scope.is_whole_org())
    {
        let dept = p
            .departments
            .first()
            .and_then(|d| st.org.department(*d))
            .map(|d| d.name.clone())
            .unwrap_or_default();
        options.push_str(&format!(
            "<option value=\"{}\">{} ({}, {})</option>",
            esc(&p.userid),
            esc(&p.name),
            esc(&dept),
            esc(&p.userid)
        ));
    }
    // Former employees still have DingTalk accounts: they can scan, and must be refused by
    // whoever relies on the enterprise's address book.
    for d in st.departed.values() {
        options.push_str(&format!(
            "<option value=\"{}\">{} (外部用户 outside the enterprise, {})</option>",
            esc(&d.person.userid),
            esc(&d.person.name),
            esc(&d.person.userid)
        ));
    }
    let hidden =
        |k: &str, v: &str| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v));
    let body = format!(
        "<h1>钉钉扫码登录</h1><p>请使用钉钉扫描二维码登录 {corp}</p><div id=\"qrcode\">{qr}</div>\
         <h2>模拟扫码 (simulator)</h2><form id=\"scan\" method=\"post\" action=\"/oauth2/auth/scan\">\
         {h1}{h2}{h3}{h4}<select name=\"userid\" id=\"userid\">{options}</select>\
         <button type=\"submit\" name=\"action\" value=\"confirm\" id=\"confirm\">确认登录</button>\
         <button type=\"submit\" name=\"action\" value=\"deny\" id=\"deny\">取消</button></form>",
        corp = esc(&st.org.name),
        qr = qr_svg(&format!("{}{}", q.client_id, q.state)),
        h1 = hidden("client_id", &q.client_id),
        h2 = hidden("redirect_uri", &q.redirect_uri),
        h3 = hidden("state", &q.state),
        h4 = hidden("scope", &q.scope),
    );
    page("钉钉登录", &body)
}

#[derive(Deserialize)]
struct ScanForm {
    client_id: String,
    redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    userid: String,
    #[serde(default)]
    action: String,
}

/// The "scan as" form: redirects to `redirect_uri?authCode=..&state=..` (or `?error=..&state=..`).
async fn scan(AxState(sh): AxState<Arc<Shared>>, Form(f): Form<ScanForm>) -> Response {
    let Ok(mut url) = url::Url::parse(&f.redirect_uri) else {
        return page("钉钉登录", "<p id=\"error\">redirect_uri 不合法</p>");
    };
    if f.action == "deny" {
        url.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &f.state);
        return Redirect::to(url.as_str()).into_response();
    }
    {
        let st = sh.lock();
        if let Some(app) = st.org.app(&f.client_id)
            && !app.redirect_uris.is_empty()
            && !app
                .redirect_uris
                .iter()
                .any(|u| f.redirect_uri.starts_with(u))
        {
            return page(
                "钉钉登录",
                "<p id=\"error\">redirect_uri 与应用配置不一致</p>",
            );
        }
    }
    let with_corpid = f.scope.split([' ', '+']).any(|s| s == "corpid");
    match mint_auth_code(&sh, &f.client_id, &f.userid, with_corpid) {
        Ok(code) => {
            url.query_pairs_mut()
                .append_pair("authCode", &code)
                .append_pair("state", &f.state);
            Redirect::to(url.as_str()).into_response()
        }
        Err(e) => page(
            "钉钉登录",
            &format!("<p id=\"error\">{}</p>", esc(&e.to_string())),
        ),
    }
}
