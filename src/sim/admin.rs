//! The admin API under `/__sim/` (route table in the [`super`] module docs): HR changes,
//! fault injection, knobs and counters. Not part of DingTalk; JSON in, JSON out; business
//! errors answer HTTP 400 `{"errcode","errmsg"}`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::login_page::mint_auth_code;
use super::shared::Shared;
use super::state::delivery::CallbackStyle;
use super::state::{ApiError, Counters, DeptWrite, EventFaults, FaultRule, UserWrite};
use super::webhook;

type S = AxState<Arc<Shared>>;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/org", get(org).patch(rename_org))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/events", get(events))
        .route("/users", post(hire))
        .route(
            "/users/{userid}",
            get(get_user).patch(edit_user).delete(leave),
        )
        .route("/users/{userid}/rehire", post(rehire))
        .route("/departments", post(create_dept))
        .route(
            "/departments/{id}",
            axum::routing::patch(update_dept).delete(delete_dept),
        )
        .route("/roles", post(create_role))
        .route(
            "/roles/{id}",
            axum::routing::patch(update_role).delete(delete_role),
        )
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/latency", put(set_latency))
        .route("/qps", put(set_qps))
        .route("/tokens/invalidate", post(invalidate))
        .route("/clock/advance", post(advance_clock))
        .route("/event-faults", put(set_event_faults))
        .route("/stream/disconnect", post(disconnect))
        .route("/stream/connections", get(connections))
        .route("/oauth/code", post(oauth_code))
        .route("/apps/{app_key}/callback", put(subscribe))
        .route("/callbacks/failed", get(failed))
}

fn bad(e: ApiError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"errcode": e.errcode, "errmsg": e.errmsg})),
    )
        .into_response()
}

fn done<T: serde::Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => bad(e),
    }
}

async fn org(AxState(sh): S) -> Response {
    Json(sh.lock().org().clone()).into_response()
}

#[derive(Deserialize)]
struct OrgWrite {
    name: String,
}

async fn rename_org(AxState(sh): S, Json(w): Json<OrgWrite>) -> Response {
    done(sh.mutate(|s| s.rename_org(&w.name)))
}

async fn counters(AxState(sh): S) -> Response {
    Json(sh.lock().counters_now()).into_response()
}

async fn reset_counters(AxState(sh): S) -> Response {
    sh.lock().counters = Counters::default();
    Json(json!({"ok": true})).into_response()
}

async fn events(AxState(sh): S) -> Response {
    Json(
        sh.lock()
            .delivery
            .event_log
            .iter()
            .cloned()
            .collect::<Vec<_>>(),
    )
    .into_response()
}

async fn hire(AxState(sh): S, Json(w): Json<UserWrite>) -> Response {
    done(sh.mutate(|s| s.create_user(w, false)))
}

async fn get_user(AxState(sh): S, Path(userid): Path<String>) -> Response {
    match sh.lock().org().person(&userid) {
        Some(p) => Json(p.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"errcode": 60121, "errmsg": "找不到该用户"})),
        )
            .into_response(),
    }
}

async fn edit_user(
    AxState(sh): S,
    Path(userid): Path<String>,
    Json(w): Json<UserWrite>,
) -> Response {
    done(sh.mutate(|s| s.update_user(&userid, w, false)))
}

async fn leave(AxState(sh): S, Path(userid): Path<String>) -> Response {
    done(sh.mutate(|s| s.delete_user(&userid)))
}

#[derive(Deserialize, Default)]
struct RehireBody {
    #[serde(default)]
    departments: Option<Vec<i64>>,
}

async fn rehire(
    AxState(sh): S,
    Path(userid): Path<String>,
    body: Option<Json<RehireBody>>,
) -> Response {
    let depts = body.and_then(|b| b.0.departments);
    done(sh.mutate(|s| s.rehire(&userid, depts)))
}

async fn create_dept(AxState(sh): S, Json(w): Json<DeptWrite>) -> Response {
    done(sh.mutate(|s| s.create_department(w)))
}

async fn update_dept(AxState(sh): S, Path(id): Path<i64>, Json(w): Json<DeptWrite>) -> Response {
    done(sh.mutate(|s| s.update_department(id, w)))
}

async fn delete_dept(AxState(sh): S, Path(id): Path<i64>) -> Response {
    done(sh.mutate(|s| s.delete_department(id)))
}

