//! A SCIM 2.0 (RFC 7643/7644) HTTP client: discovery, paged filtered reads, writes with ETags.
//!
//! It speaks the protocol only; mapping dingsync entries to SCIM resources lives in `mod.rs`.
//! Servers differ, so nothing is assumed that `ServiceProviderConfig` does not promise: no PATCH
//! means PUT, no ETag support means no `If-Match`, and both 200-with-body and 204 are accepted.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

/// Media type of SCIM requests and responses.
const SCIM_JSON: &str = "application/scim+json";
/// Page size asked for when listing; servers may return fewer.
const PAGE_SIZE: usize = 500;
/// Attempts for a transient failure (5xx, 429, connection error, timeout).
const ATTEMPTS: u32 = 4;

/// The bearer token; never printed.
pub type BearerToken = crate::secret::Secret;

/// What went wrong talking to a SCIM server.
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// 401: the token is wrong or expired; the whole target is affected.
    #[error("SCIM server refused the bearer token (HTTP 401): {detail}")]
    Unauthorized { detail: String },
    /// 403: the token lacks a permission.
    #[error("SCIM server denied {what} (HTTP 403): {detail}")]
    Forbidden { what: String, detail: String },
    /// A 4xx about one object: names the SCIM error type and detail.
    #[error("SCIM server rejected {what} (HTTP {status}{}): {detail}", scim_type.as_ref().map(|t| format!(", scimType {t}")).unwrap_or_default())]
    Rejected {
        what: String,
        status: u16,
        scim_type: Option<String>,
        detail: String,
    },
    /// 404 on a resource that was expected to exist.
    #[error("SCIM resource not found: {what}")]
    NotFound { what: String },
    /// 412: the resource changed since it was read.
    #[error("SCIM resource changed since it was read: {what}")]
    PreconditionFailed { what: String },
    /// 5xx, 429, timeouts and connection errors, after retries.
    #[error("SCIM server unavailable for {what}: {detail}")]
    Unavailable { what: String, detail: String },
    /// The answer was not the SCIM JSON it should be.
    #[error("SCIM server sent an unreadable answer for {what}: {detail}")]
    BadResponse {
        what: String,
        detail: String,
        /// Why the JSON did not parse, when it did not.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The client could not be set up: `setting` (the URL, the CA bundle) is unusable.
    #[error("SCIM client configuration: {setting}: {source}")]
    Config {
        setting: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ScimError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ScimError::Unavailable { .. })
    }
}

/// What the server says it supports (`/ServiceProviderConfig`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    pub patch: bool,
    pub etag: bool,
    pub bulk: bool,
    pub bulk_max_operations: usize,
    pub filter: bool,
    pub filter_max_results: usize,
    /// `changePassword`: a `password` may be set by PATCH (account self-service uses it).
    pub change_password: bool,
}

impl Capabilities {
    /// What a `ServiceProviderConfig` body offers; anything it does not say is unsupported.
    pub fn from_config(body: &Value) -> Self {
        let flag = |k: &str| body[k]["supported"].as_bool().unwrap_or(false);
        Capabilities {
            patch: flag("patch"),
            etag: flag("etag"),
            bulk: flag("bulk"),
            bulk_max_operations: body["bulk"]["maxOperations"].as_u64().unwrap_or(0) as usize,
            filter: flag("filter"),
            filter_max_results: body["filter"]["maxResults"].as_u64().unwrap_or(0) as usize,
            change_password: flag("changePassword"),
        }
    }
}

/// One resource as read, with its ETag if the server gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: String,
    pub etag: Option<String>,
    pub body: Value,
}

/// One PATCH operation (RFC 7644 §3.5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: &'static str,
    pub path: Option<String>,
    pub value: Option<Value>,
}

impl PatchOp {
    pub fn replace(path: impl Into<String>, value: Value) -> Self {
        Self {
            op: "replace",
            path: Some(path.into()),
            value: Some(value),
        }
    }
    pub fn add(path: impl Into<String>, value: Value) -> Self {
        Self {
            op: "add",
            path: Some(path.into()),
            value: Some(value),
        }
    }
    pub fn remove(path: impl Into<String>) -> Self {
        Self {
            op: "remove",
            path: Some(path.into()),
            value: None,
        }
    }
    fn to_json(&self) -> Value {
        let mut v = json!({ "op": self.op });
        if let Some(p) = &self.path {
            v["path"] = json!(p);
        }
        if let Some(val) = &self.value {
            v["value"] = val.clone();
        }
        v
    }
}

/// A SCIM client for one service provider.
#[derive(Clone, Debug)]
pub struct ScimClient {
    http: reqwest::Client,
    base: String,
    token: BearerToken,
    caps: Capabilities,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(rename = "totalResults", default)]
    total_results: usize,
    #[serde(rename = "Resources", default)]
    resources: Vec<Value>,
}

