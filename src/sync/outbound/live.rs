//! Real time from LDAP: the node followed with RFC 4533 content synchronisation
//! ([`ContentSync`]), each change pushed as it arrives. A person's edit is pushed alone (their
//! DingTalk user read, the fields that differ written); anything else (someone new, gone or
//! moved, a container changed, a rule that refers to other entries) takes a full Outbound
//! run, which finds it. A cookie is handed out only once what came before it is in DingTalk,
//! so a session resumed from it misses nothing and reads neither the whole directory nor
//! DingTalk. A server without content sync ends the session with an error: the caller polls.

use std::{collections::HashMap, future::Future, time::Duration};

use super::{
    DingTalkSink, OutboundReport, SOURCE_PREFIX, failure,
    fields::{hired_ms, user_update},
    plan::{changed_fields, invalid_value},
    run,
};
use crate::{
    dingtalk::DingTalkError,
    directory::{
        DirectoryError, SourcePerson,
        ldap::{
            LdapDirectory,
            content_sync::{ContentSync, SyncEvent},
            dn::Dn,
        },
    },
    mapping::outbound::{OutboundMapping, OutboundPerson},
    sync::{ObjectKind, SyncError},
};

/// Changes arriving this close together are pushed as one batch.
const SETTLE: Duration = Duration::from_millis(20);

/// What one batch of changes did, and the cookie to resume after it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub report: OutboundReport,
    /// Whether it took a full run.
    pub full: bool,
    pub cookie: Option<String>,
}

/// Changes waiting to be pushed.
#[derive(Default)]
struct Pending {
    people: Vec<SourcePerson>,
    /// Something only a full run handles.
    full: bool,
    cookie: Option<String>,
    any: bool,
}

/// What one target's session pushes with, and to.
pub struct Session<'a> {
    pub sink: &'a dyn DingTalkSink,
    pub dir: &'a LdapDirectory,
    pub mapping: &'a OutboundMapping,
    pub opts: &'a super::OutboundOptions,
    /// The target's writer lock, held while a batch is pushed: the target's scheduled full
    /// runs take it too, so the two never write DingTalk at once.
    pub writer: &'a tokio::sync::Mutex<()>,
}

/// Follows the node until `stop` resolves, pushing every change to DingTalk and telling
/// `on_batch` each time. Without a `cookie` the session starts with a full run (after the
/// server's refresh, so nothing between is missed); with one it resumes after it. Returns
/// the last cookie handed out.
pub async fn follow(
    session: Session<'_>,
    cookie: Option<String>,
    on_batch: &mut (dyn FnMut(Batch) + Send),
    stop: impl Future<Output = ()>,
) -> Result<Option<String>, SyncError> {
    let Session {
        sink,
        dir,
        mapping,
        opts,
        writer,
    } = session;
    let store = dir.store();
    let node = store.node().to_string();
    let ldap = |e| SyncError::Directory(DirectoryError::from(e));
    let mut session = ContentSync::start(store.pool(), &node, cookie.as_deref())
        .await
        .map_err(ldap)?;
    let mut pushing = Pushing {
        sink,
        dir,
        mapping,
        opts,
        writer,
        sources: HashMap::new(),
    };
    // Without a cookie the refresh is the whole node: a full run stands for it.
    let mut refreshing = cookie.is_none();
    let mut last = cookie;
    let mut pending = Pending::default();
    tokio::pin!(stop);
    loop {
        let wait = async {
            match pending.any {
                true => tokio::time::timeout(SETTLE, session.next()).await.ok(),
                false => Some(session.next().await),
            }
        };
        let event = tokio::select! {
            _ = &mut stop => return Ok(last),
            e = wait => e,
        };
        let event = match event {
            // Quiet for a moment: push what arrived.
            None => {
                let batch = pushing.push(std::mem::take(&mut pending)).await?;
                last = batch.cookie.clone().or(last);
                on_batch(batch);
                continue;
            }
            Some(e) => e.map_err(ldap)?,
        };
        match event {
            None => {
                return Err(SyncError::Source(
                    "the LDAP server ended content synchronisation".into(),
                ));
            }
            Some(SyncEvent::RefreshDone) if refreshing => {
                refreshing = false;
                pending.full = true;
                pending.any = true;
            }
            Some(SyncEvent::RefreshDone) => {}
            Some(SyncEvent::Cookie(c)) => {
                pending.cookie = Some(c);
                pending.any |= !refreshing;
            }
            Some(_) if refreshing => {}
            Some(SyncEvent::Entry { uuid, dn, attrs }) => {
                pending.any = true;
                let person = attrs
                    .get("objectclass")
                    .is_some_and(|c| c.iter().any(|c| c.eq_ignore_ascii_case("inetOrgPerson")));
                match person {
                    true => pending.people.push(SourcePerson {
                        id: uuid,
                        key: dn,
                        attrs: attrs.into_iter().collect(),
                        dept: None,
                    }),
                    false => pending.full = true,
                }
            }
            Some(SyncEvent::Deleted { .. } | SyncEvent::Present) => {
                pending.any = true;
                pending.full = true;
            }
        }
    }
}

