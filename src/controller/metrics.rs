//! Prometheus metrics of the controller (no labels carry secrets or personal data).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
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
        let event_lag = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0]);
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
        Self {
            events,
            event_lag,
            event_connection,
            reconciles,
            reconcile_failures,
            reconcile_duration,
            sync_operations,
            leader,
            registry,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    pub fn count_reconcile(&self, kind: &str) {
        self.reconciles
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
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
