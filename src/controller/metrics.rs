//! Prometheus metrics of the controller (no labels carry secrets or personal data).

use std::sync::{Arc, Mutex, Weak};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{MetricType, counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{
    api::{Reason, SyncTargetStatus, condition_type as ct, find_condition, status::TRUE},
    dingtalk::ClientPool,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event_type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CorpLabels {
    pub corp_id: String,
}

/// One SyncTarget. Not `namespace`: Prometheus keeps that label for the scraped pod's own.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target_namespace: String,
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetReasonLabels {
    pub target_namespace: String,
    pub target: String,
    pub reason: String,
}

/// One DingTalk API path of one enterprise's app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub corp_id: String,
    pub api: String,
}

/// The controller's metrics, registered under the `dingsync` prefix.
pub struct Metrics {
    /// Address-book events by type and outcome (`received`, `applied`, `failed`).
    pub events: Family<EventLabels, Counter>,
    /// DingTalk's event time → applied in every target.
    pub event_lag: Histogram,
    /// 1 while the binding's Stream connection is up.
    pub event_connection: Family<CorpLabels, Gauge>,
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_failures: Family<FailureLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub sync_operations: Family<OperationLabels, Counter>,
    pub leader: Gauge,
    /// Per SyncTarget: its state and its full syncs.
    pub targets: TargetMetrics,
    /// The DingTalk client pools whose calls are exported at each scrape.
    pools: Arc<Mutex<Vec<Weak<ClientPool>>>>,
    pub registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dingsync");
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_failures = Family::<FailureLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0])
        });
        let sync_operations = Family::<OperationLabels, Counter>::default();
        let leader = Gauge::default();
        let events = Family::<EventLabels, Counter>::default();
        // Buckets above 60 s: the lag alert's threshold must fall inside a finite bucket.
        let event_lag = Histogram::new([
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 120.0, 300.0,
        ]);
        let event_connection = Family::<CorpLabels, Gauge>::default();
        registry.register(
            "events",
            "Address-book events by type and outcome (received, applied, failed)",
            events.clone(),
        );
        registry.register(
            "event_lag_seconds",
            "From DingTalk's event time to the change applied in every target",
            event_lag.clone(),
        );
        registry.register(
            "event_connection_up",
            "1 while the enterprise's Stream connection is up",
            event_connection.clone(),
        );
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Failed reconciles by kind and reason",
            reconcile_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            reconcile_duration.clone(),
        );
        registry.register(
            "sync_operations",
            "Directory operations applied by full syncs",
            sync_operations.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let targets = TargetMetrics::register(&mut registry);
        let pools = Arc::new(Mutex::new(Vec::new()));
        registry.register_collector(Box::new(DingTalkCalls(pools.clone())));
        Self {
            events,
            event_lag,
            event_connection,
            reconciles,
            reconcile_failures,
            reconcile_duration,
            sync_operations,
            leader,
            targets,
            pools,
            registry,
        }
    }
}

/// Per-target metrics. Only the leader reconciles, so only its series are current: a replica
/// that loses the lease forgets them ([`Metrics::forget_targets`]).
pub struct TargetMetrics {
    /// 1 while the target's `Ready` condition is True.
    pub ready: Family<TargetLabels, Gauge>,
    /// 1 while the target's `Quarantined` condition is True.
    pub quarantined: Family<TargetLabels, Gauge>,
    /// 1 while `spec.suspend` keeps the target not Ready on purpose.
    pub suspended: Family<TargetLabels, Gauge>,
    /// Disables and deletes a held run waits to have approved (0: nothing held).
    pub held_removals: Family<TargetLabels, Gauge>,
    /// People in the target's node after its last full sync.
    pub people: Family<TargetLabels, Gauge>,
    /// Unix time the target's last full sync ended.
    pub last_sync: Family<TargetLabels, Gauge>,
    /// Objects full syncs could not write, by target and reason.
    pub failed_objects: Family<TargetReasonLabels, Counter>,
    /// Full sync duration by target.
    pub sync_duration: Family<TargetLabels, Histogram>,
}

