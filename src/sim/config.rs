//! The simulator's tunables and default credentials.

use std::time::Duration;

/// Default app credentials (also `dingsync sim`'s defaults).
pub const DEFAULT_CORP_ID: &str = "dingsimcorp0000000001";
pub const DEFAULT_APP_KEY: &str = "dingsimappkey0000001";
pub const DEFAULT_APP_SECRET: &str =
    "sim-app-secret-0000000000000000000000000000000000000000000001";

/// Tunables. `Default` is DingTalk's documented behaviour; tests shorten the timers.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Per-app per-API requests per second; `None` = no limit. DingTalk: 20.
    pub qps_limit: Option<u32>,
    pub token_ttl: Duration,
    /// Stream tickets: single use, 90 s.
    pub ticket_ttl: Duration,
    /// Interval of SYSTEM `ping` frames on Stream connections.
    pub stream_ping_interval: Duration,
    /// An EVENT not acked within this time is delivered again.
    pub stream_ack_timeout: Duration,
    /// Delay before redelivering an EVENT acked with LATER or a non-200 code.
    pub stream_retry_delay: Duration,
    /// After a SYSTEM `disconnect`, the connection is closed this much later.
    pub stream_disconnect_grace: Duration,
    /// Undelivered events of a disconnected app are dropped after this long
    /// (UNCONFIRMED whether DingTalk replays missed events at all; clients must reconcile).
    pub stream_retention: Duration,
    /// The callback receiver must answer within this time (DingTalk documents 1.5 s and 2.5 s).
    pub callback_timeout: Duration,
    /// Delays between callback attempts; after the last one the event goes to the failed list.
    pub callback_retry_delays: Vec<Duration>,
    /// Re-adding a mobile removed less than this long ago answers 40103 (invitation sent).
    pub rehire_cooldown: Duration,
    /// Department depth limit (60002).
    pub max_depth: usize,
    /// Base URL advertised in `connections/open` (`ws://host:port/connect`); default: bound address.
    pub public_base_url: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            qps_limit: Some(20),
            token_ttl: Duration::from_secs(7200),
            ticket_ttl: Duration::from_secs(90),
            stream_ping_interval: Duration::from_secs(30),
            stream_ack_timeout: Duration::from_secs(60),
            stream_retry_delay: Duration::from_secs(5),
            stream_disconnect_grace: Duration::from_secs(10),
            stream_retention: Duration::from_secs(300),
            callback_timeout: Duration::from_millis(2500),
            callback_retry_delays: vec![Duration::from_secs(5), Duration::from_secs(30)],
            rehire_cooldown: Duration::from_secs(24 * 3600),
            max_depth: 15,
            public_base_url: None,
        }
    }
}

impl SimConfig {
    /// Short timers for tests: redelivery after 1 s, pings every 2 s, callbacks retried after 200 ms.
    pub fn fast() -> Self {
        Self {
            stream_ping_interval: Duration::from_secs(2),
            stream_ack_timeout: Duration::from_secs(1),
            stream_retry_delay: Duration::from_millis(300),
            stream_disconnect_grace: Duration::from_millis(500),
            stream_retention: Duration::from_secs(30),
            callback_retry_delays: vec![Duration::from_millis(200), Duration::from_millis(400)],
            ..Self::default()
        }
    }
}
