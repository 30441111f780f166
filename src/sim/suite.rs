//! Third-party (suite) apps: the suiteTicket pushes over Stream, the authorisation an
//! enterprise admin gives by scanning (the "scan as admin" page), corp tokens from both token
//! APIs, and what third-party apps are not shown. An authorised suite is installed into the
//! enterprise as an app without the mobile, personal-field and write permissions, so every
//! address-book API answers it as DingTalk answers an ISV app.
//!
//! | Route | Effect |
//! | --- | --- |
//! | `POST /v1.0/oauth2/corpAccessToken` | `{"suiteKey","suiteSecret","authCorpId","suiteTicket"}` → `{"accessToken","expireIn"}` |
//! | `POST /service/get_corp_token?accessKey&timestamp&suiteTicket&signature` | `{"auth_corpid"}` → `{"access_token","expires_in"}` |
//! | `GET /oauth2/suite/auth?suite_key=&state=` | the authorisation page with a "scan as" form |
//! | `POST /oauth2/suite/auth/scan` | form `suite_key`, `userid`: an admin authorises the suite |
//! | `GET /__sim/suites` | the suites, whether authorised and whether a ticket was pushed |
//! | `POST /__sim/suites/{key}/ticket` | push a new suiteTicket (`suite_ticket` event) |
//! | `POST /__sim/suites/{key}/authorize` | `{"userid"}`: authorise as that admin (skips the page) |
//! | `DELETE /__sim/suites/{key}/authorize` | the enterprise removes the app (`org_suite_relieve`) |

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State as AxState};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::new_host::envelope as v1;
use super::old_host::envelope as oapi;
use super::org::{self, App};
use super::shared::Shared;
use super::state::State;
use super::state::auth::{TokenInfo, TokenKind, new_token};
use super::state::delivery::Pending;
use super::state::event::Event;

pub use super::state::suites::{DEFAULT_SUITE_KEY, DEFAULT_SUITE_SECRET};

/// Event types pushed to a suite's Stream connections.
pub const SUITE_TICKET: &str = "suite_ticket";
pub const ORG_SUITE_AUTH: &str = "org_suite_auth";
pub const ORG_SUITE_RELIEVE: &str = "org_suite_relieve";

/// How far a signed request's timestamp may be off (853002 beyond).
const SIGNATURE_SKEW_MS: i64 = 60_000;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/oauth2/corpAccessToken", post(corp_access_token))
        .route("/service/get_corp_token", post(get_corp_token))
        .route("/oauth2/suite/auth", get(auth_page))
        .route("/oauth2/suite/auth/scan", post(auth_scan))
        .route("/__sim/suites", get(list))
        .route("/__sim/suites/{key}/ticket", post(push_ticket))
        .route(
            "/__sim/suites/{key}/authorize",
            post(admin_authorize).delete(admin_relieve),
        )
}

/// The permissions an installed suite gets: reads only, without mobile and personal fields.
fn isv_permissions() -> std::collections::BTreeSet<String> {
    [org::PERM_DEPT_LIST, org::PERM_DEPT_MEMBER, org::PERM_MEMBER]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Queues an event for the suite's Stream connections only.
fn push_event(st: &mut State, suite_key: &str, event_type: &str, data: Value) {
    let ev = Event {
        event_id: uuid::Uuid::new_v4().simple().to_string(),
        event_type: event_type.to_owned(),
        corp_id: st.org().corp_id.clone(),
        born_ms: st.now_ms(),
        user_ids: Vec::new(),
        dept_ids: Vec::new(),
        diff: None,
        data: Some(data),
    };
    st.delivery
        .queues
        .entry(suite_key.to_owned())
        .or_default()
        .pending
        .push_back(Pending::new(ev));
}

/// A new suiteTicket, pushed as a `suite_ticket` event; `None` for an unknown suite.
pub fn rotate_ticket(st: &mut State, suite_key: &str) -> Option<String> {
    let ticket = st.suites.get_mut(suite_key)?.rotate_ticket();
    let born = st.now_ms();
    let data =
        json!({"suiteTicket": ticket, "syncAction": SUITE_TICKET, "timeStamp": born.to_string()});
    push_event(st, suite_key, SUITE_TICKET, data);
    Some(ticket)
}

/// A suite opening a Stream connection gets a ticket at once if it never had one: DingTalk
/// pushes tickets on a timer, and a provider must not wait hours for its first one.
pub fn on_stream_open(st: &mut State, suite_key: &str) {
    if st.suites.get(suite_key).is_some_and(|s| s.ticket.is_none()) {
        rotate_ticket(st, suite_key);
    }
}

/// The enterprise's admin `userid` authorises the suite: installed with ISV permissions,
/// `org_suite_auth` pushed. Err: the refusal text.
pub fn authorize(st: &mut State, suite_key: &str, userid: &str) -> Result<(), &'static str> {
    let admin = st
        .org()
        .people
        .iter()
        .any(|p| p.userid == userid && p.admin);
    if !admin {
        return Err("只有企业管理员可以授权");
    }
    let Some(suite) = st.suites.get_mut(suite_key) else {
        return Err("应用不存在");
    };
    suite.authorised = true;
    if st.org().app(suite_key).is_none() {
        let mut app = App::new(suite_key, uuid::Uuid::new_v4().simple().to_string());
        app.name = Some("third-party suite".into());
        app.permissions = isv_permissions();
        st.book.org.apps.push(app);
    }
    let corp = st.org().corp_id.clone();
    let data = json!({"authCorpId": corp, "suiteKey": suite_key, "syncAction": ORG_SUITE_AUTH});
    push_event(st, suite_key, ORG_SUITE_AUTH, data);
    Ok(())
}

