//! A DingTalk simulator: the token and address-book APIs as DingTalk serves them (envelopes,
//! error codes, cursors, page limits, contact scope, per-app per-API QPS limit), plus an
//! admin API to change the org as HR would and to inject faults. Used by `demo`, tests and
//! benchmarks; `dingsync sim` serves it on a port.
//!
//! Admin API (reserved prefix `/__sim/`, JSON bodies):
//! - `POST /__sim/users` — hire or edit: a user object (`userid`, `name`, `dept_id_list`, ...).
//! - `DELETE /__sim/users/{userid}` — the person leaves.
//! - `POST /__sim/departments` — create or edit (rename, move): `dept_id`, `name`, `parent_id`.
//! - `DELETE /__sim/departments/{dept_id}` — remove an empty department.
//! - `POST /__sim/faults` — `{"api": "/topapi/v2/user/list", "fail": N, "errcode": -1}` fails the
//!   next N calls of that API; `{"latency_ms": 50}` adds latency; `{"invalidate_tokens": true}`.
//! - `POST /__sim/qps` — `{"limit": 20}` or `{"limit": null}` (off).
//! - `GET /__sim/stats` — calls per API and throttled calls.

pub mod org;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
pub use org::{Org, SimDept, SimUser, generate};
use serde_json::{Value, json};

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub corp_id: String,
    pub app_key: String,
    pub app_secret: String,
    /// Calls per second per API for the app; `None` switches the limit off.
    pub qps_limit: Option<u32>,
    /// Departments the app may see (contact scope); empty = the whole org.
    pub scope: Vec<i64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            corp_id: "dingsimcorp".into(),
            app_key: "dingsimappkey".into(),
            app_secret: "sim-app-secret".into(),
            qps_limit: Some(20),
            scope: vec![],
        }
    }
}

#[derive(Debug, Default)]
struct Fault {
    fail: u32,
    errcode: i64,
}

/// The simulator's mutable state.
#[derive(Debug)]
pub struct SimState {
    pub config: SimConfig,
    pub departments: BTreeMap<i64, SimDept>,
    pub users: BTreeMap<String, SimUser>,
    token: Option<(String, Instant)>,
    calls: HashMap<String, u64>,
    throttled: u64,
    windows: HashMap<String, (Instant, u32)>,
    faults: HashMap<String, Fault>,
    latency: Duration,
}

impl SimState {
    fn new(config: SimConfig, org: Org) -> Self {
        let mut departments: BTreeMap<i64, SimDept> = org
            .departments
            .into_iter()
            .map(|d| (d.dept_id, d))
            .collect();
        departments.entry(1).or_insert(SimDept {
            dept_id: 1,
            name: "Root".into(),
            parent_id: None,
            order: 0,
        });
        Self {
            config,
            departments,
            users: org
                .users
                .into_iter()
                .map(|u| (u.userid.clone(), u))
                .collect(),
            token: None,
            calls: HashMap::new(),
            throttled: 0,
            windows: HashMap::new(),
            faults: HashMap::new(),
            latency: Duration::ZERO,
        }
    }

    /// Whether department `id` is in the app's contact scope.
    fn in_scope(&self, id: i64) -> bool {
        if self.config.scope.is_empty() {
            return true;
        }
        let mut cur = Some(id);
        let mut guard = 0;
        while let Some(c) = cur {
            if self.config.scope.contains(&c) {
                return true;
            }
            cur = self.departments.get(&c).and_then(|d| d.parent_id);
            guard += 1;
            if guard > 1000 {
                break;
            }
        }
        false
    }

