//! Account self-service at `<issuer>/account`: after a DingTalk login (QR or in-app) a person
//! sees their directory account (login name, groups) and sets their directory password, so the
//! apps that bind to the directory work for people dingsync imported without one.
//!
//! Guards: a DingTalk login no older than [`RECENT_LOGIN`] (an older session is sent to log
//! in again), a CSRF token sealed to the session, the `Origin` checked when the browser sends
//! one, at most [`ATTEMPTS`] attempts per person per [`ATTEMPT_WINDOW`] (per replica), enabled
//! accounts only, and an audit line per attempt that never holds the password.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    password::PasswordError,
    provider::{
        Provider, Session, esc, failed, internal, no_store, refused_or_claims, session_user,
        start_session, to_dingtalk,
    },
};
use crate::secret::Secret;

/// How recent the DingTalk login behind a password change must be.
pub const RECENT_LOGIN: SignedDuration = SignedDuration::from_mins(5);
/// Password attempts allowed per person within [`ATTEMPT_WINDOW`].
pub const ATTEMPTS: usize = 5;
pub const ATTEMPT_WINDOW: SignedDuration = SignedDuration::from_mins(15);

/// Attempts per person (userid → when), for the rate limit.
pub(super) type Attempts = std::sync::Mutex<HashMap<String, Vec<Timestamp>>>;

/// The session, if its DingTalk login is recent enough for account changes.
fn recent_session(p: &Provider, headers: &HeaderMap) -> Option<Session> {
    session_user(p, headers).filter(|s| p.now().as_second() - s.auth_time <= RECENT_LOGIN.as_secs())
}

fn not_enabled() -> Response {
    failed(
        StatusCode::NOT_FOUND,
        "Account self-service is not enabled for this login.",
    )
}

pub(super) async fn account(State(p): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    if p.passwords.is_none() {
        return not_enabled();
    }
    let Some(s) = recent_session(&p, &headers) else {
        return to_dingtalk(&p, json!({"account": true}));
    };
    let claims = match refused_or_claims(&p, &s.userid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    account_page(&p, &s, &claims, StatusCode::OK, None)
}

/// Where the DingTalk login started by `/account` comes back: a fresh session, then the page.
pub(super) fn account_return(p: &Provider, userid: &str, auth_time: i64) -> Response {
    let mut r = Redirect::to(&format!("{}/account", p.issuer())).into_response();
    no_store(r.headers_mut());
    if let Err(e) = start_session(p, &mut r, userid, auth_time) {
        return internal(e);
    }
    r
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// A notice on the page: (is it an error, the text).
type Notice<'a> = Option<(bool, &'a str)>;

pub(super) async fn set_password(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    let Some(store) = p.passwords.clone() else {
        return not_enabled();
    };
    let Some(s) = recent_session(&p, &headers) else {
        return to_dingtalk(&p, json!({"account": true}));
    };
    let sub = p.subject(&s.userid);
    if !same_origin(&p, &headers) || !csrf_matches(&p, &f.csrf, &s) {
        tracing::warn!(target: "dingsync::audit", sub = %sub, "password change refused: CSRF check failed");
        return failed(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this page. Open the account page again.",
        );
    }
    let claims = match refused_or_claims(&p, &s.userid).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !p.allow_attempt(&s.userid) {
        tracing::warn!(target: "dingsync::audit", sub = %sub, "password change refused: too many attempts");
        return account_page(
            &p,
            &s,
            &claims,
            StatusCode::TOO_MANY_REQUESTS,
            Some((
                true,
                "Too many attempts. Wait a quarter of an hour and try again.",
            )),
        );
    }
    if f.password != f.confirm || f.password.is_empty() {
        return account_page(
            &p,
            &s,
            &claims,
            StatusCode::BAD_REQUEST,
            Some((true, "The two passwords are not the same.")),
        );
    }
    let outcome = store
        .set_password(&s.userid, &Secret::new(f.password))
        .await;
    let (status, notice) = match &outcome {
        Ok(()) => {
            tracing::info!(target: "dingsync::audit", sub = %sub, "password set");
            (
                StatusCode::OK,
                (false, "Your password was set.".to_string()),
            )
        }
        Err(PasswordError::Refused(reason)) => {
            tracing::info!(target: "dingsync::audit", sub = %sub, reason = %reason, "password refused by the directory");
            (
                StatusCode::BAD_REQUEST,
                (true, refusal_in_plain_words(reason)),
            )
        }
        Err(PasswordError::Unsupported) => {
            tracing::info!(target: "dingsync::audit", sub = %sub, "password not set: the directory does not accept password changes");
            (
                StatusCode::BAD_REQUEST,
                (
                    true,
                    "This directory does not let dingsync set passwords. Ask your administrator."
                        .to_string(),
                ),
            )
        }
        Err(e) => {
            tracing::warn!(target: "dingsync::audit", sub = %sub, error = %e, "password not set");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                (
                    true,
                    "The directory could not set the password right now. Try again later."
                        .to_string(),
                ),
            )
        }
    };
    account_page(&p, &s, &claims, status, Some((notice.0, &notice.1)))
}

