//! Reading a binding's whole scope with the fewest calls the API allows: one
//! `department/get` per root (listsub only describes children), one `listsub` per department
//! and one `user/list` page per 100 direct members, the walk and the listing side by side,
//! leaving out the subtrees a target excludes or DingTalk hides; and the app's own contact
//! scope (`/auth/scopes`).

use std::collections::{HashMap, HashSet, VecDeque};

use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};

use reqwest::Method;
use serde_json::Value;

use super::{
    DingTalkClient, DingTalkError,
    client::{Auth, Host},
    contacts::{
        API_DEPT_GET, API_LISTSUB, API_USER_LIST, Department, DeptLeader, PAGE_SIZE, User, UserPage,
    },
    wire,
};

pub const API_AUTH_SCOPES: &str = "/auth/scopes";

/// The departments and people an app may read, as `/auth/scopes` reports them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppScope {
    /// Departments whose subtrees the app sees (`[1]`: the whole enterprise).
    pub departments: Vec<i64>,
    /// People authorised one by one, whatever their departments.
    pub users: Vec<String>,
}

impl AppScope {
    /// The whole enterprise: the root is among the departments.
    pub fn is_whole_org(&self) -> bool {
        self.departments.contains(&1)
    }
}

/// What a scope read leaves out.
#[derive(Debug, Clone, Default)]
pub struct Pruning {
    /// Departments whose subtrees are neither walked nor listed.
    pub excluded: HashSet<i64>,
    /// Read each department below a root (`department/get`) before its subtree, and leave out
    /// those DingTalk marks hidden (`hide_dept`) with their subtrees. listsub does not say
    /// whether a department is hidden, so this costs one call per department.
    pub hidden: bool,
}

/// Which call of a scope read failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeFailure {
    pub api: &'static str,
    pub dept_id: i64,
    pub error: DingTalkError,
}

impl std::fmt::Display for ScopeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.api {
            API_LISTSUB => "sub-departments of",
            API_USER_LIST => "members of department",
            _ => "department",
        };
        write!(f, "{what} {}: {}", self.dept_id, self.error)
    }
}

/// The whole scope of a binding, read once. `U` is what each person was kept as: the
/// [`User`] itself, or whatever [`DingTalkClient::read_scope_into`] turned it into.
#[derive(Debug, Clone)]
pub struct ScopeSnapshot<U = User> {
    /// Scope roots first (as `department/get` describes them), then every department found
    /// under them, each once.
    pub departments: Vec<Department>,
    /// People, each once (deduplicated by userid); `dept_id_list` includes every department
    /// they were listed in.
    pub users: Vec<U>,
    /// Empty when the read was complete. A sync must never delete or disable anything on an
    /// incomplete read.
    pub failures: Vec<ScopeFailure>,
    /// Calls this client sent while the read ran, by API.
    pub calls: HashMap<String, u64>,
}

/// The name the sync engine knows the snapshot by.
pub type ScopeRead = ScopeSnapshot;

impl<U> Default for ScopeSnapshot<U> {
    fn default() -> Self {
        Self {
            departments: Vec::new(),
            users: Vec::new(),
            failures: Vec::new(),
            calls: HashMap::new(),
        }
    }
}

impl<U> ScopeSnapshot<U> {
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// One line per failure, naming the department and the API.
    pub fn failure_messages(&self) -> Vec<String> {
        self.failures.iter().map(ToString::to_string).collect()
    }
}

impl DingTalkClient {
    /// Read the whole scope under `roots`: one `department/get` per root (listsub only
    /// describes children), one `listsub` per department and one `user/list` page per 100
    /// direct members. The department walk and the user listing run side by side (a
    /// department's members are listed as soon as it is discovered), each at its own quota.
    /// Failures are collected, never hidden.
    pub async fn read_scope(&self, roots: &[i64]) -> ScopeSnapshot {
        self.read_scope_into(
            roots,
            |u| u,
            |u, more, _| {
                let known = u.dept_id_list.get_or_insert_default();
                for d in more {
                    if !known.contains(d) {
                        known.push(*d);
                    }
                }
            },
        )
        .await
    }

