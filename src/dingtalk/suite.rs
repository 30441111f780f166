//! Third-party (suite) apps: the enterprise that authorised the suite is read with a corp
//! token, bought with the suite's key and secret and the latest suiteTicket. DingTalk pushes a
//! new ticket about every 5 hours over the suite's Stream connection (or callback) and accepts
//! an older one only for a while, so the ticket lives in a [`TicketCell`] that every delivery
//! feeds and the controller copies into a Secret, where a restarted replica finds it before the
//! next push. Unlike an internal app's token, every corp-token call returns a new token.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{
    DingTalkClient, DingTalkError,
    client::{Auth, Host},
    config::{ClientConfig, Secret, TokenApi},
    events::Event,
};

/// The ticket push.
pub const SUITE_TICKET: &str = "suite_ticket";
/// An enterprise authorised (installed) the suite.
pub const ORG_SUITE_AUTH: &str = "org_suite_auth";
/// An enterprise removed the suite.
pub const ORG_SUITE_RELIEVE: &str = "org_suite_relieve";
/// Corp token, new API.
pub const API_CORP_TOKEN: &str = "/v1.0/oauth2/corpAccessToken";
/// Corp token, legacy API (signed query).
pub const API_CORP_TOKEN_LEGACY: &str = "/service/get_corp_token";

/// The latest suiteTicket, shared by every client of the suite; watchers learn of each new one
/// (the controller stores it). Never printed.
#[derive(Clone)]
pub struct TicketCell {
    latest: Arc<watch::Sender<Option<Secret>>>,
    /// A ticket was pushed to this process: it is at least as new as any stored one.
    pushed: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for TicketCell {
    fn default() -> Self {
        Self::new(None)
    }
}

impl std::fmt::Debug for TicketCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketCell")
    }
}

impl TicketCell {
    /// A cell holding `initial` (the ticket kept from before a restart, if any).
    pub fn new(initial: Option<Secret>) -> Self {
        Self {
            latest: Arc::new(watch::channel(initial).0),
            pushed: Arc::default(),
        }
    }

    pub fn get(&self) -> Option<Secret> {
        self.latest.borrow().clone()
    }

    /// Keeps a pushed `ticket`; `true` when it is new.
    pub fn set(&self, ticket: Secret) -> bool {
        self.pushed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.replace(ticket)
    }

    /// Keeps a stored `ticket` (another replica's, or this process's before a restart) unless
    /// a ticket was pushed to this process, which is at least as new.
    pub fn offer_stored(&self, ticket: Secret) -> bool {
        if self.pushed.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        self.replace(ticket)
    }

    fn replace(&self, ticket: Secret) -> bool {
        self.latest.send_if_modified(|t| {
            if t.as_ref() == Some(&ticket) {
                return false;
            }
            *t = Some(ticket);
            true
        })
    }

    /// Told of every new ticket.
    pub fn watch(&self) -> watch::Receiver<Option<Secret>> {
        self.latest.subscribe()
    }
}

/// The ticket cell of a suite in this process: every client of the suite, its Stream
/// connection and the controller's store share it, so a ticket pushed to one is used by all.
pub fn tickets_of(suite_key: &str) -> TicketCell {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CELLS: OnceLock<Mutex<HashMap<String, TicketCell>>> = OnceLock::new();
    let cells = CELLS.get_or_init(Default::default);
    let mut cells = cells.lock().unwrap_or_else(|e| e.into_inner());
    cells.entry(suite_key.to_owned()).or_default().clone()
}

/// What a client of a suite needs beside the suite's key and secret.
#[derive(Clone, Debug, Default)]
pub struct SuiteAuth {
    pub tickets: TicketCell,
}

/// Why a corp token could not be bought.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SuiteError {
    /// No ticket was pushed yet (DingTalk pushes one when the suite's Stream connects).
    #[error("no suiteTicket received yet: DingTalk pushes one over the suite's event connection")]
    NoTicket,
    /// The enterprise has not authorised the suite, or removed it.
    #[error("the enterprise has not authorised the third-party app (or removed it)")]
    NotAuthorised,
    #[error(transparent)]
    DingTalk(#[from] DingTalkError),
}

impl From<SuiteError> for DingTalkError {
    fn from(e: SuiteError) -> Self {
        match e {
            SuiteError::DingTalk(e) => e,
            SuiteError::NoTicket => DingTalkError::Unavailable {
                api: API_CORP_TOKEN.into(),
                attempts: 0,
                message: e.to_string(),
            },
            SuiteError::NotAuthorised => DingTalkError::Denied {
                api: API_CORP_TOKEN.into(),
                errcode: 400,
                message: format!("invalidAuthInfo: {e}"),
                permission: None,
            },
        }
    }
}

/// Whether DingTalk refused a call because the enterprise does not (or no longer) authorise
/// the suite: the corp-token APIs say so, and every call with an old corp token fails as if
/// the token were wrong.
pub fn is_deauthorised(e: &DingTalkError) -> bool {
    matches!(e, DingTalkError::Denied { message, .. } if message.starts_with("invalidAuthInfo"))
}

