//! The shared core: one cached app token (a single refresh in flight), a per-API rate limiter
//! shared by every user of the app, and the call loop that retries what DingTalk says is
//! transient (with exponential backoff and jitter) and hands back typed errors for the rest.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    config::{ClientConfig, Secret, TokenApi},
    error::{DingTalkError, Verdict, classify_api, classify_oapi},
};

/// Calls are spaced a little under the limit: DingTalk counts in one-second windows, and a
/// call arriving a few milliseconds early would be the 21st of a window.
const QUOTA_MARGIN: f64 = 0.97;
/// Refreshes allowed within one call when DingTalk keeps refusing fresh tokens.
const MAX_TOKEN_REFRESHES: u32 = 2;

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    expires: Instant,
}

/// What the client did so far (all users of the app together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// HTTP calls sent, by API path (retries included).
    pub calls: HashMap<String, u64>,
    /// Answers that were DingTalk's QPS limit.
    pub throttled: u64,
    /// Attempts repeated after a transient failure.
    pub retries: u64,
    /// App tokens obtained.
    pub tokens_issued: u64,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: reqwest::Client,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    limiter: DefaultKeyedRateLimiter<String>,
    calls: std::sync::Mutex<HashMap<String, u64>>,
    throttled: AtomicU64,
    /// Throttled answers by API path.
    throttles: std::sync::Mutex<HashMap<String, u64>>,
    retries: AtomicU64,
    tokens_issued: AtomicU64,
}

/// A DingTalk client for one app. Cheap to clone; clones share the token, the limiter and
/// the counters, so every part of dingsync using the app stays within one quota.
#[derive(Clone)]
pub struct DingTalkClient(pub(crate) Arc<Inner>);

impl std::fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkClient")
            .field("corp_id", &self.0.config.corp_id)
            .field("app_key", &self.0.config.app_key)
            .field("oapi", &self.0.config.oapi_base)
            .finish_non_exhaustive()
    }
}

/// Which host and token convention a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Host {
    /// `oapi`: token in `?access_token=`, errcode envelope.
    Oapi,
    /// `/v1.0`: token in the `x-acs-dingtalk-access-token` header, HTTP status errors.
    Api,
}

/// The token a call carries.
pub(crate) enum Auth<'a> {
    /// The app's own token (refreshed and retried when refused).
    App,
    /// A user's token (OAuth); a refusal is the caller's problem.
    User(&'a Secret),
    /// No token (the token APIs themselves, the Stream gateway).
    None,
}

/// One client per app and configuration: everything that uses the app (every target of a
/// binding, its event stream, its logins) shares the client's token and per-API quota, so
/// together they stay within DingTalk's limit. A changed secret or setting gets a fresh
/// client; clients nobody holds any more are dropped. The controller keeps one pool in its
/// context; a command keeps its own.
#[derive(Default)]
pub struct ClientPool(Mutex<HashMap<String, std::sync::Weak<Inner>>>);

impl ClientPool {
    /// The pool's client for this configuration, made if there is none.
    pub fn client(&self, config: ClientConfig) -> DingTalkClient {
        use sha2::Digest;
        // The Debug form never shows the secret; its digest tells a rotated one apart.
        let secret = sha2::Sha256::digest(config.app_secret.expose().as_bytes());
        let key = format!("{config:?}|{}", hex::encode(secret));
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(inner) = map.get(&key).and_then(std::sync::Weak::upgrade) {
            return DingTalkClient(inner);
        }
        let client = DingTalkClient::new(config);
        map.insert(key, Arc::downgrade(&client.0));
        client
    }

    /// The pool's clients someone still holds.
    pub fn clients(&self) -> Vec<DingTalkClient> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .filter_map(std::sync::Weak::upgrade)
            .map(DingTalkClient)
            .collect()
    }
}

