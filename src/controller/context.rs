//! What every reconcile shares: the client, the seams to the sync engine, metrics, backoff.
//!
//! The seams are traits so reconcile logic is tested in-process with fakes and the engine can
//! be swapped in without touching the Kubernetes layer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use kube::{Client, runtime::events::Recorder};

use crate::api::{
    DingTalkBindingSpec, FieldMappingSpec,
    binding::Permissions,
    target::{Failure, RunSummary},
};

use super::{engine::CallbackRoutes, metrics::Metrics};
use crate::resolve::{ClusterObjects, Resolved, TargetKey};

use crate::secret::Secret;

/// Why credentials could not be confirmed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CredentialError {
    /// DingTalk refused the AppKey/AppSecret: permanent until the Secret changes.
    #[error("DingTalk refused the app credentials: {0}")]
    Invalid(String),
    /// The enterprise does not (or no longer) authorise the third-party app.
    #[error("the enterprise has not authorised the third-party app: {0}")]
    Deauthorized(String),
    /// DingTalk could not be reached or answered with a server error: retried.
    #[error("DingTalk API unreachable: {0}")]
    Unreachable(String),
}

/// What a credential check finds: the app's permissions, or why there are none.
pub type CheckResult = Result<Permissions, CredentialError>;

/// Confirms a binding's credentials (`key`, `secret`) and finds the app's permissions.
#[async_trait]
pub trait CredentialChecker: Send + Sync {
    async fn check(&self, spec: &DingTalkBindingSpec, key: &str, secret: &Secret) -> CheckResult;
}

/// Compiles a FieldMapping; the error names the rule and position.
pub trait MappingValidator: Send + Sync {
    fn validate(&self, spec: &FieldMappingSpec) -> Result<(), String>;
}

/// Why a full sync is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Created,
    SpecChanged,
    /// The sync-now annotation, with the value that asked.
    Requested(String),
    Interval,
    /// The approve annotation named the token of the held run.
    Approved,
    /// The event feed asked for one: events may have been missed, or DingTalk reported a
    /// change no single record shows (`org_change`).
    Events,
}

impl Trigger {
    /// As `status.lastSync.trigger` shows it.
    pub fn label(&self) -> &'static str {
        match self {
            Trigger::Created => "Created",
            Trigger::SpecChanged => "SpecChanged",
            Trigger::Requested(_) => "Requested",
            Trigger::Interval => "Interval",
            Trigger::Approved => "Approved",
            Trigger::Events => "EventsAsked",
        }
    }
}

/// One full sync of a resolved target.
#[derive(Clone)]
pub struct SyncRequest {
    pub target: Resolved,
    pub trigger: Trigger,
    /// Where the run reports its phase and counts while it goes on.
    pub progress: Option<ProgressSink>,
}

/// Receives (phase, done, total) while a run goes on.
pub type ProgressSink = std::sync::Arc<dyn Fn(&str, usize, Option<usize>) + Send + Sync>;

impl std::fmt::Debug for SyncRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRequest")
            .field("target", &self.target)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

/// What a sync run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncOutcome {
    pub summary: RunSummary,
    pub failures: Vec<Failure>,
    /// People and departments in the node after the run.
    pub people: i64,
    pub departments: i64,
    /// False when the source read was incomplete (nothing was disabled or deleted).
    pub complete: bool,
    /// Set when the deletion gate held the run: (removals, owned, token, message).
    pub held: Option<crate::api::target::PendingApproval>,
    /// With dryRun: the plan.
    pub plan: Option<crate::api::target::PlanSummary>,
    /// What the run's condition message adds, e.g. a scope narrower than asked for.
    pub notes: Vec<String>,
    /// Who lacks a mobile or an email, for the run's report.
    pub lacking: crate::report::LackingReport,
    /// With `held`: the removals held back, one line each, for the run's report.
    pub held_removals: Vec<String>,
}

/// Why a sync run could not run at all.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SyncRunError {
    /// The directory refused our credentials: permanent until a change.
    #[error("directory refused the credentials: {0}")]
    DirectoryAuth(String),
    /// The run failed in a way a retry may fix (network, 5xx).
    #[error("sync failed: {0}")]
    Transient(String),
    /// The run cannot work with this configuration.
    #[error("sync cannot run: {0}")]
    Permanent(String),
    /// DingTalk refuses the app a write it needs (granted in DingTalk's console, not here:
    /// retried with backoff).
    #[error("{0}")]
    PermissionMissing(String),
}

impl From<crate::resolve::OpenError> for SyncRunError {
    fn from(e: crate::resolve::OpenError) -> Self {
        use crate::{directory::DirectoryError, resolve::OpenError};
        match e {
            OpenError::Directory(DirectoryError::Auth(m)) => SyncRunError::DirectoryAuth(m),
            OpenError::Directory(DirectoryError::Unavailable(m)) => SyncRunError::Transient(m),
            other => SyncRunError::Permanent(other.to_string()),
        }
    }
}

/// Whether a target's incremental sync is live, and why, for its `IncrementalActive` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalView {
    pub active: bool,
    pub reason: crate::api::Reason,
    pub message: String,
}

