//! The events a suite binding's Stream connection delivers. Every enterprise that authorised
//! the suite shares its connections, and DingTalk hands each push to any one of them: an
//! address-book event of another enterprise is answered LATER so DingTalk delivers it again,
//! eventually on that enterprise's own connection, and never applied here. The enterprise's
//! own authorisation events wake the binding controller, so removing the app turns the
//! binding `Deauthorized` at once rather than at its next look.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedSender;

use crate::dingtalk::suite::{ORG_SUITE_AUTH, ORG_SUITE_RELIEVE, SUITE_TICKET};
use crate::dingtalk::{Event, EventHandler};

/// Wraps a suite binding's event handler.
pub struct SuiteEvents {
    pub inner: Arc<dyn EventHandler>,
    /// The binding's enterprise.
    pub corp_id: String,
    /// Where the binding (namespace, name) is announced for an immediate look.
    pub wake: Option<UnboundedSender<(String, String)>>,
    pub binding: (String, String),
}

/// The enterprise an event is about: the authorising corp of an authorisation event, else
/// the event's corp.
fn corp_of(e: &Event) -> Option<&str> {
    e.data
        .get("authCorpId")
        .and_then(serde_json::Value::as_str)
        .or(e.corp_id.as_deref())
}

#[async_trait]
impl EventHandler for SuiteEvents {
    async fn handle(&self, event: Event) -> anyhow::Result<()> {
        let t = event.event_type.as_str();
        if t == SUITE_TICKET {
            // Kept by the Stream client already; no address-book change.
            return Ok(());
        }
        let mine = corp_of(&event).is_none_or(|c| c == self.corp_id);
        if t == ORG_SUITE_AUTH || t == ORG_SUITE_RELIEVE {
            if mine && let Some(tx) = &self.wake {
                let _ = tx.send(self.binding.clone());
            }
            return Ok(());
        }
        if !mine {
            anyhow::bail!("an event of another enterprise: left for its own connection");
        }
        self.inner.handle(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    #[tokio::test]
    async fn own_events_pass_others_are_refused_and_authorisation_wakes_the_binding() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let inner = move |e: Event| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(e.event_type);
                Ok(())
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let h = SuiteEvents {
            inner: Arc::new(inner),
            corp_id: "dingA".into(),
            wake: Some(tx),
            binding: ("ns".into(), "acme".into()),
        };
        let ev = |t: &str, corp: &str, data: serde_json::Value| Event {
            event_type: t.into(),
            corp_id: Some(corp.into()),
            data,
            ..Default::default()
        };
        h.handle(ev("user_add_org", "dingA", json!({})))
            .await
            .unwrap();
        assert!(
            h.handle(ev("user_add_org", "dingB", json!({})))
                .await
                .is_err()
        );
        h.handle(ev(SUITE_TICKET, "isv", json!({"suiteTicket": "t"})))
            .await
            .unwrap();
        let other = json!({"authCorpId": "dingB"});
        h.handle(ev(ORG_SUITE_RELIEVE, "isv", other)).await.unwrap();
        assert!(
            rx.try_recv().is_err(),
            "another enterprise's removal is not ours"
        );
        let mine = json!({"authCorpId": "dingA"});
        h.handle(ev(ORG_SUITE_RELIEVE, "isv", mine)).await.unwrap();
        assert_eq!(rx.try_recv().unwrap(), ("ns".into(), "acme".into()));
        assert_eq!(*seen.lock().unwrap(), vec!["user_add_org".to_string()]);
    }
}
