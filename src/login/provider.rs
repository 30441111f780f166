//! The OIDC endpoints of one binding, under its issuer's path:
//!
//! | path | what |
//! |---|---|
//! | `/.well-known/openid-configuration` | discovery |
//! | `/jwks` | the published keys (the next key an hour ahead, retired keys a day after) |
//! | `/authorize` | authorization code flow, PKCE S256, `state`, `nonce`, `prompt` |
//! | `/callback` | where DingTalk's login page sends the browser back (`authCode`) |
//! | `/token` | code → ID token + access token (+ refresh token); refresh → new tokens |
//! | `/userinfo` | claims for an access token |
//! | `/workbench?client_id=` | the app homepage URL for DingTalk's Workbench (in-app login) |
//! | `/workbench/code` | where the in-app page posts the JSAPI's code |
//! | `/account`, `/account/password` | account self-service (opt-in) |
//!
//! Stateless across replicas: the login state sent through DingTalk, the authorization code
//! and the SSO session cookie are sealed (AES-GCM) with the shared keys; only which codes and
//! refresh tokens were already used is kept, in the shared [`Ledger`] (a code lives 60 s and
//! is bound to the client, its redirect URI and its PKCE verifier).

use std::sync::{Arc, RwLock};

use axum::{
    Form, Router,
    extract::{Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::{
    Account, Accounts, LoginError,
    account::{Attempts, account, account_return, set_password},
    clients::{Client, Clients, SCOPES},
    keys::{KeySet, random_token},
    ledger::{Ledger, MemoryLedger},
    password::PasswordStore,
    provision::Provisioner,
    token::{token, userinfo},
    workbench::{workbench, workbench_code},
};
use crate::dingtalk::{DingTalkClient, DingTalkError};

/// How long the browser may spend on DingTalk's login page.
pub(super) const LOGIN_STATE_TTL: SignedDuration = SignedDuration::from_mins(10);
/// Authorization codes: short-lived and single-use.
pub const CODE_TTL: SignedDuration = SignedDuration::from_secs(60);
/// ID and access tokens.
pub const TOKEN_TTL: SignedDuration = SignedDuration::from_hours(1);
/// DingTalk's H5 JSAPI. UNCONFIRMED: the version in the path is the one DingTalk's samples
/// used last; any 3.x provides `requestAuthCode`.
pub const DINGTALK_JSAPI: &str =
    "https://g.alicdn.com/dingding/dingtalk-jsapi/3.0.25/dingtalk.open.js";
pub(super) const LOGIN_COOKIE: &str = "dingsync_login";
const SESSION_COOKIE: &str = "dingsync_session";

/// What a provider needs besides its collaborators.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Public issuer URL, no trailing slash (`https://login.example.com/dingtalk/acme`).
    pub issuer: String,
    /// The enterprise; part of `sub`.
    pub corp_id: String,
    /// Shown on pages.
    pub display_name: String,
    /// How long a DingTalk login counts for further apps (SSO session).
    pub session_ttl: SignedDuration,
}

/// One binding's OIDC provider.
pub struct Provider {
    pub(super) cfg: ProviderConfig,
    path: String,
    clients: RwLock<Arc<Clients>>,
    keys: Arc<RwLock<Arc<KeySet>>>,
    pub(super) dingtalk: Arc<DingTalkClient>,
    /// The JSAPI script the in-app login page loads.
    pub(super) jsapi_url: String,
    /// Account self-service: where passwords are set (`None`: not offered).
    pub(super) passwords: Option<Arc<dyn PasswordStore>>,
    pub(super) attempts: Attempts,
    /// Provision on first login (`None`: people without an account are refused).
    provisioner: Option<Arc<dyn Provisioner>>,
    pub(super) accounts: Arc<dyn Accounts>,
    pub(super) ledger: Arc<dyn Ledger>,
    clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.cfg.issuer)
            .finish()
    }
}

