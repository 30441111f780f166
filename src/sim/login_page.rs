//! DingTalk's browser login page, `login.dingtalk.com/oauth2/auth`: a QR code and, for
//! tests, a "scan as" form that redirects back with a single-use auth code.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State as AxState};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::error::{SimError, api_err};
use super::org::App;
use super::shared::Shared;
use super::state::AddressBook;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth2/auth", get(login_page))
        .route("/oauth2/auth/scan", post(scan))
}

/// Creates a single-use auth code (5 minutes) for `userid` logging in to `app_key`.
pub fn mint_auth_code(
    sh: &Shared,
    app_key: &str,
    userid: &str,
    with_corpid: bool,
) -> Result<String, SimError> {
    let mut st = sh.lock();
    if st.org().app(app_key).is_none() {
        return Err(SimError::UnknownApp(app_key.to_owned()));
    }
    if st.book.account(userid).is_none() {
        return Err(SimError::Api(api_err(60121, "找不到该用户")));
    }
    let now = st.now_ms();
    Ok(st.auth.mint_code(app_key, userid, with_corpid, now))
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

fn error_page(message: &str) -> Response {
    page("钉钉登录", &format!("<p id=\"error\">{message}</p>"))
}

/// An app with registered redirect URIs only sends codes to URLs under one of them.
fn redirect_allowed(app: &App, redirect_uri: &str) -> bool {
    app.redirect_uris.is_empty()
        || app
            .redirect_uris
            .iter()
            .any(|u| redirect_uri.starts_with(u))
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
    let Some(app) = st.org().app(&q.client_id) else {
        return error_page("应用不存在 (client_id 无效)");
    };
    if q.response_type != "code" || q.redirect_uri.is_empty() {
        return error_page("参数错误: response_type 必须为 code，redirect_uri 不能为空");
    }
    if !redirect_allowed(app, &q.redirect_uri) {
        return error_page("redirect_uri 与应用配置不一致");
    }
    let options = account_options(&st.book, app);
    let hidden =
        |k: &str, v: &str| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v));
    let body = format!(
        "<h1>钉钉扫码登录</h1><p>请使用钉钉扫描二维码登录 {corp}</p><div id=\"qrcode\">{qr}</div>\
         <h2>模拟扫码 (simulator)</h2><form id=\"scan\" method=\"post\" action=\"/oauth2/auth/scan\">\
         {h1}{h2}{h3}{h4}<select name=\"userid\" id=\"userid\">{options}</select>\
         <button type=\"submit\" name=\"action\" value=\"confirm\" id=\"confirm\">确认登录</button>\
         <button type=\"submit\" name=\"action\" value=\"deny\" id=\"deny\">取消</button></form>",
        corp = esc(&st.org().name),
        qr = qr_svg(&format!("{}{}", q.client_id, q.state)),
        h1 = hidden("client_id", &q.client_id),
        h2 = hidden("redirect_uri", &q.redirect_uri),
        h3 = hidden("state", &q.state),
        h4 = hidden("scope", &q.scope),
    );
    page("钉钉登录", &body)
}

/// The "scan as" choices: the people the app sees, then former employees.
fn account_options(book: &AddressBook, app: &App) -> String {
    let mut options = String::new();
    for p in book
        .org
        .people
        .iter()
        .filter(|p| book.org.person_in_scope(app, p) || app.scope.is_whole_org())
    {
        let dept = p
            .departments
            .first()
            .and_then(|d| book.org.department(*d))
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
    for d in book.departed.values() {
        options.push_str(&format!(
            "<option value=\"{}\">{} (外部用户 outside the enterprise, {})</option>",
            esc(&d.person.userid),
            esc(&d.person.name),
            esc(&d.person.userid)
        ));
    }
    options
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
        return error_page("redirect_uri 不合法");
    };
    if f.action == "deny" {
        url.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &f.state);
        return Redirect::to(url.as_str()).into_response();
    }
    {
        let st = sh.lock();
        if let Some(app) = st.org().app(&f.client_id)
            && !redirect_allowed(app, &f.redirect_uri)
        {
            return error_page("redirect_uri 与应用配置不一致");
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
        Err(e) => error_page(&esc(&e.to_string())),
    }
}
