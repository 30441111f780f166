//! Role groups: one Group per DingTalk role, `displayName` `<node prefix>/role:<group
//! name>-<role name>`, `externalId` `dingsync:role:<corpId>:<role id>` (so a renamed role is
//! a rename of the same Group). A node read skips them (their anchor is not a department's).

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use super::client::ScimError;
use super::{GROUP_SCHEMA, ScimDirectory, anchor};
use crate::directory::{DirectoryError, RoleEntry};

/// What a role group's `displayName` carries after the node prefix.
const ROLE_PREFIX: &str = "role:";

impl ScimDirectory {
    fn role_shown(&self, name: &str) -> String {
        self.group_name(&format!("{ROLE_PREFIX}{name}"))
    }

    fn role_group(&self, id: &str) -> Result<String, DirectoryError> {
        self.roles_ix()
            .get(id)
            .cloned()
            .ok_or_else(|| DirectoryError::Rejected(format!("role {id} is not in the directory")))
    }

    fn roles_ix(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.roles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source id of the User `scim_id` (a member the index does not know yet).
    async fn person_of(&self, scim_id: &str) -> Result<Option<String>, DirectoryError> {
        let prefix = format!("dingsync:user:{}:", self.corp);
        match self.client.get("Users", scim_id).await {
            Ok(u) => {
                let id = u.body["externalId"]
                    .as_str()
                    .and_then(|e| e.strip_prefix(&prefix))
                    .map(str::to_string);
                if let Some(id) = &id {
                    self.ix().people.entry(id.clone()).or_insert(u.id);
                }
                Ok(id)
            }
            Err(ScimError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn read_role_groups(&self) -> Result<Vec<RoleEntry>, DirectoryError> {
        let prefix = format!("dingsync:role:{}:", self.corp);
        let shown_prefix = self.role_shown("");
        let groups = self.client.list("Groups", None).await?;
        let by_scim: HashMap<String, String> = (self.ix().people.iter())
            .map(|(id, s)| (s.clone(), id.clone()))
            .collect();
        let mut ix = HashMap::new();
        let mut out = vec![];
        for g in groups {
            let Some(id) = g.body["externalId"]
                .as_str()
                .and_then(|e| e.strip_prefix(&prefix))
            else {
                continue;
            };
            let mut members = BTreeSet::new();
            for m in g.body["members"].as_array().into_iter().flatten() {
                let v = m["value"].as_str().unwrap_or_default();
                match by_scim.get(v) {
                    Some(p) => {
                        members.insert(p.clone());
                    }
                    None => members.extend(self.person_of(v).await?),
                }
            }
            let shown = g.body["displayName"].as_str().unwrap_or_default();
            ix.insert(id.to_string(), g.id.clone());
            out.push(RoleEntry {
                key: g.id.clone(),
                id: id.to_string(),
                name: shown
                    .strip_prefix(&shown_prefix)
                    .unwrap_or(shown)
                    .to_string(),
                members,
            });
        }
        *self.roles_ix() = ix;
        Ok(out)
    }

    pub(super) async fn create_role_group(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        let values: Vec<serde_json::Value> = (members.iter())
            .filter_map(|p| self.ix().people.get(p).cloned())
            .map(|s| json!({"value": s, "type": "User"}))
            .collect();
        let group = json!({
            "schemas": [GROUP_SCHEMA],
            "displayName": self.role_shown(name),
            "externalId": anchor("role", &self.corp, id),
            "members": values,
        });
        let created = self.client.create("Groups", group).await?;
        self.wrote();
        self.roles_ix().insert(id.to_string(), created.id);
        Ok(())
    }

    pub(super) async fn rename_role_group(
        &self,
        id: &str,
        name: &str,
    ) -> Result<(), DirectoryError> {
        let group = self.role_group(id)?;
        self.rename_group(&group, &self.role_shown(name)).await
    }

    pub(super) async fn role_group_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        let group = self.role_group(id)?;
        let (add, remove) = {
            let ix = self.ix();
            let add: Vec<(String, &str)> = (add.iter())
                .filter_map(|p| ix.people.get(p).map(|s| (s.clone(), "User")))
                .collect();
            let remove: Vec<String> = remove
                .iter()
                .filter_map(|p| ix.people.get(p).cloned())
                .collect();
            (add, remove)
        };
        self.set_members(&group, &add, &remove).await
    }

    pub(super) async fn delete_role_group(&self, id: &str) -> Result<(), DirectoryError> {
        let group = self.role_group(id)?;
        self.client.delete("Groups", &group).await?;
        self.wrote();
        self.roles_ix().remove(id);
        Ok(())
    }
}
