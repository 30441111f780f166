//! Outbound targets on an OpenLDAP server with content synchronisation (slapd's `syncprov`):
//! the node is followed and each change pushed to DingTalk as it arrives, instead of polled.
//! The session's last cookie goes into the target's status, so a restarted controller
//! resumes after it without reading the directory or DingTalk in full. A server without
//! content synchronisation ends the session at once: the target is polled instead, and
//! following is tried again after [`RETRY`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use super::{outbound_outcome, view};
use crate::{
    api::Reason,
    controller::{IncrementalView, reports::report_of},
    dingtalk::ClientPool,
    report::{RunKind, RunReport},
    resolve::{self, Access, Opened, Resolved, TargetKey},
    sync::outbound::{self, Batch, Session},
};

/// After a session ended with an error, the target is polled this long before following is
/// tried again.
const RETRY: Duration = Duration::from_secs(300);

/// The followed targets of this replica.
#[derive(Default)]
pub struct Followers(Mutex<HashMap<TargetKey, Follower>>);

struct Follower {
    /// Spec, mapping and secrets the session was started with: any change restarts it.
    fingerprint: String,
    stop: CancellationToken,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Where the directory's changes have been pushed up to.
    cookie: Option<String>,
    /// Why the session ended, and when.
    ended: Option<(Instant, String)>,
    /// Batches pushed so far.
    batches: u64,
    /// Reports of the batches that changed or failed something, until the target takes them.
    reports: Vec<RunReport>,
}

impl Followers {
    /// The target's incremental view while it is followed, starting (or restarting) its
    /// session at `resume` or the cookie it last reached; `None` when it cannot be followed
    /// (not OpenLDAP, or its server lacks content synchronisation lately): poll it.
    pub fn look(
        &self,
        t: &Resolved,
        resume: Option<String>,
        writer: Arc<tokio::sync::Mutex<()>>,
        clients: &Arc<ClientPool>,
    ) -> Option<IncrementalView> {
        t.spec.directory.ldap.as_ref()?;
        let fingerprint = fingerprint(t);
        let mut followers = self.0.lock().expect("followers");
        let mut cookie = resume;
        if let Some(f) = followers.get(&t.key) {
            let st = f.state.lock().expect("follower");
            match (&st.ended, f.fingerprint == fingerprint) {
                (Some((at, _)), true) if at.elapsed() < RETRY => return None,
                (None, true) => {
                    let msg = format!(
                        "following the directory's changes as they happen (content \
                         synchronisation); {} batches pushed",
                        st.batches
                    );
                    return Some(view(true, Reason::Active, msg));
                }
                (_, same) => cookie = st.cookie.clone().filter(|_| same).or(cookie),
            }
            drop(st);
            f.stop.cancel();
        }
        let follower = Follower {
            fingerprint,
            stop: CancellationToken::new(),
            state: Arc::new(Mutex::new(State {
                cookie: cookie.clone(),
                ..Default::default()
            })),
        };
        tokio::spawn(session(
            t.clone(),
            cookie,
            writer,
            clients.clone(),
            follower.state.clone(),
            follower.stop.clone(),
        ));
        followers.insert(t.key.clone(), follower);
        let msg = "following the directory's changes as they happen (content synchronisation)";
        Some(view(true, Reason::Active, msg.into()))
    }

    /// Where the target's session has pushed up to, for its status.
    pub fn cookie(&self, key: &TargetKey) -> Option<String> {
        let followers = self.0.lock().expect("followers");
        let f = followers.get(key)?;
        f.state.lock().expect("follower").cookie.clone()
    }

    /// Reports of the batches pushed since the last call.
    pub fn take_reports(&self, key: &TargetKey) -> Vec<RunReport> {
        let followers = self.0.lock().expect("followers");
        let Some(f) = followers.get(key) else {
            return vec![];
        };
        std::mem::take(&mut f.state.lock().expect("follower").reports)
    }

    /// Stops every session (this replica no longer leads).
    pub fn stop_all(&self) {
        for (_, f) in self.0.lock().expect("followers").drain() {
            f.stop.cancel();
        }
    }

    /// Stops the target's session (it is no longer followed).
    pub fn stop(&self, key: &TargetKey) {
        if let Some(f) = self.0.lock().expect("followers").remove(key) {
            f.stop.cancel();
        }
    }
}

/// What a change of restarts the session: spec, mapping, binding and the secrets (as a
/// digest).
fn fingerprint(t: &Resolved) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(t.app_secret.expose().as_bytes());
    digest.update(t.directory_secret.expose().as_bytes());
    let secrets = hex::encode(digest.finalize());
    format!("{:?}|{:?}|{:?}|{secrets}", t.spec, t.mapping, t.binding)
}

/// One session, until `stop` or an error; its batches and its end are noted in `state`.
async fn session(
    t: Resolved,
    cookie: Option<String>,
    writer: Arc<tokio::sync::Mutex<()>>,
    clients: Arc<ClientPool>,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
) {
    let ended = follow(&t, cookie, &writer, &clients, &state, &stop).await;
    if let Err(why) = ended {
        tracing::info!(target = %t.key, error = %why, "content synchronisation ended: the directory is polled");
        state.lock().expect("follower").ended = Some((Instant::now(), why));
    }
}

async fn follow(
    t: &Resolved,
    cookie: Option<String>,
    writer: &tokio::sync::Mutex<()>,
    clients: &ClientPool,
    state: &Mutex<State>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let o = match resolve::open(t, Access::ReadWrite, clients).await {
        Ok(Opened::Outbound(o)) => o,
        Ok(Opened::Inbound(_)) => return Err("an Inbound target is not followed".into()),
        Err(e) => return Err(e.to_string()),
    };
    let dir = match resolve::open_ldap(t, Access::ReadWrite).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err("not an OpenLDAP directory".into()),
        Err(e) => return Err(e.to_string()),
    };
    let session = Session {
        sink: &o.client,
        dir: &dir,
        mapping: &o.mapping,
        opts: &o.options,
        writer,
    };
    let mut on_batch = |b: Batch| noted(state, b);
    outbound::follow(session, cookie, &mut on_batch, stop.cancelled())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A pushed batch: its cookie kept, its report kept when it did something.
fn noted(state: &Mutex<State>, b: Batch) {
    let r = &b.report;
    let did = r.created + r.updated + r.moved + r.deleted + r.failures.len() > 0;
    let report = did.then(|| {
        let now = jiff::Timestamp::now();
        let trigger = if b.full {
            "ContentSyncFull"
        } else {
            "ContentSync"
        };
        report_of(&outbound_outcome(r), RunKind::Poll, trigger, (now, now))
    });
    let mut st = state.lock().expect("follower");
    st.batches += 1;
    if let Some(c) = b.cookie {
        st.cookie = Some(c);
    }
    st.reports.extend(report);
}
