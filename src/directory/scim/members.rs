//! Writes to SCIM resources that stay right when many run at once.
//!
//! The department creates of one wave add their Groups to a shared parent Group together, and
//! the membership steps of a phase run concurrently (see `src/sync/inbound/apply.rs`), so one
//! Group takes many writes at the same moment. Where `ServiceProviderConfig` offers PATCH, a
//! membership change is a PATCH `add`/`remove` of members, which the server applies to its
//! current state: there is no read, so no ETag race. Otherwise, and for every other change,
//! a write is read-modify-write (PUT with `If-Match` when ETags are offered) under a lock per
//! resource in this process, so no two writes of one run ever race, and the member changes
//! queued for one Group's lock go out together in one write; a 412 left over (another client
//! wrote meanwhile) is retried on a fresh read with growing, jittered pauses.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};

use super::{
    ScimDirectory,
    client::{Capabilities, PatchOp, Resource, ScimError, filter_literal},
};
use crate::directory::DirectoryError;

/// Attempts of one write that the server answers with 412 (changed since read).
const CONFLICT_ATTEMPTS: u32 = 8;
/// The first pause after a 412; it doubles each time, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// Members named in one `remove` filter, so that the path stays short.
const REMOVE_CHUNK: usize = 50;

/// How membership changes reach a Group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberWrites {
    /// PATCH `add`/`remove` of members: applied by the server to its current state.
    Patch,
    /// Read the Group, edit its `members` and PUT it back, one write per Group at a time.
    Replace,
}

impl MemberWrites {
    /// PATCH where the server offers it, the serialised replace otherwise.
    pub fn for_server(caps: &Capabilities) -> Self {
        if caps.patch {
            MemberWrites::Patch
        } else {
            MemberWrites::Replace
        }
    }
}

/// One async lock per resource, made on first use and dropped when nobody holds or waits for
/// it (a long-lived controller touches every user over time).
#[derive(Default)]
pub(super) struct Locks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held lock of [`Locks`]; released when dropped.
pub(super) struct Held<'a> {
    locks: &'a Locks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Locks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the lock of `key`.
    pub(super) async fn lock(&self, key: String) -> Held<'_> {
        let lock = self.map().entry(key.clone()).or_default().clone();
        let guard = lock.lock_owned().await;
        Held {
            locks: self,
            key,
            guard: Some(guard),
        }
    }

    /// Locks currently kept (held or waited for).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.map();
        // Only the map's own reference left: nobody holds or waits for this lock.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

/// One caller's change to a Group's members, waiting for the Group's lock.
struct Change {
    add: Vec<(String, String)>,
    remove: Vec<String>,
    done: tokio::sync::oneshot::Sender<Result<(), DirectoryError>>,
}

/// Member changes queued per Group on the replace path: whoever gets the Group's lock writes
/// every change queued so far in one read-modify-write, so a wave of siblings joining one
/// parent costs a few writes rather than one serialised write each.
#[derive(Default)]
pub(super) struct Pending {
    map: Mutex<HashMap<String, Vec<Change>>>,
}

impl Pending {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Change>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, group: &str, change: Change) {
        self.map()
            .entry(group.to_string())
            .or_default()
            .push(change);
    }

    fn take(&self, group: &str) -> Vec<Change> {
        self.map().remove(group).unwrap_or_default()
    }
}

/// The same error again, for every caller whose change went out in one failed write.
fn repeat(e: &DirectoryError) -> DirectoryError {
    match e {
        DirectoryError::Auth(m) => DirectoryError::Auth(m.clone()),
        DirectoryError::Unavailable(m) => DirectoryError::Unavailable(m.clone()),
        DirectoryError::Incomplete(m) => DirectoryError::Incomplete(m.clone()),
        DirectoryError::Rejected(m) => DirectoryError::Rejected(m.clone()),
        DirectoryError::Config(m) => DirectoryError::Config(m.clone()),
    }
}

/// Pauses between attempts after a 412: doubling from [`FIRST_PAUSE`], jittered so that
/// writers that collided once do not collide again in step.
struct Backoff {
    attempt: u32,
    pause: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            attempt: 0,
            pause: FIRST_PAUSE,
        }
    }

    /// Wait before the next attempt; `false` when the attempts are used up.
    async fn retry(&mut self) -> bool {
        self.attempt += 1;
        if self.attempt >= CONFLICT_ATTEMPTS {
            return false;
        }
        let ms = self.pause.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(
            ms / 2 + rand::random_range(0..=ms / 2),
        ))
        .await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        true
    }
}

