//! `/call_back/*`: registering, reading and deleting an app's legacy HTTP callback, and its
//! failed pushes. Registration pushes `check_url` to the receiver first, so these answer
//! without holding the state lock across the push.

use axum::response::Response;
use serde_json::{Value, json};

use super::envelope::{error, reply, request_id};
use super::params::Params;
use crate::sim::error::{ApiError, api_err};
use crate::sim::shared::Shared;
use crate::sim::state::delivery::CallbackStyle;
use crate::sim::webhook;

pub async fn handle(sh: &Shared, path: &str, app_key: &str, p: &Params) -> Response {
    let res = match path {
        "/call_back/register_call_back" => register(sh, app_key, p, false).await,
        "/call_back/update_call_back" => register(sh, app_key, p, true).await,
        "/call_back/get_call_back" => get(sh, app_key),
        "/call_back/delete_call_back" => delete(sh, app_key),
        "/call_back/get_call_back_failed_result" => Ok(failed(sh, app_key)),
        _ => Err(api_err(22, "Invalid method")),
    };
    match res {
        Ok(v) => reply(v),
        Err(e) => error(&e),
    }
}

/// `register_call_back` (71006 if one exists) or `update_call_back` (71007 if none does).
async fn register(sh: &Shared, app_key: &str, p: &Params, update: bool) -> Result<Value, ApiError> {
    let exists = sh.lock().delivery.callbacks.get(app_key).is_some_and(|c| {
        c.reg
            .as_ref()
            .is_some_and(|r| r.style == CallbackStyle::Legacy)
    });
    if exists && !update {
        return Err(api_err(71006, "回调地址已经存在"));
    }
    if !exists && update {
        return Err(api_err(71007, "回调地址不存在"));
    }
    let tags = p
        .str_list("call_back_tag")?
        .ok_or_else(|| api_err(40035, "缺少参数 call_back_tag"))?;
    let token = p.req_str("token")?;
    if token.chars().count() < 6 {
        return Err(api_err(40035, "不合法的参数 token"));
    }
    webhook::register(
        sh,
        app_key,
        CallbackStyle::Legacy,
        &p.req_str("url")?,
        &token,
        &p.req_str("aes_key")?,
        tags,
    )
    .await?;
    Ok(json!({"errcode": 0, "errmsg": "ok", "request_id": request_id()}))
}

fn get(sh: &Shared, app_key: &str) -> Result<Value, ApiError> {
    let st = sh.lock();
    let reg = st
        .delivery
        .callbacks
        .get(app_key)
        .and_then(|c| c.reg.clone())
        .ok_or_else(|| api_err(71007, "回调地址不存在"))?;
    Ok(
        json!({"errcode": 0, "errmsg": "ok", "call_back_tag": reg.tags, "token": reg.token, "aes_key": reg.aes_key, "url": reg.url}),
    )
}

fn delete(sh: &Shared, app_key: &str) -> Result<Value, ApiError> {
    let mut st = sh.lock();
    let c = st
        .delivery
        .callbacks
        .get_mut(app_key)
        .filter(|c| c.reg.is_some());
    let c = c.ok_or_else(|| api_err(71007, "回调地址不存在"))?;
    c.reg = None;
    c.pending.clear();
    Ok(json!({"errcode": 0, "errmsg": "ok"}))
}

/// Up to 200 failed pushes, removed as they are read.
fn failed(sh: &Shared, app_key: &str) -> Value {
    let mut st = sh.lock();
    let c = st.delivery.callbacks.entry(app_key.to_owned()).or_default();
    let n = c.failed.len().min(200);
    let list: Vec<Value> = c.failed.drain(..n).collect();
    json!({"errcode": 0, "errmsg": "ok", "has_more": !c.failed.is_empty(), "failed_list": list})
}