/// The enterprise removes the suite: uninstalled, its corp tokens void, `org_suite_relieve`
/// pushed. `false` if it was not authorised.
pub fn relieve(st: &mut State, suite_key: &str) -> bool {
    let Some(suite) = st.suites.get_mut(suite_key) else {
        return false;
    };
    let was = std::mem::replace(&mut suite.authorised, false);
    st.book.org.apps.retain(|a| a.app_key != suite_key);
    st.invalidate_tokens(Some(suite_key));
    let corp = st.org().corp_id.clone();
    let data = json!({"authCorpId": corp, "suiteKey": suite_key, "syncAction": ORG_SUITE_RELIEVE});
    push_event(st, suite_key, ORG_SUITE_RELIEVE, data);
    was
}

/// Why a corp token is refused, in the new host's codes.
enum Refusal {
    SuiteKey,
    Ticket,
    AuthInfo,
}

/// A new corp token per call (unlike internal apps' tokens), and its lifetime in seconds.
fn corp_token(
    st: &mut State,
    ttl_ms: i64,
    suite_key: &str,
    auth_corp: &str,
    ticket: &str,
) -> Result<(String, i64), Refusal> {
    let suite = st.suites.get(suite_key).ok_or(Refusal::SuiteKey)?;
    if !suite.ticket_valid(ticket) {
        return Err(Refusal::Ticket);
    }
    if !suite.authorised || auth_corp != st.org().corp_id {
        return Err(Refusal::AuthInfo);
    }
    let tok = new_token();
    let expires_ms = st.now_ms() + ttl_ms;
    st.auth.tokens.insert(
        tok.clone(),
        TokenInfo {
            app_key: suite_key.to_owned(),
            kind: TokenKind::App,
            expires_ms,
        },
    );
    st.counters.tokens_issued += 1;
    Ok((tok, ttl_ms / 1000))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CorpTokenBody {
    #[serde(default)]
    suite_key: String,
    #[serde(default)]
    suite_secret: String,
    #[serde(default)]
    auth_corp_id: String,
    #[serde(default)]
    suite_ticket: String,
}

/// `POST /v1.0/oauth2/corpAccessToken`.
async fn corp_access_token(AxState(sh): AxState<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let b: CorpTokenBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => return v1::error(400, "invalidParameter", "参数错误"),
    };
    let mut st = sh.lock();
    st.count_call("/v1.0/oauth2/corpAccessToken");
    if st.suites.check_secret(&b.suite_key, &b.suite_secret) != Some(true) {
        return v1::error(400, "invalidSuiteKey", "suiteKey或suiteSecret不正确");
    }
    let ttl = sh.config.token_ttl.as_millis() as i64;
    match corp_token(&mut st, ttl, &b.suite_key, &b.auth_corp_id, &b.suite_ticket) {
        Ok((tok, exp)) => v1::ok(json!({"accessToken": tok, "expireIn": exp})),
        Err(Refusal::SuiteKey) => v1::error(400, "invalidSuiteKey", "suiteKey不正确"),
        Err(Refusal::Ticket) => v1::error(400, "invalidSuiteTicket", "suiteTicket不正确"),
        Err(Refusal::AuthInfo) => v1::error(400, "invalidAuthInfo", "企业未授权该应用"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedQuery {
    #[serde(default)]
    access_key: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    suite_ticket: String,
    #[serde(default)]
    signature: String,
}

/// `base64(HMAC-SHA256(suiteSecret, timestamp + "\n" + suiteTicket))`.
pub fn signature(suite_secret: &str, timestamp: &str, ticket: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, suite_secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{timestamp}\n{ticket}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

fn oapi_error(errcode: i64, errmsg: &str) -> Response {
    oapi::reply(json!({"errcode": errcode, "errmsg": errmsg, "request_id": oapi::request_id()}))
}

/// `POST /service/get_corp_token` (signed query, `{"auth_corpid"}` body).
async fn get_corp_token(
    AxState(sh): AxState<Arc<Shared>>,
    Query(q): Query<SignedQuery>,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth_corp = body
        .get("auth_corpid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut st = sh.lock();
    st.count_call("/service/get_corp_token");
    let Ok(ts) = q.timestamp.parse::<i64>() else {
        return oapi_error(853001, "timestamp格式错误");
    };
    if (st.now_ms() - ts).abs() > SIGNATURE_SKEW_MS {
        return oapi_error(853002, "timestamp与服务器时间相差超过1分钟");
    }
    let Some(suite) = st.suites.get(&q.access_key) else {
        return oapi_error(853003, "accessKey不存在");
    };
    if signature(&suite.suite_secret, &q.timestamp, &q.suite_ticket) != q.signature {
        return oapi_error(853004, "签名不匹配");
    }
    let ttl = sh.config.token_ttl.as_millis() as i64;
    match corp_token(&mut st, ttl, &q.access_key, auth_corp, &q.suite_ticket) {
        Ok((tok, exp)) => oapi::reply(json!({
            "errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": exp,
        })),
        // UNCONFIRMED which errcodes the legacy API gives these two.
        Err(Refusal::Ticket) => oapi_error(40093, "不合法的suiteTicket"),
        Err(Refusal::SuiteKey | Refusal::AuthInfo) => oapi_error(40078, "企业未授权该应用"),
    }
}

#[derive(Deserialize)]
struct AuthQuery {
    #[serde(default)]
    suite_key: String,
    #[serde(default)]
    state: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /oauth2/suite/auth`: what the admin's phone shows after scanning the authorisation
/// QR code, with a "scan as" form standing in for the phone.
async fn auth_page(AxState(sh): AxState<Arc<Shared>>, Query(q): Query<AuthQuery>) -> Response {
    let st = sh.lock();
    if st.suites.get(&q.suite_key).is_none() {
        return (axum::http::StatusCode::NOT_FOUND, Html("<p>应用不存在</p>")).into_response();
    }
    let admins: String = st
        .org()
        .people
        .iter()
        .filter(|p| p.admin)
        .map(|p| {
            format!(
                "<option value=\"{}\">{}</option>",
                escape(&p.userid),
                escape(&p.name)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>授权第三方应用</title>\
         <h1>授权应用访问 {corp}</h1><p>管理员扫码授权后，应用可读取通讯录（不含手机号等个人信息）。</p>\
         <form method=\"post\" action=\"/oauth2/suite/auth/scan\">\
         <input type=\"hidden\" name=\"suite_key\" value=\"{key}\"><input type=\"hidden\" name=\"state\" value=\"{state}\">\
         <label>扫码身份 <select name=\"userid\">{admins}</select></label> <button>同意授权</button></form>",
        corp = escape(&st.org().name),
        key = escape(&q.suite_key),
        state = escape(&q.state),
    ))
    .into_response()
}

#[derive(Deserialize)]
struct ScanForm {
    suite_key: String,
    userid: String,
}

/// `POST /oauth2/suite/auth/scan`: the scanning admin agrees.
async fn auth_scan(
    AxState(sh): AxState<Arc<Shared>>,
    axum::Form(f): axum::Form<ScanForm>,
) -> Response {
    let r = sh.mutate(|st| authorize(st, &f.suite_key, &f.userid));
    match r {
        Ok(()) => Html("<p>授权成功，可以关闭此页面</p>".to_owned()).into_response(),
        Err(why) => (
            axum::http::StatusCode::FORBIDDEN,
            Html(format!("<p>{why}</p>")),
        )
            .into_response(),
    }
}

async fn list(AxState(sh): AxState<Arc<Shared>>) -> Response {
    let st = sh.lock();
    let v: Vec<Value> = st
        .suites
        .0
        .values()
        .map(|s| json!({"suite_key": s.suite_key, "authorised": s.authorised, "ticket_pushed": s.ticket.is_some()}))
        .collect();
    axum::Json(v).into_response()
}

async fn push_ticket(AxState(sh): AxState<Arc<Shared>>, Path(key): Path<String>) -> Response {
    match sh.mutate(|st| rotate_ticket(st, &key)) {
        Some(_) => axum::Json(json!({"pushed": true})).into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"pushed": false})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct AuthorizeBody {
    userid: String,
}

async fn admin_authorize(
    AxState(sh): AxState<Arc<Shared>>,
    Path(key): Path<String>,
    axum::Json(b): axum::Json<AuthorizeBody>,
) -> Response {
    match sh.mutate(|st| authorize(st, &key, &b.userid)) {
        Ok(()) => axum::Json(json!({"authorised": true})).into_response(),
        Err(why) => (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"authorised": false, "errmsg": why})),
        )
            .into_response(),
    }
}

async fn admin_relieve(AxState(sh): AxState<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let was = sh.mutate(|st| relieve(st, &key));
    axum::Json(json!({"relieved": was})).into_response()
}
