//! The sync engine's behaviour against the in-memory directory (the same scenarios run against
//! real OpenLDAP in `ldap_sync` and SCIM in `scim_sync`).

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use dingsync::directory::{Attrs, Directory, memory::MemoryDirectory};

use crate::support::conformance::{self, Harness};

#[derive(Default)]
struct Memory {
    nodes: Mutex<HashMap<String, std::sync::Arc<MemoryDirectory>>>,
}

#[async_trait]
impl Harness for Memory {
    async fn node(&self, _corp: &str, slot: &str) -> Box<dyn Directory> {
        let dir = std::sync::Arc::new(MemoryDirectory::new("uid"));
        self.nodes.lock().unwrap().insert(slot.into(), dir.clone());
        Box::new(dir)
    }
    async fn seed_unlinked(&self, slot: &str, attrs: &Attrs) {
        let dir = self
            .nodes
            .lock()
            .unwrap()
            .get(slot)
            .cloned()
            .expect("node first");
        dir.insert_unlinked(attrs).unwrap();
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            conformance::$name(&Memory::default()).await;
        }
    )*};
}

scenarios!(
    first_sync_then_nothing,
    renames_and_moves,
    multi_department_membership,
    leaver_and_rehire,
    threshold_holds_until_approved,
    incomplete_read_disables_nothing,
    two_enterprises_never_merge,
    homonyms_get_stable_distinct_names,
    ambiguous_matches_are_refused,
    one_failure_never_stops_the_rest,
    half_applied_plan_converges,
    delete_and_retain_policies,
    removed_departments_go_children_first,
    ou_tree_moves_people,
    incremental_run_touches_only_named_records,
    targeted_reads_match_a_full_read,
    lean_resync_names_exactly_what_changed,
);

#[test]
fn a_broken_template_names_the_rule_and_nothing_runs() {
    use dingsync::api::mapping::{AttributeRule, UniqueName, UserMapping};
    let spec = dingsync::api::FieldMappingSpec {
        direction: Default::default(),
        user: UserMapping {
            attributes: vec![AttributeRule {
                target: "mail".into(),
                template: "{{ email | lower }".into(),
                ..Default::default()
            }],
            match_rules: vec![],
            unique_name: UniqueName {
                attribute: "uid".into(),
                template: "{{ name | pinyin }}".into(),
                ..Default::default()
            },
        },
        department: None,
    };
    let err = dingsync::mapping::Mapping::compile(&spec).unwrap_err();
    assert_eq!(err.rule, "user.attributes[0] (mail)");
}
