//! Real-time incremental sync: address-book events for one binding, applied through the same
//! map → diff → gates → apply pipeline as a full sync, to every target that uses the binding.
//!
//! Events carry ids only. Events arriving close together are merged into one batch (a burst
//! of hires costs one re-read per changed record, not one per event); the batch's records are
//! re-read from DingTalk (never trusting the event's payload or order, so duplicated,
//! reordered and late events all converge to DingTalk's current state) and applied with
//! [`super::run_changed`], which reads of each directory only the entries the batch touches
//! ([`crate::directory::Directory::read_some`]), so a batch costs in proportion to its size,
//! not to the node's. An event is acknowledged — its handler returns `Ok` — only after
//! every live target applied it or recorded a per-object failure; if any target could not run
//! (directory down, incomplete re-read) the handler fails and DingTalk delivers it again.
//!
//! A target is live only after a full sync succeeded at its current spec (its baseline).
//! Until then its events are not applied — the full sync that must come first includes them —
//! and [`Pipeline::status`] says so. A gap in delivery (a connection down longer than
//! DingTalk keeps events for) cannot be closed by events: the targets ask for a full sync.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{Options, Source, run_changed};
use crate::{
    api::Reason,
    dingtalk::{Event, EventHandler, StreamHandle, StreamState},
    directory::Directory,
    mapping::Mapping,
    model::Changes,
};

/// What an address-book event is about, and so how it is handled. `None` is what dingsync
/// acknowledges and ignores: `org_remove` (an enterprise dissolved is no reason to disable
/// everyone by event; a full sync and its deletion gate decide), `check_url` and the like.
pub fn classify(event_type: &str) -> Option<Kind> {
    match event_type {
        // `user_active_org` changes `active`, `org_admin_*` change `admin`: fields templates
        // and the people filter read, so the person is re-read like any other edit.
        "user_add_org" | "user_modify_org" | "user_leave_org" | "user_active_org"
        | "user_dept_change" | "org_admin_add" | "org_admin_remove" => Some(Kind::Person),
        // A move is an `org_dept_modify` whose re-read shows another parent.
        "org_dept_create" | "org_dept_modify" | "org_dept_remove" => Some(Kind::Department),
        "org_change" => Some(Kind::Organisation),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Re-read the userids the event names.
    Person,
    /// Re-read the departments the event names.
    Department,
    /// The enterprise itself changed (its name, which is the root department's): events
    /// name nothing to re-read, so every target asks for a full sync.
    Organisation,
}

/// The ids an event names, as a change set.
pub fn changes_of(event: &Event) -> Changes {
    let mut c = Changes::default();
    match classify(&event.event_type) {
        Some(Kind::Person) => c.people.extend(event.user_ids.iter().cloned()),
        Some(Kind::Department) => c
            .departments
            .extend(event.dept_ids.iter().map(ToString::to_string)),
        Some(Kind::Organisation) | None => {}
    }
    c.roles = super::inbound::roles::is_role_event(&event.event_type);
    c
}

/// One target fed by the pipeline.
pub struct LiveTarget {
    pub source: Arc<dyn Source>,
    pub dir: Arc<dyn Directory>,
    pub mapping: Arc<Mapping>,
    pub opts: Options,
    /// Held while a batch is applied. Whoever else writes this target (its full sync) takes
    /// the same lock: two writers planning from the same stale read would both create the
    /// same new person under two names.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

/// Why a target's incremental sync is or is not live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalStatus {
    pub active: bool,
    /// `Active`, `NoBaseline`, `GapDetected`, `ApplyFailed`: the `IncrementalActive` reason.
    pub reason: Reason,
    pub message: String,
    /// Events (batches of ids) applied, and ids skipped for want of a baseline.
    pub applied: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Batches the deletion gate held: each was handed to a full sync (see [`Pipeline`]).
    pub held: u64,
    /// Set when events were missed: only a full sync can close the gap.
    pub full_sync_wanted: bool,
}

struct Slot {
    target: Arc<LiveTarget>,
    baseline: bool,
    status: IncrementalStatus,
}

/// Told about every event: its type, `received` / `applied` / `failed`, and for applied ones
/// the lag from DingTalk's event time.
pub type Observer = Arc<dyn Fn(&str, &str, Option<Duration>) + Send + Sync>;

/// Tuning of the batching.
#[derive(Clone)]
pub struct PipelineConfig {
    /// How long a batch stays open for more events after its first one.
    pub window: Duration,
    /// A batch closes early at this many ids.
    pub max_ids: usize,
    pub observer: Option<Observer>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(25),
            max_ids: 500,
            observer: None,
        }
    }
}

