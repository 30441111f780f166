//! Types shared by the three resources: references, conditions and their schema.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every dingsync resource.
pub const GROUP: &str = "dingsync.io";
/// API version of every dingsync resource.
pub const VERSION: &str = "v1alpha1";
/// Field manager used for server-side apply.
pub const FIELD_MANAGER: &str = "dingsync";

/// A reference to another dingsync object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the referenced object, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Condition status values, as Kubernetes spells them.
pub mod status {
    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
    pub const UNKNOWN: &str = "Unknown";
}

/// Condition types used across the three kinds.
pub mod condition_type {
    /// Summary: the object is usable (binding, mapping) or in step (target).
    pub const READY: &str = "Ready";
    /// SyncTarget: the last full sync finished and the directory matches the source.
    pub const SYNCED: &str = "Synced";
    /// SyncTarget: real-time events are being applied.
    pub const INCREMENTAL_ACTIVE: &str = "IncrementalActive";
    /// SyncTarget: repeated failures; the target backs off.
    pub const QUARANTINED: &str = "Quarantined";
    /// DingTalkBinding: an access token was obtained with the stored credentials.
    pub const CREDENTIALS_VALID: &str = "CredentialsValid";
    /// DingTalkBinding: the app holds the address-book permissions the binding needs.
    pub const PERMISSIONS_GRANTED: &str = "PermissionsGranted";
    /// DingTalkBinding: the event connection (Stream or callback) is up.
    pub const EVENTS_CONNECTED: &str = "EventsConnected";
    /// Binding: the OIDC login provider is served (only with `login.enabled`).
    pub const LOGIN_READY: &str = "LoginReady";
}

/// Insert or replace one condition, keeping `lastTransitionTime` when the status did not flip.
/// Returns true when anything visible changed.
pub fn set_condition(conds: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conds.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            conds.push(new);
            true
        }
    }
}

/// Build a condition stamped now.
pub fn condition(
    type_: &str,
    status: &str,
    reason: super::Reason,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.as_str().to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::now()),
    }
}

/// Find a condition by type.
pub fn find_condition<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Schema for `conditions`: a list-map keyed by `type`, so server-side apply merges per type.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = generator.subschema_for::<Condition>();
    schemars::json_schema!({
        "type": "array",
        "description": "Conditions, one per type; each carries the generation it was computed for.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_when_status_unchanged() {
        let mut conds = vec![];
        let mut first = condition(
            "Ready",
            status::TRUE,
            crate::api::Reason::Valid,
            "ok",
            Some(1),
        );
        first.last_transition_time = Time(jiff::Timestamp::from_second(1000).unwrap());
        assert!(set_condition(&mut conds, first.clone()));
        let again = condition(
            "Ready",
            status::TRUE,
            crate::api::Reason::Valid,
            "ok",
            Some(1),
        );
        assert!(!set_condition(&mut conds, again));
        assert_eq!(conds[0].last_transition_time, first.last_transition_time);
        let flipped = condition(
            "Ready",
            status::FALSE,
            crate::api::Reason::SecretNotFound,
            "gone",
            Some(2),
        );
        assert!(set_condition(&mut conds, flipped));
        assert_ne!(conds[0].last_transition_time, first.last_transition_time);
        assert_eq!(conds.len(), 1);
    }
}