    /// Count a call and apply the QPS window and injected faults: `Some(errcode)` refuses it.
    fn admit(&mut self, api: &str) -> Option<i64> {
        *self.calls.entry(api.to_string()).or_default() += 1;
        if let Some(f) = self.faults.get_mut(api)
            && f.fail > 0
        {
            f.fail -= 1;
            return Some(f.errcode);
        }
        if let Some(limit) = self.config.qps_limit {
            let now = Instant::now();
            let w = self.windows.entry(api.to_string()).or_insert((now, 0));
            if now.duration_since(w.0) >= Duration::from_secs(1) {
                *w = (now, 0);
            }
            w.1 += 1;
            if w.1 > limit {
                self.throttled += 1;
                return Some(90018);
            }
        }
        None
    }
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<SimState>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the base of oapi, api and login paths alike.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Change the org (as HR would) in-process.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        f(&mut self.state.lock().expect("sim state"))
    }

    /// Calls per API so far.
    pub fn calls(&self) -> HashMap<String, u64> {
        self.with_state(|s| s.calls.clone())
    }

    /// Calls refused by the QPS limit so far.
    pub fn throttled(&self) -> u64 {
        self.with_state(|s| s.throttled)
    }

    /// Fail the next `n` calls of `api` with `errcode`.
    pub fn fail_next(&self, api: &str, n: u32, errcode: i64) {
        self.with_state(|s| s.faults.insert(api.to_string(), Fault { fail: n, errcode }));
    }

    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Start a simulator on `listen` (use port 0 for a free port).
pub async fn start(config: SimConfig, org: Org, listen: &str) -> std::io::Result<SimHandle> {
    let state = Arc::new(Mutex::new(SimState::new(config, org)));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(SimHandle {
        addr,
        state,
        shutdown: Some(tx),
    })
}

type Shared = Arc<Mutex<SimState>>;

fn router(state: Shared) -> Router {
    Router::new()
        .route("/gettoken", get(gettoken))
        .route("/v1.0/oauth2/accessToken", post(access_token))
        .route("/topapi/{*path}", post(topapi))
        .route("/__sim/users", post(admin_user))
        .route("/__sim/users/{userid}", delete(admin_leave))
        .route("/__sim/departments", post(admin_dept))
        .route("/__sim/departments/{id}", delete(admin_dept_delete))
        .route("/__sim/faults", post(admin_faults))
        .route("/__sim/qps", post(admin_qps))
        .route("/__sim/stats", get(admin_stats))
        .with_state(state)
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..13].to_string()
}

fn oapi_error(errcode: i64, errmsg: &str) -> Response {
    Json(json!({"errcode": errcode, "errmsg": errmsg, "request_id": request_id()})).into_response()
}

fn oapi_ok(result: Value) -> Response {
    Json(json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": request_id()}))
        .into_response()
}

fn issue_token(st: &mut SimState) -> String {
    let now = Instant::now();
    match &st.token {
        // The same token while it is valid, its life extended (DingTalk's documented behaviour).
        Some((t, exp)) if *exp > now => {
            let t = t.clone();
            st.token = Some((t.clone(), now + Duration::from_secs(7200)));
            t
        }
        _ => {
            let t = uuid::Uuid::new_v4().simple().to_string();
            st.token = Some((t.clone(), now + Duration::from_secs(7200)));
            t
        }
    }
}

async fn gettoken(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut st = state.lock().expect("sim state");
    if let Some(code) = st.admit("/gettoken") {
        return oapi_error(code, "simulated failure");
    }
    match (q.get("appkey"), q.get("appsecret")) {
        (Some(k), Some(s)) if *k == st.config.app_key && *s == st.config.app_secret => {
            let token = issue_token(&mut st);
            Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
                .into_response()
        }
        (None, _) | (_, None) => oapi_error(40035, "缺少参数 corpid or appkey"),
        _ => oapi_error(40096, "不合法的appKey或appSecret"),
    }
}

async fn access_token(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut st = state.lock().expect("sim state");
    if body["appKey"] == st.config.app_key.as_str()
        && body["appSecret"] == st.config.app_secret.as_str()
    {
        let token = issue_token(&mut st);
        Json(json!({"accessToken": token, "expireIn": 7200})).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"requestid": uuid::Uuid::new_v4().to_string().to_uppercase(), "code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"})),
        )
            .into_response()
    }
}

/// Parse a JSON or form body; DingTalk's own SDK sends every scalar as a string.
fn params(headers: &HeaderMap, body: &Bytes) -> HashMap<String, Value> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        return url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
    }
    serde_json::from_slice::<HashMap<String, Value>>(body).unwrap_or_default()
}