/// The issuer's path, normalised (`/` for an issuer at the host's root).
fn issuer_path(issuer: &str) -> Result<String, LoginError> {
    let u = url::Url::parse(issuer).map_err(|source| LoginError::Issuer {
        issuer: issuer.to_string(),
        source,
    })?;
    if !matches!(u.scheme(), "https" | "http") || u.query().is_some() || u.fragment().is_some() {
        return Err(LoginError::Config(format!(
            "login.issuer {issuer:?}: must be an http(s) URL without query or fragment"
        )));
    }
    Ok(u.path().trim_end_matches('/').to_string())
}

impl Provider {
    /// `keys` is a shared handle so the owner can swap in a rotated set.
    pub fn new(
        mut cfg: ProviderConfig,
        clients: Clients,
        keys: Arc<RwLock<Arc<KeySet>>>,
        dingtalk: Arc<DingTalkClient>,
        accounts: Arc<dyn Accounts>,
    ) -> Result<Self, LoginError> {
        cfg.issuer = cfg.issuer.trim_end_matches('/').to_string();
        let path = issuer_path(&cfg.issuer)?;
        Ok(Provider {
            cfg,
            path,
            clients: RwLock::new(Arc::new(clients)),
            keys,
            dingtalk,
            accounts,
            ledger: Arc::new(MemoryLedger::new()),
            jsapi_url: DINGTALK_JSAPI.to_string(),
            passwords: None,
            attempts: Default::default(),
            provisioner: None,
            clock: Box::new(Timestamp::now),
        })
    }

    /// Provision on first login: a member without an account is synced alone, then looked up
    /// again.
    pub fn with_provisioning(mut self, provisioner: Arc<dyn Provisioner>) -> Self {
        self.provisioner = Some(provisioner);
        self
    }

    /// Offers account self-service (`/account`): people set their directory password there.
    pub fn with_self_service(mut self, passwords: Arc<dyn PasswordStore>) -> Self {
        self.passwords = Some(passwords);
        self
    }

    /// The JSAPI script of the in-app login page (tests serve a stand-in).
    pub fn with_jsapi(mut self, url: impl Into<String>) -> Self {
        self.jsapi_url = url.into();
        self
    }

    /// Where first uses of codes and refresh tokens are recorded; replicas that serve the
    /// same issuer must share one (the default holds within this process only).
    pub fn with_ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Tests move time forward to expire codes.
    pub fn with_clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    pub fn issuer(&self) -> &str {
        &self.cfg.issuer
    }

    pub fn set_clients(&self, clients: Clients) {
        *self.clients.write().expect("clients lock") = Arc::new(clients);
    }

    pub(super) fn now(&self) -> Timestamp {
        (self.clock)()
    }

    pub(super) fn keys(&self) -> Arc<KeySet> {
        self.keys.read().expect("keys lock").clone()
    }

    pub(super) fn client(&self, id: &str) -> Option<Client> {
        self.clients.read().expect("clients lock").get(id).cloned()
    }

    /// `sub`: stable per person and enterprise, and reveals neither.
    pub fn subject(&self, userid: &str) -> String {
        let d = Sha256::digest(format!("{}:{userid}", self.cfg.corp_id));
        B64.encode(&d[..18])
    }

    /// The routes, relative to the issuer's path.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize_get).post(authorize_post))
            .route("/callback", get(callback))
            .route("/token", axum::routing::post(token))
            .route("/userinfo", get(userinfo).post(userinfo))
            .route("/workbench", get(workbench))
            .route("/workbench/code", axum::routing::post(workbench_code))
            .route("/account", get(account))
            .route("/account/password", axum::routing::post(set_password))
            .with_state(self.clone())
    }

    pub(super) fn cookie(&self, name: &str, value: &str, max_age: SignedDuration) -> HeaderValue {
        let secure = if self.cfg.issuer.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        ))
        .expect("cookie is ASCII")
    }
}

/// Several bindings' providers on one HTTP server, found by the longest issuer path that
/// prefixes the request path.
#[derive(Clone, Default)]
pub struct Providers {
    inner: Arc<RwLock<Vec<Served>>>,
}

/// A provider and its routes.
type Served = (Arc<Provider>, Router);

impl Providers {
    /// Adds or replaces (same issuer path) a provider. Two bindings cannot share an issuer
    /// path; the caller reports that, this keeps the newest.
    pub fn put(&self, p: Arc<Provider>) {
        let router = p.router();
        let mut v = self.inner.write().expect("providers lock");
        v.retain(|(q, _)| q.path != p.path);
        v.push((p, router));
        v.sort_by_key(|(q, _)| std::cmp::Reverse(q.path.len()));
    }

