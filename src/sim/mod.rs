//! A local DingTalk: one HTTP port serving what `oapi.dingtalk.com`, `api.dingtalk.com`,
//! `login.dingtalk.com` and the Stream gateway serve, held to DingTalk's documented behaviour:
//! envelopes, error codes, token semantics, paging, contact scope,
//! field permissions, write validation, QPS limits, address-book events over Stream and over
//! the encrypted HTTP callback.
//!
//! # Served paths
//!
//! * Old host (`oapi.dingtalk.com`, [`old_host`]): `GET /gettoken`, `POST /topapi/v2/department/{listsub,listsubid,get,create,update,delete,listparentbydept,listparentbyuser}`,
//!   `/topapi/v2/user/{list,get,getbymobile,create,update,delete,getuserinfo}`, `/topapi/user/{listid,listsimple,getbyunionid,count}`, `/topapi/role/{list,simplelist,getrole}` ([`roles`]),
//!   `/auth/scopes`, `/call_back/{register_call_back,update_call_back,get_call_back,delete_call_back,get_call_back_failed_result}`.
//!   Unknown `/topapi/...` → errcode 22; other unknown paths → errcode 404.
//! * New host (`api.dingtalk.com`, [`new_host`]): `POST /v1.0/oauth2/accessToken`, `POST /v1.0/oauth2/userAccessToken`,
//!   `GET /v1.0/contact/users/me`, `POST /v1.0/gateway/connections/open`.
//! * Login page ([`login_page`]): `GET /oauth2/auth` (QR code + a "scan as" form for tests), `POST /oauth2/auth/scan`.
//! * A stand-in for DingTalk's H5 JSAPI ([`jsapi`]): `GET /jsapi-standin/{as,dingtalk.open.js,code}`.
//! * Stream ([`stream`]): `GET /connect?ticket=...` (WebSocket).
//! * Third-party (suite) apps ([`suite`]): corp tokens (`POST /v1.0/oauth2/corpAccessToken`,
//!   `POST /service/get_corp_token`), the authorisation page `GET /oauth2/suite/auth`, and their
//!   admin routes under `/__sim/suites`.
//!
//! # Layout
//!
//! Requests flow one way: the hosts, the Stream gateway, the callback pump and the admin API
//! lock [`Shared`] and work on the parts of [`State`] (address book, auth, faults and quota,
//! event delivery). Both hosts pass [`gate`] first and answer in their own `envelope`.
//!
//! # Admin API (reserved prefix `/__sim/`, JSON in and out)
//!
//! | Route | Effect |
//! | --- | --- |
//! | `GET /__sim/health` | `{"ok":true}` |
//! | `GET /__sim/org` | the current org (YAML shape, JSON) |
//! | `PATCH /__sim/org` | `{"name":"..."}`: the enterprise renamed (root department too); `org_change` |
//! | `GET /__sim/counters`, `POST /__sim/counters/reset` | call counters per API, throttled, stream/callback counters |
//! | `GET /__sim/events` | the last 10,000 emitted events |
//! | `POST /__sim/users` | hire (body: [`UserWrite`], `name` + `departments` required, mobile optional) |
//! | `GET /__sim/users/{userid}` | one person |
//! | `PATCH /__sim/users/{userid}` | edit / move (any [`UserWrite`] field; `departments` replaces the set); `admin` / `active` alone announce only `org_admin_*` / `user_active_org` |
//! | `DELETE /__sim/users/{userid}` | leave the company |
//! | `POST /__sim/users/{userid}/rehire` | `{"departments":[..]}` (optional) |
//! | `POST /__sim/departments` | create (body: [`DeptWrite`], `name` + `parent_id`) |
//! | `PATCH /__sim/departments/{id}` | rename / move / reorder |
//! | `DELETE /__sim/departments/{id}` | delete (must be empty) |
//! | `POST /__sim/roles` | create a role (body: [`roles::RoleEdit`], `name`, `group_name`, `add`) → `label_conf_add` (+ `label_user_change`) |
//! | `PATCH /__sim/roles/{id}` | rename (`name`) → `label_conf_modify`; assign / unassign (`add`, `remove`) → `label_user_change` |
//! | `DELETE /__sim/roles/{id}` | delete a role → `label_conf_del` |
//! | `GET /__sim/faults`, `POST /__sim/faults`, `DELETE /__sim/faults` | list / add a [`FaultRule`] / clear all |
//! | `PUT /__sim/latency` | `{"ms":N}` added to every API answer |
//! | `PUT /__sim/qps` | `{"limit":20}` or `{"limit":null}` (off) |
//! | `POST /__sim/tokens/invalidate` | `{"app_key":"..."}` optional; all tokens become invalid |
//! | `POST /__sim/clock/advance` | `{"seconds":N}` moves the simulated clock (token/ticket/code expiry) |
//! | `PUT /__sim/event-faults` | [`EventFaults`]: `{"drop":N,"duplicate":N,"reorder":N}` |
//! | `POST /__sim/stream/disconnect` | `{"app_key":..,"graceful":true}`: SYSTEM disconnect (+ close after grace) or hard close |
//! | `GET /__sim/stream/connections` | open Stream connections, with what each subscribed to |
//! | `POST /__sim/stream/callback` | `{"app_key","topic","data"}`: a CALLBACK push to one connection subscribed to the topic |
//! | `POST /__sim/oauth/code` | `{"app_key","userid","corpid":bool}` → `{"authCode"}` (skips the login page) |
//! | `PUT /__sim/apps/{app_key}/callback` | console-style HTTP event subscription `{"url","token","aes_key"}` (sends `check_url`) |
//! | `GET /__sim/callbacks/failed` | failed callback pushes, per app |
//!
//! # In-process use
//!
//! ```no_run
//! # async fn demo() -> Result<(), dingsync::sim::SimError> {
//! use dingsync::sim::{Simulator, SimConfig, generate};
//! let org = generate::generate(&generate::GenSpec { people: 200, departments: 30, seed: 7, ..Default::default() });
//! let sim = Simulator::start(SimConfig::default(), org, "127.0.0.1:0").await?;
//! println!("{}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod config;
pub mod error;
pub mod gate;
pub mod generate;
pub mod jsapi;
pub mod login_page;
pub mod new_host;
pub mod old_host;
pub mod org;
pub mod roles;
pub mod shared;
pub mod state;
pub mod stream;
pub mod suite;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