/// The members of a Group body after each change (removals, then additions) in order.
fn edited_members<'a>(
    group: &Value,
    changes: impl IntoIterator<Item = (&'a [(String, String)], &'a [String])>,
) -> Value {
    let mut members: Vec<Value> = group["members"].as_array().cloned().unwrap_or_default();
    for (add, remove) in changes {
        members.retain(|m| !remove.iter().any(|r| m["value"].as_str() == Some(r)));
        for (v, t) in add {
            if !members.iter().any(|m| m["value"].as_str() == Some(v)) {
                members.push(json!({"value": v, "type": t}));
            }
        }
    }
    Value::Array(members)
}

/// PATCH operations adding and removing members: one `add` with every new member, and
/// `remove`s whose filters name the leaving members.
fn member_ops(add: &[(String, &str)], remove: &[String]) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    if !add.is_empty() {
        let values: Vec<Value> = add
            .iter()
            .map(|(v, t)| json!({"value": v, "type": t}))
            .collect();
        ops.push(PatchOp::add("members", Value::Array(values)));
    }
    for chunk in remove.chunks(REMOVE_CHUNK) {
        let filter: Vec<String> = chunk
            .iter()
            .map(|r| format!("value eq {}", filter_literal(r)))
            .collect();
        ops.push(PatchOp::remove(format!("members[{}]", filter.join(" or "))));
    }
    ops
}

/// The server found nothing a PATCH path names (RFC 7644 §3.12 `noTarget`).
fn no_target(e: &ScimError) -> bool {
    matches!(e, ScimError::Rejected { scim_type: Some(t), .. } if t == "noTarget")
}

impl ScimDirectory {
    /// Read-modify-write of one resource under its lock, with the ETag; a 412 (someone else
    /// wrote meanwhile) is retried on a fresh read.
    pub(super) async fn edit(
        &self,
        kind: &str,
        scim_id: &str,
        f: impl Fn(&mut Value) -> Result<(), DirectoryError>,
    ) -> Result<(), DirectoryError> {
        let _held = self.locks.lock(format!("{kind}/{scim_id}")).await;
        self.edit_held(kind, scim_id, f).await
    }