impl DingTalkClient {
    pub fn new(config: ClientConfig) -> Self {
        let per_second = f64::from(config.per_api_per_second.max(1)) * QUOTA_MARGIN;
        // Burst 1: evenly spaced calls, never a burst at a window's edge.
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / per_second))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .unwrap_or_default();
        Self(Arc::new(Inner {
            config,
            http,
            token: tokio::sync::Mutex::new(None),
            limiter: RateLimiter::keyed(quota),
            calls: Default::default(),
            throttled: AtomicU64::new(0),
            throttles: Default::default(),
            retries: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
        }))
    }

    pub fn config(&self) -> &ClientConfig {
        &self.0.config
    }

    /// Calls sent so far, by API path.
    pub fn calls(&self) -> HashMap<String, u64> {
        self.0.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Answers that were DingTalk's QPS limit so far, by API path.
    pub fn throttles(&self) -> HashMap<String, u64> {
        self.0
            .throttles
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn stats(&self) -> CallStats {
        CallStats {
            calls: self.calls(),
            throttled: self.0.throttled.load(Ordering::Relaxed),
            retries: self.0.retries.load(Ordering::Relaxed),
            tokens_issued: self.0.tokens_issued.load(Ordering::Relaxed),
        }
    }

    /// A valid app token: the cached one, or a new one. One refresh at a time; concurrent
    /// callers wait for it and share its result.
    pub async fn token(&self) -> Result<Secret, DingTalkError> {
        let mut guard = self.0.token.lock().await;
        if let Some(t) = guard.as_ref()
            && t.expires > Instant::now() + self.0.config.token_refresh_margin
        {
            return Ok(t.token.clone());
        }
        // Boxed: fetching goes through `call`, which asks for tokens itself.
        let (token, ttl) = Box::pin(self.fetch_token()).await?;
        self.0.tokens_issued.fetch_add(1, Ordering::Relaxed);
        // A token shorter-lived than the margin is still used (once) rather than refetched
        // on every call.
        let ttl = ttl.max(self.0.config.token_refresh_margin + Duration::from_secs(1));
        *guard = Some(CachedToken {
            token: token.clone(),
            expires: Instant::now() + ttl,
        });
        Ok(token)
    }

    /// Drop the cached token if it is still `bad` (another caller may have refreshed it).
    pub(crate) async fn forget_token(&self, bad: &Secret) {
        let mut guard = self.0.token.lock().await;
        if guard.as_ref().is_some_and(|t| &t.token == bad) {
            *guard = None;
        }
    }

    async fn fetch_token(&self) -> Result<(Secret, Duration), DingTalkError> {
        let c = &self.0.config;
        if let Some(suite) = &c.suite {
            return Ok(self.fetch_corp_token(suite).await?);
        }
        match c.token_api {
            TokenApi::Legacy => {
                let query = [
                    ("appkey", c.app_key.as_str()),
                    ("appsecret", c.app_secret.expose()),
                ];
                let body = self
                    .call(
                        Host::Oapi,
                        Method::GET,
                        "/gettoken",
                        &query,
                        None,
                        Auth::None,
                    )
                    .await?;
                let token = body
                    .get("access_token")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| DingTalkError::decode("/gettoken", "no access_token"))?;
                let ttl = body.get("expires_in").and_then(as_u64).unwrap_or(7200);
                Ok((Secret::new(token), Duration::from_secs(ttl)))
            }
            TokenApi::OAuth2 => {
                let api = "/v1.0/oauth2/accessToken";
                let req = json!({"appKey": c.app_key, "appSecret": c.app_secret.expose()});
                let body = self
                    .call(Host::Api, Method::POST, api, &[], Some(&req), Auth::None)
                    .await?;
                let token = body
                    .get("accessToken")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| DingTalkError::decode(api, "no accessToken"))?;
                let ttl = body.get("expireIn").and_then(as_u64).unwrap_or(7200);
                Ok((Secret::new(token), Duration::from_secs(ttl)))
            }
        }
    }

    /// POST an oapi call (`/topapi/...`) with the app token; returns the whole envelope.
    pub async fn oapi_envelope(&self, api: &str, body: &Value) -> Result<Value, DingTalkError> {
        self.call(Host::Oapi, Method::POST, api, &[], Some(body), Auth::App)
            .await
    }

    /// POST an oapi call (`/topapi/...`) with the app token; returns `result`.
    pub async fn oapi(&self, api: &str, body: &Value) -> Result<Value, DingTalkError> {
        let mut env = self.oapi_envelope(api, body).await?;
        Ok(env
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// One logical call: rate limit, send, classify, retry transient failures, refresh the
    /// token when DingTalk refuses it.
    pub(crate) async fn call(
        &self,
        host: Host,
        method: Method,
        api: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        auth: Auth<'_>,
    ) -> Result<Value, DingTalkError> {
        let c = &self.0.config;
        let base = match host {
            Host::Oapi => &c.oapi_base,
            Host::Api => &c.api_base,
        };
        let url = format!("{base}{api}");
        let attempts = c.attempts.max(1);
        let mut delay = c.backoff_base;
        let mut refreshes = 0;
        let mut attempt = 0;
        let mut last = String::new();
        let key = api.to_string();
        while attempt < attempts {
            attempt += 1;
            let app_token = match auth {
                Auth::App => Some(self.token().await?),
                _ => None,
            };
            self.0.limiter.until_key_ready(&key).await;
            if let Ok(mut calls) = self.0.calls.lock() {
                *calls.entry(key.clone()).or_default() += 1;
            }
            let token = match &auth {
                Auth::User(t) => Some(*t),
                _ => app_token.as_ref(),
            };
            let req = self.request(host, method.clone(), &url, query, body, token);
            let verdict = send(req, host, api, matches!(auth, Auth::App)).await;
            match verdict {
                Verdict::Ok(v) => return Ok(v),
                Verdict::TokenInvalid if refreshes < MAX_TOKEN_REFRESHES => {
                    refreshes += 1;
                    // A refused token does not use up an attempt: refresh and go again.
                    attempt -= 1;
                    tracing::debug!(api, "DingTalk refused the app token; refreshing it");
                    if let Some(t) = &app_token {
                        self.forget_token(t).await;
                    }
                    continue;
                }
                Verdict::TokenInvalid => {
                    return Err(DingTalkError::Unavailable {
                        api: api.into(),
                        attempts: attempt,
                        message: "DingTalk refused freshly issued tokens".into(),
                    });
                }
                Verdict::Retry { why, throttled } => {
                    if throttled {
                        self.0.throttled.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut by_api) = self.0.throttles.lock() {
                            *by_api.entry(key.clone()).or_default() += 1;
                        }
                        // DingTalk's documented remedy: its window is one second, wait it out.
                        delay = delay.max(Duration::from_secs(1));
                    }
                    tracing::debug!(api, attempt, why = %why, "transient DingTalk failure");
                    last = why;
                }
                Verdict::Fail(e) => return Err(e),
            }
            if attempt < attempts {
                self.0.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(c.backoff_max.max(c.backoff_base));
            }
        }
        Err(DingTalkError::Unavailable {
            api: api.into(),
            attempts,
            message: last,
        })
    }

    /// One HTTP request of a call, carrying `token` where the host expects it.
    fn request(
        &self,
        host: Host,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: Option<&Secret>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.0.http.request(method, url);
        if !query.is_empty() {
            req = req.query(query);
        }
        match (host, token) {
            (Host::Oapi, Some(t)) => req = req.query(&[("access_token", t.expose())]),
            (Host::Api, Some(t)) => req = req.header("x-acs-dingtalk-access-token", t.expose()),
            (_, None) => {}
        }
        if host == Host::Api {
            req = req.header(reqwest::header::ACCEPT, "application/json");
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req
    }

    /// A `/v1.0` call with the app token.
    pub async fn api(
        &self,
        method: Method,
        api: &str,
        body: Option<&Value>,
    ) -> Result<Value, DingTalkError> {
        self.call(Host::Api, method, api, &[], body, Auth::App)
            .await
    }
}

/// Sends one request and says what its answer means; `app_token` tells whether a refused
/// token is the app's own (refreshable) one.
async fn send(req: reqwest::RequestBuilder, host: Host, api: &str, app_token: bool) -> Verdict {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let parsed = match resp.bytes().await {
                Ok(bytes) if bytes.is_empty() => None,
                Ok(bytes) => serde_json::from_slice::<Value>(&bytes).ok(),
                Err(_) => None,
            };
            match host {
                Host::Oapi => classify_oapi(api, status, parsed),
                Host::Api => classify_api(api, status, parsed, app_token),
            }
        }
        // Never format the reqwest error itself: its URL may carry the token.
        Err(e) => Verdict::Retry {
            why: if e.is_timeout() {
                "timed out".into()
            } else if e.is_connect() {
                "connection failed".into()
            } else {
                "request failed".into()
            },
            throttled: false,
        },
    }
}

