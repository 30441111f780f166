//! Entry from DingTalk's Workbench: the app's homepage URL is `<issuer>/workbench?client_id=`.
//!
//! Inside the DingTalk client the person is already signed in, so no page is needed: the
//! in-app page loads DingTalk's JSAPI, asks it for a code (`dd.requestAuthCode` with the
//! binding's corpId and the app's clientId) and posts it back; dingsync turns the code into
//! the userid with `topapi/v2/user/getuserinfo`, checks the account as for the QR login, opens
//! the SSO session and sends the browser to the app's homepage, whose own login then finds the
//! session. Outside DingTalk (no JSAPI, or it says `notInDingTalk`) the page falls back to the
//! QR login (`?qr=1`).

use std::sync::Arc;

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    keys::random_token,
    provider::{
        LOGIN_COOKIE, LOGIN_STATE_TTL, Provider, UNKNOWN_CLIENT, cookie_value, esc, failed,
        internal, no_store, page, refused, session_user, to_dingtalk, workbench_landing,
    },
};
use crate::dingtalk::DingTalkError;

/// The seal purpose of the in-app page's state (never accepted as a DingTalk login state).
const PURPOSE: &str = "inapp-state";
const GETUSERINFO: &str = "/topapi/v2/user/getuserinfo";

#[derive(Deserialize)]
pub(super) struct WorkbenchParams {
    #[serde(default)]
    client_id: Option<String>,
    /// Set by the in-app page when there is no DingTalk client: the QR login.
    #[serde(default)]
    qr: Option<String>,
}

pub(super) async fn workbench(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Query(q): Query<WorkbenchParams>,
) -> Response {
    let Some(client) = q.client_id.as_deref().and_then(|id| p.client(id)) else {
        return failed(StatusCode::BAD_REQUEST, UNKNOWN_CLIENT);
    };
    if client.homepage.is_none() {
        return failed(
            StatusCode::BAD_REQUEST,
            "This application has no homepage registered for the Workbench.",
        );
    }
    if let Some(s) = session_user(&p, &headers) {
        return workbench_landing(&p, &client.id, &s.userid, 0).await;
    }
    if q.qr.is_some() {
        return to_dingtalk(&p, json!({"workbench": client.id}));
    }
    in_app_page(&p, &client.id)
}

/// A JSON string literal safe inside `<script>`.
fn js(s: &str) -> String {
    serde_json::to_string(s)
        .expect("a string serialises")
        .replace('<', "\\u003c")
}

/// The page that asks DingTalk's JSAPI for a code, bound to this browser by a cookie like the
/// QR login's state (so nobody can post their own code into someone else's browser).
fn in_app_page(p: &Provider, client_id: &str) -> Response {
    let now = p.now();
    let binding = match random_token(16) {
        Ok(b) => b,
        Err(e) => return internal(e),
    };
    let state = match p.keys().seal(
        now,
        PURPOSE,
        &json!({"c": client_id, "b": binding, "exp": (now + LOGIN_STATE_TTL).as_second()}),
    ) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let issuer = p.issuer();
    let qr = format!(
        "{issuer}/workbench?client_id={}&qr=1",
        url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>()
    );
    let html = format!(
        include_str!("workbench.html"),
        name = esc(&p.cfg.display_name),
        action = esc(&format!("{issuer}/workbench/code")),
        state = esc(&state),
        qr_attr = esc(&qr),
        qr = js(&qr),
        corp = js(&p.cfg.corp_id),
        app = js(&p.dingtalk.config().app_key),
        jsapi = esc(&p.jsapi_url),
    );
    let mut r = Html(html).into_response();
    no_store(r.headers_mut());
    r.headers_mut().append(
        header::SET_COOKIE,
        p.cookie(LOGIN_COOKIE, &binding, LOGIN_STATE_TTL),
    );
    r
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: String,
}

/// The in-app page's code: who it belongs to, then the same checks and landing as the QR
/// login's Workbench entry.
pub(super) async fn workbench_code(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let expired = || {
        page(
            StatusCode::BAD_REQUEST,
            "error",
            "登录已失效 Login expired",
            "This login is invalid, expired or was started in another window. \
             Open the application again from the Workbench.",
        )
    };
    let Ok(inner) = p.keys().open(PURPOSE, &f.state) else {
        return expired();
    };
    if inner["exp"]
        .as_i64()
        .is_none_or(|e| e <= p.now().as_second())
        || cookie_value(&headers, LOGIN_COOKIE).as_deref() != inner["b"].as_str()
        || f.code.is_empty()
    {
        return expired();
    }
    let Some(client_id) = inner["c"].as_str() else {
        return expired();
    };
    let userid = match p
        .dingtalk
        .oapi(GETUSERINFO, &json!({ "code": f.code }))
        .await
    {
        Ok(Value::Object(r)) if r.get("userid").and_then(Value::as_str).is_some() => {
            r["userid"].as_str().unwrap_or_default().to_string()
        }
        // 60121: the code's person is no longer in the enterprise.
        Err(DingTalkError::NotFound { .. }) => {
            tracing::info!("in-app login refused: not a member of the enterprise");
            return refused(&format!(
                "Your DingTalk account is not a member of {}. Only its members can log in here.",
                p.cfg.display_name
            ));
        }
        other => {
            if let Err(e) = other {
                tracing::warn!(error = %e, "in-app login: DingTalk did not confirm the code");
            }
            return failed(
                StatusCode::BAD_GATEWAY,
                "DingTalk did not confirm the login. Open the application again.",
            );
        }
    };
    let now = p.now().as_second();
    workbench_landing(&p, client_id, &userid, now).await
}