impl ScimClient {
    /// Connect: build the HTTP client (with an optional PEM CA bundle) and read the server's
    /// capabilities once.
    pub async fn connect(
        base_url: &str,
        token: BearerToken,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ScimError> {
        let base = base_url.trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|e| ScimError::Config {
            setting: format!("scim.url {base:?}"),
            source: e.into(),
        })?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10));
        if let Some(pem) = ca_pem {
            for cert in
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ScimError::Config {
                    setting: "scim.caSecretRef: not a PEM bundle".into(),
                    source: e.into(),
                })?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| ScimError::Config {
            setting: "HTTP client".into(),
            source: e.into(),
        })?;
        let mut client = Self {
            http,
            base,
            token,
            caps: Capabilities::default(),
            requests: Default::default(),
        };
        client.caps = client.read_capabilities().await?;
        Ok(client)
    }

    /// The capabilities read at connect time.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// This client, never using PATCH even where the server offers it: for a server whose
    /// PATCH misbehaves, and to exercise the replace path against one that has it.
    pub fn without_patch(mut self) -> Self {
        self.caps.patch = false;
        self
    }

    /// HTTP requests sent so far (for benchmarks and tests).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn read_capabilities(&self) -> Result<Capabilities, ScimError> {
        let (_, body) = self
            .send(
                Method::GET,
                "/ServiceProviderConfig",
                None,
                None,
                "ServiceProviderConfig",
            )
            .await?;
        Ok(Capabilities::from_config(&body.unwrap_or(Value::Null)))
    }

    /// Every resource of a type matching `filter`, following `startIndex`/`count` pages.
    pub async fn list(
        &self,
        resource_type: &str,
        filter: Option<&str>,
    ) -> Result<Vec<Resource>, ScimError> {
        let mut out = Vec::new();
        let mut start = 1usize;
        let page = match self.caps.filter_max_results {
            0 => PAGE_SIZE,
            n => n.min(PAGE_SIZE),
        };
        loop {
            let mut query = vec![
                ("startIndex", start.to_string()),
                ("count", page.to_string()),
            ];
            if let Some(f) = filter {
                query.push(("filter", f.to_string()));
            }
            let qs = serde_urlencoded_pairs(&query);
            let what = format!("list {resource_type}");
            let (_, body) = self
                .send(
                    Method::GET,
                    &format!("/{resource_type}?{qs}"),
                    None,
                    None,
                    &what,
                )
                .await?;
            let list: ListResponse =
                serde_json::from_value(body.unwrap_or(Value::Null)).map_err(|e| {
                    ScimError::BadResponse {
                        what: what.clone(),
                        detail: e.to_string(),
                        source: Some(e),
                    }
                })?;
            let got = list.resources.len();
            for body in list.resources {
                out.push(resource_from(body, None, &what)?);
            }
            start += got;
            if got == 0 || start > list.total_results {
                break;
            }
        }
        Ok(out)
    }

    /// One resource by id.
    pub async fn get(&self, resource_type: &str, id: &str) -> Result<Resource, ScimError> {
        let what = format!("{resource_type}/{id}");
        let (etag, body) = self
            .send(
                Method::GET,
                &format!("/{resource_type}/{id}"),
                None,
                None,
                &what,
            )
            .await?;
        resource_from(body.unwrap_or(Value::Null), etag, &what)
    }

    /// Create a resource; returns it as the server stored it.
    pub async fn create(&self, resource_type: &str, body: Value) -> Result<Resource, ScimError> {
        let what = format!("create {resource_type}");
        let (etag, body) = self
            .send(
                Method::POST,
                &format!("/{resource_type}"),
                Some(body),
                None,
                &what,
            )
            .await?;
        resource_from(body.unwrap_or(Value::Null), etag, &what)
    }

    /// Replace a resource (PUT), guarded by its ETag when the server supports ETags.
    pub async fn replace(
        &self,
        resource_type: &str,
        id: &str,
        body: Value,
        etag: Option<&str>,
    ) -> Result<(), ScimError> {
        self.write(Method::PUT, resource_type, id, body, etag).await
    }

    /// Apply PATCH operations; 200 with a body and 204 without are both success.
    pub async fn patch(
        &self,
        resource_type: &str,
        id: &str,
        ops: &[PatchOp],
        etag: Option<&str>,
    ) -> Result<(), ScimError> {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": ops.iter().map(PatchOp::to_json).collect::<Vec<_>>(),
        });
        self.write(Method::PATCH, resource_type, id, body, etag)
            .await
    }

    /// PUT or PATCH one resource, with `If-Match` when the server supports ETags.
    async fn write(
        &self,
        method: Method,
        resource_type: &str,
        id: &str,
        body: Value,
        etag: Option<&str>,
    ) -> Result<(), ScimError> {
        let what = format!("{resource_type}/{id}");
        let if_match = etag.filter(|_| self.caps.etag);
        let path = format!("/{resource_type}/{id}");
        self.send(method, &path, Some(body), if_match, &what)
            .await?;
        Ok(())
    }

    /// Delete a resource; an already-missing resource counts as deleted.
    pub async fn delete(&self, resource_type: &str, id: &str) -> Result<(), ScimError> {
        let what = format!("{resource_type}/{id}");
        match self
            .send(
                Method::DELETE,
                &format!("/{resource_type}/{id}"),
                None,
                None,
                &what,
            )
            .await
        {
            Ok(_) | Err(ScimError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Send one request, retrying transient failures with backoff. Returns the ETag and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
        what: &str,
    ) -> Result<(Option<String>, Option<Value>), ScimError> {
        let url = format!("{}{}", self.base, path);
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", self.token.expose()),
                )
                .header(header::ACCEPT, SCIM_JSON);
            if let Some(b) = &body {
                req = req
                    .header(header::CONTENT_TYPE, SCIM_JSON)
                    .body(b.to_string());
            }
            if let Some(tag) = if_match {
                req = req.header(header::IF_MATCH, tag);
            }
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    // Never echo the request (it carries the token); the error text is enough.
                    last = without_url(&e);
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(jitter(delay)).await;
                        delay *= 2;
                    }
                    continue;
                }
            };
            let status = resp.status();
            let etag = resp
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = resp.text().await.unwrap_or_default();
            if status.is_success() {
                if status == StatusCode::NO_CONTENT || text.trim().is_empty() {
                    return Ok((etag, None));
                }
                let v: Value = serde_json::from_str(&text).map_err(|e| ScimError::BadResponse {
                    what: what.to_string(),
                    detail: format!("HTTP {status}: {e}"),
                    source: Some(e),
                })?;
                let etag = etag.or_else(|| v["meta"]["version"].as_str().map(str::to_string));
                return Ok((etag, Some(v)));
            }
            let (scim_type, detail) = error_body(&text, status);
            match status {
                StatusCode::UNAUTHORIZED => return Err(ScimError::Unauthorized { detail }),
                StatusCode::FORBIDDEN => {
                    return Err(ScimError::Forbidden {
                        what: what.into(),
                        detail,
                    });
                }
                StatusCode::NOT_FOUND => return Err(ScimError::NotFound { what: what.into() }),
                StatusCode::PRECONDITION_FAILED => {
                    return Err(ScimError::PreconditionFailed { what: what.into() });
                }
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    last = format!("HTTP {s}: {detail}");
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(jitter(delay)).await;
                        delay *= 2;
                    }
                }
                s => {
                    return Err(ScimError::Rejected {
                        what: what.into(),
                        status: s.as_u16(),
                        scim_type,
                        detail,
                    });
                }
            }
        }
        Err(ScimError::Unavailable {
            what: what.into(),
            detail: last,
        })
    }
}