/// Figures for metrics and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    pub received: BTreeMap<String, u64>,
    pub applied: BTreeMap<String, u64>,
    pub failed: BTreeMap<String, u64>,
    pub batches: u64,
    /// Time spent applying batches (re-read + diff + writes), in total.
    pub busy: Duration,
    /// Born (DingTalk's event time) → applied, per applied event, most recent last (bounded).
    pub lags: Vec<Duration>,
}

const MAX_LAGS: usize = 100_000;

struct Pending {
    event_type: String,
    born_ms: Option<i64>,
    changes: Changes,
    done: oneshot::Sender<Result<(), String>>,
}

/// One event batch as one target applied it, for that target's run report.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub started: SystemTime,
    pub ended: SystemTime,
    /// What the batch did (its plan left out), or why it could not run.
    pub result: Result<super::Report, String>,
}

/// Batch records kept per target until taken; older ones are dropped beyond this.
const MAX_BATCH_RECORDS: usize = 1_000;

/// The event pipeline of one binding. Cheap to share; [`Pipeline::handler`] is what the
/// Stream client or the callback receiver calls.
pub struct Pipeline {
    observer: Option<Observer>,
    slots: Mutex<BTreeMap<String, Slot>>,
    stats: Mutex<PipelineStats>,
    /// What each target's batches did, until [`Pipeline::take_batches`] takes them.
    batches: Mutex<BTreeMap<String, std::collections::VecDeque<BatchRecord>>>,
    tx: mpsc::Sender<Pending>,
}

