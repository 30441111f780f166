//! DingTalk as the source of an inbound sync: one scope read, normalised into the model;
//! for an incremental run, a re-read of just the records events named. Both honour the
//! target's scope rules (`source_scope.rs`): what they leave out is absent.

use std::collections::{HashMap, HashSet, hash_map::Entry};

use futures::{StreamExt, stream};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Source, SyncError,
    source_scope::{self, Reach, ScopeRules},
};
use crate::{
    dingtalk::{self as dt, DingTalkClient, DingTalkError, ScopeFailure, ScopeRead, ScopeSnapshot},
    model::{
        Changes, Department, DeptTree, Fields, PERSON_FIELDS, Person, SourceSnapshot, extension_map,
    },
};

/// Single-record reads in flight at once during an incremental re-read (the client's per-API
/// limiter paces them; this only keeps the quota busy).
const REREAD_CONCURRENCY: usize = 16;

/// Parent chains longer than DingTalk allows are treated as out of scope.
const MAX_DEPTH: usize = 64;

/// Reads the departments under `roots` and their members.
pub struct DingTalkSource {
    pub client: DingTalkClient,
    /// Roots as given; empty: the app's own contact scope.
    pub roots: Vec<i64>,
    /// What the target's scope leaves out, and its people filter.
    rules: ScopeRules,
    /// Where reads start, as the last full read (or the first re-read) found it.
    reach: std::sync::Mutex<Option<Reach>>,
    /// Department → parent, learnt by incremental re-reads to decide what is in scope; an
    /// event about a department drops its entry (it may have moved).
    parents: std::sync::Mutex<HashMap<i64, Option<i64>>>,
    /// Departments re-reads found hidden.
    hidden: std::sync::Mutex<HashSet<i64>>,
    /// Department names and parents as last read: the `path` and `dept_names` of an
    /// incremental re-read, which holds only the records events named.
    tree: std::sync::Mutex<std::sync::Arc<DeptTree>>,
    /// The person fields a full read keeps (`None`: every field templates may name).
    fields: Option<HashSet<String>>,
    /// Whether department heads are read: a re-read person's departments are re-read too.
    heads: bool,
}

impl DingTalkSource {
    /// The whole subtrees under `roots` (empty: the app's own contact scope), hidden
    /// departments included, everybody in them.
    pub fn new(client: DingTalkClient, roots: Vec<i64>) -> Self {
        Self::with_rules(client, ScopeRules::roots(roots))
    }

    /// What `rules` say: see [`ScopeRules::for_target`].
    pub fn with_rules(client: DingTalkClient, rules: ScopeRules) -> Self {
        Self {
            client,
            roots: rules.roots.clone(),
            rules,
            reach: Default::default(),
            parents: Default::default(),
            hidden: Default::default(),
            tree: Default::default(),
            fields: None,
            heads: true,
        }
    }

    /// Whether templates read department heads (default true): see
    /// [`Mapping::reads_heads`](crate::mapping::Mapping::reads_heads).
    pub fn reading_heads(mut self, heads: bool) -> Self {
        self.heads = heads;
        self
    }

    /// Whether `other` reads the same part of the enterprise (what it learnt of the tree
    /// then holds for this one).
    pub fn same_scope(&self, other: &Self) -> bool {
        self.rules == other.rules
    }

