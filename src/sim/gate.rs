//! What every DingTalk API call passes before its handler runs, on either host and the Stream
//! gateway: it is counted, an injected fault may be taken, and latency is slept.

use super::shared::Shared;
use super::state::FaultKind;

/// Counts the call, sleeps the configured latency plus a latency fault, and returns a
/// non-latency fault for the caller to answer in its host's envelope.
pub async fn enter(sh: &Shared, api: &str, app_key: Option<&str>) -> Option<FaultKind> {
    let (latency, fault) = {
        let mut st = sh.lock();
        st.count_call(api);
        let f = st.take_fault(api, app_key);
        (st.faults.latency_ms, f)
    };
    let extra = match &fault {
        Some(FaultKind::Latency { ms }) => *ms,
        _ => 0,
    };
    if latency + extra > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency + extra)).await;
    }
    fault.filter(|f| !matches!(f, FaultKind::Latency { .. }))
}
