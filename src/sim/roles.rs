//! Roles (DingTalk's "角色", the label API family): role groups holding roles, roles assigned
//! to people. The org keeps them ([`RoleGroup`]); the old host serves `topapi/role/list`,
//! `topapi/role/simplelist` and `topapi/role/getrole`, and a person's `role_list` on
//! `user/get` and `user/list`; the admin API changes them and announces the `label_*` events.
//!
//! What the reference does not state, the simulator assumes and marks (unconfirmed):
//! - `role/list` pages role groups by `offset`/`size` (size ≤ 200) and answers
//!   `{"hasMore", "list": [{"groupId", "name", "roles": [{"id", "name"}]}]}` (unconfirmed).
//! - `role/simplelist` pages a role's members by `offset`/`size` (size ≤ 200) and answers
//!   `{"hasMore", "nextCursor", "list": [{"userid", "name"}]}` (unconfirmed); an unknown role
//!   answers errcode 40102 (unconfirmed).
//! - Roles are enterprise-wide: the app's contact scope does not narrow role listings, but
//!   members outside it are left out of `simplelist` (unconfirmed; the safer case for a reader:
//!   it must not rely on seeing everyone).
//! - Event payloads: `label_conf_add|modify|del` carry the role ids (`LabelIdList`),
//!   `label_user_change` the users and the role ids (unconfirmed).
//! - The role APIs need the same app permission as reading a member (unconfirmed).

use axum::response::Response;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, api_err};
use super::old_host::{envelope::ok_result, params::Params};
use super::org::{App, Org};
use super::state::{Change, State};

/// A role group and its roles.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoleGroup {
    pub group_id: i64,
    pub name: String,
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// A role and the userids it is assigned to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub id: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

const PAGE_MAX: i64 = 200;

/// A person's `role_list` as `user/get` and `user/list` give it.
pub fn role_list(org: &Org, userid: &str) -> Vec<Value> {
    let mut out = vec![];
    for g in &org.roles {
        for r in &g.roles {
            if r.members.iter().any(|m| m == userid) {
                out.push(json!({"id": r.id, "name": r.name, "group_name": g.name}));
            }
        }
    }
    out
}

/// Role ids unique, role groups' ids unique, holders known people.
pub fn validate(org: &Org) -> Result<(), String> {
    let mut groups = std::collections::BTreeSet::new();
    let mut roles = std::collections::BTreeSet::new();
    for g in &org.roles {
        if !groups.insert(g.group_id) {
            return Err(format!("role group id {} appears twice", g.group_id));
        }
        for r in &g.roles {
            if !roles.insert(r.id) {
                return Err(format!("role id {} appears twice", r.id));
            }
            if let Some(m) = r.members.iter().find(|m| org.person(m).is_none()) {
                return Err(format!("role {} names unknown person {m}", r.id));
            }
        }
    }
    Ok(())
}

/// Adds `role_list` to a rendered user (absent when the person has no role).
pub fn put_role_list(org: &Org, user: &mut Value) {
    let Some(uid) = user["userid"].as_str() else {
        return;
    };
    let list = role_list(org, uid);
    if !list.is_empty() {
        user["role_list"] = Value::Array(list);
    }
}

fn page_args(p: &Params) -> Result<(usize, usize), ApiError> {
    let offset = p.i64("offset")?.unwrap_or(0);
    let size = p.i64("size")?.unwrap_or(20);
    if offset < 0 || !(1..=PAGE_MAX).contains(&size) {
        return Err(api_err(40035, "不合法的参数: offset/size"));
    }
    Ok((offset as usize, size as usize))
}

/// `topapi/role/list`: role groups with their roles, paged by group.
pub fn list(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let (offset, size) = page_args(p)?;
    let groups = &st.org().roles;
    let end = (offset + size).min(groups.len());
    let list: Vec<Value> = groups[offset.min(end)..end]
        .iter()
        .map(|g| {
            let roles: Vec<Value> = (g.roles.iter())
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect();
            json!({"groupId": g.group_id, "name": g.name, "roles": roles})
        })
        .collect();
    Ok(ok_result(
        json!({"hasMore": end < groups.len(), "list": list}),
    ))
}