    /// What the last read said about the app's own scope, when narrower than the whole
    /// enterprise.
    pub fn scope_note(&self) -> Option<String> {
        self.reach
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|r| r.note.clone())
    }

    /// Where reads start: asked of DingTalk by every full read (`refresh`), and by a re-read
    /// only when no read has yet.
    async fn reach(&self, refresh: bool) -> Result<Reach, SyncError> {
        let known = self.reach.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let (false, Some(r)) = (refresh, known) {
            return Ok(r);
        }
        let r = source_scope::reach(&self.client, &self.rules).await?;
        *self.reach.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
        Ok(r)
    }

    /// A full read keeps only these person fields (the mapping's, see
    /// [`Mapping::person_fields`](crate::mapping::Mapping::person_fields)): at a million
    /// people the fields no template reads would be most of the model's memory.
    pub fn keeping(mut self, fields: impl IntoIterator<Item = String>) -> Self {
        let mut kept: HashSet<String> = fields.into_iter().collect();
        kept.extend(self.rules.filter_fields());
        self.fields = Some(kept);
        self
    }

    /// The same scope read through another client (other pacing, say), keeping what this one
    /// learnt of the department tree.
    pub fn with_client(&self, client: DingTalkClient) -> Self {
        fn copy<T: Clone>(m: &std::sync::Mutex<T>) -> T {
            m.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
        Self {
            client,
            roots: self.roots.clone(),
            rules: self.rules.clone(),
            reach: std::sync::Mutex::new(copy(&self.reach)),
            parents: std::sync::Mutex::new(copy(&self.parents)),
            hidden: std::sync::Mutex::new(copy(&self.hidden)),
            tree: std::sync::Mutex::new(self.known_departments()),
            fields: self.fields.clone(),
            heads: self.heads,
        }
    }

    /// A full read saw every department in scope with its parent: later re-reads walk up
    /// from those without asking DingTalk (one `department/get` per department otherwise,
    /// which at a large tenant's quota would hold the first events for minutes). What earlier
    /// re-reads learnt is forgotten: a department may have become hidden or moved out since,
    /// and one the read left out is asked about again when an event needs it.
    fn learn_parents(&self, snapshot: &SourceSnapshot, roots: &[i64]) {
        self.hidden
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let mut parents = self.parents.lock().unwrap_or_else(|e| e.into_inner());
        parents.clear();
        for d in &snapshot.departments {
            if let (Ok(id), Some(Ok(parent))) = (
                d.id.parse::<i64>(),
                d.parent.as_deref().map(str::parse::<i64>),
            ) && !roots.contains(&id)
            {
                parents.insert(id, Some(parent));
            }
        }
    }
}

#[async_trait]
impl Source for DingTalkSource {
    async fn read_roles(&self) -> Result<Option<Vec<crate::model::Role>>, SyncError> {
        super::inbound::roles::read_dingtalk_roles(&self.client)
            .await
            .map(Some)
    }

    async fn read(&self) -> Result<SourceSnapshot, SyncError> {
        let corp_id = &self.client.config().corp_id;
        let reach = self.reach(true).await?;
        // Each page's people become model records as they arrive: holding every `User` until
        // the walk ends cost more than the whole model.
        let mut read = self
            .client
            .read_scope_pruned(
                &reach.roots,
                &self.rules.pruning,
                |u| listed(corp_id, u, self.fields.as_ref()),
                listed_again,
            )
            .await;
        if read.users.is_empty() && !read.is_complete() {
            return Err(SyncError::Source(read.failure_messages().join("; ")));
        }
        let failed = self.add_authorised(&mut read, &reach).await;
        let mut snapshot = finish(corp_id, read, &HashSet::new());
        source_scope::note_failures(&mut snapshot, failed);
        self.fill_managers(&mut snapshot).await;
        self.learn_parents(&snapshot, &reach.roots);
        self.learn_tree(&snapshot);
        self.rules.filter_people(&mut snapshot);
        Ok(snapshot)
    }

