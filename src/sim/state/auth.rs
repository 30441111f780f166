//! Credentials the simulator hands out: app tokens, personal (OAuth) tokens and their refresh
//! tokens, login auth codes and Stream tickets, each with its expiry on the simulated clock.

use std::collections::{HashMap, HashSet};

/// What a token stands for.
#[derive(Clone, Debug)]
pub enum TokenKind {
    App,
    /// A personal token from the OAuth code exchange.
    User {
        userid: String,
    },
}

#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub app_key: String,
    pub kind: TokenKind,
    pub expires_ms: i64,
}

/// Token lookup outcome.
pub enum TokenCheck {
    Valid(TokenInfo),
    Expired,
    Invalid,
}

/// A user-token auth code from the login page or the in-app SSO.
#[derive(Clone, Debug)]
pub struct AuthCode {
    pub app_key: String,
    pub userid: String,
    pub with_corpid: bool,
    pub expires_ms: i64,
}

/// Refresh tokens live 30 days.
const REFRESH_TTL_MS: i64 = 30 * 86_400_000;

/// Auth codes live 5 minutes.
const AUTH_CODE_TTL_MS: i64 = 5 * 60_000;

#[derive(Default)]
pub struct Auth {
    pub tokens: HashMap<String, TokenInfo>,
    /// app_key → its current app token.
    pub app_tokens: HashMap<String, String>,
    pub revoked: HashSet<String>,
    /// refresh token → (app_key, userid, expires_ms).
    pub refresh_tokens: HashMap<String, (String, String, i64)>,
    pub auth_codes: HashMap<String, AuthCode>,
    /// Stream ticket → (app_key, expires_ms); single use.
    pub tickets: HashMap<String, (String, i64)>,
}

impl Auth {
    /// Internal-app token: the same token while valid, life extended on each call.
    /// `true` with the token when a new one was minted.
    pub fn app_token(&mut self, app_key: &str, ttl_ms: i64, now: i64) -> (String, bool) {
        let expires_ms = now + ttl_ms;
        if let Some(tok) = self.app_tokens.get(app_key).cloned()
            && let Some(info) = self.tokens.get_mut(&tok)
            && info.expires_ms > now
        {
            info.expires_ms = expires_ms;
            return (tok, false);
        }
        let tok = new_token();
        self.tokens.insert(
            tok.clone(),
            TokenInfo {
                app_key: app_key.to_owned(),
                kind: TokenKind::App,
                expires_ms,
            },
        );
        self.app_tokens.insert(app_key.to_owned(), tok.clone());
        (tok, true)
    }

    /// A personal token and its refresh token.
    pub fn user_token(
        &mut self,
        app_key: &str,
        userid: &str,
        ttl_ms: i64,
        now: i64,
    ) -> (String, String) {
        let tok = new_token();
        self.tokens.insert(
            tok.clone(),
            TokenInfo {
                app_key: app_key.to_owned(),
                kind: TokenKind::User {
                    userid: userid.to_owned(),
                },
                expires_ms: now + ttl_ms,
            },
        );
        let refresh = new_token();
        self.refresh_tokens.insert(
            refresh.clone(),
            (app_key.to_owned(), userid.to_owned(), now + REFRESH_TTL_MS),
        );
        (tok, refresh)
    }

    pub fn check(&self, token: &str, now: i64) -> TokenCheck {
        match self.tokens.get(token) {
            Some(info) if info.expires_ms > now => TokenCheck::Valid(info.clone()),
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Invalid,
        }
    }

    /// Drops every token (of one app, or all): callers get the invalid-token answer.
    /// Returns how many of them were still valid.
    pub fn invalidate(&mut self, app_key: Option<&str>, now: i64) -> usize {
        let victims: Vec<String> = self
            .tokens
            .iter()
            .filter(|(_, i)| app_key.is_none_or(|k| k == i.app_key))
            .map(|(t, _)| t.clone())
            .collect();
        let mut valid = 0;
        for t in &victims {
            if self.tokens.remove(t).is_some_and(|i| i.expires_ms > now) {
                valid += 1;
            }
            self.revoked.insert(t.clone());
        }
        self.app_tokens
            .retain(|k, _| app_key.is_some_and(|a| a != k.as_str()));
        valid
    }

    /// A single-use auth code for `userid` logging in to `app_key`.
    pub fn mint_code(
        &mut self,
        app_key: &str,
        userid: &str,
        with_corpid: bool,
        now: i64,
    ) -> String {
        let code = uuid::Uuid::new_v4().simple().to_string();
        self.auth_codes.insert(
            code.clone(),
            AuthCode {
                app_key: app_key.to_owned(),
                userid: userid.to_owned(),
                with_corpid,
                expires_ms: now + AUTH_CODE_TTL_MS,
            },
        );
        code
    }

    /// Redeems an auth code of `app_key`. Codes are single use: removed whether or not they
    /// are still valid.
    pub fn redeem_code(&mut self, code: &str, app_key: &str, now: i64) -> Option<AuthCode> {
        self.auth_codes
            .remove(code)
            .filter(|c| c.expires_ms > now && c.app_key == app_key)
    }
}

pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
