//! The production implementation of the controller's [`SyncRunner`] seam: full syncs through
//! the real engine, events fed in between (Inbound), the directory polled (Outbound). Its
//! state — feeds, per-target writer locks, Outbound poll marks — lives here, in named parts,
//! owned by the controller's context.

mod feeds;
mod follow;
mod outcome;
mod probe;
pub mod relay;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;

pub use feeds::{CallbackRoutes, Feeds, callback_router, callback_router_relaying};
pub use outcome::{batch_report, outbound_outcome, outcome};
pub use probe::DingTalkProbe;

use super::{
    EventsChanges, EventsView, IncrementalView, SyncOutcome, SyncRequest, SyncRunError, SyncRunner,
};
use crate::{
    api::{Reason, binding::EventDelivery, target::Direction},
    controller::metrics::{CorpLabels, Metrics},
    dingtalk::ClientPool,
    directory::DirectoryError,
    report::RunKind,
    resolve::{self, Access, Opened, Resolved, TargetKey},
    sync::{self, SyncError, dingtalk_source::DingTalkSource, events::LiveTarget, outbound},
};

/// Default time between Outbound polls.
const OUTBOUND_POLL: Duration = Duration::from_secs(60);

/// One writer at a time per target: its full sync and its event batches.
#[derive(Default)]
pub struct WriterLocks(Mutex<HashMap<TargetKey, Arc<tokio::sync::Mutex<()>>>>);

impl WriterLocks {
    pub fn of(&self, target: &TargetKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().expect("locks");
        locks.entry(target.clone()).or_default().clone()
    }
}

/// Outbound targets: where the directory stood at the last complete run, and at which spec.
#[derive(Default)]
pub struct OutboundMarks(Mutex<HashMap<TargetKey, (String, outbound::PollMark)>>);

impl OutboundMarks {
    fn set(&self, t: &Resolved, mark: outbound::PollMark) {
        let mut marks = self.0.lock().expect("marks");
        marks.insert(t.key.clone(), (spec_key(t), mark));
    }

    /// The mark of the last run, if it ran at the target's current spec.
    fn get(&self, t: &Resolved) -> Option<outbound::PollMark> {
        let marks = self.0.lock().expect("marks");
        marks
            .get(&t.key)
            .filter(|(k, _)| *k == spec_key(t))
            .map(|(_, m)| m.clone())
    }
}

fn spec_key(t: &Resolved) -> String {
    format!("{:?}|{:?}|{:?}", t.spec, t.mapping, t.binding)
}

/// Runs full syncs with the real engine and keeps targets fed by their binding's events.
#[derive(Default)]
pub struct Engine {
    metrics: Option<Arc<Metrics>>,
    /// DingTalk clients, one per app, shared with the rest of the controller.
    clients: Arc<ClientPool>,
    feeds: Feeds,
    locks: WriterLocks,
    marks: OutboundMarks,
    sources: Sources,
    /// Reports of Outbound polls that pushed changes, until the target's reconcile takes them.
    polls: PollReports,
    /// Outbound targets whose OpenLDAP directory is followed (content synchronisation).
    followers: follow::Followers,
    /// Cookies the controller kept in status, to resume following after a restart.
    resume: Mutex<HashMap<TargetKey, String>>,
}

/// Outbound poll reports per target (a few at most: a poll runs from the target's reconcile).
#[derive(Default)]
struct PollReports(Mutex<HashMap<TargetKey, Vec<crate::report::RunReport>>>);

impl PollReports {
    fn push(&self, key: &TargetKey, r: crate::report::RunReport) {
        let mut polls = self.0.lock().expect("polls");
        polls.entry(key.clone()).or_default().push(r);
    }

    fn take(&self, key: &TargetKey) -> Vec<crate::report::RunReport> {
        self.0
            .lock()
            .expect("polls")
            .remove(key)
            .unwrap_or_default()
    }
}

/// Each Inbound target's DingTalk source as its last full sync left it: the event feed reads
/// through the same one, so it starts knowing the department tree that sync read instead of
/// asking DingTalk for every department's parent at the quota (minutes at a large tenant).
#[derive(Default)]
struct Sources(Mutex<HashMap<TargetKey, Arc<DingTalkSource>>>);

impl Sources {
    fn keep(&self, key: &TargetKey, source: Arc<DingTalkSource>) {
        self.0.lock().expect("sources").insert(key.clone(), source);
    }

    /// The kept source if it reads the same scope, else `fresh`.
    fn reuse(&self, key: &TargetKey, fresh: Arc<DingTalkSource>) -> Arc<DingTalkSource> {
        let kept = self.0.lock().expect("sources").get(key).cloned();
        // Through the fresh source's client: a rotated secret or changed limits apply.
        kept.filter(|k| k.same_scope(&fresh))
            .map(|k| Arc::new(k.with_client(fresh.client.clone())))
            .unwrap_or(fresh)
    }
}