    /// Re-read each named person (`user/get`) and department (`department/get`): never trust
    /// an event's payload or order, only DingTalk's current state. Gone (60121 / 60003) or
    /// outside the scope means absent, which the plan reads as "left"; any other failure makes
    /// the snapshot incomplete, so nothing is disabled on its account and the event is retried.
    async fn read_changed(&self, changes: &Changes) -> Result<SourceSnapshot, SyncError> {
        let reach = self.reach(false).await?;
        let (depts, users) = self.reread(changes).await;
        let mut parents = self.known_parents(changes);
        let mut failures: Vec<ScopeFailure> = Vec::new();
        let mut found_depts = found_departments(depts, &mut parents, &mut failures);
        let mut found_users = found_users(users)?;
        if self.heads {
            let more = self.heads_of(changes, &found_users).await;
            found_depts.extend(found_departments(more, &mut parents, &mut failures));
        }
        self.learn_hidden(&found_depts);
        let mut starts: Vec<i64> = found_depts.iter().map(|d| d.dept_id).collect();
        for u in &found_users {
            starts.extend(u.dept_id_list.iter().flatten().copied());
        }
        let in_scope = self
            .scope_of(&reach.roots, starts, &mut parents, &mut failures)
            .await;
        *self.parents.lock().unwrap_or_else(|e| e.into_inner()) = parents;
        found_depts.retain(|d| in_scope.contains(&d.dept_id));
        found_users.retain(|u| {
            reach.users.contains(&u.userid)
                || u.dept_id_list
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
        let mut snapshot = to_model_in(&self.client.config().corp_id, read, &in_scope);
        self.learn_tree(&snapshot);
        self.rules.filter_people(&mut snapshot);
        Ok(snapshot)
    }

    fn known_departments(&self) -> std::sync::Arc<DeptTree> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl DingTalkSource {
    fn learn_tree(&self, snapshot: &SourceSnapshot) {
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        // Copies only while a batch still holds the old tree.
        std::sync::Arc::make_mut(&mut tree).learn(snapshot);
    }
}

/// A re-read department or user, by the id an event named.
type Reread<K, T> = Vec<(K, Result<T, DingTalkError>)>;

impl DingTalkSource {
    /// The departments of re-read people that `changes` does not name, re-read: someone made
    /// (or no longer) a department's head changes that department's heads, and DingTalk may
    /// say so only with an event about the person (UNCONFIRMED whether it also sends
    /// `org_dept_modify`; the extra reads cost a call per department, never a stale head).
    async fn heads_of(&self, changes: &Changes, users: &[dt::User]) -> Reread<i64, dt::Department> {
        let named: HashSet<i64> = changes
            .departments
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        let mut ids: Vec<i64> = users
            .iter()
            .flat_map(|u| {
                let led = u.leader_in_dept.iter().flatten().map(|l| l.dept_id);
                u.dept_id_list.iter().flatten().copied().chain(led)
            })
            .filter(|d| !named.contains(d))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let client = &self.client;
        stream::iter(ids)
            .map(|id| async move { (id, client.get_department(id).await) })
            .buffer_unordered(REREAD_CONCURRENCY)
            .collect()
            .await
    }

    /// Every department, then every person, `changes` names, as DingTalk has them now.
    async fn reread(
        &self,
        changes: &Changes,
    ) -> (Reread<i64, dt::Department>, Reread<String, dt::User>) {
        let client = &self.client;
        let dept_ids: Vec<i64> = changes
            .departments
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        let depts = stream::iter(dept_ids)
            .map(|id| async move { (id, client.get_department(id).await) })
            .buffer_unordered(REREAD_CONCURRENCY)
            .collect()
            .await;
        let users = stream::iter(changes.people.iter().cloned())
            .map(|id| async move {
                let r = client.get_user(&id).await;
                (id, r)
            })
            .buffer_unordered(REREAD_CONCURRENCY)
            .collect()
            .await;
        (depts, users)
    }

    /// The parents learnt by earlier re-reads, less those of departments `changes` names
    /// (they may have moved).
    fn known_parents(&self, changes: &Changes) -> HashMap<i64, Option<i64>> {
        let mut cache = self.parents.lock().unwrap_or_else(|e| e.into_inner());
        for d in &changes.departments {
            if let Ok(id) = d.parse::<i64>() {
                cache.remove(&id);
            }
        }
        cache.clone()
    }

    /// Which departments lie under the scope roots (the roots included): each start's parent
    /// chain is walked up to a root (inside) or past the top (outside), reading the parents
    /// not yet known, each at most once. A chain through an excluded department, or a
    /// hidden one below the roots the rules leave out, is outside.
    async fn scope_of(
        &self,
        roots: &[i64],
        starts: Vec<i64>,
        parents: &mut HashMap<i64, Option<i64>>,
        failures: &mut Vec<ScopeFailure>,
    ) -> HashSet<i64> {
        let roots: HashSet<i64> = roots
            .iter()
            .copied()
            .filter(|r| !self.rules.pruning.excluded.contains(r))
            .collect();
        let mut verdict: HashMap<i64, bool> = HashMap::new();
        for start in starts {
            let mut chain = vec![];
            let mut at = Some(start);
            let inside = loop {
                let Some(d) = at else { break false };
                if let Some(v) = verdict.get(&d) {
                    break *v;
                }
                if self.left_out(d, &roots) {
                    break false;
                }
                if roots.contains(&d) {
                    break true;
                }
                if chain.len() > MAX_DEPTH || chain.contains(&d) {
                    break false;
                }
                chain.push(d);
                if let Entry::Vacant(slot) = parents.entry(d) {
                    slot.insert(self.parent_of(d, failures).await);
                    // Reading it may have shown it hidden.
                    if self.left_out(d, &roots) {
                        break false;
                    }
                }
                at = parents.get(&d).copied().flatten();
            };
            for d in chain {
                verdict.insert(d, inside);
            }
        }
        verdict
            .iter()
            .filter(|(_, v)| **v)
            .map(|(d, _)| *d)
            .chain(roots.iter().copied())
            .collect()
    }

    /// Whether the rules leave `dept` out: excluded, or hidden below the roots.
    fn left_out(&self, dept: i64, roots: &HashSet<i64>) -> bool {
        let pruning = &self.rules.pruning;
        pruning.excluded.contains(&dept)
            || (pruning.hidden
                && !roots.contains(&dept)
                && self
                    .hidden
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&dept))
    }

    /// Remembers which of `depts` DingTalk marks hidden now (and which no longer).
    fn learn_hidden(&self, depts: &[dt::Department]) {
        let mut hidden = self.hidden.lock().unwrap_or_else(|e| e.into_inner());
        for d in depts {
            if d.hide_dept == Some(true) {
                hidden.insert(d.dept_id);
            } else {
                hidden.remove(&d.dept_id);
            }
        }
    }

    /// Adds to a full read the people the app may read one by one who were not listed in
    /// a department of the scope; returns what could not be read.
    async fn add_authorised(
        &self,
        read: &mut ScopeSnapshot<Option<Listed>>,
        reach: &Reach,
    ) -> Vec<String> {
        if reach.users.is_empty() {
            return vec![];
        }
        let have: HashSet<&str> = read
            .users
            .iter()
            .flatten()
            .map(|l| l.person.id.as_str())
            .collect();
        let missing: Vec<String> = reach
            .users
            .iter()
            .filter(|u| !have.contains(u.as_str()))
            .cloned()
            .collect();
        let (found, failed) = source_scope::read_users(&self.client, missing).await;
        let corp_id = &self.client.config().corp_id;
        read.users.extend(
            found
                .into_iter()
                .map(|u| listed(corp_id, u, self.fields.as_ref())),
        );
        failed
    }

    /// `user/list` may not carry `manager_userid`: DingTalk's SDK list model has no such
    /// field, while its list page says the field is omitted when empty (so perhaps sent when
    /// set); which holds is unconfirmed. When a template reads it and no listed person carried
    /// one, each person is read with `user/get` for it — a call per person, rather than every
    /// manager silently cleared. A person who cannot be read makes the read incomplete.
    async fn fill_managers(&self, snapshot: &mut SourceSnapshot) {
        let wanted = (self.fields.as_ref()).is_none_or(|f| f.contains("manager_userid"));
        let listed = |p: &Person| p.fields.get("manager_userid").is_some();
        if !wanted || snapshot.people.is_empty() || snapshot.people.iter().any(listed) {
            return;
        }
        tracing::info!(
            people = snapshot.people.len(),
            "user/list carried no manager_userid: reading each person with user/get for it"
        );
        let mut failed = Vec::new();
        // In pieces, so at most this many full records are held at once.
        for chunk in snapshot.people.chunks_mut(1_000) {
            let ids: Vec<String> = chunk.iter().map(|p| p.id.clone()).collect();
            let (found, f) = source_scope::read_users(&self.client, ids).await;
            failed.extend(f);
            let managers: HashMap<String, String> = (found.into_iter())
                .filter_map(|u| Some((u.userid, u.manager_userid?)))
                .collect();
            for p in chunk.iter_mut() {
                if let Some(m) = managers.get(&p.id) {
                    p.fields = p.fields.with(&[("manager_userid", json!(m))]);
                }
            }
        }
        source_scope::note_failures(snapshot, failed);
    }

    /// A department's parent as DingTalk has it now; `None` when the department is gone or
    /// outside the app's scope, or could not be read (a failure, so the read is incomplete).
    async fn parent_of(&self, dept_id: i64, failures: &mut Vec<ScopeFailure>) -> Option<i64> {
        match self.client.get_department(dept_id).await {
            Ok(d) => {
                self.learn_hidden(std::slice::from_ref(&d));
                d.parent_id
            }
            Err(e) if source_scope::is_absent(&e) => None,
            Err(error) => {
                failures.push(ScopeFailure {
                    api: dt::contacts::API_DEPT_GET,
                    dept_id,
                    error,
                });
                None
            }
        }
    }
}

/// The re-read departments that exist, their parents learnt; those that could not be read are
/// failures.
fn found_departments(
    depts: Reread<i64, dt::Department>,
    parents: &mut HashMap<i64, Option<i64>>,
    failures: &mut Vec<ScopeFailure>,
) -> Vec<dt::Department> {
    let mut found = Vec::new();
    for (id, r) in depts {
        match r {
            Ok(d) => {
                parents.insert(d.dept_id, d.parent_id);
                found.push(d);
            }
            Err(e) if source_scope::is_absent(&e) => {}
            Err(error) => failures.push(ScopeFailure {
                api: dt::contacts::API_DEPT_GET,
                dept_id: id,
                error,
            }),
        }
    }
    found
}

/// The re-read people who exist. A person who could not be read fails the whole re-read: the
/// batch is retried rather than applied without them.
fn found_users(users: Reread<String, dt::User>) -> Result<Vec<dt::User>, SyncError> {
    let mut found = Vec::new();
    for (id, r) in users {
        match r {
            Ok(u) => found.push(u),
            Err(e) if source_scope::is_absent(&e) => {}
            Err(source) => return Err(SyncError::Reread { id, source }),
        }
    }
    Ok(found)
}

/// Convert a scope read; every DingTalk field stays available to templates.
pub fn to_model(corp_id: &str, read: ScopeRead) -> SourceSnapshot {
    to_model_in(corp_id, read, &HashSet::new())
}

/// [`to_model`] where memberships of `also_in_scope` departments are kept too (a partial
/// re-read, whose departments are mostly not in the read itself).
pub fn to_model_in(corp_id: &str, read: ScopeRead, also_in_scope: &HashSet<i64>) -> SourceSnapshot {
    let ScopeSnapshot {
        departments,
        users,
        failures,
        calls,
    } = read;
    let mut kept = Vec::with_capacity(users.len());
    kept.extend(users.into_iter().map(|u| listed(corp_id, u, None)));
    let read = ScopeSnapshot {
        departments,
        users: kept,
        failures,
        calls,
    };
    finish(corp_id, read, also_in_scope)
}

/// A person as kept while the scope is read: the model's record, and every department they
/// were listed in (which of those are in scope is known only when the walk ends).
struct Listed {
    person: Person,
    dept_ids: Vec<i64>,
    /// Listed in a department their own `dept_id_list` did not name.
    relisted: bool,
    /// The departments they head (`leader_in_dept`, or `user/list`'s `leader`).
    led: Vec<i64>,
    /// Whether `is_leader` and `leader_of` are kept (a read keeping only the mapping's
    /// fields leaves out what no template reads).
    leader_fields: bool,
}

/// Keep a user as a model record. Only the fields templates may name are kept (the mapping
/// refuses any other), under DingTalk's names, and of those only `fields` when given.
fn listed(corp_id: &str, u: dt::User, only: Option<&HashSet<String>>) -> Option<Listed> {
    static KNOWN: std::sync::OnceLock<HashSet<&'static str>> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| PERSON_FIELDS.iter().copied().collect());
    let dept_ids = u.departments().to_vec();
    let led: Vec<i64> = (u.leader_in_dept.iter().flatten())
        .filter(|l| l.leader == Some(true))
        .map(|l| l.dept_id)
        .collect();
    let Value::Object(fields) = u.to_json() else {
        return None;
    };
    let id = fields.get("userid")?.as_str()?.to_string();
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // Someone without custom fields gets an empty map: `{{ extension.工号 }}` then renders
    // empty instead of failing on an undefined value.
    let no_extension =
        !fields.contains_key("extension") && only.is_none_or(|f| f.contains("extension"));
    let fields: Fields = fields
        .into_iter()
        .filter(|(k, _)| known.contains(k.as_str()))
        .filter(|(k, _)| only.is_none_or(|f| f.contains(k)))
        .map(|(k, v)| match k.as_str() {
            "extension" => (k, extension_map(&id, v)),
            _ => (k, v),
        })
        .chain([("corp_id".to_string(), json!(corp_id))])
        .chain(no_extension.then(|| ("extension".to_string(), json!({}))))
        .collect();
    Some(Listed {
        person: Person {
            id,
            name,
            departments: vec![],
            main_department: None,
            fields,
        },
        dept_ids,
        relisted: false,
        led,
        leader_fields: only.is_none_or(|f| f.contains("is_leader") || f.contains("leader_of")),
    })
}

fn listed_again(kept: &mut Option<Listed>, more: &[i64], led: &[i64]) {
    let Some(l) = kept else { return };
    for d in led {
        if !l.led.contains(d) {
            l.led.push(*d);
        }
    }
    for d in more {
        if !l.dept_ids.contains(d) {
            l.dept_ids.push(*d);
            l.relisted = true;
        }
    }
}

/// A listed person placed in the scope: departments, main department and leader flags.
fn place(l: Listed, in_scope: &HashSet<i64>) -> Person {
    let Listed {
        mut person,
        dept_ids,
        relisted,
        led,
        leader_fields,
    } = l;
    // In `dept_id_list` order: the walk learns the flags in whatever order its
    // pages arrive, and a template joining them must render the same every run.
    let leader_of: Vec<String> = (dept_ids.iter())
        .filter(|d| led.contains(d) && in_scope.contains(d))
        .map(|d| d.to_string())
        .collect();
    let depts: Vec<String> = dept_ids
        .iter()
        .filter(|d| in_scope.contains(d))
        .map(|d| d.to_string())
        .collect();
    // The main department's rule: see `Person::main_department`.
    let mut updates = vec![("main_dept_id", json!(depts.first()))];
    if leader_fields {
        updates.push(("is_leader", json!(!leader_of.is_empty())));
        updates.push(("leader_of", json!(leader_of)));
    }
    if relisted {
        updates.push(("dept_id_list", json!(dept_ids)));
    }
    person.fields = person.fields.with(&updates);
    person.main_department = depts.first().cloned();
    person.departments = depts;
    person
}

/// The model of a finished read: departments in scope, and each person's memberships
/// restricted to them (those of `also_in_scope` kept too).
fn finish(
    corp_id: &str,
    read: ScopeSnapshot<Option<Listed>>,
    also_in_scope: &HashSet<i64>,
) -> SourceSnapshot {
    let in_scope: HashSet<i64> = read
        .departments
        .iter()
        .map(|d| d.dept_id)
        .chain(also_in_scope.iter().copied())
        .collect();
    // Heads by department, from the people's flags: the walk's `department/listsub` does not
    // name them, `department/get` (an event's re-read) does.
    let mut heads: HashMap<i64, Vec<String>> = HashMap::new();
    for l in read.users.iter().flatten() {
        for d in &l.led {
            heads.entry(*d).or_default().push(l.person.id.clone());
        }
    }
    // Pages arrive in no fixed order: sorted, the list renders the same every run.
    heads.values_mut().for_each(|h| h.sort());
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
                (
                    "dept_manager_userid_list",
                    json!(
                        (d.dept_manager_userid_list.as_ref())
                            .or(heads.get(&d.dept_id))
                            .cloned()
                            .unwrap_or_default()
                    ),
                ),
            ]
            .into_iter()
            .collect(),
        })
        .collect();
    let complete = read.is_complete();
    let incomplete = read.failure_messages();
    // Collected in place: the records move within the read's own allocation.
    let mut people: Vec<Person> = read
        .users
        .into_iter()
        .filter_map(|l| l.map(|l| place(l, &in_scope)))
        .collect();
    people.shrink_to_fit();
    SourceSnapshot {
        corp_id: corp_id.into(),
        departments,
        people,
        complete,
        incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(extension: Value) -> dt::User {
        serde_json::from_value(json!({
            "userid": "u1",
            "name": "王芳",
            "dept_id_list": [2],
            "extension": extension,
        }))
        .expect("a DingTalk user")
    }

    #[test]
    fn custom_fields_arrive_as_a_map_templates_can_read() {
        let person = |ext| listed("corp", user(ext), None).expect("kept").person;
        let p = person(json!("{\"工号\":\"A17\",\"花名\":\"小王\"}"));
        assert_eq!(
            p.fields.get("extension"),
            Some(json!({"工号": "A17", "花名": "小王"}))
        );
        // Not a JSON object: no custom fields, the person kept.
        let p = person(json!("not json"));
        assert_eq!(p.fields.get("extension"), Some(json!({})));
        assert_eq!(p.id, "u1");
        // None sent: an empty map too.
        let mut u = user(json!(null));
        u.extension = None;
        let p = listed("corp", u, None).expect("kept").person;
        assert_eq!(p.fields.get("extension"), Some(json!({})));
    }
}

