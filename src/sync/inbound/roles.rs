//! Roles: DingTalk's roles kept as directory groups, when the target turns `roles` on. A
//! pass of its own after the people and departments are applied (the groups name people,
//! who must exist first): read the source's roles and their holders, read the directory's
//! role groups, and create, rename, re-member or delete groups to match.
//!
//! - A group's members are the role's holders that are this target's people, enabled, in
//!   the directory. Holders outside the scope (or filtered out, or disabled) are left out;
//!   members dingsync cannot tell as its own people are left alone.
//! - A role gone from DingTalk removes its group through the deletion gate (counted against
//!   the target's role groups, `deletion.maxCount` / `maxPercent`, the same approval); a held
//!   removal writes nothing of the removals, the rest of the pass applies. Deletion policy
//!   `Retain` keeps the groups of removed roles. People are never touched by this pass.
//! - A role read that fails leaves every role group as it is and marks the run incomplete.
//! - Turning `roles` off stops the pass: the groups it made are left as they are (neither
//!   updated nor deleted), so switching it off cannot empty a directory's groups by mistake.

use std::collections::{BTreeSet, HashMap};

use futures::{StreamExt, TryStreamExt, stream};

use super::{REFINE_BY_ANCHOR, plan::Options};
use crate::{
    api::target::DeletionPolicy,
    dingtalk::DingTalkClient,
    directory::{Anchors, Directory, RoleEntry},
    model::Role,
    sync::{Failure, Held, ObjectKind, Report, Source, SyncError, deletion_gate},
};

/// Role and role-assignment events (DingTalk calls roles "labels"). Each runs the roles
/// pass, which re-reads every role: the payloads name role ids and users in shapes the
/// reference does not document (unconfirmed), and a full re-read of the roles costs one call
/// plus one per role, far less than a full sync.
pub fn is_role_event(event_type: &str) -> bool {
    matches!(
        event_type,
        "label_user_change" | "label_conf_add" | "label_conf_modify" | "label_conf_del"
    )
}

/// One write of the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleStep {
    Create {
        id: String,
        name: String,
        members: Vec<String>,
    },
    Rename {
        id: String,
        from: String,
        to: String,
    },
    Members {
        id: String,
        name: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    Delete {
        id: String,
        name: String,
    },
}

impl RoleStep {
    fn subject(&self) -> (&str, &str) {
        match self {
            RoleStep::Create { id, name, .. }
            | RoleStep::Members { id, name, .. }
            | RoleStep::Delete { id, name } => (id, name),
            RoleStep::Rename { id, to, .. } => (id, to),
        }
    }
}

/// What the pass planned and did.
#[derive(Debug, Clone, Default)]
pub struct RolesReport {
    /// In the order applied (or, for a dry run, planned).
    pub steps: Vec<RoleStep>,
    /// Role groups the node holds after the pass.
    pub groups: usize,
    /// Set when the deletion gate kept the removals of role groups back.
    pub held: Option<Held>,
}

impl RolesReport {
    /// One line for a report: the groups held and what the pass changed.
    pub fn summary(&self) -> String {
        let count = |f: fn(&RoleStep) -> bool| self.steps.iter().filter(|s| f(s)).count();
        let mut s = format!(
            "roles: {} groups; {} created, {} renamed, {} re-membered, {} deleted",
            self.groups,
            count(|s| matches!(s, RoleStep::Create { .. })),
            count(|s| matches!(s, RoleStep::Rename { .. })),
            count(|s| matches!(s, RoleStep::Members { .. })),
            count(|s| matches!(s, RoleStep::Delete { .. })),
        );
        if let Some(h) = &self.held {
            s.push_str(&format!("; removals HELD: {}", h.message));
        }
        s
    }
}

