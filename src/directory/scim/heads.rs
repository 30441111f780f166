//! Department heads in SCIM. A Group carries only a name and members, so a department's
//! `owner` attribute (its heads: a `refersTo: Person` rule) becomes a Group of its own,
//! `<department group> heads` (externalId `dingsync:heads:<corpId>:<dept id>`), whose members
//! are the heads' Users. It exists only while the department has heads, is renamed with the
//! department and deleted with it, and is never read as a department.

use std::collections::HashMap;

use serde_json::json;

use super::{GROUP_SCHEMA, ScimDirectory, anchor, client::Resource};
use crate::directory::{Attrs, DirectoryError};

/// The department attribute that holds its heads.
pub(super) const OWNER: &str = "owner";

/// The heads Groups of `corp` among `groups`: department id → (Group id, member ids).
pub(super) fn heads_groups(
    groups: &[Resource],
    corp: &str,
) -> HashMap<String, (String, Vec<String>)> {
    let prefix = format!("dingsync:heads:{corp}:");
    let mut out = HashMap::new();
    for g in groups {
        let Some(dept) = g.body["externalId"]
            .as_str()
            .and_then(|e| e.strip_prefix(&prefix))
        else {
            continue;
        };
        let members = (g.body["members"].as_array().into_iter().flatten())
            .filter_map(|m| m["value"].as_str().map(str::to_owned))
            .collect();
        out.insert(dept.to_string(), (g.id.clone(), members));
    }
    out
}

/// Whether `g` is a heads Group (of any enterprise).
pub(super) fn is_heads_group(g: &Resource) -> bool {
    (g.body["externalId"].as_str()).is_some_and(|e| e.starts_with("dingsync:heads:"))
}

/// The heads Group's name for a department Group shown as `shown`.
fn heads_name(shown: &str) -> String {
    format!("{shown} heads")
}

/// The heads `changes` sets, when it sets them.
pub(super) fn heads_in(changes: &Attrs) -> Option<Vec<String>> {
    (changes.iter())
        .find(|(k, _)| k.eq_ignore_ascii_case(OWNER))
        .map(|(_, v)| v.to_vec())
}

impl ScimDirectory {
    /// Make department `id`'s heads Group hold exactly `heads` (SCIM User ids): created with
    /// the first head, deleted with the last.
    pub(super) async fn set_heads(&self, id: &str, heads: &[String]) -> Result<(), DirectoryError> {
        let existing = self.ix().heads.get(id).cloned();
        match existing {
            None if heads.is_empty() => Ok(()),
            None => {
                let dept = self.client.get("Groups", &self.dept(id)?).await?;
                let shown = dept.body["displayName"].as_str().unwrap_or_default();
                let members: Vec<_> = (heads.iter())
                    .map(|h| json!({"value": h, "type": "User"}))
                    .collect();
                let group = json!({
                    "schemas": [GROUP_SCHEMA],
                    "displayName": heads_name(shown),
                    "externalId": anchor("heads", &self.corp, id),
                    "members": members,
                });
                let created = self.client.create("Groups", group).await?;
                self.wrote();
                self.ix().heads.insert(id.to_string(), created.id);
                Ok(())
            }
            Some(group) if heads.is_empty() => self.drop_heads(id, &group).await,
            Some(group) => {
                let body = self.client.get("Groups", &group).await?.body;
                let have: Vec<String> = (body["members"].as_array().into_iter().flatten())
                    .filter_map(|m| m["value"].as_str().map(str::to_owned))
                    .collect();
                let add: Vec<(String, &str)> = (heads.iter())
                    .filter(|h| !have.contains(h))
                    .map(|h| (h.clone(), "User"))
                    .collect();
                let remove: Vec<String> = have.into_iter().filter(|h| !heads.contains(h)).collect();
                self.set_members(&group, &add, &remove).await
            }
        }
    }

    /// Delete department `id`'s heads Group.
    async fn drop_heads(&self, id: &str, group: &str) -> Result<(), DirectoryError> {
        self.client.delete("Groups", group).await?;
        self.wrote();
        self.ix().heads.remove(id);
        Ok(())
    }

    /// Department `id` is going: its heads Group goes first.
    pub(super) async fn delete_heads(&self, id: &str) -> Result<(), DirectoryError> {
        let existing = self.ix().heads.get(id).cloned();
        match existing {
            Some(group) => self.drop_heads(id, &group).await,
            None => Ok(()),
        }
    }

    /// Department `id`'s Group is now shown as `shown`: its heads Group follows.
    pub(super) async fn rename_heads(&self, id: &str, shown: &str) -> Result<(), DirectoryError> {
        let existing = self.ix().heads.get(id).cloned();
        match existing {
            Some(group) => self.rename_group(&group, &heads_name(shown)).await,
            None => Ok(()),
        }
    }
}
