//! Where Outbound writes: DingTalk's contacts. The engine sees DingTalk only through
//! [`DingTalkSink`], as Inbound sees it only through [`Source`](crate::sync::Source), so the
//! same plan and apply run against the real client (and the simulator behind it) or an
//! in-memory fake.

use async_trait::async_trait;

use super::SOURCE_PREFIX;
use crate::dingtalk::{
    DingTalkClient, DingTalkError, ScopeSnapshot,
    contacts::{Department, User},
    write::{DeptCreate, DeptUpdate, UserCreate, UserUpdate},
};

/// The DingTalk reads and writes an Outbound run makes.
#[async_trait]
pub trait DingTalkSink: Send + Sync {
    /// The departments under `roots` (roots first) and their members; what could not be read
    /// is listed in the snapshot's failures.
    async fn read_scope(&self, roots: &[i64]) -> ScopeSnapshot;
    async fn get_department(&self, dept_id: i64) -> Result<Department, DingTalkError>;
    async fn get_user(&self, userid: &str) -> Result<User, DingTalkError>;
    /// Returns the new department's id.
    async fn create_department(&self, dept: &DeptCreate) -> Result<i64, DingTalkError>;
    async fn update_department(&self, update: &DeptUpdate) -> Result<(), DingTalkError>;
    async fn delete_department(&self, dept_id: i64) -> Result<(), DingTalkError>;
    async fn create_user(&self, user: &UserCreate) -> Result<(), DingTalkError>;
    async fn update_user(&self, update: &UserUpdate) -> Result<(), DingTalkError>;
    async fn delete_user(&self, userid: &str) -> Result<(), DingTalkError>;
    /// The userid of the enterprise's user with this mobile (`getbymobile`); `None` when
    /// nobody has it.
    async fn user_by_mobile(&self, mobile: &str) -> Result<Option<String>, DingTalkError>;
    /// `Ok` when the app may write department `dept_id`; changes nothing.
    async fn probe_write(&self, dept_id: i64) -> Result<(), DingTalkError>;
}

#[async_trait]
impl DingTalkSink for DingTalkClient {
    async fn read_scope(&self, roots: &[i64]) -> ScopeSnapshot {
        DingTalkClient::read_scope(self, roots).await
    }
    async fn get_department(&self, dept_id: i64) -> Result<Department, DingTalkError> {
        DingTalkClient::get_department(self, dept_id).await
    }
    async fn get_user(&self, userid: &str) -> Result<User, DingTalkError> {
        DingTalkClient::get_user(self, userid).await
    }
    async fn create_department(&self, dept: &DeptCreate) -> Result<i64, DingTalkError> {
        DingTalkClient::create_department(self, dept).await
    }
    async fn update_department(&self, update: &DeptUpdate) -> Result<(), DingTalkError> {
        DingTalkClient::update_department(self, update).await
    }
    async fn delete_department(&self, dept_id: i64) -> Result<(), DingTalkError> {
        DingTalkClient::delete_department(self, dept_id).await
    }
    async fn create_user(&self, user: &UserCreate) -> Result<(), DingTalkError> {
        DingTalkClient::create_user(self, user).await.map(drop)
    }
    async fn update_user(&self, update: &UserUpdate) -> Result<(), DingTalkError> {
        DingTalkClient::update_user(self, update).await
    }
    async fn delete_user(&self, userid: &str) -> Result<(), DingTalkError> {
        DingTalkClient::delete_user(self, userid).await
    }
    async fn user_by_mobile(&self, mobile: &str) -> Result<Option<String>, DingTalkError> {
        match DingTalkClient::get_user_by_mobile(self, mobile).await {
            Ok(found) => Ok(found.userid.filter(|u| !u.is_empty())),
            Err(DingTalkError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
    async fn probe_write(&self, dept_id: i64) -> Result<(), DingTalkError> {
        DingTalkClient::probe_department_write(self, dept_id).await
    }
}

/// DingTalk's subtree under an Outbound root, as the plan reads it.
pub(super) struct Subtree {
    pub departments: Vec<Department>,
    pub users: Vec<User>,
    pub complete: bool,
    pub incomplete: Vec<String>,
}

/// Reads DingTalk's subtree, with every department's `source_identifier` (fetched one by one
/// where `listsub` leaves it out: whether it does is UNCONFIRMED). With `details`, every
/// department dingsync manages is fetched too: `listsub` carries no order, heads or
/// visibility, and the mapping writes some of them.
pub(super) async fn read_subtree(sink: &dyn DingTalkSink, root: i64, details: bool) -> Subtree {
    let scope = sink.read_scope(&[root]).await;
    let mut complete = scope.is_complete();
    let mut incomplete = scope.failure_messages();
    let mut departments = scope.departments;
    for d in departments.iter_mut().filter(|d| d.dept_id != root) {
        let managed =
            (d.source_identifier.as_deref()).is_some_and(|s| s.starts_with(SOURCE_PREFIX));
        if d.source_identifier.is_none() || (details && managed) {
            match sink.get_department(d.dept_id).await {
                Ok(full) => {
                    let mark = full.source_identifier.clone().or(Some(String::new()));
                    *d = Department {
                        source_identifier: mark,
                        ..full
                    };
                }
                Err(e) => {
                    complete = false;
                    incomplete.push(format!("department {}: {e}", d.dept_id));
                }
            }
        }
    }
    Subtree {
        departments,
        users: scope.users,
        complete,
        incomplete,
    }
}
