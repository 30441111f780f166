//! The simulator's mutable state and every change to the org, with DingTalk's validation rules
//! (REFERENCE §4) and the address-book events each change emits (§5).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::org::{Department, Org, Person, ROOT_DEPT, derive_unionid};

/// A DingTalk business error: `errcode` + `errmsg` (oapi) — mapped to HTTP for `/v1.0` and admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("errcode {errcode}: {errmsg}")]
pub struct ApiError {
    pub errcode: i64,
    pub errmsg: String,
}

pub fn api_err(errcode: i64, errmsg: impl Into<String>) -> ApiError {
    ApiError {
        errcode,
        errmsg: errmsg.into(),
    }
}

/// What a token stands for.
#[derive(Clone, Debug)]
pub enum TokenKind {
    App,
    /// A personal token from the OAuth code exchange.
    User {
        userid: String,
    },
}

#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub app_key: String,
    pub kind: TokenKind,
    pub expires_ms: i64,
}

/// Token lookup outcome.
pub enum TokenCheck {
    Valid(TokenInfo),
    Expired,
    Invalid,
}

/// One address-book change, as DingTalk announces it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub corp_id: String,
    pub born_ms: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dept_ids: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Value>,
}

impl Event {
    /// Stream `data`: lowerCamelCase business fields (§5.2).
    pub fn stream_data(&self) -> Value {
        let mut m = serde_json::Map::new();
        if !self.user_ids.is_empty() {
            if self.event_type != "user_active_org" {
                m.insert("timeStamp".into(), json!(self.born_ms.to_string()));
            }
            m.insert("userId".into(), json!(self.user_ids));
        }
        if !self.dept_ids.is_empty() {
            m.insert("deptId".into(), json!(self.dept_ids));
        }
        if let Some(d) = &self.diff {
            m.insert("diffInfo".into(), d.clone());
        }
        Value::Object(m)
    }

    /// HTTP push configured in the developer console (new style).
    pub fn console_payload(&self) -> Value {
        let mut v = self.stream_data();
        let m = v.as_object_mut().expect("object");
        m.insert("EventType".into(), json!(self.event_type));
        m.insert("EventTime".into(), json!(self.born_ms));
        m.insert("CorpId".into(), json!(self.corp_id));
        m.insert("BizId".into(), json!(self.born_ms.to_string()));
        m.insert("eventId".into(), json!(self.event_id));
        v
    }

    /// Legacy `register_call_back` push: PascalCase keys.
    pub fn legacy_payload(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("EventType".into(), json!(self.event_type));
        m.insert("TimeStamp".into(), json!(self.born_ms));
        if !self.user_ids.is_empty() {
            m.insert("UserId".into(), json!(self.user_ids));
        }
        if !self.dept_ids.is_empty() {
            m.insert("DeptId".into(), json!(self.dept_ids));
        }
        if let Some(d) = &self.diff {
            m.insert("DiffInfo".into(), d.clone());
        }
        m.insert("CorpId".into(), json!(self.corp_id));
        Value::Object(m)
    }
}

/// Counters a benchmark or test reads through `GET /__sim/counters` or [`super::SimHandle::counters`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    /// Calls per API path (`/topapi/v2/user/list`, `/v1.0/contact/users/me`, ...), every answer counted.
    pub calls: BTreeMap<String, u64>,
    /// Calls answered with the per-app QPS limit (90018 / 403 QpsLimitForAppkeyAndApi).
    pub throttled: u64,
    /// Calls answered by an injected fault.
    pub faults_injected: u64,
    pub tokens_issued: u64,
    pub events_emitted: u64,
    pub stream_connections_opened: u64,
    pub stream_connections_active: u64,
    pub stream_events_sent: u64,
    pub stream_redeliveries: u64,
    pub stream_acks_success: u64,
    pub stream_acks_later: u64,
    pub stream_pongs: u64,
    /// Events a Stream app never got because it stayed disconnected past the retention time.
    pub stream_events_dropped: u64,
    /// Events swallowed by an injected `drop` event fault (no channel got them).
    pub events_dropped_by_fault: u64,
    pub callback_posts: u64,
    pub callback_success: u64,
    pub callback_failures: u64,
    pub callback_given_up: u64,
}

/// Injected failure for matching calls.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Plain HTTP error status with a short text body (gateway failure).
    Http { status: u16 },
    /// errcode -1 "系统繁忙" (oapi) / HTTP 500 systemBusy (/v1.0).
    SystemBusy,
    /// errcode 15, sub_code `isp.top-remote-connection-timeout` (oapi) / HTTP 504 (/v1.0).
    UpstreamTimeout,
    /// Any oapi errcode (HTTP 500 `{code}` on /v1.0).
    Errcode {
        errcode: i64,
        #[serde(default)]
        errmsg: Option<String>,
    },
    /// The per-app QPS answer (90018 / 403 QpsLimitForAppkeyAndApi).
    Throttle,
    /// The IP-ban page of the per-IP limit (non-envelope JSON).
    IpBan,
    /// Answer as if the token were invalid (88/40014, 400 InvalidAuthentication).
    InvalidToken,
    /// Delay the answer, then answer normally.
    Latency { ms: u64 },
    /// A broken `user/list` page: more people than asked for (`oversized`), or `has_more`
    /// with a cursor that does not advance.
    BrokenPage { oversized: bool },
}

