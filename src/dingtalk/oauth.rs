//! DingTalk browser login: the authorize URL, the code → user token exchange,
//! `users/me`, and the unionId → enterprise userid mapping that refuses outsiders.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    DingTalkClient, DingTalkError, Secret,
    client::{Auth, Host},
    contacts::API_BY_UNIONID,
};

pub const API_USER_TOKEN: &str = "/v1.0/oauth2/userAccessToken";
pub const API_USERS_ME: &str = "/v1.0/contact/users/me";

/// A user's token from the login exchange. Debug never prints the tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct UserToken {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in: u64,
    /// The organisation the user picked (scope `openid corpid` only).
    pub corp_id: Option<String>,
}

/// `users/me`: the signed-in person's DingTalk profile.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    #[serde(default)]
    pub nick: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    /// Per app.
    #[serde(default)]
    pub open_id: Option<String>,
    /// Stable per developer account: the key for SSO.
    #[serde(default)]
    pub union_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub state_code: Option<String>,
    #[serde(default)]
    pub visitor: Option<bool>,
}

/// Who logged in: their profile and their userid in this enterprise.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginIdentity {
    pub userid: String,
    pub union_id: String,
    pub profile: UserProfile,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expire_in: Option<u64>,
    #[serde(default)]
    corp_id: Option<String>,
}

impl DingTalkClient {
    /// Where to send the browser: `{login}/oauth2/auth?...`. `scopes` defaults to `openid`;
    /// add `corpid` to learn which organisation the user picked.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, scopes: &[&str]) -> String {
        let scope = if scopes.is_empty() {
            "openid".to_string()
        } else {
            scopes.join(" ")
        };
        let mut url = url::Url::parse(&format!("{}/oauth2/auth", self.config().login_base))
            .unwrap_or_else(|_| {
                url::Url::parse("https://login.dingtalk.com/oauth2/auth").expect("a valid URL")
            });
        url.query_pairs_mut()
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config().app_key)
            .append_pair("scope", &scope)
            .append_pair("state", state)
            .append_pair("prompt", "consent");
        url.into()
    }

    async fn user_token(&self, body: Value) -> Result<UserToken, DingTalkError> {
        let v = self
            .call(
                Host::Api,
                Method::POST,
                API_USER_TOKEN,
                &[],
                Some(&body),
                Auth::None,
            )
            .await?;
        let t: TokenAnswer =
            serde_json::from_value(v).map_err(|e| DingTalkError::decode(API_USER_TOKEN, e))?;
        Ok(UserToken {
            access_token: Secret::new(t.access_token),
            refresh_token: t.refresh_token.map(Secret::new),
            expires_in: t.expire_in.unwrap_or(7200),
            corp_id: t.corp_id,
        })
    }

    /// Exchange the `authCode` of the login redirect for the user's token (single use).
    pub async fn exchange_code(&self, auth_code: &str) -> Result<UserToken, DingTalkError> {
        if auth_code.trim().is_empty() {
            return Err(DingTalkError::validation("authCode", "is empty"));
        }
        let c = self.config();
        self.user_token(json!({
            "clientId": c.app_key,
            "clientSecret": c.app_secret.expose(),
            "code": auth_code,
            "grantType": "authorization_code",
        }))
        .await
    }

    /// A new user token from a refresh token (valid 30 days).
    pub async fn refresh_user_token(&self, refresh: &Secret) -> Result<UserToken, DingTalkError> {
        let c = self.config();
        self.user_token(json!({
            "clientId": c.app_key,
            "clientSecret": c.app_secret.expose(),
            "refreshToken": refresh.expose(),
            "grantType": "refresh_token",
        }))
        .await
    }

    /// The profile behind a user token.
    pub async fn user_me(&self, token: &UserToken) -> Result<UserProfile, DingTalkError> {
        let v = self
            .call(
                Host::Api,
                Method::GET,
                API_USERS_ME,
                &[],
                None,
                Auth::User(&token.access_token),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| DingTalkError::decode(API_USERS_ME, e))
    }

    /// The enterprise userid of a unionId; people outside the enterprise (60121, or an
    /// external contact) get [`DingTalkError::NotInEnterprise`].
    pub async fn enterprise_userid(&self, union_id: &str) -> Result<String, DingTalkError> {
        let outsider = || DingTalkError::NotInEnterprise {
            unionid: union_id.to_string(),
        };
        match self.get_user_by_unionid(union_id).await {
            Ok(l) if l.contact_type.unwrap_or(0) == 0 && !l.userid.is_empty() => Ok(l.userid),
            Ok(_) => Err(outsider()),
            Err(DingTalkError::NotFound { api, .. }) if api == API_BY_UNIONID => Err(outsider()),
            Err(e) => Err(e),
        }
    }

    /// The whole login: code → user token → profile → enterprise userid.
    pub async fn login(&self, auth_code: &str) -> Result<LoginIdentity, DingTalkError> {
        let token = self.exchange_code(auth_code).await?;
        let profile = self.user_me(&token).await?;
        let union_id = profile
            .union_id
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| DingTalkError::decode(API_USERS_ME, "no unionId in the profile"))?;
        let userid = self.enterprise_userid(&union_id).await?;
        Ok(LoginIdentity {
            userid,
            union_id,
            profile,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::ClientConfig;

    #[test]
    fn authorize_url_has_dingtalks_parameters() {
        let c = DingTalkClient::new(
            ClientConfig::new("corp", "dingkey", Secret::new("s")).with_base("http://127.0.0.1:1"),
        );
        let u =
            url::Url::parse(&c.authorize_url("https://sso.example/cb?x=1", "st8", &[])).unwrap();
        assert_eq!(u.path(), "/oauth2/auth");
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(q["redirect_uri"], "https://sso.example/cb?x=1");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "dingkey");
        assert_eq!(q["scope"], "openid");
        assert_eq!(q["state"], "st8");
        assert_eq!(q["prompt"], "consent");
        let u = c.authorize_url("https://x/cb", "s", &["openid", "corpid"]);
        assert!(u.contains("scope=openid+corpid"), "{u}");
        assert!(!u.contains("s\"") && !u.contains("secret"));
    }

    #[test]
    fn user_token_debug_hides_tokens() {
        let t = UserToken {
            access_token: Secret::new("at-123"),
            refresh_token: Some(Secret::new("rt-456")),
            expires_in: 7200,
            corp_id: None,
        };
        let d = format!("{t:?}");
        assert!(!d.contains("at-123") && !d.contains("rt-456"));
    }
}