    /// Removes the provider of `issuer`.
    pub fn remove(&self, issuer: &str) {
        let issuer = issuer.trim_end_matches('/');
        self.inner
            .write()
            .expect("providers lock")
            .retain(|(q, _)| q.cfg.issuer != issuer);
    }

    /// The issuer already served at `issuer`'s path, if another.
    pub fn path_taken_by(&self, issuer: &str) -> Option<String> {
        let path = issuer_path(issuer).ok()?;
        let issuer = issuer.trim_end_matches('/');
        self.inner
            .read()
            .expect("providers lock")
            .iter()
            .find(|(q, _)| q.path == path && q.cfg.issuer != issuer)
            .map(|(q, _)| q.cfg.issuer.clone())
    }

    pub fn issuers(&self) -> Vec<String> {
        self.inner
            .read()
            .expect("providers lock")
            .iter()
            .map(|(q, _)| q.cfg.issuer.clone())
            .collect()
    }

    /// A router that answers every path a provider owns (and 404 otherwise); merge it into
    /// the HTTP server last, since it is a fallback.
    pub fn router(&self) -> Router {
        let me = self.clone();
        Router::new().fallback(move |req: Request| {
            let me = me.clone();
            async move { me.dispatch(req).await }
        })
    }

    async fn dispatch(&self, req: Request) -> Response {
        let path = req.uri().path().to_string();
        let found = self
            .inner
            .read()
            .expect("providers lock")
            .iter()
            .find(|(p, _)| {
                path.strip_prefix(&p.path)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|(p, r)| (p.path.clone(), r.clone()));
        let Some((prefix, router)) = found else {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        };
        let (mut parts, body) = req.into_parts();
        let rest = &path[prefix.len()..];
        let pq = match parts.uri.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        parts.uri = Uri::builder()
            .path_and_query(pq)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"));
        match router.oneshot(Request::from_parts(parts, body)).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

// ---------- pages ----------

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Said when a `client_id` is not in `clients.yaml`.
pub(super) const UNKNOWN_CLIENT: &str =
    "Unknown client_id: this application is not registered with dingsync.";

/// The page for a login that failed (`status` says whose fault it was).
pub(super) fn failed(status: StatusCode, message: &str) -> Response {
    page(status, "error", "登录失败 Login failed", message)
}

/// The page for a person dingsync does not let in.
pub(super) fn refused(message: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "refused",
        "无法登录 Access refused",
        message,
    )
}

/// A small page for people (errors that must not be redirected, refusals).
pub(super) fn page(status: StatusCode, id: &str, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:system-ui,'WenQuanYi Zen Hei',sans-serif;\
         max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2329}}h1{{font-size:1.4rem}}\
         .box{{border:1px solid #dee0e3;border-radius:8px;padding:1.5rem}}\
         #refused h1,#error h1{{color:#d83931}}</style></head><body>\
         <div class=\"box\" id=\"{id}\"><h1>{t}</h1><p>{m}</p></div></body></html>",
        t = esc(title),
        m = esc(message),
    );
    let mut r = (status, Html(html)).into_response();
    no_store(r.headers_mut());
    r
}

pub(super) fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

pub(super) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Redirect back to the client with OAuth error parameters (and `iss`, RFC 9207).
fn redirect_error(
    p: &Provider,
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response {
    let Ok(mut u) = url::Url::parse(redirect_uri) else {
        return failed(StatusCode::BAD_REQUEST, description);
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("error", error)
            .append_pair("error_description", description);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &p.cfg.issuer);
    }
    Redirect::to(u.as_str()).into_response()
}

pub(super) fn internal(e: LoginError) -> Response {
    tracing::error!(error = %e, "login provider failed");
    failed(
        StatusCode::INTERNAL_SERVER_ERROR,
        "dingsync could not complete the login. Try again later.",
    )
}

// ---------- discovery and keys ----------

async fn discovery(State(p): State<Arc<Provider>>) -> Response {
    let i = &p.cfg.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
            "preferred_username", "name", "given_name", "family_name", "email", "phone_number", "groups"],
        // No consent page: clients are registered by the administrator, so `consent` is
        // accepted without a page and not advertised.
        "prompt_values_supported": ["none", "login"],
        // Several issuers share one host: clients must be able to tell whose response it is.
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn jwks(State(p): State<Arc<Provider>>) -> Response {
    let mut r = axum::Json(p.keys().jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

// ---------- authorize ----------

#[derive(Deserialize, Default)]
struct AuthorizeParams {
    #[serde(default)]
    response_type: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    code_challenge: Option<String>,
    #[serde(default)]
    code_challenge_method: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
}

/// A validated authorization request, as sealed into DingTalk's `state` and the code.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(super) struct Pending {
    /// Client id.
    pub(super) c: String,
    /// Redirect URI.
    pub(super) r: String,
    /// The client's `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) s: Option<String>,
    /// The client's `nonce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) n: Option<String>,
    /// PKCE challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) p: Option<String>,
    /// Granted scopes, space-separated.
    pub(super) sc: String,
}

async fn authorize_get(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Query(q): Query<AuthorizeParams>,
) -> Response {
    authorize(p, headers, q).await
}

async fn authorize_post(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(q): Form<AuthorizeParams>,
) -> Response {
    authorize(p, headers, q).await
}

pub(super) fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn authorize(p: Arc<Provider>, headers: HeaderMap, q: AuthorizeParams) -> Response {
    // Until client and redirect URI are known good, errors are shown, never redirected
    // (RFC 6749 §4.1.2.1): an open redirector is worse than an error page.
    let Some(client) = q.client_id.as_deref().and_then(|id| p.client(id)) else {
        return failed(StatusCode::BAD_REQUEST, UNKNOWN_CLIENT);
    };
    let Some(redirect_uri) = q.redirect_uri.clone().filter(|r| client.allows_redirect(r)) else {
        return failed(
            StatusCode::BAD_REQUEST,
            "The redirect_uri is missing or not registered for this application.",
        );
    };
    let state = q.state.as_deref();
    let fail = |error: &str, d: &str| redirect_error(&p, &redirect_uri, error, d, state);
    if q.response_type.as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scopes: Vec<&str> = q
        .scope
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if !scopes.contains(&"openid") {
        return fail("invalid_scope", "scope must include openid");
    }
    if let Some(bad) = scopes
        .iter()
        .find(|s| !client.scopes.iter().any(|c| c == *s))
    {
        return fail(
            "invalid_scope",
            &format!("scope {bad} is not allowed for this client"),
        );
    }
    match (
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if is_pkce_value(c) => {}
        (Some(_), Some("S256")) => return fail("invalid_request", "malformed code_challenge"),
        (Some(_), _) => {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        (None, _) if client.require_pkce => {
            return fail("invalid_request", "code_challenge (PKCE, S256) is required");
        }
        (None, _) => {}
    }
    let pending = Pending {
        c: client.id.clone(),
        r: redirect_uri.clone(),
        s: q.state.clone(),
        n: q.nonce.clone(),
        p: q.code_challenge.clone(),
        sc: scopes.join(" "),
    };
    let prompts: Vec<&str> = q
        .prompt
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // OpenID Connect Core §3.1.2.1: `none` excludes every other value.
    if prompts.contains(&"none") && prompts.len() > 1 {
        return fail("invalid_request", "prompt=none cannot be combined");
    }
    let max_age = match q.max_age.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(m)) if m >= 0 => Some(m),
        Some(_) => return fail("invalid_request", "max_age must be a number of seconds"),
    };
    // An SSO session from an earlier DingTalk login in this browser serves further apps,
    // unless the app asks for a fresh login or one more recent than max_age (0: always
    // fresh). The account is looked up again each time.
    let now = p.now().as_second();
    let session = session_user(&p, &headers)
        .filter(|s| max_age.is_none_or(|m| m > 0 && now - s.auth_time <= m));
    if !prompts.contains(&"login")
        && let Some(s) = session
    {
        return finish(&p, pending, &s.userid, s.auth_time, false).await;
    }
    if prompts.contains(&"none") {
        return fail(
            "login_required",
            "no recent enough DingTalk login in this browser",
        );
    }
    to_dingtalk(&p, json!({"pending": pending}))
}

/// Sends the browser to DingTalk's login page with `inner` sealed into `state`, bound to this
/// browser by a cookie.
pub(super) fn to_dingtalk(p: &Provider, mut inner: Value) -> Response {
    let now = p.now();
    let binding = match random_token(16) {
        Ok(b) => b,
        Err(e) => return internal(e),
    };
    inner["b"] = json!(binding);
    inner["exp"] = json!((now + LOGIN_STATE_TTL).as_second());
    // UNCONFIRMED: DingTalk documents no length limit for `state`; the sealed state stays a
    // few hundred characters.
    let sealed = match p.keys().seal(now, "login-state", &inner) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let url = p
        .dingtalk
        .authorize_url(&format!("{}/callback", p.cfg.issuer), &sealed, &["openid"]);
    let mut r = Redirect::to(&url).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        p.cookie(LOGIN_COOKIE, &binding, LOGIN_STATE_TTL),
    );
    no_store(r.headers_mut());
    r
}

