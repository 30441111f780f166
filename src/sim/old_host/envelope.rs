//! The old host's answers: always HTTP 200 with the `errcode/errmsg/request_id` envelope,
//! gateway errors wrapped as errcode 88, and each injected fault in this shape.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::sim::error::{ApiError, api_err};
use crate::sim::state::FaultKind;

/// One JSON answer with HTTP 200 (the old host never uses HTTP status for business errors).
pub fn reply(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// `{"errcode":0,"errmsg":"ok","result":...,"request_id":...}`.
pub fn ok_result(result: Value) -> Response {
    reply(json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": request_id()}))
}

pub fn ok_plain() -> Response {
    reply(json!({"errcode": 0, "errmsg": "ok", "request_id": request_id()}))
}

pub fn error(e: &ApiError) -> Response {
    reply(json!({"errcode": e.errcode, "errmsg": e.errmsg, "request_id": request_id()}))
}

/// Gateway-level errors are wrapped as errcode 88 with a **string** `sub_code`.
pub fn err88(sub_code: &str, sub_msg: &str) -> Response {
    reply(json!({
        "errcode": 88,
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "errmsg": format!("ding talk error[subcode={sub_code},submsg={sub_msg}]"),
        "request_id": request_id(),
    }))
}

/// The answer to a path the old host does not serve: errcode 22 under `/topapi/`, else 404.
pub fn unknown_api(path: &str) -> Response {
    if let Some(rest) = path.strip_prefix("/topapi/") {
        let name = format!("dingtalk.oapi.{}", rest.trim_matches('/').replace('/', "."));
        let sub = format!("不合法ApiName，ApiName = {name}");
        return reply(
            json!({"errcode": 22, "sub_msg": sub, "errmsg": format!("Invalid method[submsg={sub}]"), "request_id": request_id()}),
        );
    }
    reply(json!({"errcode": 404, "errmsg": "请求的URI地址不存在"}))
}

pub fn fault(f: &FaultKind) -> Response {
    match f {
        FaultKind::Http { status } => {
            let s = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            (s, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response()
        }
        FaultKind::SystemBusy => error(&api_err(-1, "系统繁忙")),
        FaultKind::UpstreamTimeout => reply(json!({
            "errcode": 15, "errmsg": "Remote service error",
            "sub_code": "isp.top-remote-connection-timeout", "sub_msg": "远程服务调用超时",
            "request_id": request_id(),
        })),
        FaultKind::Errcode { errcode, errmsg } => error(&api_err(
            *errcode,
            errmsg.clone().unwrap_or_else(|| "injected fault".into()),
        )),
        FaultKind::Throttle => throttled(),
        FaultKind::IpBan => reply(json!({
            "status": 1111, "wait": 5, "source": "x5", "punish": "deny",
            "uuid": uuid::Uuid::new_v4().to_string(),
        })),
        FaultKind::InvalidToken => err88("40014", "不合法的access_token"),
        FaultKind::Latency { .. } | FaultKind::BrokenPage { .. } => error(&api_err(-1, "系统繁忙")),
    }
}

pub fn throttled() -> Response {
    error(&api_err(
        90018,
        "当前企业调用该接口的QPS超过限制，请稍后重试",
    ))
}

/// Short lowercase alphanumeric request id, like DingTalk's (`16l4ew3d47pdp`).
pub fn request_id() -> String {
    use rand::Rng as _;
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..13)
        .map(|_| A[rng.random_range(0..A.len())] as char)
        .collect()
}
