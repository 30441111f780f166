//! DingTalk as the source of an inbound sync: one scope read, normalised into the model;
//! for an incremental run, a re-read of just the records events named.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, stream};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Source, SyncError};
use crate::{
    dingtalk::{self as dt, DingTalkClient, DingTalkError, ScopeFailure, ScopeRead},
    model::{Changes, Department, Person, SourceSnapshot},
};

/// Single-record reads in flight at once during an incremental re-read (the client's per-API
/// limiter paces them; this only keeps the quota busy).
const REREAD_CONCURRENCY: usize = 16;

/// Parent chains longer than DingTalk allows are treated as out of scope.
const MAX_DEPTH: usize = 64;

/// Reads the departments under `roots` and their members.
pub struct DingTalkSource {
    pub client: DingTalkClient,
    pub roots: Vec<i64>,
    /// Department → parent, learnt by incremental re-reads to decide what is in scope; an
    /// event about a department drops its entry (it may have moved).
    parents: std::sync::Mutex<HashMap<i64, Option<i64>>>,
}

impl DingTalkSource {
    pub fn new(client: DingTalkClient, roots: Vec<i64>) -> Self {
        Self {
            client,
            roots,
            parents: Default::default(),
        }
    }
}

#[async_trait]
impl Source for DingTalkSource {
    async fn read(&self) -> Result<SourceSnapshot, SyncError> {
        let read = self.client.read_scope(&self.roots).await;
        if read.users.is_empty() && !read.is_complete() {
            return Err(SyncError::Source(read.failure_messages().join("; ")));
        }
        Ok(to_model(&self.client.config().corp_id, read))
    }

    /// Re-read each named person (`user/get`) and department (`department/get`): never trust
    /// an event's payload or order, only DingTalk's current state. Gone (60121 / 60003) or
    /// outside the scope means absent, which the plan reads as "left"; any other failure makes
    /// the snapshot incomplete, so nothing is disabled on its account and the event is retried.
    async fn read_changed(&self, changes: &Changes) -> Result<SourceSnapshot, SyncError> {
        let client = &self.client;
        let mut failures: Vec<ScopeFailure> = Vec::new();
        let dept_ids: Vec<i64> = changes
            .departments
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        let depts: Vec<(i64, Result<dt::Department, DingTalkError>)> = stream::iter(dept_ids)
            .map(|id| async move { (id, client.get_department(id).await) })
            .buffer_unordered(REREAD_CONCURRENCY)
            .collect()
            .await;
        let users: Vec<(String, Result<dt::User, DingTalkError>)> =
            stream::iter(changes.people.iter().cloned())
                .map(|id| async move {
                    let r = client.get_user(&id).await;
                    (id, r)
                })
                .buffer_unordered(REREAD_CONCURRENCY)
                .collect()
                .await;
        let mut parents: HashMap<i64, Option<i64>> = {
            let mut cache = self.parents.lock().unwrap_or_else(|e| e.into_inner());
            for d in &changes.departments {
                if let Ok(id) = d.parse::<i64>() {
                    cache.remove(&id);
                }
            }
            cache.clone()
        };
        let mut found_depts = Vec::new();
        for (id, r) in depts {
            match r {
                Ok(d) => {
                    parents.insert(d.dept_id, d.parent_id);
                    found_depts.push(d);
                }
                Err(DingTalkError::NotFound { .. }) => {}
                Err(error) => failures.push(ScopeFailure {
                    api: dt::contacts::API_DEPT_GET,
                    dept_id: id,
                    error,
                }),
            }
        }
        let mut found_users = Vec::new();
        for (id, r) in users {
            match r {
                Ok(u) => found_users.push(u),
                Err(DingTalkError::NotFound { .. }) => {}
                Err(error) => {
                    return Err(SyncError::Source(format!("re-reading user {id}: {error}")));
                }
            }
        }
        // Which departments lie under the scope roots: walk parents, reading the ones not yet
        // known (each at most once).
        let roots: HashSet<i64> = self.roots.iter().copied().collect();
        let mut verdict: HashMap<i64, bool> = HashMap::new();
        let mut wanted: Vec<i64> = found_depts.iter().map(|d| d.dept_id).collect();
        for u in &found_users {
            wanted.extend(u.dept_id_list.iter().flatten().copied());
        }
        for start in wanted {
            let mut chain = vec![];
            let mut at = Some(start);
            let inside = loop {
                let Some(d) = at else { break false };
                if let Some(v) = verdict.get(&d) {
                    break *v;
                }
                if roots.contains(&d) {
                    break true;
                }
                if chain.len() > MAX_DEPTH || chain.contains(&d) {
                    break false;
                }
                chain.push(d);
                if let std::collections::hash_map::Entry::Vacant(slot) = parents.entry(d) {
                    slot.insert(match client.get_department(d).await {
                        Ok(dep) => dep.parent_id,
                        Err(DingTalkError::NotFound { .. }) => None,
                        Err(error) => {
                            failures.push(ScopeFailure {
                                api: dt::contacts::API_DEPT_GET,
                                dept_id: d,
                                error,
                            });
                            None
                        }
                    });
                }
                at = parents.get(&d).copied().flatten();
            };
            for d in chain {
                verdict.insert(d, inside);
            }
        }
        *self.parents.lock().unwrap_or_else(|e| e.into_inner()) = parents;
        let in_scope: HashSet<i64> = verdict
            .iter()
            .filter(|(_, v)| **v)
            .map(|(d, _)| *d)
            .chain(roots.iter().copied())
            .collect();
        found_depts.retain(|d| in_scope.contains(&d.dept_id));
        found_users.retain(|u| {
            u.dept_id_list
                .iter()
                .flatten()
                .any(|d| in_scope.contains(d))
        });
        let read = ScopeRead {
            departments: found_depts,
            users: found_users,
            failures,
            calls: Default::default(),
        };
        Ok(to_model_in(&client.config().corp_id, read, &in_scope))
    }
}