    /// [`DingTalkClient::read_scope`], keeping each person as `keep` makes them when first
    /// listed (their `dept_id_list` already holds the department they were listed in), and
    /// telling `listed_again` the departments of each later listing and those of them the
    /// listing says the person heads (`user/list`'s `leader` is about the department listed;
    /// a first listing's is kept in `leader_in_dept`, as `user/get` gives it). A caller that wants a
    /// compact form converts page by page instead of holding every `User` until the end.
    pub async fn read_scope_into<U>(
        &self,
        roots: &[i64],
        keep: impl FnMut(User) -> U,
        listed_again: impl FnMut(&mut U, &[i64], &[i64]),
    ) -> ScopeSnapshot<U> {
        self.read_scope_pruned(roots, &Pruning::default(), keep, listed_again)
            .await
    }

    /// [`DingTalkClient::read_scope_into`] leaving out what `pruning` says: excluded roots
    /// and subtrees are not read at all, hidden ones once their details say so.
    pub async fn read_scope_pruned<U>(
        &self,
        roots: &[i64],
        pruning: &Pruning,
        mut keep: impl FnMut(User) -> U,
        mut listed_again: impl FnMut(&mut U, &[i64], &[i64]),
    ) -> ScopeSnapshot<U> {
        let before = self.calls();
        let roots: Vec<i64> = dedup(roots)
            .into_iter()
            .filter(|r| !pruning.excluded.contains(r))
            .collect();
        let mut walk = Walk::new(self.clone(), pruning.clone());
        walk.start(&roots);
        while let Some(step) = walk.next().await {
            match step {
                Step::Root(i, id, result) => walk.root(i, id, *result),
                Step::Sub(parent, result) => walk.children(parent, result),
                Step::Detail(parent, id, result) => walk.detail(parent, id, *result),
                Step::Page(dept, cursor, result) => {
                    walk.page(dept, cursor, result, &mut keep, &mut listed_again)
                }
            }
        }
        let mut out = walk.finish(&roots);
        out.calls = calls_since(&before, self.calls());
        out
    }

    /// The app's own contact scope (`/auth/scopes`): its departments and the people
    /// authorised one by one.
    pub async fn auth_scopes(&self) -> Result<AppScope, DingTalkError> {
        let v = self
            .call(
                Host::Oapi,
                Method::GET,
                API_AUTH_SCOPES,
                &[],
                None,
                Auth::App,
            )
            .await?;
        let scopes = v.get("auth_org_scopes").cloned().unwrap_or(Value::Null);
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Scopes {
            #[serde(deserialize_with = "wire::opt_i64_list")]
            authed_dept: Option<Vec<i64>>,
            #[serde(deserialize_with = "wire::opt_string_list")]
            authed_user: Option<Vec<String>>,
        }
        let s: Scopes = match scopes {
            Value::Null => Scopes::default(),
            v => {
                serde_json::from_value(v).map_err(|e| DingTalkError::decode(API_AUTH_SCOPES, e))?
            }
        };
        Ok(AppScope {
            departments: s.authed_dept.unwrap_or_default(),
            users: s.authed_user.unwrap_or_default(),
        })
    }
}

/// One answer of a scope read.
enum Step {
    Root(usize, i64, Box<Result<Department, DingTalkError>>),
    Sub(i64, Result<Vec<Department>, DingTalkError>),
    /// A department's details, asked for before its subtree is read (its parent, its id).
    Detail(i64, i64, Box<Result<Department, DingTalkError>>),
    Page(i64, i64, Result<UserPage, DingTalkError>),
}

/// A scope read under way: what is queued, in flight and found so far.
struct Walk<U> {
    client: DingTalkClient,
    /// Calls in flight per API: enough to keep its quota busy whatever DingTalk's latency,
    /// few enough not to pile waiters on the rate limiter.
    window: usize,
    out: ScopeSnapshot<U>,
    root_details: Vec<Option<Department>>,
    found: Vec<Department>,
    seen_depts: HashSet<i64>,
    user_index: HashMap<String, usize>,
    seen_cursors: HashMap<i64, HashSet<i64>>,
    walk_queue: VecDeque<i64>,
    page_queue: VecDeque<(i64, i64)>,
    /// Departments whose details are wanted before their subtree is read: (parent, id).
    detail_queue: VecDeque<(i64, i64)>,
    walking: usize,
    paging: usize,
    detailing: usize,
    pruning: Pruning,
    running: FuturesUnordered<BoxFuture<'static, Step>>,
}