async fn create_role(AxState(sh): S, Json(e): Json<super::roles::RoleEdit>) -> Response {
    done(sh.mutate(|s| s.create_role(e)))
}

async fn update_role(
    AxState(sh): S,
    Path(id): Path<i64>,
    Json(e): Json<super::roles::RoleEdit>,
) -> Response {
    done(sh.mutate(|s| s.update_role(id, e)))
}

async fn delete_role(AxState(sh): S, Path(id): Path<i64>) -> Response {
    done(sh.mutate(|s| s.delete_role(id)))
}

async fn list_faults(AxState(sh): S) -> Response {
    Json(sh.lock().faults.rules.clone()).into_response()
}

async fn add_fault(AxState(sh): S, Json(rule): Json<FaultRule>) -> Response {
    sh.lock().faults.rules.push(rule);
    Json(json!({"ok": true})).into_response()
}

async fn clear_faults(AxState(sh): S) -> Response {
    sh.lock().faults.rules.clear();
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct Ms {
    ms: u64,
}

async fn set_latency(AxState(sh): S, Json(b): Json<Ms>) -> Response {
    sh.lock().faults.latency_ms = b.ms;
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct Qps {
    limit: Option<u32>,
}

async fn set_qps(AxState(sh): S, Json(b): Json<Qps>) -> Response {
    sh.lock().faults.qps_limit = b.limit;
    Json(json!({"ok": true, "limit": b.limit})).into_response()
}

#[derive(Deserialize, Default)]
struct AppSel {
    #[serde(default)]
    app_key: Option<String>,
    #[serde(default = "yes")]
    graceful: bool,
}

fn yes() -> bool {
    true
}

async fn invalidate(AxState(sh): S, body: Option<Json<AppSel>>) -> Response {
    let key = body.and_then(|b| b.0.app_key);
    let n = sh.lock().invalidate_tokens(key.as_deref());
    Json(json!({"invalidated": n})).into_response()
}

#[derive(Deserialize)]
struct Advance {
    seconds: u64,
}

async fn advance_clock(AxState(sh): S, Json(b): Json<Advance>) -> Response {
    let mut st = sh.lock();
    st.clock_offset_ms += Duration::from_secs(b.seconds).as_millis() as i64;
    Json(json!({"now_ms": st.now_ms()})).into_response()
}

async fn set_event_faults(AxState(sh): S, Json(f): Json<EventFaults>) -> Response {
    sh.mutate(|s| s.delivery.set_event_faults(f));
    Json(json!({"ok": true})).into_response()
}

async fn disconnect(AxState(sh): S, body: Option<Json<AppSel>>) -> Response {
    let sel = body.map(|b| b.0).unwrap_or(AppSel {
        app_key: None,
        graceful: true,
    });
    let n = sh
        .lock()
        .delivery
        .disconnect(sel.app_key.as_deref(), sel.graceful);
    Json(json!({"disconnected": n})).into_response()
}

async fn connections(AxState(sh): S) -> Response {
    Json(sh.lock().delivery.connections()).into_response()
}

#[derive(Deserialize)]
struct CodeReq {
    app_key: String,
    userid: String,
    #[serde(default)]
    corpid: bool,
}

async fn oauth_code(AxState(sh): S, Json(b): Json<CodeReq>) -> Response {
    match mint_auth_code(&sh, &b.app_key, &b.userid, b.corpid) {
        Ok(code) => Json(json!({"authCode": code})).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"errmsg": e.to_string()})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct Subscribe {
    url: String,
    token: String,
    aes_key: String,
}

async fn subscribe(
    AxState(sh): S,
    Path(app_key): Path<String>,
    Json(b): Json<Subscribe>,
) -> Response {
    if sh.lock().org().app(&app_key).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"errmsg": format!("no such app: {app_key}")})),
        )
            .into_response();
    }
    let r = webhook::register(
        &sh,
        &app_key,
        CallbackStyle::Console,
        &b.url,
        &b.token,
        &b.aes_key,
        Vec::new(),
    )
    .await;
    done(r.map(|_| json!({"ok": true})))
}

async fn failed(AxState(sh): S) -> Response {
    let st = sh.lock();
    let out: serde_json::Map<String, Value> = st
        .delivery
        .callbacks
        .iter()
        .map(|(k, c)| (k.clone(), Value::Array(c.failed.iter().cloned().collect())))
        .collect();
    Json(Value::Object(out)).into_response()
}
