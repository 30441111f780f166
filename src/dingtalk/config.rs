//! How to reach one DingTalk app: credentials (never printed), hosts, quotas, timeouts.

use std::time::Duration;

/// DingTalk's mainland hosts.
pub const DEFAULT_OAPI: &str = "https://oapi.dingtalk.com";
pub const DEFAULT_API: &str = "https://api.dingtalk.com";
pub const DEFAULT_LOGIN: &str = "https://login.dingtalk.com";
/// DingTalk's international (.io) hosts.
pub const INTL_OAPI: &str = "https://oapi.dingtalk.io";
pub const INTL_API: &str = "https://api.dingtalk.io";

pub use crate::secret::Secret;

/// Which API issues the app token. Both give the same, interchangeable token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenApi {
    /// `GET {oapi}/gettoken?appkey=&appsecret=`.
    #[default]
    Legacy,
    /// `POST {api}/v1.0/oauth2/accessToken {"appKey","appSecret"}`.
    OAuth2,
}

/// How to reach one app of one enterprise.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub corp_id: String,
    pub app_key: String,
    pub app_secret: Secret,
    /// Legacy server API (`/gettoken`, `/topapi/...`).
    pub oapi_base: String,
    /// New server API (`/v1.0/...`), also the Stream gateway.
    pub api_base: String,
    /// Browser login (`/oauth2/auth`).
    pub login_base: String,
    /// Calls per second allowed per API (DingTalk: 20 on the standard edition).
    pub per_api_per_second: u32,
    /// Whole-request timeout (DingTalk itself gives up on a call after 3 s).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts for a transient failure (throttling, busy, 5xx, timeout), first one included.
    pub attempts: u32,
    /// First retry delay; doubles per attempt, with jitter, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub token_api: TokenApi,
    /// A cached token is replaced this long before it expires.
    pub token_refresh_margin: Duration,
    /// Set for a third-party (suite) app: `app_key`/`app_secret` are the suite's key and
    /// secret, `corp_id` the authorising enterprise, and tokens are corp tokens.
    pub suite: Option<super::suite::SuiteAuth>,
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
            connect_timeout: Duration::from_secs(5),
            attempts: 5,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(8),
            token_api: TokenApi::Legacy,
            // The Stream SDK refreshes 5 minutes early, the calling guide says ~10.
            token_refresh_margin: Duration::from_secs(600),
            suite: None,
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

    /// DingTalk's international hosts (login stays on the mainland host: no .io login page is
    /// documented).
    pub fn international(mut self) -> Self {
        self.oapi_base = INTL_OAPI.into();
        self.api_base = INTL_API.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = ClientConfig::new("corp", "key", Secret::new("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(format!("{}", c.app_secret), "***");
        assert_eq!(c.app_secret.expose(), "s3cret");
    }

    #[test]
    fn every_base_is_overridable() {
        let c = ClientConfig::new("c", "k", Secret::default()).with_base("http://127.0.0.1:9/");
        assert_eq!(c.oapi_base, "http://127.0.0.1:9");
        assert_eq!(c.api_base, "http://127.0.0.1:9");
        assert_eq!(c.login_base, "http://127.0.0.1:9");
        let i = ClientConfig::new("c", "k", Secret::default()).international();
        assert_eq!(i.oapi_base, INTL_OAPI);
        assert_eq!(i.api_base, INTL_API);
    }
}
