//! RFC 4533 content synchronisation of a node (OpenLDAP's `syncprov` overlay): one search in
//! refreshAndPersist mode that first sends what changed since a cookie (everything, without
//! one), says when that refresh is over, and then sends each change as it happens. Cookies
//! come with the changes; a later session given the last one resumes where this one stopped,
//! so a restart needs no full read. A server without content sync refuses the (critical)
//! control, and the caller falls back to polling.

use std::collections::{BTreeMap, VecDeque};

use ldap3::{
    Scope, SearchEntry, SearchStream,
    controls::{
        ControlType, EntryState, MakeCritical, RefreshMode, SyncInfo, SyncRequest, SyncState,
        parse_syncinfo,
    },
};

use super::client::{LdapError, Pool, from_ldap3};

/// The entries a session follows: the people and the containers of an Outbound node.
pub const FILTER: &str = "(|(objectClass=inetOrgPerson)(objectClass=organizationalUnit))";
const ATTRS: [&str; 3] = ["*", "entryUUID", "modifyTimestamp"];

/// One thing the server said.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// An entry added or changed (in a refresh without a cookie: every entry), with its
    /// attributes (names lowercased).
    Entry {
        uuid: String,
        dn: String,
        attrs: BTreeMap<String, Vec<String>>,
    },
    /// An entry deleted (or moved out of the node).
    Deleted { uuid: String },
    /// The refresh is over: what follows happens live.
    RefreshDone,
    /// The server listed the entries still present instead of the deleted ones (its log no
    /// longer reaches back to the cookie): entries it did not list are gone, which only a
    /// full comparison finds.
    Present,
    /// Everything before this is delivered: a session given it resumes after.
    Cookie(String),
}

/// A running session.
pub struct ContentSync {
    stream: SearchStream<'static, &'static str, [&'static str; 3]>,
    base: String,
    pending: VecDeque<SyncEvent>,
}

/// An entryUUID as the `entryUUID` attribute spells it.
fn uuid_text(raw: &[u8]) -> String {
    let h = hex::encode(raw);
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn cookie_text(raw: Vec<u8>) -> Option<String> {
    String::from_utf8(raw).ok().filter(|c| !c.is_empty())
}

impl ContentSync {
    /// Starts following the subtree under `base` (its people and containers), after
    /// `cookie` when given.
    pub async fn start(pool: &Pool, base: &str, cookie: Option<&str>) -> Result<Self, LdapError> {
        let mut ldap = pool.dedicated().await?;
        let request = SyncRequest {
            mode: RefreshMode::RefreshAndPersist,
            cookie: cookie.map(|c| c.as_bytes().to_vec()),
            reload_hint: false,
        };
        ldap.with_controls(request.critical());
        let stream = ldap
            .streaming_search(base, Scope::Subtree, FILTER, ATTRS)
            .await
            .map_err(|e| from_ldap3(e, base, &[], ""))?;
        Ok(ContentSync {
            stream,
            base: base.to_string(),
            pending: VecDeque::new(),
        })
    }

    /// The next event; `None` when the server ended the session (its result says why: a
    /// server without content sync ends it at once).
    pub async fn next(&mut self) -> Result<Option<SyncEvent>, LdapError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            let item = self.stream.next().await;
            let item = item.map_err(|e| from_ldap3(e, &self.base, &[], ""))?;
            let Some(entry) = item else {
                let res = self.stream.finish().await;
                return match res.rc {
                    0 => Ok(None),
                    rc => Err(LdapError::Other {
                        dn: self.base.clone(),
                        rc,
                        message: format!("content synchronisation ended: {}", res.text),
                    }),
                };
            };
            if entry.is_intermediate() {
                self.info(parse_syncinfo(entry));
            } else if !entry.is_ref() {
                self.entry(entry);
            }
        }
    }

    fn info(&mut self, info: SyncInfo) {
        let (cookie, done) = match info {
            SyncInfo::NewCookie(c) => (Some(c), false),
            SyncInfo::RefreshDelete {
                cookie,
                refresh_done,
            } => (cookie, refresh_done),
            SyncInfo::RefreshPresent {
                cookie,
                refresh_done,
            } => {
                self.pending.push_back(SyncEvent::Present);
                (cookie, refresh_done)
            }
            SyncInfo::SyncIdSet {
                cookie,
                refresh_deletes,
                sync_uuids,
            } => {
                match refresh_deletes {
                    true => self.pending.extend(
                        sync_uuids
                            .iter()
                            .map(|u| SyncEvent::Deleted { uuid: uuid_text(u) }),
                    ),
                    false => self.pending.push_back(SyncEvent::Present),
                }
                (cookie, false)
            }
        };
        if done {
            self.pending.push_back(SyncEvent::RefreshDone);
        }
        if let Some(c) = cookie.and_then(cookie_text) {
            self.pending.push_back(SyncEvent::Cookie(c));
        }
    }

    fn entry(&mut self, raw: ldap3::ResultEntry) {
        let state = raw.1.iter().find_map(|c| match c.0 {
            Some(ControlType::SyncState) => Some(c.1.parse::<SyncState>()),
            _ => None,
        });
        let entry = SearchEntry::construct(raw);
        let Some(state) = state else {
            return;
        };
        let uuid = uuid_text(&state.entry_uuid);
        self.pending.push_back(match state.state {
            EntryState::Delete => SyncEvent::Deleted { uuid },
            EntryState::Present | EntryState::Add | EntryState::Modify => SyncEvent::Entry {
                uuid,
                dn: entry.dn,
                attrs: (entry.attrs.into_iter())
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
            },
        });
        if let Some(c) = state.cookie.and_then(cookie_text) {
            self.pending.push_back(SyncEvent::Cookie(c));
        }
    }
}
