//! Everything the simulator remembers, as parts with one job each: the address book (org,
//! departed people, listings, writes), auth (tokens, codes, Stream tickets), faults and quota,
//! and event delivery. [`State`] holds the parts, the counters and the simulated clock, and
//! carries out what spans parts: a write's changes become announced events, every issued
//! token or throttled call is counted. Parts never reach into the HTTP side.

pub mod auth;
pub mod book;
pub mod counters;
pub mod delivery;
pub mod event;
pub mod faults;
pub mod suites;

use crate::sim::org::{Department, Org, Person};

pub use crate::sim::error::{ApiError, api_err};
pub use auth::{Auth, TokenCheck, TokenKind};
pub use book::{AddressBook, DeptWrite, UserWrite, check_mobile};
pub use counters::Counters;
pub use delivery::{Delivery, EventFaults};
pub use event::{Change, Event};
pub use faults::{FaultKind, FaultRule, Faults};

/// Everything mutable, behind one mutex (never held across an await).
pub struct State {
    pub book: AddressBook,
    pub auth: Auth,
    pub faults: Faults,
    pub delivery: Delivery,
    pub suites: suites::Suites,
    pub counters: Counters,
    /// What `advance_clock` added to the real clock (moves token, code and ticket expiry).
    pub clock_offset_ms: i64,
}

impl State {
    pub fn new(
        org: Org,
        qps_limit: Option<u32>,
        max_depth: usize,
        rehire_cooldown_ms: i64,
    ) -> Self {
        Self {
            book: AddressBook::new(org, max_depth, rehire_cooldown_ms),
            auth: Auth::default(),
            faults: Faults::new(qps_limit),
            delivery: Delivery::default(),
            suites: suites::Suites::default(),
            counters: Counters::default(),
            clock_offset_ms: 0,
        }
    }