fn int(p: &HashMap<String, Value>, k: &str) -> Option<i64> {
    match p.get(k)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(p: &HashMap<String, Value>, k: &str) -> Option<String> {
    match p.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn topapi(
    State(state): State<Shared>,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let api = format!("/topapi/{path}");
    let p = params(&headers, &body);
    let latency = state.lock().expect("sim state").latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut st = state.lock().expect("sim state");
    let token = q
        .get("access_token")
        .cloned()
        .or_else(|| text(&p, "access_token"));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Json(json!({"errcode": 88, "sub_code": "40000", "sub_msg": "access_token is blank", "errmsg": "ding talk error[subcode=40000,submsg=access_token is blank]", "request_id": request_id()})).into_response();
    };
    let valid = st
        .token
        .as_ref()
        .is_some_and(|(t, exp)| *t == token && *exp > Instant::now());
    if !valid {
        return Json(json!({"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token", "errmsg": "ding talk error[subcode=40014,submsg=不合法的access_token]", "request_id": request_id()})).into_response();
    }
    let known = [
        "v2/department/listsub",
        "v2/department/listsubid",
        "v2/department/get",
        "v2/user/list",
        "v2/user/get",
    ];
    if !known.contains(&path.as_str()) {
        let name = format!("dingtalk.oapi.{}", path.replace('/', "."));
        return Json(json!({"errcode": 22, "sub_msg": format!("不合法ApiName，ApiName = {name}"), "errmsg": "Invalid method", "request_id": request_id()})).into_response();
    }
    if let Some(code) = st.admit(&api) {
        let msg = if code == 90018 {
            "请求过于频繁"
        } else {
            "系统繁忙"
        };
        return oapi_error(code, msg);
    }
    match path.as_str() {
        "v2/department/listsub" | "v2/department/listsubid" => {
            let id = int(&p, "dept_id").unwrap_or(1);
            if !st.departments.contains_key(&id) {
                return oapi_error(60003, "部门不存在");
            }
            let subid = path.ends_with("listsubid");
            // listsub respects the contact scope; listsubid does not (§10.3).
            if !subid
                && !st.in_scope(id)
                && !st
                    .config
                    .scope
                    .iter()
                    .any(|s| st.departments.get(s).and_then(|d| d.parent_id) == Some(id))
            {
                return oapi_error(50004, "部门不在授权范围内");
            }
            let children: Vec<&SimDept> = st
                .departments
                .values()
                .filter(|d| d.parent_id == Some(id))
                .collect();
            if subid {
                return oapi_ok(
                    json!({"dept_id_list": children.iter().map(|d| d.dept_id).collect::<Vec<_>>()}),
                );
            }
            let list: Vec<Value> = children
                .iter()
                .filter(|d| st.in_scope(d.dept_id))
                .map(|d| json!({"dept_id": d.dept_id, "name": d.name, "parent_id": id, "create_dept_group": false, "auto_add_user": false}))
                .collect();
            oapi_ok(Value::Array(list))
        }
        "v2/department/get" => {
            let Some(id) = int(&p, "dept_id") else {
                return oapi_error(40035, "缺少参数 dept_id");
            };
            match st.departments.get(&id) {
                None => oapi_error(60003, "部门不存在"),
                Some(_) if !st.in_scope(id) => oapi_error(50004, "部门不在授权范围内"),
                Some(d) => oapi_ok(
                    json!({"dept_id": d.dept_id, "name": d.name, "parent_id": d.parent_id, "order": d.order}),
                ),
            }
        }
        "v2/user/list" => {
            let (Some(id), Some(cursor), Some(size)) =
                (int(&p, "dept_id"), int(&p, "cursor"), int(&p, "size"))
            else {
                return oapi_error(40035, "缺少参数 dept_id, cursor or size");
            };
            if !(1..=100).contains(&size) || cursor < 0 {
                return oapi_error(40035, "不合法的参数 size");
            }
            if !st.departments.contains_key(&id) {
                return oapi_error(60003, "部门不存在");
            }
            if !st.in_scope(id) {
                return oapi_error(50004, "部门不在授权范围内");
            }
            let members: Vec<&SimUser> = st
                .users
                .values()
                .filter(|u| u.dept_id_list.contains(&id))
                .collect();
            let start = cursor as usize;
            let end = (start + size as usize).min(members.len());
            let page: Vec<Value> = members
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(|u| user_json(u))
                .collect();
            let has_more = end < members.len();
            let mut result = json!({"has_more": has_more, "list": page});
            if has_more {
                result["next_cursor"] = json!(end);
            }
            oapi_ok(result)
        }
        "v2/user/get" => {
            let Some(userid) = text(&p, "userid") else {
                return oapi_error(40035, "缺少参数 userid");
            };
            match st.users.get(&userid) {
                None => oapi_error(60121, "找不到该用户"),
                Some(u) if !u.dept_id_list.iter().any(|d| st.in_scope(*d)) => {
                    oapi_error(50002, "员工不在授权范围内")
                }
                Some(u) => oapi_ok(user_json(u)),
            }
        }
        _ => unreachable!("checked above"),
    }
}

fn user_json(u: &SimUser) -> Value {
    let mut v = serde_json::to_value(u).expect("a user serialises");
    v["hide_mobile"] = json!(false);
    v["admin"] = json!(false);
    v["boss"] = json!(false);
    v
}

async fn admin_user(State(state): State<Shared>, Json(u): Json<SimUser>) -> Response {
    let mut st = state.lock().expect("sim state");
    if let Some(d) = u
        .dept_id_list
        .iter()
        .find(|d| !st.departments.contains_key(d))
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("dept_id_list: unknown department {d}"),
        )
            .into_response();
    }
    if u.userid.is_empty() || u.name.is_empty() {
        return (StatusCode::BAD_REQUEST, "userid and name are required").into_response();
    }
    st.users.insert(u.userid.clone(), u);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_leave(State(state): State<Shared>, Path(userid): Path<String>) -> Response {
    match state.lock().expect("sim state").users.remove(&userid) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => (StatusCode::NOT_FOUND, format!("no user {userid}")).into_response(),
    }
}

