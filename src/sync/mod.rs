//! The pipeline every sync runs through — full, incremental, `plan`, `demo`:
//! read source → read directory → plan (diff + gates) → apply → report.
//!
//! Inbound (DingTalk → directory) lives in `inbound/`, Outbound (directory → DingTalk) in
//! `outbound/`; what both share (the `Source` seam, errors, failures, the deletion gate)
//! stays here.

pub mod dingtalk_source;
pub mod events;
mod gate;
pub mod inbound;
mod kinds;
pub mod lacking;
pub mod outbound;
pub mod people_filter;
pub mod source_scope;

use std::sync::Mutex;

use async_trait::async_trait;

pub use gate::Held;
pub(crate) use gate::deletion_gate;
/// The inbound plan keeps its old path, `sync::plan`.
pub use inbound::plan;
pub use inbound::{compute, compute_changed, run, run_changed};
pub use kinds::{ObjectKind, Verb};
pub use plan::{Op, Options, Plan, Problem, Step};

use crate::{
    dingtalk::DingTalkError,
    directory::DirectoryError,
    model::{Changes, SourceSnapshot},
};

/// Where people and departments come from.
#[async_trait]
pub trait Source: Send + Sync {
    /// Read the whole scope. An error means nothing usable was read; a partial read comes back
    /// as a snapshot with `complete == false`.
    async fn read(&self) -> Result<SourceSnapshot, SyncError>;

    /// Re-read just the records `changes` names (an incremental run after events). A named
    /// record that is gone, or out of scope, is left out. The default reads everything and
    /// keeps the named records; sources that can fetch single records override it.
    async fn read_changed(&self, changes: &Changes) -> Result<SourceSnapshot, SyncError> {
        let mut read = self.read().await?;
        // A whole read names every department: `path` and `dept_names` need no other.
        read.fill_department_data(&crate::model::DeptTree::default(), true);
        Ok(read.restrict(changes))
    }

    /// The departments (names and parents) the source last read in full, for the `path` and
    /// `dept_names` of an incremental read's records. Empty by default.
    /// Shared, not copied: at 50,000 departments a copy per event batch cost more than the
    /// batch.
    fn known_departments(&self) -> std::sync::Arc<crate::model::DeptTree> {
        Default::default()
    }

    /// Every role of the enterprise with its holders (`inbound/roles.rs`); `None` for a
    /// source that has no roles. An error leaves the directory's role groups alone.
    async fn read_roles(&self) -> Result<Option<Vec<crate::model::Role>>, SyncError> {
        Ok(None)
    }
}

/// A fixed snapshot, for tests and `demo`.
pub struct StaticSource(pub Mutex<SourceSnapshot>);

impl StaticSource {
    pub fn new(snapshot: SourceSnapshot) -> Self {
        Self(Mutex::new(snapshot))
    }
    /// Replace the snapshot (an HR change).
    pub fn set(&self, snapshot: SourceSnapshot) {
        *self.0.lock().expect("source") = snapshot;
    }
}

#[async_trait]
impl Source for StaticSource {
    async fn read(&self) -> Result<SourceSnapshot, SyncError> {
        Ok(self.0.lock().expect("source").clone())
    }
}

/// Why a run could not complete at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyncError {
    #[error("reading the source failed: {0}")]
    Source(String),
    /// A person an event named could not be re-read: the batch is retried, never applied
    /// without them.
    #[error("reading the source failed: re-reading user {id}: {source}")]
    Reread {
        id: String,
        #[source]
        source: DingTalkError,
    },
    /// The app's own contact scope could not be read, so nothing is known to be in scope.
    #[error("reading the source failed: the app's contact scope (/auth/scopes): {0}")]
    AppScope(#[source] DingTalkError),
    /// DingTalk's roles could not be read; role groups are left as they are.
    #[error("reading the source failed: roles: {0}")]
    Roles(#[source] DingTalkError),
    /// Outbound: the app may not write the DingTalk department the target writes under.
    #[error(
        "PermissionMissing: the app may not write DingTalk department {dept_id} (scope.departmentIds): {source}; add it to the app's contact scope and grant qyapi_manage_addresslist"
    )]
    PermissionMissing {
        dept_id: i64,
        #[source]
        source: DingTalkError,
    },
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// The outcome of one operation that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: ObjectKind,
    pub id: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    /// The directory entry (LDAP DN, SCIM id) the object has, when the run knew it (boxed:
    /// failures travel in `Result`s and most have none).
    pub locator: Option<Box<str>>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub moved: usize,
    pub disabled: usize,
    pub enabled: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub failures: Vec<Failure>,
    pub missing_mobile: usize,
    pub missing_email: usize,
    /// Who the two counts are, the first [`lacking::REPORT_CAP`] of each by userid. An
    /// incremental run names only the people its events re-read.
    pub lacking: lacking::Lacking,
    pub people: usize,
    pub departments: usize,
    /// False when the source read was incomplete (nothing was disabled or deleted).
    pub complete: bool,
    pub incomplete: Vec<String>,
    pub suppressed_removals: usize,
    pub held: Option<Held>,
    /// Directory writes this run made.
    pub writes: u64,
    /// The plan that was applied (or, for a dry run, would have been).
    pub plan: Plan,
    /// What the roles pass planned and did; `None` when roles are off.
    pub roles: Option<inbound::roles::RolesReport>,
}

/// How deep a department sits: the parents above it, each found by `parent_of` from the one
/// below (a cycle, or a chain longer than DingTalk allows, stops counting). Departments are
/// deleted deepest first.
pub(crate) fn depth<K>(mut parent: Option<K>, parent_of: impl Fn(&K) -> Option<K>) -> usize {
    let mut n = 0;
    while let Some(p) = parent {
        n += 1;
        if n > 64 {
            break;
        }
        parent = parent_of(&p);
    }
    n
}

/// Progress while a run goes on: (phase, done, total).
pub type ProgressFn<'a> = &'a (dyn Fn(&str, usize, Option<usize>) + Send + Sync);

/// Operations applied at once within a phase.
pub const CONCURRENCY: usize = 8;