    /// Simulated wall clock in ms (real clock + what `advance_clock` added).
    pub fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        real + self.clock_offset_ms
    }

    /// The org as it stands.
    pub fn org(&self) -> &Org {
        &self.book.org
    }

    // ---------------------------------------------------------------- address-book writes

    /// Runs one address-book write and announces its changes.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut AddressBook, i64) -> book::Written<T>,
    ) -> Result<T, ApiError> {
        let now = self.now_ms();
        let (out, changes) = f(&mut self.book, now)?;
        for c in changes {
            self.emit(c);
        }
        Ok(out)
    }

    pub fn create_user(&mut self, w: UserWrite, strict: bool) -> Result<Person, ApiError> {
        self.write(|b, now| b.create_user(w, strict, now))
    }
    pub fn update_user(
        &mut self,
        userid: &str,
        w: UserWrite,
        strict: bool,
    ) -> Result<Person, ApiError> {
        self.write(|b, now| b.update_user(userid, w, strict, now))
    }
    pub fn delete_user(&mut self, userid: &str) -> Result<Person, ApiError> {
        self.write(|b, now| b.delete_user(userid, now))
    }
    pub fn rehire(
        &mut self,
        userid: &str,
        departments: Option<Vec<i64>>,
    ) -> Result<Person, ApiError> {
        self.write(|b, now| b.rehire(userid, departments, now))
    }
    pub fn create_department(&mut self, w: DeptWrite) -> Result<Department, ApiError> {
        self.write(|b, _| b.create_department(w))
    }
    pub fn update_department(&mut self, id: i64, w: DeptWrite) -> Result<Department, ApiError> {
        self.write(|b, _| b.update_department(id, w))
    }
    pub fn delete_department(&mut self, id: i64) -> Result<Department, ApiError> {
        self.write(|b, _| b.delete_department(id))
    }
    pub fn rename_org(&mut self, name: &str) -> Result<Department, ApiError> {
        self.write(|b, _| b.rename_org(name))
    }

    /// Announces a change: logged and queued for every subscribed channel (event faults apply).
    pub fn emit(&mut self, change: Change) {
        self.book.org_changed();
        let ev = Event::new(change, &self.book.org.corp_id, self.now_ms());
        self.counters.events_emitted += 1;
        if !self.delivery.publish(ev) {
            self.counters.events_dropped_by_fault += 1;
        }
    }

    // ---------------------------------------------------------------- tokens

    /// Internal-app token and its lifetime in seconds.
    pub fn issue_app_token(&mut self, app_key: &str, ttl_ms: i64) -> (String, i64) {
        let now = self.now_ms();
        let (tok, minted) = self.auth.app_token(app_key, ttl_ms, now);
        if minted {
            self.counters.tokens_issued += 1;
        }
        (tok, ttl_ms / 1000)
    }

    /// A personal token and its refresh token.
    pub fn issue_user_token(
        &mut self,
        app_key: &str,
        userid: &str,
        ttl_ms: i64,
    ) -> (String, String) {
        let now = self.now_ms();
        self.counters.tokens_issued += 1;
        self.auth.user_token(app_key, userid, ttl_ms, now)
    }

    pub fn check_token(&self, token: &str) -> TokenCheck {
        self.auth.check(token, self.now_ms())
    }

    /// Drops every token (of one app, or all); returns how many were still valid.
    pub fn invalidate_tokens(&mut self, app_key: Option<&str>) -> usize {
        let now = self.now_ms();
        self.auth.invalidate(app_key, now)
    }

    // ---------------------------------------------------------------- calls, quota, faults

    pub fn count_call(&mut self, api: &str) {
        *self.counters.calls.entry(api.to_owned()).or_default() += 1;
    }

    /// Per-app, per-API QPS quota. `true` = over the limit (counted as throttled).
    pub fn over_qps(&mut self, app_key: &str, api: &str) -> bool {
        let over = self.faults.over_qps(app_key, api);
        if over {
            self.counters.throttled += 1;
        }
        over
    }

    /// The fault to apply to this call, if any; every one but latency counts as injected.
    pub fn take_fault(&mut self, api: &str, app_key: Option<&str>) -> Option<FaultKind> {
        let hit = self.faults.take(api, app_key);
        if hit
            .as_ref()
            .is_some_and(|k| !matches!(k, FaultKind::Latency { .. }))
        {
            self.counters.faults_injected += 1;
        }
        hit
    }

    /// Counters with the live number of Stream connections.
    pub fn counters_now(&self) -> Counters {
        let mut c = self.counters.clone();
        c.stream_connections_active = self.delivery.conns.len() as u64;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::org::ROOT_DEPT;

    fn state() -> State {
        State::new(Org::empty("corp", "Corp"), None, 15, 0)
    }

    fn hire(st: &mut State, userid: &str, admin: bool) -> Result<Person, ApiError> {
        st.create_user(
            UserWrite {
                userid: Some(userid.into()),
                name: Some("张伟".into()),
                departments: Some(vec![ROOT_DEPT]),
                admin: Some(admin),
                ..Default::default()
            },
            false,
        )
    }

    fn logged(st: &State) -> Vec<String> {
        let log = st.delivery.event_log.iter();
        log.map(|e| e.event_type.clone()).collect()
    }

    #[test]
    fn writes_announce_their_changes_and_refusals_announce_nothing() {
        let mut st = state();
        hire(&mut st, "u1", true).unwrap();
        assert_eq!(logged(&st), ["user_add_org", "org_admin_add"]);
        assert_eq!(hire(&mut st, "u1", false).unwrap_err().errcode, 60102);
        let edit = UserWrite {
            title: Some("工程师".into()),
            admin: Some(false),
            ..Default::default()
        };
        st.update_user("u1", edit, false).unwrap();
        st.delete_user("u1").unwrap();
        st.rehire("u1", None).unwrap();
        assert_eq!(
            logged(&st)[2..],
            [
                "user_modify_org",
                "org_admin_remove",
                "user_leave_org",
                "user_add_org"
            ]
        );
        assert_eq!(st.counters.events_emitted, 6);
        let modify = &st.delivery.event_log[2];
        assert_eq!(modify.diff.as_ref().unwrap()["curr"]["name"], "张伟");
    }

    /// An admin flag or an activation alone is no org-profile edit: only its own event.
    #[test]
    fn status_changes_announce_only_their_own_event() {
        let mut st = state();
        st.create_user(
            UserWrite {
                userid: Some("u2".into()),
                name: Some("李娜".into()),
                departments: Some(vec![ROOT_DEPT]),
                active: Some(false),
                ..Default::default()
            },
            false,
        )
        .unwrap();
        let only = |admin, active| UserWrite {
            admin,
            active,
            ..Default::default()
        };
        st.update_user("u2", only(Some(true), None), false).unwrap();
        st.update_user("u2", only(None, Some(true)), false).unwrap();
        st.update_user("u2", only(Some(false), None), false)
            .unwrap();
        st.rename_org("新公司").unwrap();
        assert_eq!(
            logged(&st),
            [
                "user_add_org",
                "org_admin_add",
                "user_active_org",
                "org_admin_remove",
                "org_change"
            ]
        );
        let active = &st.delivery.event_log[2];
        assert_eq!(active.stream_data(), serde_json::json!({"userId": ["u2"]}));
        let org = &st.delivery.event_log[4];
        assert_eq!(org.stream_data(), serde_json::json!({}));
        assert_eq!(st.org().department(ROOT_DEPT).unwrap().name, "新公司");
    }

    #[test]
    fn tokens_are_counted_once_per_mint_and_die_with_invalidation() {
        let mut st = state();
        let (a, ttl) = st.issue_app_token("app", 7_200_000);
        let (b, _) = st.issue_app_token("app", 7_200_000);
        assert_eq!((a.as_str(), ttl), (b.as_str(), 7200));
        assert_eq!(st.counters.tokens_issued, 1);
        assert!(matches!(st.check_token(&a), TokenCheck::Valid(_)));
        assert_eq!(st.invalidate_tokens(Some("app")), 1);
        assert!(matches!(st.check_token(&a), TokenCheck::Invalid));
        let (c, _) = st.issue_app_token("app", 1);
        st.clock_offset_ms += 10;
        assert!(matches!(st.check_token(&c), TokenCheck::Expired));
    }
}