/// Convert a scope read; every DingTalk field stays available to templates.
pub fn to_model(corp_id: &str, read: ScopeRead) -> SourceSnapshot {
    to_model_in(corp_id, read, &HashSet::new())
}

/// [`to_model`] where memberships of `also_in_scope` departments are kept too (a partial
/// re-read, whose departments are mostly not in the read itself).
pub fn to_model_in(corp_id: &str, read: ScopeRead, also_in_scope: &HashSet<i64>) -> SourceSnapshot {
    let in_scope: HashSet<i64> = read
        .departments
        .iter()
        .map(|d| d.dept_id)
        .chain(also_in_scope.iter().copied())
        .collect();
    let departments = read
        .departments
        .iter()
        .map(|d| Department {
            id: d.dept_id.to_string(),
            name: d.name.clone(),
            parent: d
                .parent_id
                .filter(|p| in_scope.contains(p))
                .map(|p| p.to_string()),
            fields: [
                ("id", json!(d.dept_id.to_string())),
                ("name", json!(d.name)),
                ("parent_id", json!(d.parent_id)),
                ("order", json!(d.order)),
                ("source_identifier", json!(d.source_identifier)),
                ("corp_id", json!(corp_id)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        })
        .collect();
    let complete = read.is_complete();
    let incomplete = read.failure_messages();
    // Consumed one by one, so the read shrinks as the model grows (at 100,000 people the two
    // together were a large share of a run's peak memory). Pushed into a vector of its own:
    // collecting would reuse the read's allocation in place, sized for the much larger `User`.
    let mut people = Vec::with_capacity(read.users.len());
    people.extend(read.users.into_iter().filter_map(|u| {
        let Value::Object(mut fields) = u.to_json() else {
            return None;
        };
        let id = fields.get("userid")?.as_str()?.to_string();
        let name = fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let depts: Vec<String> = fields
            .get("dept_id_list")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_i64)
                    .filter(|d| in_scope.contains(d))
                    .map(|d| d.to_string())
                    .collect()
            })
            .unwrap_or_default();
        fields.insert("corp_id".into(), json!(corp_id));
        fields.insert("main_dept_id".into(), json!(depts.first()));
        Some(Person {
            id,
            name,
            main_department: depts.first().cloned(),
            departments: depts,
            fields: fields.into_iter().collect(),
        })
    }));
    SourceSnapshot {
        corp_id: corp_id.into(),
        departments,
        people,
        complete,
        incomplete,
    }
}
