//! What the simulator counts, for tests and benchmarks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters a benchmark or test reads through `GET /__sim/counters` or [`crate::sim::SimHandle::counters`].
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