/// Half to the full delay, so retries of many callers spread out.
pub(crate) fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::random_range(0..=ms / 2 + 1))
}

/// Numbers DingTalk may send as strings.
pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(400));
            assert!(j >= Duration::from_millis(200) && j <= Duration::from_millis(401));
        }
    }

    #[test]
    fn limiter_is_per_api() {
        let c = DingTalkClient::new(ClientConfig::new("c", "k", Secret::default()));
        let (a, b) = ("/a".to_string(), "/b".to_string());
        assert!(c.0.limiter.check_key(&a).is_ok());
        // The next call to the same API has to wait for its slot...
        assert!(c.0.limiter.check_key(&a).is_err());
        // ...while another API has its own budget.
        assert!(c.0.limiter.check_key(&b).is_ok());
    }

    #[test]
    fn one_client_per_app_and_configuration() {
        let config = |secret: &str| {
            ClientConfig::new("corp", "shared-key", Secret::new(secret))
                .with_base("http://127.0.0.1:9")
        };
        let pool = ClientPool::default();
        let a = pool.client(config("s1"));
        let b = pool.client(config("s1"));
        assert!(Arc::ptr_eq(&a.0, &b.0), "same app: one token, one quota");
        let rotated = pool.client(config("s2"));
        assert!(
            !Arc::ptr_eq(&a.0, &rotated.0),
            "a rotated secret gets a fresh client"
        );
        let mut faster = config("s1");
        faster.per_api_per_second = 40;
        assert!(!Arc::ptr_eq(&a.0, &pool.client(faster).0));
        let other = ClientPool::default();
        assert!(
            !Arc::ptr_eq(&a.0, &other.client(config("s1")).0),
            "pools share nothing"
        );
    }
}