impl Engine {
    /// An engine whose event feeds report to `metrics`, taking DingTalk clients from `clients`.
    pub fn new(metrics: Arc<Metrics>, clients: Arc<ClientPool>) -> Self {
        metrics.watch_clients(&clients);
        Self {
            metrics: Some(metrics.clone()),
            feeds: Feeds::new(Some(metrics), clients.clone()),
            clients,
            ..Default::default()
        }
    }

    /// The routes the HTTP server serves DingTalk's callbacks under.
    pub fn callbacks(&self) -> Arc<CallbackRoutes> {
        self.feeds.callbacks()
    }
}

#[async_trait]
impl SyncRunner for Engine {
    async fn run(&self, req: SyncRequest) -> Result<SyncOutcome, SyncRunError> {
        let access = Access::ReadWrite;
        let o = match resolve::open(&req.target, access, &self.clients).await? {
            Opened::Outbound(o) => return self.run_outbound(&req.target, o, &req).await,
            Opened::Inbound(o) => o,
        };
        let lock = self.locks.of(&req.target.key);
        let _writer = lock.lock().await;
        let progress = req.progress.clone();
        let report_progress = move |phase: &str, done: usize, total: Option<usize>| {
            if let Some(p) = &progress {
                p(phase, done, total);
            }
        };
        let dry_run = req.target.spec.dry_run;
        let report = sync::run(
            o.source.as_ref(),
            o.dir.as_ref(),
            &o.mapping,
            &o.options,
            dry_run,
            &report_progress,
        )
        .await
        .map_err(|e| match e {
            SyncError::Directory(DirectoryError::Auth(m)) => SyncRunError::DirectoryAuth(m),
            SyncError::Directory(d) if !d.is_per_object() => SyncRunError::Transient(d.to_string()),
            other => SyncRunError::Transient(other.to_string()),
        })?;
        self.sources.keep(&req.target.key, o.source.clone());
        let mut out = outcome(&report);
        out.notes.extend(o.source.scope_note());
        Ok(out)
    }

    async fn track_events(&self, t: &Resolved, baseline: bool) -> Option<IncrementalView> {
        if t.spec.direction == Direction::Outbound {
            return Some(self.poll_outbound(t, baseline).await);
        }
        let delivery = t.binding.events.as_ref().map(|e| e.delivery);
        if delivery == Some(EventDelivery::None) {
            return None;
        }
        self.feeds.prune();
        let pipeline = match self.feeds.pipeline(t) {
            Ok(p) => p,
            Err(why) => return Some(view(false, Reason::NoEvents, why)),
        };
        if let Some(m) = &self.metrics {
            let labels = CorpLabels {
                corp_id: t.binding.corp_id.clone(),
            };
            let up = self.feeds.connected(t);
            m.event_connection.get_or_create(&labels).set(i64::from(up));
        }
        let fingerprint = format!("{:?}|{:?}|{baseline}", t.spec, t.mapping);
        let name = t.key.to_string();
        if !self.feeds.knows(t, &fingerprint) || pipeline.status(&name).is_none() {
            match resolve::open(t, Access::ReadWrite, &self.clients).await {
                Ok(Opened::Inbound(o)) => {
                    let live = LiveTarget {
                        source: self.sources.reuse(&t.key, o.source),
                        dir: o.dir,
                        mapping: Arc::new(o.mapping),
                        opts: o.options,
                        lock: self.locks.of(&t.key),
                    };
                    pipeline.set_target(&name, live, baseline);
                }
                Ok(Opened::Outbound(_)) => unreachable!("Outbound targets poll instead"),
                Err(e) => {
                    let e = SyncRunError::from(e);
                    return Some(view(false, Reason::DirectoryUnavailable, e.to_string()));
                }
            }
        }
        self.feeds.track(t, fingerprint);
        let st = pipeline.status(&name)?;
        Some(view(st.active, st.reason, st.message))
    }

    fn full_sync_wanted(&self, target: &TargetKey) -> bool {
        self.feeds.full_sync_wanted(target)
    }

    fn take_reports(&self, target: &TargetKey) -> Vec<crate::report::RunReport> {
        let batches = self.feeds.take_batches(target);
        let mut out: Vec<_> = batches.iter().map(batch_report).collect();
        out.extend(self.polls.take(target));
        out.extend(self.followers.take_reports(target));
        out
    }

    fn content_sync_cookie(&self, target: &TargetKey) -> Option<String> {
        self.followers.cookie(target)
    }

    fn resume_content_sync(&self, target: &TargetKey, cookie: String) {
        let mut resume = self.resume.lock().expect("resume");
        resume.insert(target.clone(), cookie);
    }

    fn release(&self) {
        self.followers.stop_all();
        self.feeds.stop_all();
    }

    fn events_state(&self, namespace: &str, name: &str) -> Option<EventsView> {
        self.feeds.state(namespace, name)
    }

    fn events_changes(&self) -> Option<EventsChanges> {
        self.feeds.changes()
    }
}

fn view(active: bool, reason: Reason, message: String) -> IncrementalView {
    IncrementalView {
        active,
        reason,
        message,
    }
}

