//! The engine's behaviour suite (`support::conformance`) against a real OpenLDAP: the same
//! scenarios the in-memory backend passes, on a private slapd per test.

use crate::support::slapd;
use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use dingsync::{
    api::target::Layout,
    directory::{Attrs, Directory},
};

use crate::support::{
    conformance::{self, Harness},
    world::ldap_directory,
};
use slapd::Slapd;

struct Ldap {
    server: Slapd,
    nodes: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl Harness for Ldap {
    async fn node(&self, corp: &str, slot: &str) -> Box<dyn Directory> {
        let node = self.server.new_node(&format!("node-{slot}")).expect("node");
        self.nodes.lock().unwrap().insert(slot.into(), node.clone());
        Box::new(ldap_directory(&self.server, &node, Layout::FlatWithGroups, corp).await)
    }

    async fn seed_unlinked(&self, slot: &str, attrs: &Attrs) {
        let node = self
            .nodes
            .lock()
            .unwrap()
            .get(slot)
            .cloned()
            .expect("node first");
        let uid = &attrs.first("uid").unwrap();
        let mut ldif = format!("dn: uid={uid},ou=people,{node}\nobjectClass: inetOrgPerson\n");
        for (k, vs) in attrs {
            for v in vs {
                ldif.push_str(&format!("{k}: {v}\n"));
            }
        }
        self.server.ldapadd(&ldif).expect("seed entry");
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(server) = slapd::start_or_skip() else { return };
            conformance::$name(&Ldap { server, nodes: Default::default() }).await;
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
    targeted_reads_match_a_full_read,
    lean_resync_names_exactly_what_changed,
    incremental_run_touches_only_named_records,
    one_failure_never_stops_the_rest,
);