fn find(org: &Org, id: i64) -> Option<(&RoleGroup, &Role)> {
    org.roles
        .iter()
        .find_map(|g| g.roles.iter().find(|r| r.id == id).map(|r| (g, r)))
}

/// `topapi/role/simplelist`: a role's members in the app's scope, paged.
pub fn simple_list(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("role_id")?;
    let (offset, size) = page_args(p)?;
    let org = st.org();
    let (_, role) = find(org, id).ok_or_else(|| api_err(40102, "角色不存在"))?;
    let members: Vec<Value> = (role.members.iter())
        .filter_map(|u| org.person(u))
        .filter(|person| org.person_in_scope(app, person))
        .map(|person| json!({"userid": person.userid, "name": person.name}))
        .collect();
    let end = (offset + size).min(members.len());
    let has_more = end < members.len();
    let mut result = json!({"hasMore": has_more, "list": members[offset.min(end)..end]});
    if has_more {
        result["nextCursor"] = json!(end);
    }
    Ok(ok_result(result))
}

/// `topapi/role/getrole`: one role's name and group.
pub fn get_role(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("roleId")?;
    let (g, r) = find(st.org(), id).ok_or_else(|| api_err(40102, "角色不存在"))?;
    Ok(ok_result(json!({"role": {
        "name": r.name, "groupId": g.group_id, "groupName": g.name,
    }})))
}

/// Generated roles: a few role groups of a few roles, each held by a handful of people. Drawn
/// from their own random stream, so the rest of a generated org does not depend on them.
pub fn generate(org: &mut Org, seed: u64) {
    const GROUPS: &[(&str, &[&str])] = &[
        ("默认", &["主管理员", "子管理员", "负责人"]),
        ("职务", &["财务", "人事", "前台"]),
        ("Engineering", &["On-call", "Reviewer"]),
    ];
    let mut rng = StdRng::seed_from_u64(seed ^ 0x726f_6c65);
    let people: Vec<String> = org.people.iter().map(|p| p.userid.clone()).collect();
    let mut next = 1_000_000 + rng.random_range(0..1000) as i64;
    for (gi, (group, roles)) in GROUPS.iter().enumerate() {
        let mut g = RoleGroup {
            group_id: 100 + gi as i64,
            name: group.to_string(),
            roles: vec![],
        };
        for name in *roles {
            next += rng.random_range(1..20) as i64;
            let mut members = vec![];
            let want = rng.random_range(0..=people.len().min(6));
            for _ in 0..want {
                let u = &people[rng.random_range(0..people.len())];
                if !members.contains(u) {
                    members.push(u.clone());
                }
            }
            g.roles.push(Role {
                id: next,
                name: name.to_string(),
                members,
            });
        }
        org.roles.push(g);
    }
}

/// What the admin API may do to roles.
#[derive(Deserialize, Debug, Default)]
pub struct RoleEdit {
    /// Create: the group (by name; created when missing). Ignored on update.
    #[serde(default)]
    pub group_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// userids to assign / unassign.
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

fn label_change(event_type: &'static str, role: i64, users: Vec<String>) -> Change {
    Change {
        event_type,
        user_ids: users,
        dept_ids: vec![],
        diff: Some(json!({"LabelIdList": [role]})),
    }
}

impl State {
    /// Create a role (`label_conf_add`); its group is made when missing.
    pub fn create_role(&mut self, e: RoleEdit) -> Result<Role, ApiError> {
        let name = e.name.filter(|n| !n.trim().is_empty());
        let name = name.ok_or_else(|| api_err(40035, "不合法的参数: name"))?;
        let group = e.group_name.unwrap_or_else(|| "默认".into());
        let roles = &mut self.book.org.roles;
        let next = (roles.iter())
            .flat_map(|g| g.roles.iter().map(|r| r.id))
            .max()
            .unwrap_or(1_000_000)
            + 1;
        let gi = match roles.iter().position(|g| g.name == group) {
            Some(i) => i,
            None => {
                let group_id = roles.iter().map(|g| g.group_id).max().unwrap_or(99) + 1;
                roles.push(RoleGroup {
                    group_id,
                    name: group,
                    roles: vec![],
                });
                roles.len() - 1
            }
        };
        let role = Role {
            id: next,
            name,
            members: vec![],
        };
        roles[gi].roles.push(role.clone());
        self.emit(label_change("label_conf_add", next, vec![]));
        if !e.add.is_empty() {
            return self.update_role(
                next,
                RoleEdit {
                    add: e.add,
                    ..Default::default()
                },
            );
        }
        Ok(role)
    }