/// A binding's event connection as this replica holds it, for its `EventsConnected` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsState {
    /// Opening the first Stream connection.
    Connecting,
    /// The Stream connection is up.
    Connected,
    /// The Stream connection was lost (the error); reconnecting.
    Disconnected(String),
    /// DingTalk pushes to the controller's callback route.
    Callback,
}

/// [`EventsState`] and when the last event arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsView {
    pub state: EventsState,
    pub last_event: Option<std::time::SystemTime>,
}

/// Bindings (namespace, name) whose event connection changed state, as it happens.
pub type EventsChanges = tokio::sync::mpsc::UnboundedReceiver<(String, String)>;

/// Runs one full sync of a target, and keeps it fed by its binding's events in between.
#[async_trait]
pub trait SyncRunner: Send + Sync {
    async fn run(&self, request: SyncRequest) -> Result<SyncOutcome, SyncRunError>;

    /// Feed the target with its binding's events from now on (`baseline`: a full sync
    /// succeeded at its current spec, so events may be applied). `None`: the runner has no
    /// event feed for it (events off, or not supported).
    async fn track_events(&self, _target: &Resolved, _baseline: bool) -> Option<IncrementalView> {
        None
    }

    /// Events were missed for this target since it was last asked: only a full sync closes
    /// the gap.
    fn full_sync_wanted(&self, _target: &TargetKey) -> bool {
        false
    }

    /// The event connection of binding `name` in `namespace`; `None` while no target has
    /// started it on this replica.
    fn events_state(&self, _namespace: &str, _name: &str) -> Option<EventsView> {
        None
    }

    /// The reports of the runs made for the target since the last call (event batches,
    /// Outbound polls), oldest first: the target's reconcile keeps them with its own.
    fn take_reports(&self, _target: &TargetKey) -> Vec<crate::report::RunReport> {
        vec![]
    }

    /// Where changes of [`SyncRunner::events_state`] are announced; the first caller takes
    /// it (the binding controller, to re-reconcile at once).
    fn events_changes(&self) -> Option<EventsChanges> {
        None
    }

    /// Where a followed Outbound target's directory changes are pushed up to (kept in its
    /// status), and, after a restart, where to resume.
    fn content_sync_cookie(&self, _target: &TargetKey) -> Option<String> {
        None
    }
    fn resume_content_sync(&self, _target: &TargetKey, _cookie: String) {}

    /// This replica no longer leads: stop every event connection and directory session, so
    /// only the new leader writes.
    fn release(&self) {}
}

/// Shared state of the controllers.
pub struct Context {
    pub client: Client,
    pub checker: Arc<dyn CredentialChecker>,
    pub validator: Arc<dyn MappingValidator>,
    pub runner: Arc<dyn SyncRunner>,
    pub recorder: Option<Recorder>,
    pub metrics: Arc<Metrics>,
    /// Where DingTalk's HTTP callbacks are routed to the runner's event feeds.
    pub callbacks: Arc<CallbackRoutes>,
    /// DingTalk clients, one per app: the probe, the engine and login share tokens and quota.
    pub clients: Arc<crate::dingtalk::ClientPool>,
    /// The one namespace the controllers watch (`None`: all): where the guards look for
    /// another binding of a corpId or another target on the same node.
    pub scope: Option<String>,
    /// Where the suiteTickets of third-party apps are kept (the controller's namespace); unset,
    /// they live in this process only.
    pub suite_tickets: std::sync::OnceLock<super::suite_ticket::TicketStore>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        checker: Arc<dyn CredentialChecker>,
        validator: Arc<dyn MappingValidator>,
        runner: Arc<dyn SyncRunner>,
        recorder: Option<Recorder>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            checker,
            validator,
            runner,
            recorder,
            metrics,
            callbacks: Default::default(),
            clients: Default::default(),
            scope: None,
            suite_tickets: Default::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The cluster as the source of the objects a target refers to.
    pub fn objects(&self) -> ClusterObjects {
        ClusterObjects::scoped(self.client.clone(), self.scope.clone())
    }

    /// Next retry delay for an object after a transient error: exponential (5 s doubling to
    /// 5 min) with ±25 % jitter so many objects failing together do not retry together.
    pub fn backoff(&self, key: &str) -> Duration {
        self.backoff_attempt(key).1
    }

    /// Count one more failure of an object: how many in a row now, and the delay before the
    /// next attempt.
    pub fn backoff_attempt(&self, key: &str) -> (u32, Duration) {
        let mut map = self.failures.lock().expect("backoff map");
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        (*n, backoff_delay(*n))
    }

    /// Forget an object's failures after a success.
    pub fn reset_backoff(&self, key: &str) {
        self.failures.lock().expect("backoff map").remove(key);
    }
}

/// The delay before the `attempt`-th retry (1-based).
pub fn backoff_delay(attempt: u32) -> Duration {
    let base = 5u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(10))
        .min(300);
    let ms = base * 1000;
    let jitter = rand::random_range(0..=ms / 2);
    Duration::from_millis(ms - ms / 4 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff_delay(1);
        assert!(
            first >= Duration::from_millis(3750) && first <= Duration::from_millis(6250),
            "{first:?}"
        );
        let later = backoff_delay(4);
        assert!(later >= Duration::from_secs(30), "{later:?}");
        let capped = backoff_delay(40);
        assert!(capped <= Duration::from_secs(375), "{capped:?}");
    }
}