async fn admin_dept(State(state): State<Shared>, Json(d): Json<SimDept>) -> Response {
    let mut st = state.lock().expect("sim state");
    if d.dept_id == 1 || d.parent_id.is_none_or(|p| !st.departments.contains_key(&p)) {
        return (
            StatusCode::BAD_REQUEST,
            "parent_id: unknown department (and the root cannot change)",
        )
            .into_response();
    }
    st.departments.insert(d.dept_id, d);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_dept_delete(State(state): State<Shared>, Path(id): Path<i64>) -> Response {
    let mut st = state.lock().expect("sim state");
    if st.departments.values().any(|d| d.parent_id == Some(id)) {
        return (
            StatusCode::CONFLICT,
            "60006: department has sub-departments",
        )
            .into_response();
    }
    if st.users.values().any(|u| u.dept_id_list.contains(&id)) {
        return (StatusCode::CONFLICT, "60005: department has members").into_response();
    }
    st.departments.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_faults(State(state): State<Shared>, Json(f): Json<Value>) -> Response {
    let mut st = state.lock().expect("sim state");
    if let Some(api) = f["api"].as_str() {
        st.faults.insert(
            api.to_string(),
            Fault {
                fail: f["fail"].as_u64().unwrap_or(1) as u32,
                errcode: f["errcode"].as_i64().unwrap_or(-1),
            },
        );
    }
    if let Some(ms) = f["latency_ms"].as_u64() {
        st.latency = Duration::from_millis(ms);
    }
    if f["invalidate_tokens"].as_bool() == Some(true) {
        st.token = None;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_qps(State(state): State<Shared>, Json(f): Json<Value>) -> Response {
    state.lock().expect("sim state").config.qps_limit = f["limit"].as_u64().map(|n| n as u32);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_stats(State(state): State<Shared>) -> Response {
    let st = state.lock().expect("sim state");
    Json(json!({"calls": st.calls, "throttled": st.throttled, "users": st.users.len(), "departments": st.departments.len()})).into_response()
}
