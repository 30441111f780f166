//! FieldMapping: compile the templates and say whether they are usable.

use std::sync::Arc;

use kube::{ResourceExt, runtime::controller::Action};

use super::{Context, Error, status};
use crate::api::{
    FieldMapping, Reason, condition, condition_type as ct, set_condition,
    status::{FALSE, TRUE},
};

/// Reconcile one mapping and write its status. A broken mapping waits for an edit.
pub async fn reconcile(mapping: Arc<FieldMapping>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started("FieldMapping");
    let generation = mapping.metadata.generation;
    let before = mapping.status.clone().unwrap_or_default();
    let mut st = before.clone();
    st.observed_generation = generation;
    let ready = match ctx.validator.validate(&mapping.spec) {
        Ok(()) => condition(
            ct::READY,
            TRUE,
            Reason::Valid,
            "all templates compile",
            generation,
        ),
        Err(msg) => {
            ctx.metrics
                .count_failure("FieldMapping", Reason::InvalidRule.as_str());
            condition(ct::READY, FALSE, Reason::InvalidRule, msg, generation)
        }
    };
    set_condition(&mut st.conditions, ready);
    status::apply_status(&ctx, mapping.as_ref(), mapping.status.as_ref(), &st).await?;
    status::publish_transitions(&ctx, mapping.as_ref(), &before.conditions, &st.conditions).await;
    tracing::debug!(mapping = %mapping.name_any(), "reconciled");
    Ok(Action::await_change())
}

/// Checks every template of a mapping with the template engine the sync uses.
pub struct TemplateValidator;

impl super::MappingValidator for TemplateValidator {
    fn validate(&self, spec: &crate::api::FieldMappingSpec) -> Result<(), String> {
        crate::resolve::validate_mapping(spec)
    }
}
