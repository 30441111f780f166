//! DingTalk as the source of an inbound sync: one scope read, normalised into the model.

use std::collections::HashSet;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Source, SyncError};
use crate::{
    dingtalk::{DingTalkClient, ScopeRead},
    model::{Department, Person, SourceSnapshot},
};

/// Reads the departments under `roots` and their members.
pub struct DingTalkSource {
    pub client: DingTalkClient,
    pub roots: Vec<i64>,
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
}

/// Convert a scope read; every DingTalk field stays available to templates.
pub fn to_model(corp_id: &str, read: ScopeRead) -> SourceSnapshot {
    let in_scope: HashSet<i64> = read.departments.iter().map(|d| d.dept_id).collect();
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
    let people = read
        .users
        .iter()
        .filter_map(|u| {
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
        })
        .collect();
    SourceSnapshot {
        corp_id: corp_id.into(),
        departments,
        people,
        complete: read.is_complete(),
        incomplete: read.failure_messages(),
    }
}
