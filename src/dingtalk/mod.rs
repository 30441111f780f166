//! DingTalk server API client: one cached token per app (a single refresh in flight), a
//! per-API rate limiter shared by everything that uses the app, retries for what DingTalk says
//! is transient, typed errors for what is not, and the address-book reads a sync needs with the
//! fewest calls the API allows.

pub mod callback;

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::FuturesUnordered};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::{Value, json};

/// DingTalk's mainland hosts.
pub const DEFAULT_OAPI: &str = "https://oapi.dingtalk.com";
pub const DEFAULT_API: &str = "https://api.dingtalk.com";
pub const DEFAULT_LOGIN: &str = "https://login.dingtalk.com";

/// A secret that never prints.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How to reach one app of one enterprise.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub corp_id: String,
    pub app_key: String,
    pub app_secret: Secret,
    pub oapi_base: String,
    pub api_base: String,
    pub login_base: String,
    /// Calls per second allowed per API (DingTalk: 20 on the standard edition).
    pub per_api_per_second: u32,
    pub timeout: Duration,
    /// Attempts for a transient failure.
    pub attempts: u32,
}

impl ClientConfig {
    pub fn new(corp_id: &str, app_key: &str, app_secret: Secret) -> Self {
        Self {
            corp_id: corp_id.into(),
            app_key: app_key.into(),
            app_secret,
            oapi_base: DEFAULT_OAPI.into(),
            api_base: DEFAULT_API.into(),
            login_base: DEFAULT_LOGIN.into(),
            per_api_per_second: 20,
            timeout: Duration::from_secs(10),
            attempts: 5,
        }
    }

    /// Point every base URL at one host (the simulator serves them all on one port).
    pub fn with_base(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/').to_string();
        self.oapi_base = base.clone();
        self.api_base = base.clone();
        self.login_base = base;
        self
    }
}

/// What went wrong calling DingTalk.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DingTalkError {
    /// The AppKey/AppSecret were refused.
    #[error("DingTalk refused the app credentials (errcode {errcode}): {message}")]
    InvalidCredentials { errcode: i64, message: String },
    /// The app lacks a permission or the object is outside its contact scope.
    #[error("DingTalk denied {api} (errcode {errcode}): {message}")]
    Denied {
        api: String,
        errcode: i64,
        message: String,
    },
    /// The object does not exist (department 60003, user 60121).
    #[error("{api}: not found (errcode {errcode})")]
    NotFound { api: String, errcode: i64 },
    /// A parameter was refused; names the API and what DingTalk said.
    #[error("{api} refused the request (errcode {errcode}): {message}")]
    Invalid {
        api: String,
        errcode: i64,
        message: String,
    },
    /// Still failing after retries: throttling, busy, 5xx, network.
    #[error("{api} unavailable after {attempts} attempts: {message}")]
    Unavailable {
        api: String,
        attempts: u32,
        message: String,
    },
}

impl DingTalkError {
    pub fn is_transient(&self) -> bool {
        matches!(self, DingTalkError::Unavailable { .. })
    }
}

/// Classification of one oapi answer.
#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    TokenInvalid,
    Retry(String),
    Fail(DingTalkError),
}

fn classify(api: &str, body: &Value) -> Verdict {
    let errcode = body["errcode"].as_i64().unwrap_or(-1);
    let msg = body["errmsg"].as_str().unwrap_or_default().to_string();
    let sub = body["sub_code"].as_str().unwrap_or_default();
    match errcode {
        0 => Verdict::Ok,
        40014 | 42001 | 40001 | 33001 | 41001 => Verdict::TokenInvalid,
        88 if matches!(sub, "40014" | "42001" | "40001" | "33001" | "40000") => {
            Verdict::TokenInvalid
        }
        // 88 with an empty sub_code: the auth service itself timed out.
        88 if sub.is_empty() => Verdict::Retry("errcode 88 without sub_code".into()),
        88 if sub == "60011" => Verdict::Fail(DingTalkError::Denied {
            api: api.into(),
            errcode: 60011,
            message: body["sub_msg"].as_str().unwrap_or_default().into(),
        }),
        -1 | 15 | 90018 | 90002 => Verdict::Retry(format!("errcode {errcode}: {msg}")),
        60011 | 50002 | 50004 | 60020 | 43007 => Verdict::Fail(DingTalkError::Denied {
            api: api.into(),
            errcode,
            message: msg,
        }),
        60003 | 60121 | 60111 | 33012 => Verdict::Fail(DingTalkError::NotFound {
            api: api.into(),
            errcode,
        }),
        40096 | 40089 => Verdict::Fail(DingTalkError::InvalidCredentials {
            errcode,
            message: msg,
        }),
        _ => Verdict::Fail(DingTalkError::Invalid {
            api: api.into(),
            errcode,
            message: if msg.is_empty() {
                body["sub_msg"].as_str().unwrap_or_default().into()
            } else {
                msg
            },
        }),
    }
}