/// The directory's reason, with what it means for the person first.
fn refusal_in_plain_words(reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    let meaning = if r.contains("quality") || r.contains("short") || r.contains("length") {
        "The password is too short or too simple for the directory's rules."
    } else if r.contains("history") || r.contains("in use") {
        "This password was used before; choose another."
    } else if r.contains("too young") || r.contains("min age") {
        "The password was changed too recently; try again later."
    } else {
        "The directory refused this password."
    };
    format!("{meaning} ({reason})")
}

/// A browser that says where the form came from must say this issuer.
fn same_origin(p: &Provider, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    url::Url::parse(p.issuer())
        .map(|u| u.origin().ascii_serialization() == origin)
        .unwrap_or(false)
}

fn csrf_token(p: &Provider, s: &Session) -> Option<String> {
    let now = p.now();
    p.keys()
        .seal(
            now,
            "csrf",
            &json!({"u": s.userid, "at": s.auth_time, "exp": (now + RECENT_LOGIN).as_second()}),
        )
        .ok()
}

fn csrf_matches(p: &Provider, token: &str, s: &Session) -> bool {
    p.keys().open("csrf", token).is_ok_and(|v| {
        v["u"].as_str() == Some(s.userid.as_str())
            && v["at"].as_i64() == Some(s.auth_time)
            && v["exp"].as_i64().is_some_and(|e| e > p.now().as_second())
    })
}

impl Provider {
    /// Counts an attempt; `false` when the person used up their attempts.
    fn allow_attempt(&self, userid: &str) -> bool {
        let now = self.now();
        let mut all = self.attempts.lock().expect("attempts lock");
        all.retain(|_, v| {
            v.retain(|t| *t + ATTEMPT_WINDOW > now);
            !v.is_empty()
        });
        let mine = all.entry(userid.to_string()).or_default();
        if mine.len() >= ATTEMPTS {
            return false;
        }
        mine.push(now);
        true
    }
}

fn account_page(
    p: &Provider,
    s: &Session,
    claims: &Map<String, Value>,
    status: StatusCode,
    notice: Notice<'_>,
) -> Response {
    let Some(csrf) = csrf_token(p, s) else {
        return internal(super::LoginError::Crypto("CSRF token"));
    };
    let login = claims
        .get("preferred_username")
        .and_then(Value::as_str)
        .unwrap_or("");
    let groups: Vec<String> = claims
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).map(esc).collect())
        .unwrap_or_default();
    let notice = match notice {
        Some((true, m)) => format!("<p class=\"notice error\" id=\"notice\">{}</p>", esc(m)),
        Some((false, m)) => format!("<p class=\"notice ok\" id=\"notice\">{}</p>", esc(m)),
        None => String::new(),
    };
    let html = format!(
        include_str!("account.html"),
        name = esc(&p.cfg.display_name),
        login = esc(login),
        groups = groups.join("、"),
        notice = notice,
        action = esc(&format!("{}/account/password", p.issuer())),
        csrf = esc(&csrf),
    );
    let mut r = (status, Html(html)).into_response();
    no_store(r.headers_mut());
    r
}