/// Pushing batches for one session.
struct Pushing<'a> {
    sink: &'a dyn DingTalkSink,
    dir: &'a LdapDirectory,
    mapping: &'a OutboundMapping,
    opts: &'a super::OutboundOptions,
    writer: &'a tokio::sync::Mutex<()>,
    /// DingTalk department id → its `source_identifier`, as read once.
    sources: HashMap<i64, String>,
}

impl Pushing<'_> {
    async fn push(&mut self, pending: Pending) -> Result<Batch, SyncError> {
        let _writer = self.writer.lock().await;
        let mut report = OutboundReport {
            complete: true,
            ..Default::default()
        };
        let mut full = pending.full;
        if !full {
            for p in pending.people {
                if !self.push_person(p, &mut report).await? {
                    full = true;
                    break;
                }
            }
        }
        if full {
            report = run(self.sink, self.dir, self.mapping, self.opts, false).await?;
        }
        Ok(Batch {
            report,
            full,
            cookie: pending.cookie,
        })
    }

    /// Pushes one person's edit alone; `false` when it takes a full run (someone DingTalk
    /// does not have, a move, a rule that refers to other entries).
    async fn push_person(
        &mut self,
        mut p: SourcePerson,
        report: &mut OutboundReport,
    ) -> Result<bool, SyncError> {
        let fail = |reason, message| failure(ObjectKind::Person, &p.id, &p.key, reason, message);
        // Per-department fields need the person's department in DingTalk: a full run.
        let per_dept = |r: &OutboundPerson| {
            r.fields.contains_key("dept_order_list") || r.fields.contains_key("dept_title_list")
        };
        let mut r = match self.mapping.person(&p.attrs) {
            Ok(r) if !r.userid.is_empty() && r.refs.is_empty() && !per_dept(&r) => r,
            Ok(_) => return Ok(false),
            Err(e) => {
                report.failures.push(fail("TemplateFailed", e.to_string()));
                return Ok(true);
            }
        };
        if let Some(v) = r.fields.get_mut("hired_date").filter(|v| !v.is_empty()) {
            match hired_ms(v) {
                Ok(ms) => *v = ms,
                Err(m) => {
                    report.failures.push(fail("InvalidValue", m));
                    return Ok(true);
                }
            }
        }
        let cur = match self.sink.get_user(&r.userid).await {
            Ok(cur) => cur,
            Err(DingTalkError::NotFound { .. }) => return Ok(false),
            Err(e) => {
                report
                    .failures
                    .push(super::failed(ObjectKind::Person, &r.userid, &p.key, &e));
                return Ok(true);
            }
        };
        p.dept = self.container(&p.key).await?;
        if !self
            .in_place(
                &cur.dept_id_list.clone().unwrap_or_default(),
                p.dept.as_deref(),
            )
            .await
        {
            return Ok(false);
        }
        let fields = changed_fields(&p, &r, &cur, &mut report.failures);
        if fields.is_empty() {
            report.unchanged += 1;
            return Ok(true);
        }
        let update = user_update(&r.userid, &fields, None, cur.extension.as_deref());
        if let Err(e) = update.validate() {
            report.failures.push(invalid_value(&p, &r.userid, &e));
            return Ok(true);
        }
        report.writes += 1;
        match self.sink.update_user(&update).await {
            Ok(()) => report.updated += 1,
            Err(e) => {
                report
                    .failures
                    .push(super::failed(ObjectKind::Person, &r.userid, &p.key, &e))
            }
        }
        Ok(true)
    }

    /// The `entryUUID` of the container holding `dn`; `None` for the node itself.
    async fn container(&self, dn: &str) -> Result<Option<String>, SyncError> {
        let store = self.dir.store();
        let parent = Dn::parse(dn).ok().and_then(|d| d.parent());
        let Some(parent) = parent.filter(|p| p.key() != store.node().key()) else {
            return Ok(None);
        };
        let entry = store
            .pool()
            .read(&parent.to_string(), &["entryUUID"])
            .await
            .map_err(|e| SyncError::Directory(DirectoryError::from(e)))?;
        Ok(entry.and_then(|e| e.first("entryUUID").map(str::to_string)))
    }

    /// Whether a user in `depts` is where the container says: in the department marked with
    /// its id, or in the root for the node itself.
    async fn in_place(&mut self, depts: &[i64], container: Option<&str>) -> bool {
        let Some(id) = container else {
            return depts.contains(&self.opts.root);
        };
        let want = format!("{SOURCE_PREFIX}{id}");
        for d in depts {
            if !self.sources.contains_key(d) {
                let Ok(dept) = self.sink.get_department(*d).await else {
                    continue;
                };
                self.sources
                    .insert(*d, dept.source_identifier.unwrap_or_default());
            }
            if self.sources[d] == want {
                return true;
            }
        }
        false
    }
}
