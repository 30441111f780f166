//! What happens to a call besides its answer: injected faults, added latency and DingTalk's
//! per-app, per-API QPS quota.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Injected failure for matching calls.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Plain HTTP error status with a short text body (gateway failure).
    Http { status: u16 },
    /// errcode -1 "系统繁忙" (old host) / HTTP 500 systemBusy (/v1.0).
    SystemBusy,
    /// errcode 15, sub_code `isp.top-remote-connection-timeout` (old host) / HTTP 504 (/v1.0).
    UpstreamTimeout,
    /// Any old-host errcode (HTTP 500 `{code}` on /v1.0).
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

/// Fault rules, latency and the QPS windows.
#[derive(Default)]
pub struct Faults {
    pub rules: Vec<FaultRule>,
    pub latency_ms: u64,
    /// Per-app per-API requests per second; `None` = no limit.
    pub qps_limit: Option<u32>,
    /// (app_key, api) → (second, calls in it).
    pub qps_windows: HashMap<(String, String), (u64, u32)>,
    /// `user/list` leaves `manager_userid` out, as DingTalk's SDK list model does (whether
    /// DingTalk sends it in lists is unconfirmed; `user/get` does send it).
    pub list_omits_manager: bool,
}

impl Faults {
    pub fn new(qps_limit: Option<u32>) -> Self {
        Self {
            qps_limit,
            ..Self::default()
        }
    }

    /// Per-app, per-API fixed 1-second window. `true` = over the limit.
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
        w.1 > limit
    }

    /// The fault to apply to this call, if any (rules are consumed as they fire).
    pub fn take(&mut self, api: &str, app_key: Option<&str>) -> Option<FaultKind> {
        let mut hit = None;
        for rule in &mut self.rules {
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
        self.rules.retain(|r| r.times == 0 || r.fired < r.times);
        hit
    }
}
