//! The new host's answers: real HTTP statuses with `{"code","message","requestid"}` error
//! bodies, and each injected fault in this shape. The Stream gateway's
//! `connections/open` answers in it too.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::sim::state::FaultKind;

/// `{"code","message","requestid"}` with a real HTTP status.
pub fn error(status: u16, code: &str, message: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        s,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        json!({"code": code, "message": message, "requestid": request_id()}).to_string(),
    )
        .into_response()
}

pub fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// UUID-like, upper case, as DingTalk's `requestid`.
fn request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase()
}

/// Unknown `/v1.0` path.
pub fn not_found(path: &str) -> Response {
    error(
        404,
        "InvalidAction.NotFound",
        &format!("Specified api is not found: {path}"),
    )
}

pub fn fault(f: &FaultKind) -> Response {
    match f {
        FaultKind::Http { status } => {
            let s = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            (s, "<html><body><h1>Bad Gateway</h1></body></html>").into_response()
        }
        FaultKind::SystemBusy => error(429, "system.busy", "系统繁忙"),
        FaultKind::UpstreamTimeout => error(504, "GatewayTimeout", "远程服务调用超时"),
        FaultKind::Errcode { errcode, errmsg } => error(
            500,
            &errcode.to_string(),
            errmsg.as_deref().unwrap_or("injected fault"),
        ),
        FaultKind::Throttle => throttled(),
        FaultKind::IpBan => {
            ok(json!({"status": 1111, "wait": 5, "source": "x5", "punish": "deny"}))
        }
        FaultKind::InvalidToken => invalid_token(),
        FaultKind::Latency { .. } | FaultKind::BrokenPage { .. } => {
            error(429, "system.busy", "系统繁忙")
        }
    }
}

pub fn throttled() -> Response {
    error(
        403,
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        "请求过于频繁，请稍后重试",
    )
}

pub fn invalid_token() -> Response {
    error(400, "InvalidAuthentication", "不合法的access_token")
}