impl<U> Walk<U> {
    fn new(client: DingTalkClient, pruning: Pruning) -> Self {
        Self {
            window: (client.config().per_api_per_second as usize).clamp(2, 64),
            client,
            out: ScopeSnapshot::default(),
            root_details: vec![],
            found: vec![],
            seen_depts: HashSet::new(),
            user_index: HashMap::new(),
            seen_cursors: HashMap::new(),
            walk_queue: VecDeque::new(),
            page_queue: VecDeque::new(),
            detail_queue: VecDeque::new(),
            walking: 0,
            paging: 0,
            detailing: 0,
            pruning,
            running: FuturesUnordered::new(),
        }
    }

    /// Asks for each root's details and queues its walk and its listing.
    fn start(&mut self, roots: &[i64]) {
        for &root in roots {
            if !self.seen_depts.insert(root) {
                continue;
            }
            let me = self.client.clone();
            let i = self.root_details.len();
            self.root_details.push(None);
            self.running.push(Box::pin(async move {
                Step::Root(i, root, Box::new(me.get_department(root).await))
            }));
            self.walk_queue.push_back(root);
            self.page_queue.push_back((root, 0));
        }
    }

    /// Fills both windows from the queues, then waits for the next answer; `None` once
    /// nothing is left to ask.
    async fn next(&mut self) -> Option<Step> {
        while self.walking < self.window
            && let Some(id) = self.walk_queue.pop_front()
        {
            self.walking += 1;
            let me = self.client.clone();
            self.running.push(Box::pin(async move {
                Step::Sub(id, me.list_sub_departments(id).await)
            }));
        }
        while self.paging < self.window
            && let Some((id, cursor)) = self.page_queue.pop_front()
        {
            self.paging += 1;
            let me = self.client.clone();
            self.running.push(Box::pin(async move {
                Step::Page(id, cursor, me.list_users_page(id, cursor, PAGE_SIZE).await)
            }));
        }
        while self.detailing < self.window
            && let Some((parent, id)) = self.detail_queue.pop_front()
        {
            self.detailing += 1;
            let me = self.client.clone();
            self.running.push(Box::pin(async move {
                Step::Detail(parent, id, Box::new(me.get_department(id).await))
            }));
        }
        self.running.next().await
    }

    fn fail(&mut self, api: &'static str, dept_id: i64, error: DingTalkError) {
        self.out.failures.push(ScopeFailure {
            api,
            dept_id,
            error,
        });
    }

    fn root(&mut self, i: usize, id: i64, result: Result<Department, DingTalkError>) {
        match result {
            Ok(d) => self.root_details[i] = Some(d),
            Err(error) => self.fail(API_DEPT_GET, id, error),
        }
    }

    /// Keeps the departments not seen before and queues their walk and their listing.
    fn children(&mut self, parent: i64, result: Result<Vec<Department>, DingTalkError>) {
        self.walking -= 1;
        let children = match result {
            Ok(children) => children,
            Err(error) => return self.fail(API_LISTSUB, parent, error),
        };
        for d in children {
            if !self.seen_depts.insert(d.dept_id) || self.pruning.excluded.contains(&d.dept_id) {
                continue;
            }
            if self.pruning.hidden {
                self.detail_queue.push_back((parent, d.dept_id));
            } else {
                self.keep_department(parent, d);
            }
        }
    }

    /// Keeps a department found under `parent` and queues its walk and its listing.
    fn keep_department(&mut self, parent: i64, mut d: Department) {
        d.parent_id.get_or_insert(parent);
        self.walk_queue.push_back(d.dept_id);
        self.page_queue.push_back((d.dept_id, 0));
        self.found.push(d);
    }

