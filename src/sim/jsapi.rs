//! A stand-in for DingTalk's H5 JSAPI (`dingtalk.open.js`), for tests in a real browser.
//!
//! Inside the DingTalk client an H5 page calls `dd.requestAuthCode({corpId, clientId})` and
//! gets a single-use code for the person signed in to the client; the server turns it into the
//! userid with `topapi/v2/user/getuserinfo` (`old_host/users.rs`). Here "the person signed in
//! to the client" is a cookie on the simulator's host, set by visiting
//! `/jsapi-standin/as?userid=…`; without it the script behaves like the real one in an ordinary
//! browser (`dd.env.platform == "notInDingTalk"`, `requestAuthCode` fails).
//!
//! | path | what |
//! |---|---|
//! | `GET /jsapi-standin/as?userid=` | "sign in to the DingTalk client" as `userid` (empty: sign out) |
//! | `GET /jsapi-standin/dingtalk.open.js` | the script (`dd.ready`, `dd.error`, `dd.env`, `dd.requestAuthCode`) |
//! | `GET /jsapi-standin/code?corpId=&clientId=` | a code for the signed-in person (called by the script) |

use std::sync::Arc;

use axum::{
    Router,
    extract::{Query, State as AxState},
    http::{HeaderMap, HeaderValue, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;

use super::login_page::mint_auth_code;
use super::shared::Shared;

const COOKIE: &str = "dingsim_client_user";

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/jsapi-standin/as", get(sign_in))
        .route("/jsapi-standin/dingtalk.open.js", get(script))
        .route("/jsapi-standin/code", get(code))
}

fn client_user(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
struct AsQuery {
    #[serde(default)]
    userid: String,
}

async fn sign_in(Query(q): Query<AsQuery>) -> Response {
    let uid: String = q
        .userid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect();
    let mut r = Html(format!(
        "<!doctype html><title>DingTalk client</title><p id=\"signed-in\">{uid}</p>"
    ))
    .into_response();
    let max_age = if uid.is_empty() { 0 } else { 3600 };
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}={uid}; Path=/; Max-Age={max_age}; SameSite=Lax"
        ))
        .expect("ascii"),
    );
    r
}

/// The script: in DingTalk when the cookie is there, like an ordinary browser otherwise.
async fn script(headers: HeaderMap) -> Response {
    let platform = if client_user(&headers).is_some() {
        "android"
    } else {
        "notInDingTalk"
    };
    let js = format!(
        r#"(function () {{
  var base = new URL(document.currentScript.src).origin;
  var platform = "{platform}";
  var readyFns = [], errorFns = [];
  function requestAuthCode(opts) {{
    opts = opts || {{}};
    var p = (platform === "notInDingTalk")
      ? Promise.reject({{errorCode: "7", errorMessage: "not in DingTalk"}})
      : fetch(base + "/jsapi-standin/code?corpId=" + encodeURIComponent(opts.corpId || "") +
              "&clientId=" + encodeURIComponent(opts.clientId || ""), {{credentials: "include"}})
          .then(function (r) {{ return r.json(); }})
          .then(function (b) {{ if (b.code) return {{code: b.code}}; throw b; }});
    p.then(function (r) {{ opts.success && opts.success(r); }},
           function (e) {{ opts.fail && opts.fail(e); }})
     .then(function () {{ opts.complete && opts.complete(); }});
    return p;
  }}
  window.dd = {{
    env: {{platform: platform}},
    ready: function (fn) {{ readyFns.push(fn); }},
    error: function (fn) {{ errorFns.push(fn); }},
    requestAuthCode: requestAuthCode,
    runtime: {{permission: {{requestAuthCode: function (o) {{
      return requestAuthCode({{corpId: o.corpId, clientId: o.clientId,
        success: o.onSuccess, fail: o.onFail}});
    }}}}}}
  }};
  setTimeout(function () {{ readyFns.forEach(function (f) {{ f(); }}); }}, 0);
}})();
"#
    );
    let mut r = js.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    r
}

#[derive(Deserialize)]
struct CodeQuery {
    #[serde(default, rename = "corpId")]
    corp_id: String,
    #[serde(default, rename = "clientId")]
    client_id: String,
}

/// A code for the signed-in person, or the error DingTalk's client would give the page.
async fn code(
    AxState(sh): AxState<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<CodeQuery>,
) -> Response {
    let body = match client_user(&headers) {
        None => json!({"errorCode": "7", "errorMessage": "not signed in to the DingTalk client"}),
        Some(_) if q.corp_id != sh.lock().org().corp_id => {
            json!({"errorCode": "3", "errorMessage": "corpId does not match the signed-in organisation"})
        }
        Some(uid) => match mint_auth_code(&sh, &q.client_id, &uid, false) {
            Ok(code) => json!({"code": code}),
            Err(e) => json!({"errorCode": "9", "errorMessage": e.to_string()}),
        },
    };
    let mut r = axum::Json(body).into_response();
    // The page that calls this is the app's, on another origin.
    if let Some(origin) = headers.get(header::ORIGIN) {
        r.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        r.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    r
}