/// The ticket a `suite_ticket` event carries (`suiteTicket` on Stream, `SuiteTicket` on the
/// legacy callback).
pub fn ticket_of(event: &Event) -> Option<Secret> {
    if event.event_type != SUITE_TICKET {
        return None;
    }
    ["suiteTicket", "SuiteTicket"]
        .iter()
        .find_map(|k| event.data.get(*k).and_then(Value::as_str))
        .filter(|t| !t.is_empty())
        .map(Secret::new)
}

/// `base64(HMAC-SHA256(suiteSecret, timestamp + "\n" + suiteTicket))`, the legacy API's
/// signature (the query encoding percent-encodes it).
pub fn signature(suite_secret: &Secret, timestamp: &str, ticket: &Secret) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, suite_secret.expose().as_bytes());
    let data = format!("{timestamp}\n{}", ticket.expose());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

impl ClientConfig {
    /// A client of the enterprise `auth_corp_id` through the suite `suite_key`: the suite's
    /// credentials open its Stream connection; calls carry corp tokens.
    pub fn for_suite(
        auth_corp_id: &str,
        suite_key: &str,
        suite_secret: Secret,
        tickets: TicketCell,
    ) -> Self {
        let mut c = ClientConfig::new(auth_corp_id, suite_key, suite_secret);
        c.suite = Some(SuiteAuth { tickets });
        c
    }
}

impl DingTalkClient {
    /// A corp token for the authorising enterprise with the latest ticket.
    pub(crate) async fn fetch_corp_token(
        &self,
        suite: &SuiteAuth,
    ) -> Result<(Secret, Duration), SuiteError> {
        let c = self.config();
        let ticket = suite.tickets.get().ok_or(SuiteError::NoTicket)?;
        let answer = match c.token_api {
            TokenApi::OAuth2 => {
                let req = json!({
                    "suiteKey": c.app_key, "suiteSecret": c.app_secret.expose(),
                    "authCorpId": c.corp_id, "suiteTicket": ticket.expose(),
                });
                let api = API_CORP_TOKEN;
                self.call(Host::Api, Method::POST, api, &[], Some(&req), Auth::None)
                    .await
            }
            TokenApi::Legacy => {
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis().to_string())
                    .unwrap_or_default();
                let sig = signature(&c.app_secret, &ts, &ticket);
                let query = [
                    ("accessKey", c.app_key.as_str()),
                    ("timestamp", ts.as_str()),
                    ("suiteTicket", ticket.expose()),
                    ("signature", sig.as_str()),
                ];
                let req = json!({"auth_corpid": c.corp_id});
                let api = API_CORP_TOKEN_LEGACY;
                self.call(
                    Host::Oapi,
                    Method::POST,
                    api,
                    &query,
                    Some(&req),
                    Auth::None,
                )
                .await
            }
        };
        let body = answer.map_err(|e| match &e {
            DingTalkError::Invalid { message, .. } if message.starts_with("invalidAuthInfo") => {
                SuiteError::NotAuthorised
            }
            DingTalkError::Invalid { errcode: 40078, .. } => SuiteError::NotAuthorised,
            _ => SuiteError::DingTalk(e),
        })?;
        let token = ["accessToken", "access_token"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_str))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| DingTalkError::decode(API_CORP_TOKEN, "no access token"))?;
        let ttl = ["expireIn", "expires_in"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64))
            .unwrap_or(7200);
        Ok((Secret::new(token), Duration::from_secs(ttl)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_read_from_the_push_and_never_printed() {
        let e = Event {
            event_type: SUITE_TICKET.into(),
            data: json!({"suiteTicket": "t-1"}),
            ..Default::default()
        };
        let cell = TicketCell::default();
        let w = cell.watch();
        assert!(cell.set(ticket_of(&e).expect("ticket")));
        assert!(w.has_changed().unwrap_or(false));
        assert!(!cell.set(Secret::new("t-1")), "the same ticket is no news");
        assert_eq!(
            cell.get().map(|t| t.expose().to_owned()),
            Some("t-1".into())
        );
        let c = ClientConfig::for_suite("corp", "suitekey", Secret::new("s3cret"), cell);
        let printed = format!("{c:?}");
        assert!(
            !printed.contains("t-1") && !printed.contains("s3cret"),
            "{printed}"
        );
        let legacy = Event {
            event_type: SUITE_TICKET.into(),
            data: json!({"EventType": "suite_ticket", "SuiteTicket": "t-2"}),
            ..Default::default()
        };
        assert_eq!(
            ticket_of(&legacy).map(|t| t.expose().to_owned()),
            Some("t-2".into())
        );
    }

    #[test]
    fn legacy_signature_matches_dingtalks_recipe() {
        // Same recipe the simulator checks: HMAC-SHA256 over "timestamp\nticket", base64.
        let sig = signature(
            &Secret::new("secret"),
            "1700000000000",
            &Secret::new("ticket"),
        );
        assert_eq!(
            sig,
            crate::sim::suite::signature("secret", "1700000000000", "ticket")
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&sig)
                .map(|b| b.len()),
            Ok(32)
        );
    }
}