/// The steps that bring `current` in line with `source`; `eligible` are the people a group
/// may name. Removals go through the deletion gate.
pub fn plan_roles(
    source: &[Role],
    current: &[RoleEntry],
    eligible: &BTreeSet<String>,
    opts: &Options,
) -> (Vec<RoleStep>, Option<Held>) {
    let have: HashMap<&str, &RoleEntry> = current.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut steps = vec![];
    for role in source {
        let title = role.group_title();
        let want: BTreeSet<String> = role.members.intersection(eligible).cloned().collect();
        let Some(cur) = have.get(role.id.as_str()) else {
            steps.push(RoleStep::Create {
                id: role.id.clone(),
                name: title,
                members: want.into_iter().collect(),
            });
            continue;
        };
        if cur.name != title {
            steps.push(RoleStep::Rename {
                id: role.id.clone(),
                from: cur.name.clone(),
                to: title.clone(),
            });
        }
        let add: Vec<String> = want.difference(&cur.members).cloned().collect();
        let remove: Vec<String> = cur.members.difference(&want).cloned().collect();
        if !add.is_empty() || !remove.is_empty() {
            steps.push(RoleStep::Members {
                id: role.id.clone(),
                name: title,
                add,
                remove,
            });
        }
    }
    let kept: BTreeSet<&str> = source.iter().map(|r| r.id.as_str()).collect();
    let gone: Vec<&RoleEntry> = current
        .iter()
        .filter(|r| !kept.contains(r.id.as_str()))
        .collect();
    if gone.is_empty() || opts.policy == DeletionPolicy::Retain {
        return (steps, None);
    }
    let ids = gone
        .iter()
        .map(|r| format!("delete-role:{}", r.id))
        .collect();
    let held = deletion_gate(
        ids,
        current.len(),
        opts.max_count,
        opts.max_percent,
        opts.approval.as_deref(),
        "role group removals",
    );
    if held.is_none() {
        steps.extend(gone.into_iter().map(|r| RoleStep::Delete {
            id: r.id.clone(),
            name: r.name.clone(),
        }));
    }
    (steps, held)
}

/// Role reads in flight at once (the client's limiter paces them).
const ROLE_READS: usize = 8;

/// Every DingTalk role with its holders: the role list, then each role's members.
pub async fn read_dingtalk_roles(client: &DingTalkClient) -> Result<Vec<Role>, SyncError> {
    let infos = client.list_roles().await.map_err(SyncError::Roles)?;
    stream::iter(infos)
        .map(|info| async move {
            let members = client
                .role_members(info.id)
                .await
                .map_err(SyncError::Roles)?;
            Ok(Role {
                id: info.id.to_string(),
                name: info.name,
                group_name: info.group_name,
                members: members.into_iter().collect(),
            })
        })
        .buffered(ROLE_READS)
        .try_collect()
        .await
}

/// The people role groups may name: of the roles' holders, those that are this target's
/// enabled people in the directory (read by anchor, which also indexes them for the writes).
async fn eligible(dir: &dyn Directory, roles: &[Role]) -> Result<BTreeSet<String>, SyncError> {
    let holders: BTreeSet<String> = roles
        .iter()
        .flat_map(|r| r.members.iter().cloned())
        .collect();
    if holders.is_empty() {
        return Ok(holders);
    }
    let snap = if holders.len() > REFINE_BY_ANCHOR {
        dir.read().await?
    } else {
        let anchors = Anchors {
            people: holders.clone(),
            ..Default::default()
        };
        dir.read_some(&anchors).await?
    };
    Ok(snap
        .people
        .into_iter()
        .filter(|p| !p.disabled)
        .filter_map(|p| p.id)
        .filter(|id| holders.contains(id))
        .collect())
}