/// The SSO session of this browser: who logged in with DingTalk, and when.
pub(super) struct Session {
    pub(super) userid: String,
    pub(super) auth_time: i64,
}

pub(super) fn session_user(p: &Provider, headers: &HeaderMap) -> Option<Session> {
    let raw = cookie_value(headers, SESSION_COOKIE)?;
    let v = p.keys().open("session", &raw).ok()?;
    if v["exp"].as_i64()? <= p.now().as_second() {
        return None;
    }
    Some(Session {
        userid: v["u"].as_str()?.to_string(),
        // Sessions sealed before auth_time was kept count as old as possible.
        auth_time: v["at"].as_i64().unwrap_or(0),
    })
}

/// Looks the person up and redirects to the client with a code; `new_session` (a DingTalk
/// login just happened) sets the SSO cookie.
async fn finish(
    p: &Provider,
    pending: Pending,
    userid: &str,
    auth_time: i64,
    new_session: bool,
) -> Response {
    let claims = match refused_or_claims(p, userid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = p.now();
    let code = match p.keys().seal(
        now,
        "code",
        &json!({
            "jti": match random_token(16) { Ok(t) => t, Err(e) => return internal(e) },
            "exp": (now + CODE_TTL).as_second(),
            "req": pending,
            "sub": p.subject(userid),
            "u": userid,
            "claims": claims,
            "auth_time": auth_time,
        }),
    ) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    tracing::info!(client = %pending.c, sub = %p.subject(userid), "login: code issued");
    let Ok(mut u) = url::Url::parse(&pending.r) else {
        return internal(LoginError::Config("redirect URI".into()));
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &pending.s {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &p.cfg.issuer);
    }
    let mut r = Redirect::to(u.as_str()).into_response();
    no_store(r.headers_mut());
    if new_session && let Err(e) = start_session(p, &mut r, userid, auth_time) {
        return internal(e);
    }
    r
}

/// The account's claims, or the page refusing the person.
pub(super) async fn refused_or_claims(
    p: &Provider,
    userid: &str,
) -> Result<Map<String, Value>, Response> {
    let mut found = p.accounts.lookup(userid).await;
    if let (Ok(Account::Missing), Some(prov)) = (&found, &p.provisioner) {
        // DingTalk has just confirmed the person is a member: sync them alone, then look again.
        tracing::info!(sub = %p.subject(userid), "login: no account yet; provisioning");
        found = match prov.provision(userid).await {
            Ok(()) => p.accounts.lookup(userid).await,
            Err(e) => Err(e.into()),
        };
    }
    match found {
        Ok(Account::Active(c)) => Ok(c),
        Ok(Account::Disabled) => {
            tracing::info!(sub = %p.subject(userid), "login refused: account disabled");
            Err(refused(&format!(
                "Your account in {} is disabled. Ask your administrator.",
                p.cfg.display_name
            )))
        }
        Ok(Account::Missing) => {
            tracing::info!(sub = %p.subject(userid), "login refused: no directory account");
            Err(refused(&format!(
                "You are a member of {} but have no account in the directory yet. \
                     Ask your administrator, or try again after the next sync.",
                p.cfg.display_name
            )))
        }
        Err(e) => {
            tracing::warn!(error = %e, "login: directory lookup failed");
            Err(failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "The directory is not reachable right now. Try again in a minute.",
            ))
        }
    }
}

