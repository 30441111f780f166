//! What of the enterprise an Inbound target reads: its roots (or the app's own contact scope
//! when it names none), the subtrees it leaves out (excluded, hidden) and its people filter.
//! People these leave out are simply absent from the source, so the plan treats them exactly
//! like people who left the scope: the deletion policy and its gate apply.

use std::{collections::HashSet, sync::Arc};

use futures::{StreamExt, stream};

use super::{
    SyncError,
    people_filter::{FilterError, PeopleFilter},
};
use crate::{
    api::target::Scope,
    dingtalk::{self as dt, DingTalkClient, DingTalkError, scope::Pruning},
    model::SourceSnapshot,
};

/// Single-person reads in flight at once (the client's per-API limiter paces them).
const CONCURRENCY: usize = 16;

/// Failures named one by one in a snapshot's `incomplete`; the rest are counted.
const NAMED_FAILURES: usize = 5;

/// A target's scope rules, compiled.
#[derive(Debug, Default, Clone)]
pub struct ScopeRules {
    /// Roots of the subtrees read; empty: the app's own contact scope.
    pub roots: Vec<i64>,
    /// Subtrees left out.
    pub pruning: Pruning,
    /// The people filter, with its text (to tell two rule sets apart).
    filter: Option<(String, Arc<PeopleFilter>)>,
}

impl PartialEq for ScopeRules {
    fn eq(&self, other: &Self) -> bool {
        self.roots == other.roots
            && self.pruning.excluded == other.pruning.excluded
            && self.pruning.hidden == other.pruning.hidden
            && self.filter.as_ref().map(|f| &f.0) == other.filter.as_ref().map(|f| &f.0)
    }
}

impl ScopeRules {
    /// The subtrees under `roots`, whole (hidden departments included), everybody in them.
    pub fn roots(roots: Vec<i64>) -> Self {
        Self {
            roots,
            ..Default::default()
        }
    }

    /// The rules a SyncTarget's `scope` sets; the error names `spec.scope.peopleFilter`.
    pub fn for_target(scope: &Scope) -> Result<Self, FilterError> {
        let filter = match &scope.people_filter {
            Some(text) => Some((text.clone(), Arc::new(PeopleFilter::compile(text)?))),
            None => None,
        };
        Ok(Self {
            roots: scope.department_ids.clone(),
            pruning: Pruning {
                excluded: scope.exclude_department_ids.iter().copied().collect(),
                hidden: !scope.include_hidden,
            },
            filter,
        })
    }

    /// The person fields the people filter reads.
    pub fn filter_fields(&self) -> Vec<String> {
        self.filter
            .as_ref()
            .map(|(_, f)| f.fields().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Leaves out the people the filter does not keep. One it cannot decide about is left
    /// out too, and the snapshot marked incomplete: nobody is disabled on a guess.
    pub fn filter_people(&self, snapshot: &mut SourceSnapshot) {
        let Some((_, filter)) = &self.filter else {
            return;
        };
        let mut failed: Vec<String> = Vec::new();
        snapshot.people.retain(|p| match filter.keeps(p) {
            Ok(keep) => keep,
            Err(e) => {
                failed.push(e.to_string());
                false
            }
        });
        note_failures(snapshot, failed);
    }
}

/// Where a read starts: the roots, and the people authorised one by one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reach {
    pub roots: Vec<i64>,
    /// People the app may read whatever their departments (its own scope only).
    pub users: HashSet<String>,
    /// Set when the app's own scope is narrower than the whole enterprise: what it covers.
    pub note: Option<String>,
}

/// The roots `rules` name, or the app's own contact scope (`/auth/scopes`) when they name
/// none. An empty scope is refused: read as "nobody", it would disable everyone.
pub async fn reach(client: &DingTalkClient, rules: &ScopeRules) -> Result<Reach, SyncError> {
    if !rules.roots.is_empty() {
        return Ok(Reach {
            roots: rules.roots.clone(),
            ..Default::default()
        });
    }
    let scope = client.auth_scopes().await.map_err(SyncError::AppScope)?;
    if scope.is_whole_org() {
        return Ok(Reach {
            roots: vec![1],
            ..Default::default()
        });
    }
    if scope.departments.is_empty() && scope.users.is_empty() {
        return Err(SyncError::Source(
            "the app's contact scope is empty: grant it departments or people in DingTalk's \
             developer console, or set spec.scope.departmentIds"
                .into(),
        ));
    }
    let note = format!(
        "the app's contact scope is narrower than the whole enterprise: departments {:?} \
         and {} people authorised one by one; only they are synced",
        scope.departments,
        scope.users.len()
    );
    Ok(Reach {
        roots: scope.departments,
        users: scope.users.into_iter().collect(),
        note: Some(note),
    })
}

/// Reads each of `users` (`user/get`). One gone, or no longer in the app's scope, is left
/// out; any other failure is returned as a message, so the read is incomplete.
pub async fn read_users(
    client: &DingTalkClient,
    users: impl IntoIterator<Item = String>,
) -> (Vec<dt::User>, Vec<String>) {
    let answers: Vec<(String, Result<dt::User, DingTalkError>)> = stream::iter(users)
        .map(|id| async move {
            let r = client.get_user(&id).await;
            (id, r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let (mut found, mut failed) = (Vec::new(), Vec::new());
    for (id, r) in answers {
        match r {
            Ok(u) => found.push(u),
            Err(e) if is_absent(&e) => {}
            Err(e) => failed.push(format!("user {id}: {e}")),
        }
    }
    (found, failed)
}

/// DingTalk no longer shows the record to this app: it is gone (60121, 60003), or outside
/// the app's contact scope (50002 user, 50004 department). Either way it is out of scope.
pub fn is_absent(e: &DingTalkError) -> bool {
    matches!(
        e,
        DingTalkError::NotFound { .. }
            | DingTalkError::Denied {
                errcode: 50002 | 50004,
                ..
            }
    )
}

/// Marks `snapshot` incomplete for `failed`, naming the first few.
pub fn note_failures(snapshot: &mut SourceSnapshot, failed: Vec<String>) {
    if failed.is_empty() {
        return;
    }
    snapshot.complete = false;
    let more = failed.len().saturating_sub(NAMED_FAILURES);
    snapshot
        .incomplete
        .extend(failed.into_iter().take(NAMED_FAILURES));
    if more > 0 {
        snapshot.incomplete.push(format!("and {more} more"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_the_spec_and_tell_apart_filters() {
        let scope = Scope {
            department_ids: vec![],
            exclude_department_ids: vec![7, 9],
            include_hidden: false,
            people_filter: Some("{{ active }}".into()),
        };
        let rules = ScopeRules::for_target(&scope).unwrap();
        assert!(rules.roots.is_empty(), "the app's own scope");
        assert!(rules.pruning.hidden);
        assert_eq!(rules.pruning.excluded, HashSet::from([7, 9]));
        assert_eq!(rules.filter_fields(), vec!["active".to_string()]);
        let other = Scope {
            people_filter: Some("{{ not active }}".into()),
            ..scope.clone()
        };
        assert_ne!(rules, ScopeRules::for_target(&other).unwrap());
        assert_eq!(rules, ScopeRules::for_target(&scope).unwrap());
        let bad = Scope {
            people_filter: Some("{{ nope }}".into()),
            ..scope
        };
        let e = ScopeRules::for_target(&bad).unwrap_err().to_string();
        assert!(e.starts_with("spec.scope.peopleFilter"), "{e}");
    }
}