/// "Fail the calls `skip+1 ..= skip+times` of `api` (all APIs when absent) with `kind`."
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FaultRule {
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub app_key: Option<String>,
    /// Matching calls let through before the fault fires (fail the Nth call: skip = N-1).
    #[serde(default)]
    pub skip: u64,
    /// How many calls fail; 0 = every call from then on.
    #[serde(default = "one")]
    pub times: u64,
    pub kind: FaultKind,
    #[serde(default)]
    pub seen: u64,
    #[serde(default)]
    pub fired: u64,
}

fn one() -> u64 {
    1
}

impl FaultRule {
    pub fn new(api: Option<&str>, kind: FaultKind) -> Self {
        Self {
            api: api.map(str::to_owned),
            app_key: None,
            skip: 0,
            times: 1,
            kind,
            seen: 0,
            fired: 0,
        }
    }
    /// Fail only the `n`-th matching call (1-based).
    pub fn nth(api: &str, n: u64, kind: FaultKind) -> Self {
        Self {
            skip: n.saturating_sub(1),
            ..Self::new(Some(api), kind)
        }
    }
    pub fn times(mut self, times: u64) -> Self {
        self.times = times;
        self
    }
}

/// Event-delivery faults applied to the next events on every channel.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EventFaults {
    /// Drop the next N events (never delivered).
    #[serde(default)]
    pub drop: u32,
    /// Deliver the next N events twice.
    #[serde(default)]
    pub duplicate: u32,
    /// Swap the next N pairs of consecutive events.
    #[serde(default)]
    pub reorder: u32,
}

/// A departed person, kept so HR can rehire them (same userid and unionid).
#[derive(Clone, Debug, Serialize)]
pub struct Departed {
    pub person: Person,
    pub left_ms: i64,
}

/// A user-token auth code from the login page (§8.1) or the in-app SSO (§8.2).
#[derive(Clone, Debug)]
pub struct AuthCode {
    pub app_key: String,
    pub userid: String,
    pub with_corpid: bool,
    pub expires_ms: i64,
}

/// Write request for a person (oapi create/update and the admin API share it).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserWrite {
    pub userid: Option<String>,
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub org_email: Option<String>,
    pub title: Option<String>,
    pub job_number: Option<String>,
    pub telephone: Option<String>,
    pub work_place: Option<String>,
    pub remark: Option<String>,
    pub extension: Option<String>,
    pub hired_date: Option<i64>,
    pub manager_userid: Option<String>,
    /// Replaces the membership set (first = main department).
    #[serde(alias = "dept_id_list")]
    pub departments: Option<Vec<i64>>,
    pub dept_order: Option<BTreeMap<i64, i64>>,
    pub leader_in: Option<Vec<i64>>,
    pub hide_mobile: Option<bool>,
    pub senior: Option<bool>,
    pub active: Option<bool>,
    pub admin: Option<bool>,
    pub boss: Option<bool>,
    pub exclusive_account: Option<bool>,
    pub exclusive_account_type: Option<String>,
    pub login_id: Option<String>,
    pub avatar: Option<String>,
}

/// Write request for a department.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeptWrite {
    pub name: Option<String>,
    pub parent_id: Option<i64>,
    pub order: Option<i64>,
    pub source_identifier: Option<String>,
    pub create_dept_group: Option<bool>,
    pub auto_add_user: Option<bool>,
    pub hide_dept: Option<bool>,
    pub manager_userids: Option<Vec<String>>,
    pub brief: Option<String>,
    pub telephone: Option<String>,
    pub code: Option<String>,
}

/// Per-app Stream delivery queue.
#[derive(Default)]
pub struct AppQueue {
    pub pending: VecDeque<Pending>,
    pub inflight: HashMap<String, Inflight>,
}

pub struct Pending {
    pub event: Event,
    pub not_before: Instant,
    pub enqueued: Instant,
    pub attempts: u32,
}

pub struct Inflight {
    pub event: Event,
    pub sent: Instant,
    pub conn: u64,
    pub attempts: u32,
    pub enqueued: Instant,
}

/// Message for a Stream connection task.
#[derive(Debug)]
pub enum ConnCmd {
    Frame(String),
    /// SYSTEM disconnect then close after the grace period (graceful), or drop now.
    Disconnect {
        graceful: bool,
    },
}

pub struct ConnHandle {
    pub app_key: String,
    pub tx: tokio::sync::mpsc::UnboundedSender<ConnCmd>,
    pub opened_ms: i64,
    /// Told to go away (SYSTEM disconnect sent): no new events are routed to it.
    pub draining: bool,
}

/// How a callback was registered: it decides owner key and payload shape.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStyle {
    /// `/call_back/register_call_back`: owner key = corpId, PascalCase payload, tag filter.
    Legacy,
    /// Developer-console subscription: owner key = AppKey, console payload, all events.
    Console,
}