impl Engine {
    async fn run_outbound(
        &self,
        t: &Resolved,
        o: resolve::Outbound,
        req: &SyncRequest,
    ) -> Result<SyncOutcome, SyncRunError> {
        let lock = self.locks.of(&t.key);
        let _writer = lock.lock().await;
        if let Some(p) = &req.progress {
            p("Pushing", 0, None);
        }
        let dry_run = t.spec.dry_run;
        let r = outbound::run(&o.client, o.dir.as_ref(), &o.mapping, &o.options, dry_run)
            .await
            .map_err(outbound_error)?;
        if let Some(mark) = r.mark.clone().filter(|_| r.complete && r.held.is_none()) {
            self.marks.set(t, mark);
        }
        Ok(outbound_outcome(&r))
    }

    /// Outbound incremental sync: directories do not push changes, so each look asks the
    /// directory what changed since the last run and pushes only when something did.
    async fn poll_outbound(&self, t: &Resolved, baseline: bool) -> IncrementalView {
        if !baseline {
            // A full sync at the new spec comes first; following starts after it.
            self.followers.stop(&t.key);
        } else {
            let resume = self.resume.lock().expect("resume").remove(&t.key);
            let writer = self.locks.of(&t.key);
            if let Some(v) = self.followers.look(t, resume, writer, &self.clients) {
                return v;
            }
        }
        let (true, Some(mark)) = (baseline, self.marks.get(t)) else {
            let why = "polling starts after a complete full sync at the current spec";
            return view(false, Reason::NoBaseline, why.into());
        };
        let dir = match resolve::open_directory(t, Access::ReadOnly).await {
            Ok(d) => d,
            Err(e) => {
                return view(
                    false,
                    Reason::ApplyFailed,
                    SyncRunError::from(e).to_string(),
                );
            }
        };
        let every = poll_interval(&t.spec).as_secs();
        match outbound::poll(dir.as_ref(), &mark).await {
            Ok(false) => {
                let msg = format!("polling the directory every {}s; nothing changed", every);
                view(true, Reason::Active, msg)
            }
            Ok(true) => self.push_changes(t, every).await,
            Err(e) => view(false, Reason::ApplyFailed, e.to_string()),
        }
    }

    /// A poll saw changes: one Outbound run pushes them.
    async fn push_changes(&self, t: &Resolved, every: u64) -> IncrementalView {
        let req = SyncRequest {
            target: t.clone(),
            trigger: super::Trigger::Interval,
            progress: None,
        };
        let opened = match resolve::open(t, Access::ReadOnly, &self.clients).await {
            Ok(Opened::Outbound(o)) => o,
            Ok(Opened::Inbound(_)) => unreachable!("only Outbound targets poll"),
            Err(e) => {
                return view(
                    false,
                    Reason::ApplyFailed,
                    SyncRunError::from(e).to_string(),
                );
            }
        };
        let started = jiff::Timestamp::now();
        let result = self.run_outbound(t, opened, &req).await;
        let times = (started, jiff::Timestamp::now());
        let report = match &result {
            Ok(out) => crate::controller::reports::report_of(out, RunKind::Poll, "Poll", times),
            Err(e) => crate::controller::reports::failed_report(
                RunKind::Poll,
                "Poll",
                times,
                e.to_string(),
            ),
        };
        self.polls.push(&t.key, report);
        match result {
            Ok(out) => {
                let s = &out.summary;
                let msg = format!(
                    "polling the directory every {every}s; last poll pushed {} created, {} \
                     updated, {} moved, {} removed, {} failed",
                    s.created, s.updated, s.moved, s.deleted, s.failed
                );
                view(true, Reason::Active, msg)
            }
            Err(e) => view(false, Reason::ApplyFailed, e.to_string()),
        }
    }
}

/// How often an Outbound target's directory is polled: `spec.incrementalSync.pollInterval`.
pub fn poll_interval(spec: &crate::api::SyncTargetSpec) -> Duration {
    spec.incremental_sync
        .as_ref()
        .and_then(|i| i.poll_interval)
        .map(Duration::from)
        .unwrap_or(OUTBOUND_POLL)
}

/// How an Outbound run's failure reaches the target's conditions.
fn outbound_error(e: SyncError) -> SyncRunError {
    match e {
        SyncError::Directory(DirectoryError::Auth(m)) => SyncRunError::DirectoryAuth(m),
        SyncError::Directory(DirectoryError::Config(m)) => SyncRunError::Permanent(m),
        e @ SyncError::PermissionMissing { .. } => SyncRunError::PermissionMissing(e.to_string()),
        other => SyncRunError::Transient(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_department_write_is_permission_missing_naming_it() {
        let e = SyncError::PermissionMissing {
            dept_id: 9002,
            source: crate::dingtalk::DingTalkError::Denied {
                api: "department/update".into(),
                errcode: 60011,
                message: "no permission".into(),
                permission: None,
            },
        };
        match outbound_error(e) {
            SyncRunError::PermissionMissing(m) => assert!(m.contains("9002"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