fn resource_from(body: Value, etag: Option<String>, what: &str) -> Result<Resource, ScimError> {
    let id = body["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ScimError::BadResponse {
            what: what.to_string(),
            detail: "resource without an id".into(),
            source: None,
        })?;
    let etag = etag.or_else(|| body["meta"]["version"].as_str().map(str::to_string));
    Ok(Resource { id, etag, body })
}

/// `scimType` and `detail` of a SCIM error body, or the raw text when it is not one.
fn error_body(text: &str, status: StatusCode) -> (Option<String>, String) {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => (
            v["scimType"].as_str().map(str::to_string),
            v["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}")),
        ),
        Err(_) => (None, text.chars().take(200).collect::<String>()),
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}

fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::random_range(0..=ms / 2 + 1))
}

fn serde_urlencoded_pairs(pairs: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

/// Quote a value for a SCIM filter string literal (RFC 7644 §3.4.2.2: JSON string rules).
pub fn filter_literal(value: &str) -> String {
    serde_json::to_string(value).expect("a string always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_literals_escape_quotes_and_backslashes() {
        assert_eq!(filter_literal(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(filter_literal("张伟"), "\"张伟\"");
    }

    #[test]
    fn error_bodies_keep_scim_type_and_detail() {
        let (t, d) = error_body(
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"taken"}"#,
            StatusCode::CONFLICT,
        );
        assert_eq!(t.as_deref(), Some("uniqueness"));
        assert_eq!(d, "taken");
        let (t, d) = error_body("<html>bad gateway</html>", StatusCode::BAD_GATEWAY);
        assert_eq!(t, None);
        assert!(d.contains("bad gateway"));
    }

    #[test]
    fn token_never_prints() {
        assert_eq!(format!("{:?}", BearerToken::new("s3cret")), "***");
    }
}