pub use config::{DEFAULT_APP_KEY, DEFAULT_APP_SECRET, DEFAULT_CORP_ID, SimConfig};
pub use error::{ApiError, SimError};
pub use org::{App, Department, Org, Person, Scope};
pub use shared::Shared;
pub use state::{Counters, DeptWrite, Event, EventFaults, FaultKind, FaultRule, State, UserWrite};

/// Entry point: `Simulator::start(config, org, "127.0.0.1:0")`.
pub struct Simulator;

impl Simulator {
    /// Binds `listen`, starts serving, returns a handle. The org gets a default app
    /// ([`DEFAULT_APP_KEY`]/[`DEFAULT_APP_SECRET`]) if it has none.
    pub async fn start(
        config: SimConfig,
        mut org: Org,
        listen: &str,
    ) -> Result<SimHandle, SimError> {
        org.normalize();
        if org.apps.is_empty() {
            org.apps.push(App::new(DEFAULT_APP_KEY, DEFAULT_APP_SECRET));
        }
        org.validate()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: listen.to_owned(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
        let state = State::new(
            org,
            config.qps_limit,
            config.max_depth,
            config.rehire_cooldown.as_millis() as i64,
        );
        let shared = Arc::new(Shared::new(config, state, addr));
        let router = router(shared.clone());
        let cancel = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
        });
        let pumps = vec![
            tokio::spawn(stream::pump(shared.clone())),
            tokio::spawn(webhook::pump(shared.clone())),
        ];
        tracing::info!(%addr, "DingTalk simulator listening");
        Ok(SimHandle {
            shared,
            server,
            pumps,
        })
    }
}

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .merge(new_host::routes())
        .merge(login_page::routes())
        .merge(jsapi::routes())
        .merge(stream::routes())
        .merge(suite::routes())
        .nest("/__sim", admin::routes())
        .fallback(fallback)
        .with_state(shared)
}

/// Every path no route names: unknown `/v1.0` paths answer in the new host's envelope,
/// everything else is the old host's.
async fn fallback(
    AxState(sh): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().starts_with("/v1.0/") {
        return new_host::envelope::not_found(uri.path());
    }
    old_host::dispatch(&sh, &method, &uri, &headers, &body).await
}