    /// A department's details: kept (details and all) unless hidden. One that could not be
    /// read is left out and makes the read incomplete, so nobody in it is disabled; one gone
    /// since listsub named it is simply left out.
    fn detail(&mut self, parent: i64, id: i64, result: Result<Department, DingTalkError>) {
        self.detailing -= 1;
        match result {
            Ok(d) if d.hide_dept == Some(true) => {}
            Ok(d) => self.keep_department(parent, d),
            Err(DingTalkError::NotFound { .. }) => {}
            Err(error) => self.fail(API_DEPT_GET, id, error),
        }
    }

    /// Keeps the people of one page of `dept` and queues its next page.
    fn page(
        &mut self,
        dept: i64,
        cursor: i64,
        result: Result<UserPage, DingTalkError>,
        keep: &mut impl FnMut(User) -> U,
        listed_again: &mut impl FnMut(&mut U, &[i64], &[i64]),
    ) {
        self.paging -= 1;
        let page = match result {
            Ok(page) => page,
            Err(error) => return self.fail(API_USER_LIST, dept, error),
        };
        if let Some(message) = self.broken_page(dept, cursor, &page) {
            self.fail(
                API_USER_LIST,
                dept,
                DingTalkError::decode(API_USER_LIST, message),
            );
        } else if let Some(next) = page.next(cursor) {
            // Next page of this department before new departments: keeps one department's
            // listing short-lived.
            self.page_queue.push_front((dept, next));
        }
        for mut u in page.list {
            if u.userid.is_empty() {
                continue;
            }
            let led = (u.leader == Some(true)).then_some(dept);
            match self.user_index.get(&u.userid) {
                Some(&i) => {
                    let mut more = u.departments().to_vec();
                    more.push(dept);
                    listed_again(&mut self.out.users[i], &more, led.as_slice());
                }
                None => {
                    if let Some(d) = led {
                        let flags = u.leader_in_dept.get_or_insert_default();
                        if !flags.iter().any(|f| f.dept_id == d) {
                            flags.push(DeptLeader {
                                dept_id: d,
                                leader: Some(true),
                            });
                        }
                    }
                    let list = u.dept_id_list.get_or_insert_default();
                    if !list.contains(&dept) {
                        list.push(dept);
                    }
                    self.user_index
                        .insert(u.userid.clone(), self.out.users.len());
                    self.out.users.push(keep(u));
                }
            }
        }
    }

    /// A page larger than asked for, or a cursor that goes back to one already read, is a
    /// broken answer: what it says is kept (adds are harmless) but the read is marked
    /// incomplete, so nobody is disabled on its account, and a cursor is never followed in
    /// circles.
    fn broken_page(&mut self, dept: i64, cursor: i64, page: &UserPage) -> Option<String> {
        let cursors = self.seen_cursors.entry(dept).or_default();
        cursors.insert(cursor);
        let stuck =
            page.has_more == Some(true) && page.next_cursor.is_none_or(|n| cursors.contains(&n));
        if stuck {
            Some(format!("the cursor did not advance past {cursor}"))
        } else if page.list.len() > PAGE_SIZE as usize {
            Some(format!(
                "a page of {} people, more than the {PAGE_SIZE} asked for",
                page.list.len()
            ))
        } else {
            None
        }
    }

    /// Roots first: a root whose details could not be read still appears (by id), so the
    /// tree under it keeps its parent. `roots` are those [`Walk::start`] was given.
    fn finish(mut self, roots: &[i64]) -> ScopeSnapshot<U> {
        for (d, &root) in self.root_details.into_iter().zip(roots.iter()) {
            self.out.departments.push(d.unwrap_or(Department {
                dept_id: root,
                ..Default::default()
            }));
        }
        self.out.departments.extend(self.found);
        self.out
    }
}

/// The calls counted since `before`, by API (only those that grew).
fn calls_since(before: &HashMap<String, u64>, after: HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .into_iter()
        .filter_map(|(api, n)| {
            let d = n - before.get(&api).copied().unwrap_or(0);
            (d > 0).then_some((api, d))
        })
        .collect()
}

fn dedup(roots: &[i64]) -> Vec<i64> {
    let mut seen = HashSet::new();
    roots.iter().copied().filter(|r| seen.insert(*r)).collect()
}