/// A department as `listsub` returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Department {
    pub dept_id: i64,
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<i64>,
    #[serde(default)]
    pub order: Option<i64>,
    #[serde(default)]
    pub source_identifier: Option<String>,
}

/// The whole scope of a binding, read once.
#[derive(Debug, Clone, Default)]
pub struct ScopeRead {
    pub departments: Vec<Department>,
    /// Users as DingTalk returns them (all fields kept), deduplicated by userid.
    pub users: Vec<Value>,
    /// Empty when the read was complete; otherwise what failed.
    pub errors: Vec<String>,
    /// Calls made, by API.
    pub calls: HashMap<String, u64>,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    limiter: DefaultKeyedRateLimiter<String>,
    calls: std::sync::Mutex<HashMap<String, u64>>,
}

/// A DingTalk client for one app; clones share the token, the limiter and the counters.
#[derive(Clone)]
pub struct DingTalkClient(Arc<Inner>);

impl std::fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkClient")
            .field("corp_id", &self.0.config.corp_id)
            .field("oapi", &self.0.config.oapi_base)
            .finish()
    }
}

impl DingTalkClient {
    pub fn new(config: ClientConfig) -> Self {
        // Evenly spaced calls a little under the limit: DingTalk counts per one-second window,
        // and a burst at the window's edge would trip 90018.
        let per_second = f64::from(config.per_api_per_second.max(1)) * 0.97;
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / per_second))
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(1).expect("1 is not zero"));
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .expect("an HTTP client");
        Self(Arc::new(Inner {
            config,
            http,
            token: tokio::sync::Mutex::new(None),
            limiter: RateLimiter::keyed(quota),
            calls: Default::default(),
        }))
    }

    pub fn config(&self) -> &ClientConfig {
        &self.0.config
    }

    /// Calls made so far, by API.
    pub fn calls(&self) -> HashMap<String, u64> {
        self.0.calls.lock().expect("calls").clone()
    }

    /// A valid token: the cached one, or a new one (one refresh at a time; callers wait).
    pub async fn token(&self) -> Result<String, DingTalkError> {
        let mut guard = self.0.token.lock().await;
        if let Some((t, exp)) = guard.as_ref() {
            // Refresh five minutes early so no call starts with a token about to expire.
            if *exp > Instant::now() + Duration::from_secs(300) {
                return Ok(t.clone());
            }
        }
        let c = &self.0.config;
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for _ in 0..c.attempts {
            let resp = self
                .0
                .http
                .get(format!("{}/gettoken", c.oapi_base))
                .query(&[
                    ("appkey", c.app_key.as_str()),
                    ("appsecret", c.app_secret.expose()),
                ])
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {
                    let body: Value = r.json().await.unwrap_or_default();
                    match body["errcode"].as_i64() {
                        Some(0) => {
                            let t = body["access_token"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string();
                            let ttl = body["expires_in"].as_u64().unwrap_or(7200);
                            *guard = Some((t.clone(), Instant::now() + Duration::from_secs(ttl)));
                            return Ok(t);
                        }
                        Some(-1 | 15 | 90018) => last = format!("errcode {}", body["errcode"]),
                        _ => {
                            return Err(DingTalkError::InvalidCredentials {
                                errcode: body["errcode"].as_i64().unwrap_or(-1),
                                message: body["errmsg"].as_str().unwrap_or_default().into(),
                            });
                        }
                    }
                }
                Ok(r) => last = format!("HTTP {}", r.status()),
                // The URL carries the secret: keep only the kind of failure.
                Err(e) => {
                    last = if e.is_timeout() {
                        "timed out".into()
                    } else {
                        "connection failed".into()
                    }
                }
            }
            tokio::time::sleep(jitter(delay)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(DingTalkError::Unavailable {
            api: "/gettoken".into(),
            attempts: c.attempts,
            message: last,
        })
    }

    async fn forget_token(&self, bad: &str) {
        let mut guard = self.0.token.lock().await;
        if guard.as_ref().is_some_and(|(t, _)| t == bad) {
            *guard = None;
        }
    }

    /// POST an oapi call (`/topapi/...`) with retries; returns `result`.
    pub async fn oapi(&self, api: &str, body: &Value) -> Result<Value, DingTalkError> {
        let c = &self.0.config;
        let mut delay = Duration::from_millis(300);
        let mut last = String::new();
        let mut refreshed = false;
        let mut attempt = 0;
        while attempt < c.attempts {
            attempt += 1;
            let token = self.token().await?;
            self.0.limiter.until_key_ready(&api.to_string()).await;
            *self
                .0
                .calls
                .lock()
                .expect("calls")
                .entry(api.to_string())
                .or_default() += 1;
            let resp = self
                .0
                .http
                .post(format!("{}{api}", c.oapi_base))
                .query(&[("access_token", token.as_str())])
                .json(body)
                .send()
                .await;
            let body = match resp {
                Ok(r) if r.status().is_server_error() => {
                    last = format!("HTTP {}", r.status());
                    None
                }
                Ok(r) => match r.json::<Value>().await {
                    Ok(v) => Some(v),
                    Err(_) => {
                        last = "answer is not JSON".into();
                        None
                    }
                },
                Err(e) => {
                    last = if e.is_timeout() {
                        "timed out".into()
                    } else {
                        "connection failed".into()
                    };
                    None
                }
            };
            if let Some(body) = body {
                match classify(api, &body) {
                    Verdict::Ok => return Ok(body["result"].clone()),
                    Verdict::TokenInvalid if !refreshed => {
                        // Refresh once and retry at once; this attempt does not count.
                        refreshed = true;
                        attempt -= 1;
                        self.forget_token(&token).await;
                        continue;
                    }
                    Verdict::TokenInvalid => last = "access token refused after refresh".into(),
                    Verdict::Retry(why) => {
                        if why.contains("90018") {
                            // DingTalk's remedy for its one-second window: wait it out.
                            delay = delay.max(Duration::from_secs(1));
                        }
                        last = why;
                    }
                    Verdict::Fail(e) => return Err(e),
                }
            }
            if attempt < c.attempts {
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
        }
        Err(DingTalkError::Unavailable {
            api: api.into(),
            attempts: c.attempts,
            message: last,
        })
    }

    /// Direct sub-departments (with their names) of `dept_id`.
    pub async fn list_sub_departments(
        &self,
        dept_id: i64,
    ) -> Result<Vec<Department>, DingTalkError> {
        let v = self
            .oapi(
                "/topapi/v2/department/listsub",
                &json!({"dept_id": dept_id}),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| DingTalkError::Invalid {
            api: "/topapi/v2/department/listsub".into(),
            errcode: 0,
            message: format!("unreadable answer: {e}"),
        })
    }

    /// One department's details.
    pub async fn get_department(&self, dept_id: i64) -> Result<Department, DingTalkError> {
        let v = self
            .oapi("/topapi/v2/department/get", &json!({"dept_id": dept_id}))
            .await?;
        serde_json::from_value(v).map_err(|e| DingTalkError::Invalid {
            api: "/topapi/v2/department/get".into(),
            errcode: 0,
            message: format!("unreadable answer: {e}"),
        })
    }

    /// Every direct member of `dept_id`, following the cursor 100 at a time.
    pub async fn list_users(&self, dept_id: i64) -> Result<Vec<Value>, DingTalkError> {
        let mut out = vec![];
        let mut cursor = 0i64;
        loop {
            let v = self
                .oapi(
                    "/topapi/v2/user/list",
                    &json!({"dept_id": dept_id, "cursor": cursor, "size": 100}),
                )
                .await?;
            if let Some(list) = v["list"].as_array() {
                out.extend(list.iter().cloned());
            }
            match (v["has_more"].as_bool(), v["next_cursor"].as_i64()) {
                (Some(true), Some(next)) if next > cursor => cursor = next,
                _ => break,
            }
        }
        Ok(out)
    }

    /// One user's details.
    pub async fn get_user(&self, userid: &str) -> Result<Value, DingTalkError> {
        self.oapi("/topapi/v2/user/get", &json!({"userid": userid}))
            .await
    }

    /// Read the whole scope under `roots`: one `listsub` per department and one `user/list`
    /// page per 100 direct members, the department walk and the user listing running side by
    /// side, each at its own quota. Failures are collected, never hidden: the result says the
    /// read was incomplete and a sync then disables nothing.
    pub async fn read_scope(&self, roots: &[i64]) -> ScopeRead {
        let mut out = ScopeRead::default();
        let mut seen_users: HashSet<String> = HashSet::new();
        let mut seen_depts: HashSet<i64> = HashSet::new();
        type Walk =
            futures::future::BoxFuture<'static, (i64, Result<Vec<Department>, DingTalkError>)>;
        type List = futures::future::BoxFuture<'static, (i64, Result<Vec<Value>, DingTalkError>)>;
        let walk = |me: DingTalkClient, id: i64| -> Walk {
            Box::pin(async move { (id, me.list_sub_departments(id).await) })
        };
        let list = |me: DingTalkClient, id: i64| -> List {
            Box::pin(async move { (id, me.list_users(id).await) })
        };
        let mut walks: FuturesUnordered<Walk> = FuturesUnordered::new();
        let mut lists: FuturesUnordered<List> = FuturesUnordered::new();
        for &root in roots {
            if !seen_depts.insert(root) {
                continue;
            }
            // The root's own name needs one department/get (listsub only names children).
            match self.get_department(root).await {
                Ok(mut d) => {
                    d.parent_id = None;
                    out.departments.push(d);
                }
                Err(e) => out.errors.push(format!("department {root}: {e}")),
            }
            walks.push(walk(self.clone(), root));
            lists.push(list(self.clone(), root));
        }
        while !walks.is_empty() || !lists.is_empty() {
            tokio::select! {
                Some((parent, r)) = walks.next(), if !walks.is_empty() => match r {
                    Ok(children) => {
                        for mut d in children {
                            if !seen_depts.insert(d.dept_id) {
                                continue;
                            }
                            d.parent_id = Some(parent);
                            let id = d.dept_id;
                            out.departments.push(d);
                            walks.push(walk(self.clone(), id));
                            lists.push(list(self.clone(), id));
                        }
                    }
                    Err(e) => out.errors.push(format!("sub-departments of {parent}: {e}")),
                },
                Some((dept, r)) = lists.next(), if !lists.is_empty() => match r {
                    Ok(users) => {
                        for u in users {
                            let id = u["userid"].as_str().unwrap_or_default().to_string();
                            if !id.is_empty() && seen_users.insert(id) {
                                out.users.push(u);
                            }
                        }
                    }
                    Err(e) => out.errors.push(format!("members of department {dept}: {e}")),
                },
            }
        }
        out.calls = self.calls();
        out
    }
}

fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::random_range(0..=ms / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_dingtalk_answers() {
        let api = "/topapi/v2/user/list";
        assert_eq!(classify(api, &json!({"errcode": 0})), Verdict::Ok);
        assert_eq!(
            classify(api, &json!({"errcode": 88, "sub_code": "40014"})),
            Verdict::TokenInvalid
        );
        assert_eq!(
            classify(api, &json!({"errcode": 42001})),
            Verdict::TokenInvalid
        );
        assert!(matches!(
            classify(api, &json!({"errcode": 90018})),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            classify(api, &json!({"errcode": 88, "sub_code": ""})),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            classify(api, &json!({"errcode": -1})),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            classify(api, &json!({"errcode": 50004, "errmsg": "x"})),
            Verdict::Fail(DingTalkError::Denied { errcode: 50004, .. })
        ));
        assert!(matches!(
            classify(api, &json!({"errcode": 88, "sub_code": "60011"})),
            Verdict::Fail(DingTalkError::Denied { errcode: 60011, .. })
        ));
        assert!(matches!(
            classify(api, &json!({"errcode": 40035, "errmsg": "bad size"})),
            Verdict::Fail(DingTalkError::Invalid { errcode: 40035, .. })
        ));
    }

    #[test]
    fn secrets_never_print() {
        let c = ClientConfig::new("corp", "key", Secret::new("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