    /// [`Self::edit`] for a caller that holds the resource's lock already.
    async fn edit_held(
        &self,
        kind: &str,
        scim_id: &str,
        f: impl Fn(&mut Value) -> Result<(), DirectoryError>,
    ) -> Result<(), DirectoryError> {
        let mut backoff = Backoff::new();
        loop {
            let Resource { mut body, etag, .. } = self.client.get(kind, scim_id).await?;
            f(&mut body)?;
            if let Some(o) = body.as_object_mut() {
                o.remove("meta");
            }
            match self
                .client
                .replace(kind, scim_id, body, etag.as_deref())
                .await
            {
                Ok(()) => {
                    self.wrote();
                    return Ok(());
                }
                Err(ScimError::PreconditionFailed { .. }) if backoff.retry().await => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// PATCH one resource, retrying a 412 (a server may check versions inside a PATCH too).
    async fn patch_retrying(
        &self,
        kind: &str,
        scim_id: &str,
        ops: &[PatchOp],
    ) -> Result<(), ScimError> {
        let mut backoff = Backoff::new();
        loop {
            match self.client.patch(kind, scim_id, ops, None).await {
                Ok(()) => {
                    self.wrote();
                    return Ok(());
                }
                Err(ScimError::PreconditionFailed { .. }) if backoff.retry().await => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Add and remove members of one Group (`add` pairs a SCIM id with its member type).
    pub(super) async fn set_members(
        &self,
        group: &str,
        add: &[(String, &str)],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        match self.member_writes {
            MemberWrites::Replace => self.replace_members(group, add, remove).await,
            MemberWrites::Patch => match self
                .patch_retrying("Groups", group, &member_ops(add, remove))
                .await
            {
                // A server that refuses to remove what is not there: one write each, so the
                // members that are there still go.
                Err(e) if no_target(&e) && !remove.is_empty() => {
                    self.patch_one_by_one(group, add, remove).await
                }
                r => Ok(r?),
            },
        }
    }

    /// Queue the change, then under the Group's lock write every change queued so far (ours
    /// too, unless an earlier holder wrote it already) and tell each caller how it went.
    async fn replace_members(
        &self,
        group: &str,
        add: &[(String, &str)],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.pending.push(
            group,
            Change {
                add: add
                    .iter()
                    .map(|(v, t)| (v.clone(), t.to_string()))
                    .collect(),
                remove: remove.to_vec(),
                done,
            },
        );
        let held = self.locks.lock(format!("Groups/{group}")).await;
        let batch = self.pending.take(group);
        if !batch.is_empty() {
            let written = self
                .edit_held("Groups", group, |g| {
                    let changes = batch.iter().map(|c| (&c.add[..], &c.remove[..]));
                    g["members"] = edited_members(g, changes);
                    Ok(())
                })
                .await;
            for c in batch {
                let _ = c.done.send(written.as_ref().map_err(repeat).copied());
            }
        }
        drop(held);
        result.await.unwrap_or_else(|_| {
            Err(DirectoryError::Unavailable(format!(
                "the write of Group {group}'s members was abandoned"
            )))
        })
    }

    async fn patch_one_by_one(
        &self,
        group: &str,
        add: &[(String, &str)],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        if !add.is_empty() {
            self.patch_retrying("Groups", group, &member_ops(add, &[]))
                .await?;
        }
        for r in remove {
            match self
                .patch_retrying("Groups", group, &member_ops(&[], std::slice::from_ref(r)))
                .await
            {
                Err(e) if no_target(&e) => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// Rename a Group: a PATCH of `displayName` where offered, so a rename never rewrites
    /// members that concurrent PATCHes are changing.
    pub(super) async fn rename_group(
        &self,
        group: &str,
        shown: &str,
    ) -> Result<(), DirectoryError> {
        match self.member_writes {
            MemberWrites::Patch => Ok(self
                .patch_retrying(
                    "Groups",
                    group,
                    &[PatchOp::replace("displayName", json!(shown))],
                )
                .await?),
            MemberWrites::Replace => {
                self.edit("Groups", group, |g| {
                    g["displayName"] = json!(shown);
                    Ok(())
                })
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_what_the_service_provider_config_offers() {
        let config = |patch: Value| {
            Capabilities::from_config(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "patch": patch,
                "etag": {"supported": true},
                "filter": {"supported": true, "maxResults": 200},
            }))
        };
        let with_patch = config(json!({"supported": true}));
        assert!(with_patch.etag && with_patch.filter);
        assert_eq!(MemberWrites::for_server(&with_patch), MemberWrites::Patch);
        for without in [json!({"supported": false}), json!(null), json!("yes")] {
            assert_eq!(
                MemberWrites::for_server(&config(without.clone())),
                MemberWrites::Replace,
                "{without}"
            );
        }
    }

    #[test]
    fn patch_ops_add_in_one_and_remove_by_filter() {
        let add = vec![("g1".to_string(), "Group"), ("u1".to_string(), "User")];
        let remove: Vec<String> = (0..REMOVE_CHUNK + 1).map(|i| format!("r{i}")).collect();
        let ops = member_ops(&add, &remove);
        assert_eq!(ops.len(), 3, "one add, two remove chunks");
        assert_eq!(ops[0].op, "add");
        assert_eq!(
            ops[0].value,
            Some(json!([{"value": "g1", "type": "Group"}, {"value": "u1", "type": "User"}]))
        );
        assert_eq!(ops[1].op, "remove");
        assert!(
            ops[1]
                .path
                .as_deref()
                .unwrap()
                .starts_with(r#"members[value eq "r0" or value eq "r1" or"#)
        );
        assert_eq!(ops[2].path.as_deref(), Some(r#"members[value eq "r50"]"#));
        assert!(member_ops(&[], &[]).is_empty());
    }

    #[test]
    fn replaced_members_keep_others_and_never_duplicate() {
        let g =
            json!({"members": [{"value": "a", "type": "User"}, {"value": "b", "type": "User"}]});
        let first = [
            ("a".to_string(), "User".to_string()),
            ("c".into(), "Group".into()),
        ];
        let second = [("b".to_string(), "User".to_string())];
        let m = edited_members(&g, [(&first[..], &["b".to_string()][..])]);
        assert_eq!(
            m,
            json!([{"value": "a", "type": "User"}, {"value": "c", "type": "Group"}])
        );
        // Changes merged into one write apply in the order they were asked for.
        let m = edited_members(
            &g,
            [
                (&first[..], &["b".to_string()][..]),
                (&second[..], &["a".to_string()][..]),
            ],
        );
        assert_eq!(
            m,
            json!([{"value": "c", "type": "Group"}, {"value": "b", "type": "User"}])
        );
    }

    #[tokio::test]
    async fn one_writer_per_resource_and_locks_are_dropped_when_free() {
        let locks = Arc::new(Locks::default());
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _held = locks.lock("Groups/g".into()).await;
                    let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(locks.len(), 0, "no lock kept once nobody needs it");
        // Different resources do not wait for each other.
        let a = locks.lock("Groups/a".into()).await;
        let b = locks.lock("Groups/b".into()).await;
        assert_eq!(locks.len(), 2);
        drop((a, b));
        assert_eq!(locks.len(), 0);
    }
}