/// A running simulator. Dropping it without [`SimHandle::shutdown`] leaves it running until
/// the runtime ends.
pub struct SimHandle {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` — both API hosts, the login page and the admin API all live here.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }
    pub fn corp_id(&self) -> String {
        self.shared.lock().org().corp_id.clone()
    }
    /// Snapshot of the current org.
    pub fn org(&self) -> Org {
        self.shared.lock().org().clone()
    }
    /// Direct access to the state for anything the typed methods don't cover.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.shared.mutate(f)
    }
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters_now()
    }
    pub fn reset_counters(&self) {
        self.shared.lock().counters = Counters::default();
    }
    /// Calls made to one API path so far.
    pub fn calls(&self, api: &str) -> u64 {
        self.shared
            .lock()
            .counters
            .calls
            .get(api)
            .copied()
            .unwrap_or(0)
    }
    pub fn events(&self) -> Vec<Event> {
        self.shared
            .lock()
            .delivery
            .event_log
            .iter()
            .cloned()
            .collect()
    }

    // HR changes (each emits the matching event).
    pub fn hire(&self, w: UserWrite) -> Result<Person, SimError> {
        Ok(self.shared.mutate(|s| s.create_user(w, false))?)
    }
    pub fn edit_user(&self, userid: &str, w: UserWrite) -> Result<Person, SimError> {
        Ok(self.shared.mutate(|s| s.update_user(userid, w, false))?)
    }
    pub fn move_user(&self, userid: &str, departments: Vec<i64>) -> Result<Person, SimError> {
        self.edit_user(
            userid,
            UserWrite {
                departments: Some(departments),
                ..Default::default()
            },
        )
    }
    pub fn leave(&self, userid: &str) -> Result<Person, SimError> {
        Ok(self.shared.mutate(|s| s.delete_user(userid))?)
    }
    pub fn rehire(&self, userid: &str, departments: Option<Vec<i64>>) -> Result<Person, SimError> {
        Ok(self.shared.mutate(|s| s.rehire(userid, departments))?)
    }
    pub fn create_department(&self, w: DeptWrite) -> Result<Department, SimError> {
        Ok(self.shared.mutate(|s| s.create_department(w))?)
    }
    pub fn update_department(&self, id: i64, w: DeptWrite) -> Result<Department, SimError> {
        Ok(self.shared.mutate(|s| s.update_department(id, w))?)
    }
    pub fn rename_department(&self, id: i64, name: &str) -> Result<Department, SimError> {
        self.update_department(
            id,
            DeptWrite {
                name: Some(name.to_owned()),
                ..Default::default()
            },
        )
    }
    pub fn delete_department(&self, id: i64) -> Result<Department, SimError> {
        Ok(self.shared.mutate(|s| s.delete_department(id))?)
    }
    /// The enterprise renamed (its root department too); announces `org_change` alone.
    pub fn rename_org(&self, name: &str) -> Result<Department, SimError> {
        Ok(self.shared.mutate(|s| s.rename_org(name))?)
    }

    // Faults and knobs.
    /// Create a role (`label_conf_add`, and `label_user_change` for its first holders).
    pub fn create_role(&self, e: roles::RoleEdit) -> Result<roles::Role, SimError> {
        Ok(self.shared.mutate(|s| s.create_role(e))?)
    }
    /// Rename a role and/or change its holders (`label_conf_modify`, `label_user_change`).
    pub fn update_role(&self, id: i64, e: roles::RoleEdit) -> Result<roles::Role, SimError> {
        Ok(self.shared.mutate(|s| s.update_role(id, e))?)
    }
    /// Delete a role (`label_conf_del`).
    pub fn delete_role(&self, id: i64) -> Result<roles::Role, SimError> {
        Ok(self.shared.mutate(|s| s.delete_role(id))?)
    }
    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.lock().faults.rules.push(rule);
    }
    pub fn clear_faults(&self) {
        self.shared.lock().faults.rules.clear();
    }
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().faults.latency_ms = latency.as_millis() as u64;
    }
    /// Whether `user/list` leaves `manager_userid` out (`user/get` keeps it).
    pub fn set_list_omits_manager(&self, omit: bool) {
        self.shared.lock().faults.list_omits_manager = omit;
    }
    /// `None` switches the per-app QPS limit off.
    pub fn set_qps_limit(&self, limit: Option<u32>) {
        self.shared.lock().faults.qps_limit = limit;
    }
    pub fn invalidate_tokens(&self, app_key: Option<&str>) -> usize {
        self.shared.lock().invalidate_tokens(app_key)
    }
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock_offset_ms += by.as_millis() as i64;
    }
    pub fn set_event_faults(&self, f: EventFaults) {
        self.shared.mutate(|s| s.delivery.set_event_faults(f));
    }
    /// Sends SYSTEM `disconnect` (graceful) or drops the socket, on every Stream connection
    /// (of one app). Returns how many connections were told.
    pub fn disconnect_streams(&self, app_key: Option<&str>, graceful: bool) -> usize {
        self.shared.lock().delivery.disconnect(app_key, graceful)
    }
    /// Mints a login auth code as if `userid` had scanned the QR code for `app_key`.
    pub fn mint_auth_code(
        &self,
        app_key: &str,
        userid: &str,
        with_corpid: bool,
    ) -> Result<String, SimError> {
        login_page::mint_auth_code(&self.shared, app_key, userid, with_corpid)
    }
    /// Console-style HTTP event subscription (owner key = AppKey); sends `check_url` first.
    pub async fn subscribe_callback(
        &self,
        app_key: &str,
        url: &str,
        token: &str,
        aes_key: &str,
    ) -> Result<(), SimError> {
        webhook::register(
            &self.shared,
            app_key,
            state::delivery::CallbackStyle::Console,
            url,
            token,
            aes_key,
            Vec::new(),
        )
        .await
        .map_err(|e| SimError::Callback(e.errmsg))
    }
    /// Failed callback pushes of an app (`get_call_back_failed_result` shape).
    pub fn failed_callbacks(&self, app_key: &str) -> Vec<serde_json::Value> {
        self.shared
            .lock()
            .delivery
            .callbacks
            .get(app_key)
            .map(|c| c.failed.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops serving: closes Stream connections, waits for the server to finish.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        for p in self.pumps {
            p.abort();
        }
    }
}