#[derive(Clone, Serialize)]
pub struct CallbackReg {
    pub style: CallbackStyle,
    pub url: String,
    #[serde(skip)]
    pub token: String,
    #[serde(skip)]
    pub aes_key: String,
    pub tags: Vec<String>,
}

#[derive(Default)]
pub struct CallbackQueue {
    pub reg: Option<CallbackReg>,
    pub pending: VecDeque<Pending>,
    /// Given-up events, in the `get_call_back_failed_result` shape.
    pub failed: VecDeque<Value>,
    pub busy: bool,
}

/// Everything mutable, behind one mutex (never held across an await).
pub struct State {
    pub org: Org,
    pub departed: BTreeMap<String, Departed>,
    pub tokens: HashMap<String, TokenInfo>,
    /// app_key → its current app token.
    pub app_tokens: HashMap<String, String>,
    pub revoked: HashSet<String>,
    pub refresh_tokens: HashMap<String, (String, String, i64)>,
    pub auth_codes: HashMap<String, AuthCode>,
    pub clock_offset_ms: i64,
    pub counters: Counters,
    pub faults: Vec<FaultRule>,
    pub latency_ms: u64,
    pub qps_limit: Option<u32>,
    pub qps_windows: HashMap<(String, String), (u64, u32)>,
    pub event_faults: EventFaults,
    /// Event held back by a reorder fault.
    pub held: Option<Event>,
    pub event_log: VecDeque<Event>,
    pub tickets: HashMap<String, (String, i64)>,
    pub conns: BTreeMap<u64, ConnHandle>,
    pub next_conn: u64,
    /// Apps that opened a Stream connection at least once (subscribed).
    pub stream_apps: HashSet<String>,
    pub queues: HashMap<String, AppQueue>,
    pub callbacks: HashMap<String, CallbackQueue>,
    pub next_dept_id: i64,
    pub next_user_seq: u64,
    pub max_depth: usize,
    pub rehire_cooldown_ms: i64,
    /// Department listings as `user/list` pages them, built on first use and dropped by
    /// every change to the org (so paging 100,000 people does not rescan them per page).
    listings: Listings,
}

/// Indexes into `org.people`: direct members per department, and each (department, order)
/// as sorted for paging.
#[derive(Default)]
struct Listings {
    members: Option<HashMap<i64, Vec<usize>>>,
    sorted: HashMap<(i64, String), std::sync::Arc<Vec<usize>>>,
}

const EVENT_LOG_CAP: usize = 10_000;

impl State {
    pub fn new(
        org: Org,
        qps_limit: Option<u32>,
        max_depth: usize,
        rehire_cooldown_ms: i64,
    ) -> Self {
        let next_dept_id = org
            .departments
            .iter()
            .map(|d| d.id)
            .max()
            .unwrap_or(1)
            .max(400_000_000)
            + 1;
        Self {
            org,
            departed: BTreeMap::new(),
            tokens: HashMap::new(),
            app_tokens: HashMap::new(),
            revoked: HashSet::new(),
            refresh_tokens: HashMap::new(),
            auth_codes: HashMap::new(),
            clock_offset_ms: 0,
            counters: Counters::default(),
            faults: Vec::new(),
            latency_ms: 0,
            qps_limit,
            qps_windows: HashMap::new(),
            event_faults: EventFaults::default(),
            held: None,
            event_log: VecDeque::new(),
            tickets: HashMap::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            stream_apps: HashSet::new(),
            queues: HashMap::new(),
            callbacks: HashMap::new(),
            next_dept_id,
            next_user_seq: 1,
            max_depth,
            rehire_cooldown_ms,
            listings: Listings::default(),
        }
    }

    /// Something in the org changed: listings are rebuilt when next asked for.
    fn org_changed(&mut self) {
        self.listings = Listings::default();
    }

    /// `dept`'s direct members in `user/list` order, as indexes into `org.people`.
    pub fn listing(
        &mut self,
        dept: i64,
        order: &str,
    ) -> Result<std::sync::Arc<Vec<usize>>, ApiError> {
        let key = (dept, order.to_owned());
        if let Some(l) = self.listings.sorted.get(&key) {
            return Ok(l.clone());
        }
        let org = &self.org;
        let members = self.listings.members.get_or_insert_with(|| {
            let mut m: HashMap<i64, Vec<usize>> = HashMap::new();
            for (i, p) in org.people.iter().enumerate() {
                for d in &p.departments {
                    m.entry(*d).or_default().push(i);
                }
            }
            m
        });
        let mut list = members.get(&dept).cloned().unwrap_or_default();
        super::oapi::sort_members(org, dept, order, &mut list)?;
        let list = std::sync::Arc::new(list);
        self.listings.sorted.insert(key, list.clone());
        Ok(list)
    }

    /// Simulated wall clock in ms (real clock + what `advance_clock` added).
    /// A DingTalk account the simulator knows: a member of the enterprise, or a former one
    /// (still a DingTalk user, now outside it: logs in, but `getbyunionid` no longer finds them).
    pub fn account(&self, userid: &str) -> Option<&Person> {
        self.org
            .person(userid)
            .or_else(|| self.departed.get(userid).map(|d| &d.person))
    }

