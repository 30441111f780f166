//! Status writes by server-side apply, and Events on transitions only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{Context, Error};
use crate::api::FIELD_MANAGER;

/// Apply `status` to the object unless it equals the current one (no write, no new
/// resourceVersion, no watch event when nothing changed).
pub async fn apply_status<K, S>(
    ctx: &Context,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": obj.name_any() },
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(true)
}

/// Publish an Event for each condition whose status or reason changed.
pub async fn publish_transitions<K>(
    ctx: &Context,
    obj: &K,
    before: &[Condition],
    after: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    for cond in after {
        let old = before.iter().find(|c| c.type_ == cond.type_);
        if old.is_some_and(|o| o.status == cond.status && o.reason == cond.reason) {
            continue;
        }
        // Only the summary condition becomes an Event, so a transition is one Event.
        if cond.type_ != crate::api::condition_type::READY {
            continue;
        }
        let type_ = if cond.status == crate::api::status::TRUE {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let note: String = cond.message.chars().take(1000).collect();
        let event = Event {
            type_,
            reason: cond.reason.clone(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish Event");
        }
    }
}