/// Run the pass, adding what it did to `report`. A role read that fails marks the report
/// incomplete and changes nothing; a write that fails is a failure of that role group.
pub async fn sync_roles(
    source: &dyn Source,
    dir: &dyn Directory,
    opts: &Options,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), SyncError> {
    let roles = match source.read_roles().await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(()),
        Err(e) => {
            report.complete = false;
            report.incomplete.push(format!("roles not read: {e}"));
            return Ok(());
        }
    };
    let writes_before = dir.writes();
    let eligible = eligible(dir, &roles).await?;
    let current = dir.read_roles().await?;
    let (steps, held) = plan_roles(&roles, &current, &eligible, opts);
    let mut groups = current.len();
    if !dry_run {
        for step in &steps {
            match apply(dir, step).await {
                Ok(()) => match step {
                    RoleStep::Create { .. } => groups += 1,
                    RoleStep::Delete { .. } => groups -= 1,
                    _ => {}
                },
                Err(e) if e.is_per_object() => {
                    let (id, name) = step.subject();
                    report.failures.push(Failure {
                        kind: ObjectKind::Role,
                        id: id.to_string(),
                        name: name.to_string(),
                        reason: "Rejected".into(),
                        message: e.to_string(),
                        locator: None,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    report.writes += dir.writes() - writes_before;
    report.roles = Some(RolesReport {
        steps,
        groups,
        held,
    });
    Ok(())
}

async fn apply(
    dir: &dyn Directory,
    step: &RoleStep,
) -> Result<(), crate::directory::DirectoryError> {
    match step {
        RoleStep::Create { id, name, members } => dir.create_role(id, name, members).await,
        RoleStep::Rename { id, to, .. } => dir.rename_role(id, to).await,
        RoleStep::Members {
            id, add, remove, ..
        } => dir.role_members(id, add, remove).await,
        RoleStep::Delete { id, .. } => dir.delete_role(id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: &str, name: &str, members: &[&str]) -> Role {
        Role {
            id: id.into(),
            name: name.into(),
            group_name: "职务".into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn entry(id: &str, name: &str, members: &[&str]) -> RoleEntry {
        RoleEntry {
            key: id.into(),
            id: id.into(),
            name: name.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn people(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn roles_become_groups_of_eligible_holders_and_follow_renames() {
        let opts = Options::default();
        let source = [
            role("1", "财务", &["a", "b", "outsider"]),
            role("2", "人事", &[]),
        ];
        let (steps, held) = plan_roles(&source, &[], &people(&["a", "b"]), &opts);
        assert!(held.is_none());
        assert_eq!(
            steps,
            [
                RoleStep::Create {
                    id: "1".into(),
                    name: "职务-财务".into(),
                    members: vec!["a".into(), "b".into()]
                },
                RoleStep::Create {
                    id: "2".into(),
                    name: "职务-人事".into(),
                    members: vec![]
                },
            ]
        );
        let current = [
            entry("1", "职务-财务", &["a", "b"]),
            entry("2", "职务-人事", &[]),
        ];
        assert!(
            plan_roles(&source, &current, &people(&["a", "b"]), &opts)
                .0
                .is_empty()
        );
        let renamed = [role("1", "会计", &["b", "c"]), role("2", "人事", &[])];
        let (steps, _) = plan_roles(&renamed, &current, &people(&["b", "c"]), &opts);
        assert_eq!(
            steps,
            [
                RoleStep::Rename {
                    id: "1".into(),
                    from: "职务-财务".into(),
                    to: "职务-会计".into()
                },
                RoleStep::Members {
                    id: "1".into(),
                    name: "职务-会计".into(),
                    add: vec!["c".into()],
                    remove: vec!["a".into()]
                },
            ]
        );
    }

    #[test]
    fn removed_roles_go_through_the_gate_and_retain_keeps_them() {
        let current: Vec<RoleEntry> = (0..10)
            .map(|i| entry(&i.to_string(), &format!("r{i}"), &[]))
            .collect();
        let source: Vec<Role> = (1..10)
            .map(|i| role(&i.to_string(), &format!("r{i}"), &[]))
            .collect();
        let renamed: Vec<Role> = source
            .iter()
            .map(|r| Role {
                group_name: String::new(),
                ..r.clone()
            })
            .collect();
        let opts = Options {
            max_percent: 100,
            ..Default::default()
        };
        let (steps, held) = plan_roles(&renamed, &current, &BTreeSet::new(), &opts);
        assert!(held.is_none());
        assert_eq!(
            steps,
            [RoleStep::Delete {
                id: "0".into(),
                name: "r0".into()
            }]
        );
        // Every role gone at once (an empty read): held by the percentage.
        let (steps, held) = plan_roles(&[], &current, &BTreeSet::new(), &Options::default());
        assert!(steps.is_empty());
        assert_eq!(held.expect("held").removals, 10);
        let retain = Options {
            policy: DeletionPolicy::Retain,
            max_percent: 100,
            ..Default::default()
        };
        assert!(
            plan_roles(&[], &current, &BTreeSet::new(), &retain)
                .0
                .is_empty()
        );
    }
}