impl Pipeline {
    /// Start the batching worker; it stops when the last handle is dropped.
    pub fn start(config: PipelineConfig) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(4096);
        let p = Arc::new(Self {
            observer: config.observer.clone(),
            slots: Default::default(),
            stats: Default::default(),
            batches: Default::default(),
            tx,
        });
        tokio::spawn(worker(Arc::downgrade(&p), rx, config));
        p
    }

    /// Add or replace a target. `baseline`: a full sync of it succeeded at its current spec.
    pub fn set_target(&self, name: &str, target: LiveTarget, baseline: bool) {
        let mut slots = self.slots.lock().expect("slots");
        let old = slots.remove(name);
        let mut status = old.map(|s| s.status).unwrap_or(IncrementalStatus {
            active: false,
            reason: Reason::NoBaseline,
            message: String::new(),
            applied: 0,
            skipped: 0,
            failed: 0,
            held: 0,
            full_sync_wanted: false,
        });
        if baseline {
            if status.reason == Reason::NoBaseline || status.reason == Reason::GapDetected {
                status.reason = Reason::Active;
                status.message = "events are applied as they arrive".into();
                status.full_sync_wanted = false;
            }
            status.active = true;
        } else {
            status.active = false;
            status.reason = Reason::NoBaseline;
            status.message = no_baseline_message(status.skipped);
        }
        slots.insert(
            name.to_owned(),
            Slot {
                target: Arc::new(target),
                baseline,
                status,
            },
        );
    }

    pub fn remove_target(&self, name: &str) {
        self.slots.lock().expect("slots").remove(name);
        self.batches.lock().expect("batches").remove(name);
    }

    pub fn targets(&self) -> Vec<String> {
        self.slots.lock().expect("slots").keys().cloned().collect()
    }

    pub fn status(&self, name: &str) -> Option<IncrementalStatus> {
        self.slots
            .lock()
            .expect("slots")
            .get(name)
            .map(|s| s.status.clone())
    }

    /// What the target's batches did since the last call, oldest first.
    pub fn take_batches(&self, name: &str) -> Vec<BatchRecord> {
        let mut batches = self.batches.lock().expect("batches");
        batches.remove(name).map(Vec::from).unwrap_or_default()
    }

    fn keep_batch(&self, name: &str, started: SystemTime, result: Result<super::Report, String>) {
        let record = BatchRecord {
            started,
            ended: SystemTime::now(),
            result: result.map(|mut r| {
                r.plan = Default::default();
                r
            }),
        };
        let mut batches = self.batches.lock().expect("batches");
        let kept = batches.entry(name.to_string()).or_default();
        if kept.len() >= MAX_BATCH_RECORDS {
            kept.pop_front();
        }
        kept.push_back(record);
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats.lock().expect("stats").clone()
    }

    /// Events were (or may have been) missed: every target needs a full sync, and is not live
    /// until one succeeds.
    pub fn note_gap(&self, why: &str) {
        for s in self.slots.lock().expect("slots").values_mut() {
            s.baseline = false;
            s.status.active = false;
            s.status.reason = Reason::GapDetected;
            s.status.message =
                format!("{why}; events may have been missed, a full sync closes the gap");
            s.status.full_sync_wanted = true;
        }
    }

    /// Something changed that no event names record by record (`org_change`): every target
    /// asks for a full sync. Unlike a gap, nothing was missed, so targets stay live and keep
    /// applying events until it runs.
    pub fn request_full_sync(&self, why: &str) {
        tracing::info!(why, "a full sync of every target is asked for");
        for s in self.slots.lock().expect("slots").values_mut() {
            s.status.full_sync_wanted = true;
        }
    }

    /// The targets that asked for a full sync since the last call.
    pub fn take_full_sync_requests(&self) -> Vec<String> {
        let mut out = vec![];
        for (name, s) in self.slots.lock().expect("slots").iter_mut() {
            if std::mem::take(&mut s.status.full_sync_wanted) {
                out.push(name.clone());
            }
        }
        out
    }

    /// The handler to give the Stream client or the callback receiver.
    pub fn handler(self: &Arc<Self>) -> Arc<dyn EventHandler> {
        Arc::new(Handler(self.clone()))
    }

    /// Watch a Stream connection: an outage longer than `max_gap` (or a refused connection
    /// that lasts that long) is a gap events cannot close.
    pub fn watch_stream(self: &Arc<Self>, stream: &StreamHandle, max_gap: Duration) {
        let mut rx = stream.watch();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut down_since: Option<Instant> = None;
            let mut reported = false;
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    StreamState::Connected => {
                        down_since = None;
                        reported = false;
                    }
                    StreamState::Stopped => return,
                    _ => {
                        let since = *down_since.get_or_insert_with(Instant::now);
                        if !reported && since.elapsed() >= max_gap {
                            let Some(p) = me.upgrade() else { return };
                            p.note_gap(&format!(
                                "the event connection was down for more than {} s",
                                max_gap.as_secs()
                            ));
                            reported = true;
                        }
                    }
                }
                let wait = if down_since.is_some() && !reported {
                    Duration::from_millis(200)
                } else {
                    Duration::from_secs(3600)
                };
                match tokio::time::timeout(wait, rx.changed()).await {
                    Ok(Err(_)) => return,
                    _ => continue,
                }
            }
        });
    }

    async fn submit(&self, event: Event) -> anyhow::Result<()> {
        let event_type = event.event_type.clone();
        *self
            .stats
            .lock()
            .expect("stats")
            .received
            .entry(event_type.clone())
            .or_default() += 1;
        self.observe(&event_type, "received", None);
        if classify(&event_type) == Some(Kind::Organisation) {
            // Handled once the request is recorded: acknowledging it does not wait for the
            // full sync, which takes far longer than DingTalk waits for an acknowledgement.
            self.request_full_sync(&format!("{event_type} event"));
            self.observe(&event_type, "applied", None);
            *self
                .stats
                .lock()
                .expect("stats")
                .applied
                .entry(event_type)
                .or_default() += 1;
            return Ok(());
        }
        let changes = changes_of(&event);
        if changes.is_empty() {
            // Not an address-book record event (or no ids): nothing to apply.
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending {
                event_type: event_type.clone(),
                born_ms: event.born_ms,
                changes,
                done,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the event pipeline stopped"))?;
        let result = wait
            .await
            .map_err(|_| anyhow::anyhow!("the event pipeline stopped"))?;
        let lag = event
            .born_ms
            .map(|born| Duration::from_millis((now_ms() - born).max(0) as u64));
        let outcome = if result.is_ok() { "applied" } else { "failed" };
        self.observe(&event_type, outcome, lag.filter(|_| result.is_ok()));
        let mut stats = self.stats.lock().expect("stats");
        match result {
            Ok(()) => {
                *stats.applied.entry(event_type).or_default() += 1;
                Ok(())
            }
            Err(e) => {
                *stats.failed.entry(event_type).or_default() += 1;
                Err(anyhow::anyhow!(e))
            }
        }
    }

    fn observe(&self, event_type: &str, outcome: &str, lag: Option<Duration>) {
        if let Some(o) = &self.observer {
            o(event_type, outcome, lag);
        }
    }

    /// Apply one merged batch to every target; `Err` names the targets that could not run.
    async fn apply(&self, changes: &Changes) -> Result<(), String> {
        let slots: Vec<(String, Arc<LiveTarget>, bool)> = self
            .slots
            .lock()
            .expect("slots")
            .iter()
            .map(|(n, s)| (n.clone(), s.target.clone(), s.baseline))
            .collect();
        let ids = (changes.people.len() + changes.departments.len()) as u64;
        let mut errors = vec![];
        for (name, t, baseline) in slots {
            if !baseline {
                self.update(&name, |st| {
                    st.skipped += ids;
                    if st.reason == Reason::NoBaseline {
                        st.message = no_baseline_message(st.skipped);
                    }
                });
                continue;
            }
            let quiet = |_: &str, _: usize, _: Option<usize>| {};
            let _writer = t.lock.lock().await;
            let started = SystemTime::now();
            let result = run_changed(
                t.source.as_ref(),
                t.dir.as_ref(),
                &t.mapping,
                &t.opts,
                changes,
                false,
                &quiet,
            )
            .await;
            let kept = result.clone().map_err(|e| e.to_string());
            self.keep_batch(&name, started, kept);
            match result {
                Ok(report) if report.held.is_some() => {
                    let why = report.held.map(|h| h.message).unwrap_or_default();
                    tracing::warn!(target = %name, reason = %why, "an event batch was held by the deletion gate; a full sync takes it over");
                    self.update(&name, |st| held_batch(st, &why));
                }
                Ok(report) if report.complete => self.update(&name, |st| {
                    st.applied += 1;
                    st.failed += report.failures.len() as u64;
                    // Back to the plain message after a failed or held batch.
                    if matches!(st.reason, Reason::ApplyFailed | Reason::Active) {
                        st.reason = Reason::Active;
                        st.message = "events are applied as they arrive".into();
                    }
                }),
                Ok(report) => {
                    // Applied what could be read; the rest must come again.
                    errors.push(format!(
                        "{name}: incomplete re-read: {}",
                        report.incomplete.join("; ")
                    ));
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.update(&name, |st| {
                        st.reason = Reason::ApplyFailed;
                        st.message = format!("the last event batch could not be applied: {msg}");
                    });
                    errors.push(format!("{name}: {msg}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut IncrementalStatus)) {
        if let Some(s) = self.slots.lock().expect("slots").get_mut(name) {
            f(&mut s.status);
        }
    }
}

/// A batch the deletion gate held wrote nothing. It is acknowledged and handed to a full sync
/// instead of staying unacknowledged: DingTalk would redeliver it for as long as nobody
/// approves, and the full sync reads the same removals, is held the same way, and carries
/// the approval token into the target's status, where approving it applies them.
fn held_batch(st: &mut IncrementalStatus, why: &str) {
    st.held += 1;
    st.full_sync_wanted = true;
    st.message = format!(
        "an event batch was held by the deletion gate ({why}); a full sync takes it over and \
         waits for approval"
    );
}

fn no_baseline_message(skipped: u64) -> String {
    format!(
        "waiting for a successful full sync at the current spec before applying events; \
         {skipped} changed records left to that full sync"
    )
}

struct Handler(Arc<Pipeline>);

#[async_trait]
impl EventHandler for Handler {
    async fn handle(&self, event: Event) -> anyhow::Result<()> {
        self.0.submit(event).await
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn worker(
    pipeline: std::sync::Weak<Pipeline>,
    mut rx: mpsc::Receiver<Pending>,
    config: PipelineConfig,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut ids = batch[0].changes.people.len() + batch[0].changes.departments.len();
        let deadline = tokio::time::Instant::now() + config.window;
        while ids < config.max_ids {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => {
                    ids += p.changes.people.len() + p.changes.departments.len();
                    batch.push(p);
                }
                _ => break,
            }
        }
        let Some(p) = pipeline.upgrade() else { return };
        let mut merged = Changes::default();
        for b in &batch {
            merged.people.extend(b.changes.people.iter().cloned());
            merged
                .departments
                .extend(b.changes.departments.iter().cloned());
            merged.roles |= b.changes.roles;
        }
        let started = Instant::now();
        let result = p.apply(&merged).await;
        let applied_at = now_ms();
        {
            let mut stats = p.stats.lock().expect("stats");
            stats.batches += 1;
            stats.busy += started.elapsed();
            if result.is_ok() {
                for b in &batch {
                    if let Some(born) = b.born_ms {
                        stats
                            .lags
                            .push(Duration::from_millis((applied_at - born).max(0) as u64));
                    }
                }
                let excess = stats.lags.len().saturating_sub(MAX_LAGS);
                stats.lags.drain(..excess);
            }
        }
        for b in batch {
            tracing::debug!(event = %b.event_type, ok = result.is_ok(), "event batch done");
            let _ = b.done.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_people_or_departments() {
        let e = Event::from_payload(serde_json::json!({
            "EventType": "user_modify_org", "UserId": ["u1", "u2"], "CorpId": "c"
        }));
        assert_eq!(changes_of(&e), Changes::people(["u1", "u2"]));
        let d = Event::from_payload(serde_json::json!({
            "EventType": "org_dept_remove", "DeptId": [7], "CorpId": "c"
        }));
        assert_eq!(
            changes_of(&d).departments.into_iter().collect::<Vec<_>>(),
            vec!["7"]
        );
        let other = Event::from_payload(serde_json::json!({"EventType": "chat_update_title"}));
        assert!(changes_of(&other).is_empty());
    }

    #[test]
    fn every_address_book_event_has_a_handling() {
        for t in [
            "user_add_org",
            "user_modify_org",
            "user_leave_org",
            "user_active_org",
            "org_admin_add",
            "org_admin_remove",
        ] {
            assert_eq!(classify(t), Some(Kind::Person), "{t}");
            let e = Event::from_payload(serde_json::json!({"EventType": t, "userId": ["u9"]}));
            assert_eq!(changes_of(&e), Changes::people(["u9"]), "{t}");
        }
        for t in ["org_dept_create", "org_dept_modify", "org_dept_remove"] {
            assert_eq!(classify(t), Some(Kind::Department), "{t}");
        }
        assert_eq!(classify("org_change"), Some(Kind::Organisation));
        assert_eq!(classify("org_remove"), None);
        assert_eq!(classify("check_url"), None);
    }

    fn mapping() -> Mapping {
        let spec = serde_yaml::from_str(
            "user:\n  uniqueName: {attribute: uid, template: '{{ userid }}'}\n  attributes: []\n",
        )
        .expect("the test mapping parses");
        Mapping::compile(&spec).expect("the test mapping compiles")
    }

    /// `org_change` names nothing to re-read: it is acknowledged once every target asked for
    /// a full sync, and the targets stay live meanwhile.
    #[tokio::test]
    async fn org_change_asks_every_target_for_a_full_sync() {
        let p = Pipeline::start(PipelineConfig::default());
        for (name, baseline) in [("a", true), ("b", true)] {
            let target = LiveTarget {
                source: Arc::new(super::super::StaticSource::new(Default::default())),
                dir: Arc::new(crate::directory::memory::MemoryDirectory::new("uid")),
                mapping: Arc::new(mapping()),
                opts: Options::default(),
                lock: Default::default(),
            };
            p.set_target(name, target, baseline);
        }
        let e = Event::from_payload(serde_json::json!({
            "EventType": "org_change", "EventTime": 1, "CorpId": "c"
        }));
        p.handler().handle(e).await.unwrap();
        assert_eq!(p.take_full_sync_requests(), ["a", "b"]);
        assert!(p.take_full_sync_requests().is_empty(), "asked once");
        let st = p.status("a").unwrap();
        assert!(st.active && st.reason == Reason::Active, "{st:?}");
        assert_eq!(p.stats().applied.get("org_change"), Some(&1));
        assert_eq!(p.stats().batches, 0, "nothing re-read");
    }

    /// A batch that fails for one person is acknowledged (the failure is per object) and
    /// kept for the target's report, naming that person.
    #[tokio::test]
    async fn a_batch_failing_for_one_person_is_kept_for_the_report() {
        use crate::model::{Department, Person, SourceSnapshot};
        let person = |id: &str, name: &str| Person {
            id: id.into(),
            name: name.into(),
            departments: vec!["1".into()],
            main_department: None,
            fields: [
                ("userid", serde_json::json!(id)),
                ("name", serde_json::json!(name)),
            ]
            .into_iter()
            .collect(),
        };
        let snapshot = SourceSnapshot {
            departments: vec![Department {
                id: "1".into(),
                name: "总部".into(),
                parent: None,
                fields: Default::default(),
            }],
            people: vec![person("u1", "王小明"), person("u2", "张三")],
            complete: true,
            ..Default::default()
        };
        // Division by zero for a two-character name: only u2's entry cannot be rendered.
        let spec = serde_yaml::from_str(
            "user:\n  uniqueName: {attribute: uid, template: '{{ userid }}'}\n  attributes:\n  - {target: employeeNumber, template: '{{ 6 // (name | length - 2) }}'}\n",
        )
        .expect("the test mapping parses");
        let p = Pipeline::start(PipelineConfig::default());
        let target = LiveTarget {
            source: Arc::new(super::super::StaticSource::new(snapshot)),
            dir: Arc::new(crate::directory::memory::MemoryDirectory::new("uid")),
            mapping: Arc::new(Mapping::compile(&spec).expect("the test mapping compiles")),
            opts: Options::default(),
            lock: Default::default(),
        };
        p.set_target("team/t1", target, true);
        let e = Event::from_payload(serde_json::json!({
            "EventType": "user_add_org", "UserId": ["u1", "u2"], "CorpId": "c"
        }));
        p.handler()
            .handle(e)
            .await
            .expect("per-object failures are acknowledged");
        let batches = p.take_batches("team/t1");
        assert_eq!(batches.len(), 1);
        let report = batches[0].result.as_ref().expect("the batch ran");
        let failed: Vec<(&str, &str)> = (report.failures.iter())
            .map(|f| (f.id.as_str(), f.reason.as_str()))
            .collect();
        assert_eq!(failed, [("u2", "TemplateError")], "{:?}", report.failures);
        assert!(report.plan.steps.is_empty(), "the plan is not kept");
        assert!(p.take_batches("team/t1").is_empty(), "taken once");
    }
}