// ---------- DingTalk callback ----------

#[derive(Deserialize)]
struct CallbackParams {
    #[serde(default, rename = "authCode")]
    auth_code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

async fn callback(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Response {
    let expired = || {
        page(
            StatusCode::BAD_REQUEST,
            "error",
            "登录已失效 Login expired",
            "This login link is invalid, expired or was started in another browser. \
             Start again from the application.",
        )
    };
    let Some(inner) = q
        .state
        .as_deref()
        .and_then(|s| p.keys().open("login-state", s).ok())
    else {
        return expired();
    };
    if inner["exp"]
        .as_i64()
        .is_none_or(|e| e <= p.now().as_second())
        || cookie_value(&headers, LOGIN_COOKIE).as_deref() != inner["b"].as_str()
    {
        return expired();
    }
    let pending: Option<Pending> = serde_json::from_value(inner["pending"].clone()).ok();
    if let Some(err) = q.error.as_deref() {
        tracing::info!(error = err, "login: DingTalk login not completed");
        return match pending {
            Some(pd) => redirect_error(
                &p,
                &pd.r,
                "access_denied",
                "the DingTalk login was cancelled",
                pd.s.as_deref(),
            ),
            None => page(
                StatusCode::FORBIDDEN,
                "refused",
                "已取消 Cancelled",
                "The DingTalk login was cancelled.",
            ),
        };
    }
    let Some(code) = q.auth_code.as_deref().filter(|c| !c.is_empty()) else {
        return expired();
    };
    let identity = match p.dingtalk.login(code).await {
        Ok(i) => i,
        Err(DingTalkError::NotInEnterprise { .. }) => {
            tracing::info!("login refused: not a member of the enterprise");
            return refused(&format!(
                "Your DingTalk account is not a member of {}. Only its members can log in here.",
                p.cfg.display_name
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "login: DingTalk exchange failed");
            return failed(
                StatusCode::BAD_GATEWAY,
                "DingTalk did not confirm the login. Start again from the application.",
            );
        }
    };
    let now = p.now().as_second();
    match (pending, inner["workbench"].as_str()) {
        (Some(pd), _) => finish(&p, pd, &identity.userid, now, true).await,
        (None, Some(client_id)) => workbench_landing(&p, client_id, &identity.userid, now).await,
        (None, None) if inner["account"] == true => account_return(&p, &identity.userid, now),
        (None, None) => expired(),
    }
}

// ---------- session ----------

/// Checks the account, sets the session (`at` > 0: a fresh DingTalk login) and sends the
/// browser to the app's homepage.
pub(super) async fn workbench_landing(
    p: &Provider,
    client_id: &str,
    userid: &str,
    at: i64,
) -> Response {
    let Some(home) = p.client(client_id).and_then(|c| c.homepage) else {
        return failed(StatusCode::BAD_REQUEST, "Unknown application.");
    };
    if let Err(r) = refused_or_claims(p, userid).await {
        return r;
    }
    let mut r = Redirect::to(&home).into_response();
    no_store(r.headers_mut());
    if at > 0
        && let Err(e) = start_session(p, &mut r, userid, at)
    {
        return internal(e);
    }
    r
}

/// Sets the SSO session cookie: who logged in with DingTalk, and when.
pub(super) fn start_session(
    p: &Provider,
    r: &mut Response,
    userid: &str,
    auth_time: i64,
) -> Result<(), LoginError> {
    let now = p.now();
    let sealed = p.keys().seal(
        now,
        "session",
        &json!({"u": userid, "exp": (now + p.cfg.session_ttl).as_second(), "at": auth_time}),
    )?;
    r.headers_mut().append(
        header::SET_COOKIE,
        p.cookie(SESSION_COOKIE, &sealed, p.cfg.session_ttl),
    );
    Ok(())
}