    /// Rename a role (`label_conf_modify`) and/or change who holds it (`label_user_change`).
    pub fn update_role(&mut self, id: i64, e: RoleEdit) -> Result<Role, ApiError> {
        for u in &e.add {
            if self.book.org.person(u).is_none() {
                return Err(api_err(60121, "找不到该用户"));
            }
        }
        let role = (self.book.org.roles.iter_mut())
            .find_map(|g| g.roles.iter_mut().find(|r| r.id == id))
            .ok_or_else(|| api_err(40102, "角色不存在"))?;
        let renamed = e.name.as_ref().is_some_and(|n| *n != role.name);
        if let Some(n) = e.name.filter(|_| renamed) {
            role.name = n;
        }
        let mut changed = vec![];
        for u in e.add {
            if !role.members.contains(&u) {
                role.members.push(u.clone());
                changed.push(u);
            }
        }
        for u in e.remove {
            if let Some(i) = role.members.iter().position(|m| *m == u) {
                role.members.remove(i);
                changed.push(u);
            }
        }
        let out = role.clone();
        if renamed {
            self.emit(label_change("label_conf_modify", id, vec![]));
        }
        if !changed.is_empty() {
            self.emit(label_change("label_user_change", id, changed));
        }
        Ok(out)
    }

    /// Delete a role (`label_conf_del`); an emptied group stays.
    pub fn delete_role(&mut self, id: i64) -> Result<Role, ApiError> {
        let mut removed = None;
        for g in &mut self.book.org.roles {
            if let Some(i) = g.roles.iter().position(|r| r.id == id) {
                removed = Some(g.roles.remove(i));
            }
        }
        let role = removed.ok_or_else(|| api_err(40102, "角色不存在"))?;
        self.emit(label_change("label_conf_del", id, vec![]));
        Ok(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::generate::{GenSpec, generate as gen_org};

    #[test]
    fn generated_roles_are_deterministic_and_name_real_people() {
        let a = gen_org(&GenSpec::default());
        let b = gen_org(&GenSpec::default());
        assert_eq!(a.roles, b.roles);
        assert!(a.roles.iter().map(|g| g.roles.len()).sum::<usize>() >= 8);
        let held: Vec<&String> = a
            .roles
            .iter()
            .flat_map(|g| &g.roles)
            .flat_map(|r| &r.members)
            .collect();
        assert!(!held.is_empty());
        assert!(held.iter().all(|u| a.person(u).is_some()));
        let u = held[0];
        assert!(role_list(&a, u).iter().any(|r| r["group_name"].is_string()));
        let mut bad = a.clone();
        bad.roles[0].roles[0].members.push("nobody".into());
        assert!(validate(&bad).unwrap_err().contains("nobody"));
        let mut twice = a.clone();
        let again = twice.roles[0].roles[0].clone();
        twice.roles[1].roles.push(again);
        assert!(validate(&twice).unwrap_err().contains("appears twice"));
    }

    #[test]
    fn role_edits_announce_label_events() {
        let org = gen_org(&GenSpec::default());
        let someone = org.people[0].userid.clone();
        let mut st = State::new(org, None, 10, 0);
        let r = st
            .create_role(RoleEdit {
                group_name: Some("新组".into()),
                name: Some("审计".into()),
                add: vec![someone.clone()],
                ..Default::default()
            })
            .unwrap();
        st.update_role(
            r.id,
            RoleEdit {
                name: Some("审计员".into()),
                remove: vec![someone],
                ..Default::default()
            },
        )
        .unwrap();
        st.delete_role(r.id).unwrap();
        let types: Vec<String> = st
            .delivery
            .event_log
            .iter()
            .map(|e| e.event_type.clone())
            .collect();
        assert_eq!(
            types,
            [
                "label_conf_add",
                "label_user_change",
                "label_conf_modify",
                "label_user_change",
                "label_conf_del"
            ]
        );
        assert!(st.update_role(r.id, RoleEdit::default()).is_err());
    }
}