#[cfg(test)]
mod keeping_tests {
    use super::*;

    #[test]
    fn a_lean_read_keeps_only_the_fields_named() {
        let u: dt::User = serde_json::from_value(json!({
            "userid": "u1", "name": "王芳", "title": "Engineer", "mobile": "13800000000",
            "avatar": "https://static.example/a.png", "dept_id_list": [2],
        }))
        .expect("a DingTalk user");
        let only: HashSet<String> = ["name", "mobile"].map(str::to_owned).into();
        let p = listed("corp", u.clone(), Some(&only)).expect("kept").person;
        assert_eq!(p.fields.text("mobile"), Some("13800000000"));
        assert_eq!(p.fields.text("title"), None, "not named");
        assert_eq!(p.fields.text("avatar"), None, "not named");
        let all = listed("corp", u, None).expect("kept").person;
        assert_eq!(all.fields.text("title"), Some("Engineer"));
        assert_eq!((p.id.as_str(), p.name.as_str()), ("u1", "王芳"));
    }

    #[test]
    fn leader_flags_are_kept_only_when_a_template_reads_them() {
        let u: dt::User = serde_json::from_value(json!({
            "userid": "u1", "name": "王芳", "dept_id_list": [2, 3],
            "leader_in_dept": [{"dept_id": 3, "leader": true}],
        }))
        .expect("a DingTalk user");
        let in_scope: HashSet<i64> = [2, 3].into();
        let placed = |only: Option<&HashSet<String>>| {
            place(listed("corp", u.clone(), only).expect("kept"), &in_scope)
        };
        let lean: HashSet<String> = ["name"].map(str::to_owned).into();
        let p = placed(Some(&lean));
        assert!(p.fields.get("is_leader").is_none() && p.fields.get("leader_of").is_none());
        assert_eq!(p.fields.text("main_dept_id"), Some("2"));
        let reads: HashSet<String> = ["leader_of"].map(str::to_owned).into();
        for p in [placed(Some(&reads)), placed(None)] {
            assert_eq!(p.fields.get("is_leader"), Some(json!(true)));
            assert_eq!(p.fields.get("leader_of"), Some(json!(["3"])));
        }
    }
}