impl TargetMetrics {
    fn register(registry: &mut Registry) -> Self {
        let t = Self {
            ready: Family::default(),
            quarantined: Family::default(),
            suspended: Family::default(),
            held_removals: Family::default(),
            people: Family::default(),
            last_sync: Family::default(),
            failed_objects: Family::default(),
            sync_duration: Family::new_with_constructor(|| {
                Histogram::new([0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0])
            }),
        };
        registry.register(
            "target_ready",
            "1 while the SyncTarget's Ready condition is True",
            t.ready.clone(),
        );
        registry.register(
            "target_quarantined",
            "1 while the SyncTarget's Quarantined condition is True",
            t.quarantined.clone(),
        );
        registry.register(
            "target_suspended",
            "1 while the SyncTarget is suspended (spec.suspend), so not Ready on purpose",
            t.suspended.clone(),
        );
        registry.register(
            "target_held_removals",
            "Disables and deletes of a held run waiting for approval",
            t.held_removals.clone(),
        );
        registry.register(
            "target_people",
            "People in the SyncTarget's node after its last full sync",
            t.people.clone(),
        );
        registry.register(
            "target_last_sync_timestamp_seconds",
            "Unix time the SyncTarget's last full sync ended",
            t.last_sync.clone(),
        );
        registry.register(
            "sync_failed_objects",
            "Objects full syncs could not write, by SyncTarget and reason",
            t.failed_objects.clone(),
        );
        registry.register(
            "sync_duration_seconds",
            "Full sync duration by SyncTarget",
            t.sync_duration.clone(),
        );
        t
    }
}

/// Exports, at each scrape, the calls and throttled answers of every live DingTalk client of
/// the watched pools (the clients count them; a client's counters start again at zero when
/// it is replaced, which Prometheus reads as a counter reset).
#[derive(Debug)]
struct DingTalkCalls(Arc<Mutex<Vec<Weak<ClientPool>>>>);

impl Collector for DingTalkCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let calls = Family::<ApiLabels, Counter>::default();
        let throttled = Family::<ApiLabels, Counter>::default();
        let pools = self.0.lock().map(|p| p.clone()).unwrap_or_default();
        for client in pools
            .iter()
            .filter_map(Weak::upgrade)
            .flat_map(|p| p.clients())
        {
            let corp_id = client.config().corp_id.clone();
            let label = |api: String| ApiLabels {
                corp_id: corp_id.clone(),
                api,
            };
            for (api, n) in client.calls() {
                calls.get_or_create(&label(api)).inc_by(n);
            }
            for (api, n) in client.throttles() {
                throttled.get_or_create(&label(api)).inc_by(n);
            }
        }
        let e = encoder.encode_descriptor(
            "dingtalk_calls",
            "HTTP calls sent to DingTalk by enterprise and API path, retries included",
            None,
            MetricType::Counter,
        )?;
        calls.encode(e)?;
        let e = encoder.encode_descriptor(
            "dingtalk_throttled",
            "DingTalk answers that were its QPS limit, by enterprise and API path",
            None,
            MetricType::Counter,
        )?;
        throttled.encode(e)
    }
}

impl Metrics {
    /// Export the DingTalk calls of `pool`'s clients from now on.
    pub fn watch_clients(&self, pool: &Arc<ClientPool>) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.retain(|p| p.strong_count() > 0);
            pools.push(Arc::downgrade(pool));
        }
    }

    /// Mirror a target's status, as a reconcile is about to write it, into its gauges.
    pub fn record_target(&self, namespace: &str, name: &str, st: &SyncTargetStatus) {
        let l = target_labels(namespace, name);
        let t = &self.targets;
        let is_true =
            |type_| find_condition(&st.conditions, type_).is_some_and(|c| c.status == TRUE);
        t.ready.get_or_create(&l).set(i64::from(is_true(ct::READY)));
        let suspended = find_condition(&st.conditions, ct::READY)
            .is_some_and(|c| c.reason == Reason::Suspended.as_str());
        t.suspended.get_or_create(&l).set(i64::from(suspended));
        t.quarantined
            .get_or_create(&l)
            .set(i64::from(is_true(ct::QUARANTINED)));
        let held = st
            .pending_approval
            .as_ref()
            .map_or(0, |p| p.removals.max(1));
        t.held_removals.get_or_create(&l).set(held);
        if let Some(people) = st.people {
            t.people.get_or_create(&l).set(people);
        }
        if let Some(last) = &st.last_sync_time {
            t.last_sync.get_or_create(&l).set(last.0.as_second());
        }
    }

    /// Count a finished full sync: how long it took and what failed, by reason.
    pub fn record_run<'a>(
        &self,
        namespace: &str,
        name: &str,
        took: std::time::Duration,
        failed_reasons: impl IntoIterator<Item = &'a str>,
    ) {
        let l = target_labels(namespace, name);
        let t = &self.targets;
        t.sync_duration
            .get_or_create(&l)
            .observe(took.as_secs_f64());
        for reason in failed_reasons {
            let labels = TargetReasonLabels {
                target_namespace: l.target_namespace.clone(),
                target: l.target.clone(),
                reason: reason.to_owned(),
            };
            t.failed_objects.get_or_create(&labels).inc();
        }
    }

    /// Drop every per-target series: a replica that stopped leading no longer knows them.
    pub fn forget_targets(&self) {
        let t = &self.targets;
        for family in [
            &t.ready,
            &t.quarantined,
            &t.suspended,
            &t.held_removals,
            &t.people,
            &t.last_sync,
        ] {
            family.clear();
        }
        t.failed_objects.clear();
        t.sync_duration.clear();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    /// Counts a reconcile of `kind`; the returned guard observes its duration (a full sync
    /// it ran included) when dropped, however the reconcile ends.
    pub fn reconcile_started(&self, kind: &str) -> ReconcileTimer {
        let labels = KindLabels { kind: kind.into() };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            histogram: self.reconcile_duration.get_or_create(&labels).clone(),
            started: std::time::Instant::now(),
        }
    }

    pub fn count_failure(&self, kind: &str, reason: &str) {
        self.reconcile_failures
            .get_or_create(&FailureLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }
}