    pub fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        real + self.clock_offset_ms
    }

    // ---------------------------------------------------------------- tokens

    /// Internal-app token: the same token while valid, life extended on each call (§2.1).
    pub fn issue_app_token(&mut self, app_key: &str, ttl_ms: i64) -> (String, i64) {
        let now = self.now_ms();
        let expires_ms = now + ttl_ms;
        if let Some(tok) = self.app_tokens.get(app_key).cloned()
            && let Some(info) = self.tokens.get_mut(&tok)
            && info.expires_ms > now
        {
            info.expires_ms = expires_ms;
            return (tok, ttl_ms / 1000);
        }
        let tok = new_token();
        self.tokens.insert(
            tok.clone(),
            TokenInfo {
                app_key: app_key.to_owned(),
                kind: TokenKind::App,
                expires_ms,
            },
        );
        self.app_tokens.insert(app_key.to_owned(), tok.clone());
        self.counters.tokens_issued += 1;
        (tok, ttl_ms / 1000)
    }

    pub fn issue_user_token(
        &mut self,
        app_key: &str,
        userid: &str,
        ttl_ms: i64,
    ) -> (String, String) {
        let tok = new_token();
        let expires_ms = self.now_ms() + ttl_ms;
        self.tokens.insert(
            tok.clone(),
            TokenInfo {
                app_key: app_key.to_owned(),
                kind: TokenKind::User {
                    userid: userid.to_owned(),
                },
                expires_ms,
            },
        );
        let refresh = new_token();
        // Refresh tokens live 30 days (§8.1).
        self.refresh_tokens.insert(
            refresh.clone(),
            (
                app_key.to_owned(),
                userid.to_owned(),
                self.now_ms() + 30 * 86_400_000,
            ),
        );
        self.counters.tokens_issued += 1;
        (tok, refresh)
    }

    pub fn check_token(&self, token: &str) -> TokenCheck {
        match self.tokens.get(token) {
            Some(info) if info.expires_ms > self.now_ms() => TokenCheck::Valid(info.clone()),
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Invalid,
        }
    }

    /// Drops every token (of one app, or all): callers get the invalid-token answer.
    /// Returns how many of them were still valid.
    pub fn invalidate_tokens(&mut self, app_key: Option<&str>) -> usize {
        let victims: Vec<String> = self
            .tokens
            .iter()
            .filter(|(_, i)| app_key.is_none_or(|k| k == i.app_key))
            .map(|(t, _)| t.clone())
            .collect();
        let now = self.now_ms();
        let mut valid = 0;
        for t in &victims {
            if self.tokens.remove(t).is_some_and(|i| i.expires_ms > now) {
                valid += 1;
            }
            self.revoked.insert(t.clone());
        }
        self.app_tokens
            .retain(|k, _| app_key.is_some_and(|a| a != k.as_str()));
        valid
    }

    // ---------------------------------------------------------------- limits and faults

    /// Per-app, per-API fixed 1-second window (§9.3). `true` = over the limit.
    pub fn over_qps(&mut self, app_key: &str, api: &str) -> bool {
        let Some(limit) = self.qps_limit else {
            return false;
        };
        let sec = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let w = self
            .qps_windows
            .entry((app_key.to_owned(), api.to_owned()))
            .or_insert((sec, 0));
        if w.0 != sec {
            *w = (sec, 0);
        }
        w.1 += 1;
        if w.1 > limit {
            self.counters.throttled += 1;
            true
        } else {
            false
        }
    }

    pub fn count_call(&mut self, api: &str) {
        *self.counters.calls.entry(api.to_owned()).or_default() += 1;
    }

    /// The fault to apply to this call, if any (rules are consumed as they fire).
    pub fn take_fault(&mut self, api: &str, app_key: Option<&str>) -> Option<FaultKind> {
        let mut hit = None;
        for rule in &mut self.faults {
            if rule.api.as_deref().is_some_and(|a| a != api) {
                continue;
            }
            if let Some(k) = &rule.app_key
                && app_key != Some(k.as_str())
            {
                continue;
            }
            rule.seen += 1;
            if rule.seen > rule.skip && (rule.times == 0 || rule.fired < rule.times) {
                rule.fired += 1;
                hit = Some(rule.kind.clone());
                break;
            }
        }
        self.faults.retain(|r| r.times == 0 || r.fired < r.times);
        if hit
            .as_ref()
            .is_some_and(|k| !matches!(k, FaultKind::Latency { .. }))
        {
            self.counters.faults_injected += 1;
        }
        hit
    }

    // ---------------------------------------------------------------- events

    /// Records an event and queues it for every subscribed channel, applying event faults.
    pub fn emit(
        &mut self,
        event_type: &str,
        user_ids: Vec<String>,
        dept_ids: Vec<i64>,
        diff: Option<Value>,
    ) {
        self.org_changed();
        let ev = Event {
            event_id: uuid::Uuid::new_v4().simple().to_string(),
            event_type: event_type.to_owned(),
            corp_id: self.org.corp_id.clone(),
            born_ms: self.now_ms(),
            user_ids,
            dept_ids,
            diff,
        };
        self.counters.events_emitted += 1;
        self.event_log.push_back(ev.clone());
        if self.event_log.len() > EVENT_LOG_CAP {
            self.event_log.pop_front();
        }
        if self.event_faults.drop > 0 {
            self.event_faults.drop -= 1;
            self.counters.events_dropped_by_fault += 1;
            return;
        }
        let mut batch = vec![ev];
        if self.event_faults.duplicate > 0 {
            self.event_faults.duplicate -= 1;
            batch.push(batch[0].clone());
        }
        // Reorder: hold this event back and queue it right after the next one.
        if self.event_faults.reorder > 0 && self.held.is_none() {
            self.event_faults.reorder -= 1;
            self.held = batch.pop();
            if batch.is_empty() {
                return;
            }
        } else if let Some(h) = self.held.take() {
            batch.push(h);
        }
        for e in batch {
            self.enqueue(e);
        }
    }

    /// Queues a held-back event now (when reordering is switched off).
    pub fn flush_held(&mut self) {
        if let Some(h) = self.held.take() {
            self.enqueue(h);
        }
    }

    fn enqueue(&mut self, e: Event) {
        for app in &self.stream_apps {
            let q = self.queues.entry(app.clone()).or_default();
            push_pending(&mut q.pending, e.clone());
        }
        for cb in self.callbacks.values_mut() {
            if let Some(reg) = &cb.reg
                && (reg.style == CallbackStyle::Console || reg.tags.contains(&e.event_type))
            {
                push_pending(&mut cb.pending, e.clone());
            }
        }
    }

    // ---------------------------------------------------------------- people

    /// Validates and applies a create (§4.1). `strict` = the oapi rules (mobile required,
    /// re-add cooldown); the admin API (HR in the console) is lenient about mobile.
    pub fn create_user(&mut self, w: UserWrite, strict: bool) -> Result<Person, ApiError> {
        self.org_changed();
        let name = w
            .name
            .clone()
            .ok_or_else(|| api_err(40035, "缺少参数 name"))?;
        check_name(&name)?;
        let userid = match &w.userid {
            Some(u) => {
                if u.is_empty() || u.chars().count() > 64 {
                    return Err(api_err(40035, "不合法的参数 userid: 长度必须为1-64"));
                }
                u.clone()
            }
            None => self.fresh_userid(),
        };
        if self.org.person(&userid).is_some() {
            return Err(api_err(60102, "UserID在公司中已存在"));
        }
        let exclusive = w.exclusive_account.unwrap_or(false);
        if exclusive && w.mobile.is_some() && strict {
            return Err(api_err(
                40035,
                "不合法的参数 mobile: 企业账号不能设置手机号",
            ));
        }
        if strict && !exclusive && w.mobile.is_none() {
            return Err(api_err(40035, "缺少参数 mobile"));
        }
        let depts = w
            .departments
            .clone()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| api_err(40035, "缺少参数 dept_id_list"))?;
        if depts.len() > 100 {
            return Err(api_err(40035, "不合法的参数 dept_id_list: 最多100个部门"));
        }
        let now = self.now_ms();
        if strict
            && let Some(m) = &w.mobile
            && self.departed.values().any(|d| {
                d.person.mobile.as_ref() == Some(m) && now - d.left_ms < self.rehire_cooldown_ms
            })
        {
            // DingTalk sends an invitation instead of adding someone removed less than 24 h ago.
            return Err(api_err(40103, "邀请已发送，需要用户同意后才能加入企业"));
        }
        let mut p = Person {
            unionid: self
                .departed
                .get(&userid)
                .map(|d| d.person.unionid.clone())
                .unwrap_or_else(|| derive_unionid(&self.org.corp_id, &userid)),
            userid,
            name,
            state_code: "86".into(),
            active: w.active.unwrap_or(true),
            created_ms: now,
            modified_ms: now,
            ..Person::default()
        };
        self.apply_user_fields(&mut p, &w, true)?;
        self.org.people.push(p.clone());
        self.emit("user_add_org", vec![p.userid.clone()], vec![], None);
        if p.admin {
            self.emit("org_admin_add", vec![p.userid.clone()], vec![], None);
        }
        Ok(p)
    }

    /// Validates and applies an update (§4.2): omitted fields keep their value.
    pub fn update_user(
        &mut self,
        userid: &str,
        w: UserWrite,
        strict: bool,
    ) -> Result<Person, ApiError> {
        self.org_changed();
        let idx = self
            .org
            .people
            .iter()
            .position(|p| p.userid == userid)
            .ok_or_else(|| api_err(60121, "找不到该用户"))?;
        let before = self.org.people[idx].clone();
        if let Some(m) = &w.mobile
            && before.mobile.as_ref() != Some(m)
            && strict
        {
            return Err(api_err(
                40022,
                "企业中的手机号码和登录钉钉的手机号码不一致,暂时不支持修改用户信息,可以删除后重新添加",
            ));
        }
        if let Some(n) = &w.name {
            check_name(n)?;
        }
        let mut p = before.clone();
        self.apply_user_fields(&mut p, &w, false)?;
        p.modified_ms = self.now_ms();
        self.org.people[idx] = p.clone();
        self.emit(
            "user_modify_org",
            vec![p.userid.clone()],
            vec![],
            Some(diff_info(&before, &p)),
        );
        if before.admin != p.admin {
            let t = if p.admin {
                "org_admin_add"
            } else {
                "org_admin_remove"
            };
            self.emit(t, vec![p.userid.clone()], vec![], None);
        }
        if !before.active && p.active {
            self.emit("user_active_org", vec![p.userid.clone()], vec![], None);
        }
        Ok(p)
    }

    /// Removes a person (§4.3); they can be rehired with [`Self::rehire`].
    pub fn delete_user(&mut self, userid: &str) -> Result<Person, ApiError> {
        self.org_changed();
        let idx = self
            .org
            .people
            .iter()
            .position(|p| p.userid == userid)
            .ok_or_else(|| api_err(60121, "找不到该用户"))?;
        let p = self.org.people.remove(idx);
        for d in &mut self.org.departments {
            d.manager_userids.retain(|u| u != userid);
        }
        for other in &mut self.org.people {
            if other.manager_userid.as_deref() == Some(userid) {
                other.manager_userid = None;
            }
        }
        let now = self.now_ms();
        self.departed.insert(
            p.userid.clone(),
            Departed {
                person: p.clone(),
                left_ms: now,
            },
        );
        self.emit("user_leave_org", vec![p.userid.clone()], vec![], None);
        Ok(p)
    }

    /// HR re-adds a departed person with the same userid/unionid (into `departments`, or the old ones).
    pub fn rehire(
        &mut self,
        userid: &str,
        departments: Option<Vec<i64>>,
    ) -> Result<Person, ApiError> {
        self.org_changed();
        if self.org.person(userid).is_some() {
            return Err(api_err(60102, "UserID在公司中已存在"));
        }
        let mut p = self
            .departed
            .remove(userid)
            .ok_or_else(|| api_err(60121, "找不到该用户"))?
            .person;
        let mut depts = departments.unwrap_or_else(|| p.departments.clone());
        depts.retain(|d| self.org.department(*d).is_some());
        if depts.is_empty() {
            depts.push(ROOT_DEPT);
        }
        if let Some(m) = &p.mobile
            && self.org.people.iter().any(|o| o.mobile.as_ref() == Some(m))
        {
            p.mobile = None;
        }
        p.departments = depts;
        p.leader_in.clear();
        p.dept_order.retain(|d, _| p.departments.contains(d));
        p.manager_userid = p.manager_userid.filter(|m| self.org.person(m).is_some());
        let now = self.now_ms();
        p.created_ms = now;
        p.modified_ms = now;
        self.org.people.push(p.clone());
        self.emit("user_add_org", vec![p.userid.clone()], vec![], None);
        Ok(p)
    }

    fn fresh_userid(&mut self) -> String {
        loop {
            let id = format!(
                "{:016}",
                1_000_000_000_000_000u64 / 100 + self.next_user_seq * 7919
            );
            self.next_user_seq += 1;
            if self.org.person(&id).is_none() && !self.departed.contains_key(&id) {
                return id;
            }
        }
    }

    fn apply_user_fields(
        &self,
        p: &mut Person,
        w: &UserWrite,
        creating: bool,
    ) -> Result<(), ApiError> {
        let others = || self.org.people.iter().filter(|o| o.userid != p.userid);
        if let Some(n) = &w.name {
            p.name = n.clone();
        }
        if let Some(m) = &w.mobile {
            check_mobile(m)?;
            if others().any(|o| o.mobile.as_ref() == Some(m)) {
                return Err(api_err(60104, "手机号码在公司中已存在"));
            }
            p.mobile = Some(m.clone());
            if let Some(code) = m.strip_prefix('+').and_then(|r| r.split('-').next()) {
                p.state_code = code.to_owned();
            }
        }
        if let Some(e) = &w.email {
            if e.is_empty() {
                p.email = None;
            } else {
                check_email(e)?;
                if others().any(|o| o.email.as_ref() == Some(e)) {
                    return Err(api_err(60106, "邮箱在公司中已存在"));
                }
                p.email = Some(e.clone());
            }
        }
        if let Some(t) = &w.telephone {
            limit("telephone", t, 50)?;
            if !t.is_empty() && others().any(|o| o.telephone.as_ref() == Some(t)) {
                return Err(api_err(40100, "分机号已经存在"));
            }
            p.telephone = non_empty(t);
        }
        if let Some(v) = &w.job_number {
            if v.chars().count() > 50 {
                return Err(api_err(60123, "工号不合法"));
            }
            p.job_number = non_empty(v);
        }
        if let Some(v) = &w.title {
            limit("title", v, 200)?;
            p.title = non_empty(v);
        }
        if let Some(v) = &w.org_email {
            limit("org_email", v, 100)?;
            p.org_email = non_empty(v);
        }
        if let Some(v) = &w.work_place {
            limit("work_place", v, 100)?;
            p.work_place = non_empty(v);
        }
        if let Some(v) = &w.remark {
            limit("remark", v, 2000)?;
            p.remark = non_empty(v);
        }
        if let Some(v) = &w.extension {
            limit("extension", v, 2000)?;
            if !v.is_empty() && !serde_json::from_str::<Value>(v).is_ok_and(|j| j.is_object()) {
                return Err(api_err(40035, "不合法的参数 extension: 必须是JSON对象"));
            }
            p.extension = non_empty(v);
        }
        if let Some(h) = w.hired_date {
            if h < 1 {
                return Err(api_err(40035, "不合法的参数 hired_date"));
            }
            p.hired_date = Some(h);
        }
        if let Some(m) = &w.manager_userid {
            if m.is_empty() {
                p.manager_userid = None;
            } else if m == &p.userid || self.org.person(m).is_none() {
                return Err(api_err(60128, "主管ID不合法"));
            } else {
                p.manager_userid = Some(m.clone());
            }
        }
        if let Some(depts) = &w.departments {
            if depts.is_empty() && !creating {
                return Err(api_err(40035, "不合法的参数 dept_id_list"));
            }
            if depts.len() > 300 {
                return Err(api_err(40035, "不合法的参数 dept_id_list: 部门过多"));
            }
            for d in depts {
                if self.org.department(*d).is_none() {
                    return Err(api_err(60003, format!("部门不存在: {d}")));
                }
            }
            let mut uniq = Vec::new();
            for d in depts {
                if !uniq.contains(d) {
                    uniq.push(*d);
                }
            }
            p.departments = uniq;
            p.leader_in.retain(|d| depts.contains(d));
            p.dept_order.retain(|d, _| depts.contains(d));
        }
        if let Some(o) = &w.dept_order {
            for (d, v) in o {
                if p.departments.contains(d) {
                    p.dept_order.insert(*d, *v);
                }
            }
        }
        if let Some(l) = &w.leader_in {
            p.leader_in = l
                .iter()
                .copied()
                .filter(|d| p.departments.contains(d))
                .collect();
        }
        macro_rules! flag {
            ($f:ident, $t:ident) => {
                if let Some(v) = w.$f {
                    p.$t = v;
                }
            };
        }
        flag!(hide_mobile, hide_mobile);
        flag!(senior, senior);
        flag!(active, active);
        flag!(admin, admin);
        flag!(boss, boss);
        flag!(exclusive_account, exclusive_account);
        if let Some(t) = &w.exclusive_account_type {
            if t != "sso" && t != "dingtalk" {
                return Err(api_err(40035, "不合法的参数 exclusive_account_type"));
            }
            p.exclusive_account_type = Some(t.clone());
        }
        if let Some(v) = &w.login_id {
            p.login_id = non_empty(v);
        }
        if let Some(v) = &w.avatar {
            p.avatar = non_empty(v);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- departments

    /// §4.4 create department.
    pub fn create_department(&mut self, w: DeptWrite) -> Result<Department, ApiError> {
        self.org_changed();
        let name = w
            .name
            .clone()
            .ok_or_else(|| api_err(40035, "缺少参数 name"))?;
        check_dept_name(&name)?;
        let parent = w
            .parent_id
            .ok_or_else(|| api_err(40035, "缺少参数 parent_id"))?;
        if self.org.department(parent).is_none() {
            return Err(api_err(60004, "父部门不存在"));
        }
        if self.org.children(parent).iter().any(|c| c.name == name) {
            return Err(api_err(60021, "该部门下已存在同名部门"));
        }
        if self.org.depth(parent) + 1 > self.max_depth {
            return Err(api_err(60002, "部门层级深度超过限制"));
        }
        let id = self.next_dept_id;
        self.next_dept_id += 1;
        let mut d = Department::new(id, name, Some(parent));
        self.apply_dept_fields(&mut d, &w)?;
        self.org.departments.push(d.clone());
        self.emit("org_dept_create", vec![], vec![id], None);
        Ok(d)
    }

    /// §4.5 update department (rename, move, order, heads...).
    pub fn update_department(&mut self, id: i64, w: DeptWrite) -> Result<Department, ApiError> {
        self.org_changed();
        if id == ROOT_DEPT {
            return Err(api_err(60018, "根部门不能更新"));
        }
        let mut d = self
            .org
            .department(id)
            .cloned()
            .ok_or_else(|| api_err(60003, "部门不存在"))?;
        if let Some(n) = &w.name {
            check_dept_name(n)?;
        }
        let parent = w.parent_id.or(d.parent_id).unwrap_or(ROOT_DEPT);
        if w.parent_id.is_some() {
            if self.org.department(parent).is_none() {
                return Err(api_err(60004, "父部门不存在"));
            }
            if parent == id || self.org.descendants(id).contains(&parent) {
                return Err(api_err(60010, "部门之间存在循环"));
            }
            let subtree_height = self
                .org
                .descendants(id)
                .iter()
                .map(|x| self.org.depth(*x) + 1 - self.org.depth(id))
                .max()
                .unwrap_or(1);
            if self.org.depth(parent) + subtree_height > self.max_depth {
                return Err(api_err(60002, "部门层级深度超过限制"));
            }
        }
        let name = w.name.clone().unwrap_or_else(|| d.name.clone());
        if self
            .org
            .children(parent)
            .iter()
            .any(|c| c.id != id && c.name == name)
        {
            return Err(api_err(60021, "该部门下已存在同名部门"));
        }
        if let Some(m) = &w.manager_userids {
            for u in m {
                if !self
                    .org
                    .person(u)
                    .is_some_and(|p| p.departments.contains(&id))
                {
                    return Err(api_err(40031, format!("不合法的UserID列表: {u}")));
                }
            }
        }
        d.name = name;
        d.parent_id = Some(parent);
        self.apply_dept_fields(&mut d, &w)?;
        if let Some(slot) = self.org.departments.iter_mut().find(|x| x.id == id) {
            *slot = d.clone();
        }
        self.emit("org_dept_modify", vec![], vec![id], None);
        Ok(d)
    }

    /// §4.6: refuses the root, departments with sub-departments or with members.
    pub fn delete_department(&mut self, id: i64) -> Result<Department, ApiError> {
        self.org_changed();
        if id == ROOT_DEPT {
            return Err(api_err(60007, "根部门不能删除"));
        }
        let d = self
            .org
            .department(id)
            .cloned()
            .ok_or_else(|| api_err(60003, "部门不存在"))?;
        // UNCONFIRMED whether DingTalk cascades over empty sub-departments; refusing is safer.
        if !self.org.children(id).is_empty() {
            return Err(api_err(60006, "部门下存在子部门，不能删除"));
        }
        if !self.org.members(id).is_empty() {
            return Err(api_err(60005, "部门下存在员工，不能删除"));
        }
        self.org.departments.retain(|x| x.id != id);
        self.emit("org_dept_remove", vec![], vec![id], None);
        Ok(d)
    }

    fn apply_dept_fields(&self, d: &mut Department, w: &DeptWrite) -> Result<(), ApiError> {
        if let Some(o) = w.order {
            d.order = o;
        }
        if let Some(s) = &w.source_identifier {
            d.source_identifier = non_empty(s);
        }
        if let Some(v) = w.create_dept_group {
            d.create_dept_group = v;
        }
        if let Some(v) = w.auto_add_user {
            d.auto_add_user = v;
        }
        if let Some(v) = w.hide_dept {
            d.hide_dept = v;
        }
        if let Some(m) = &w.manager_userids {
            d.manager_userids = m.clone();
        }
        if let Some(b) = &w.brief {
            limit("brief", b, 255)?;
            d.brief = non_empty(b);
        }
        if let Some(t) = &w.telephone {
            limit("telephone", t, 50)?;
            d.telephone = non_empty(t);
        }
        if let Some(c) = &w.code {
            limit("code", c, 30)?;
            d.code = non_empty(c);
        }
        Ok(())
    }
}

fn push_pending(q: &mut VecDeque<Pending>, event: Event) {
    let now = Instant::now();
    q.push_back(Pending {
        event,
        not_before: now,
        enqueued: now,
        attempts: 0,
    });
}

/// `user_modify_org` diffInfo with the fields DingTalk reports (camelCase).
fn diff_info(a: &Person, b: &Person) -> Value {
    let pick = |p: &Person| {
        json!({
            "name": p.name,
            "managerUserid": p.manager_userid.clone().unwrap_or_default(),
            "email": p.email.clone().unwrap_or_default(),
            "jobNumber": p.job_number.clone().unwrap_or_default(),
            "workPlace": p.work_place.clone().unwrap_or_default(),
            "telephone": p.telephone.clone().unwrap_or_default(),
            "hiredDate": p.hired_date.map(|h| h.to_string()).unwrap_or_default(),
        })
    };
    json!({"userid": b.userid, "prev": pick(a), "curr": pick(b)})
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn limit(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.chars().count() > max {
        return Err(api_err(
            40035,
            format!("不合法的参数 {field}: 长度不能超过{max}"),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 80 {
        return Err(api_err(60112, "用户名称不合法"));
    }
    Ok(())
}

fn check_dept_name(name: &str) -> Result<(), ApiError> {
    let n = name.trim().chars().count();
    if n == 0 || n > 64 {
        return Err(api_err(60001, "部门名称不合法"));
    }
    if name.contains(['-', ',', '，']) {
        return Err(api_err(60009, "部门名称含有非法字符"));
    }
    Ok(())
}

/// Mainland `1xxxxxxxxxx`, `+86-1xxxxxxxxxx`, or `+<cc>-<digits>`.
pub fn check_mobile(m: &str) -> Result<(), ApiError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = if let Some(rest) = m.strip_prefix('+') {
        match rest.split_once('-') {
            Some(("86", num)) => num.len() == 11 && num.starts_with('1') && digits(num),
            Some((cc, num)) => {
                digits(cc) && cc.len() <= 4 && digits(num) && (5..=15).contains(&num.len())
            }
            None => false,
        }
    } else {
        m.len() == 11 && m.starts_with('1') && digits(m)
    };
    if ok {
        Ok(())
    } else {
        Err(api_err(60103, "手机号码不合法"))
    }
}

fn check_email(e: &str) -> Result<(), ApiError> {
    let ok = e.chars().count() <= 50
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(api_err(60105, "邮箱不合法"))
    }
}

pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Short lowercase alphanumeric request id, like DingTalk's (`16l4ew3d47pdp`).
pub fn request_id() -> String {
    use rand::Rng as _;
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..13)
        .map(|_| A[rng.random_range(0..A.len())] as char)
        .collect()
}