fn target_labels(namespace: &str, name: &str) -> TargetLabels {
    TargetLabels {
        target_namespace: namespace.to_owned(),
        target: name.to_owned(),
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    started: std::time::Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{condition, target::PendingApproval};

    fn status(ready: &str, quarantined: &str, held: Option<i64>) -> SyncTargetStatus {
        SyncTargetStatus {
            conditions: vec![
                condition(ct::READY, ready, Reason::Synced, "m", None),
                condition(ct::QUARANTINED, quarantined, Reason::SyncFailed, "m", None),
            ],
            people: Some(42),
            last_sync_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            )),
            pending_approval: held.map(|removals| PendingApproval {
                removals,
                owned: 100,
                token: "tok".into(),
                message: "held".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_targets_status_and_runs_are_exported() {
        let m = Metrics::default();
        m.record_target("ns1", "st1", &status("False", "True", Some(7)));
        m.record_run(
            "ns1",
            "st1",
            std::time::Duration::from_millis(1500),
            ["TemplateError", "TemplateError", "DirectoryRejected"],
        );
        let text = m.encode();
        let l = r#"{target_namespace="ns1",target="st1"}"#;
        for line in [
            format!("dingsync_target_ready{l} 0"),
            format!("dingsync_target_quarantined{l} 1"),
            format!("dingsync_target_suspended{l} 0"),
            format!("dingsync_target_held_removals{l} 7"),
            format!("dingsync_target_people{l} 42"),
            format!("dingsync_target_last_sync_timestamp_seconds{l} 1800000000"),
            format!("dingsync_sync_duration_seconds_count{l} 1"),
            r#"dingsync_sync_failed_objects_total{target_namespace="ns1",target="st1",reason="TemplateError"} 2"#.into(),
            "# TYPE dingsync_target_ready gauge".into(),
            "# TYPE dingsync_sync_failed_objects counter".into(),
            "# TYPE dingsync_sync_duration_seconds histogram".into(),
        ] {
            assert!(text.lines().any(|x| x == line), "{line} missing in\n{text}");
        }
        m.record_target("ns1", "st1", &status("True", "False", None));
        let text = m.encode();
        assert!(
            text.contains(&format!("dingsync_target_ready{l} 1")),
            "{text}"
        );
        assert!(text.contains(&format!("dingsync_target_held_removals{l} 0")));
        let mut suspended = status("False", "False", None);
        suspended.conditions[0] = condition(ct::READY, "False", Reason::Suspended, "m", None);
        m.record_target("ns1", "st1", &suspended);
        assert!(
            m.encode()
                .contains(&format!("dingsync_target_suspended{l} 1"))
        );
        m.forget_targets();
        assert!(
            !m.encode().contains("st1"),
            "a replica that stops leading forgets targets"
        );
    }

    #[tokio::test]
    async fn dingtalk_calls_of_watched_pools_are_exported() {
        let m = Metrics::default();
        let pool = Arc::new(ClientPool::default());
        m.watch_clients(&pool);
        let text = m.encode();
        assert!(
            text.contains("# TYPE dingsync_dingtalk_calls counter"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE dingsync_dingtalk_throttled counter"),
            "{text}"
        );
        // A client that sent one call to a closed port: counted under its API path.
        let config = crate::dingtalk::ClientConfig {
            attempts: 1,
            ..crate::dingtalk::ClientConfig::new("dingcorp", "key", crate::secret::Secret::new("s"))
                .with_base("http://127.0.0.1:9")
        };
        let client = pool.client(config);
        let _ = client.token().await;
        let text = m.encode();
        assert!(
            text.contains(r#"dingsync_dingtalk_calls_total{corp_id="dingcorp",api="/gettoken"} 1"#),
            "{text}"
        );
        drop(client);
        assert!(
            !m.encode().contains("dingcorp"),
            "dropped clients are no longer exported"
        );
    }
}
