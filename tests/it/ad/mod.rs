//! The Active Directory backend against a real Samba AD DC (`support/samba.rs`): the
//! behaviour suite every backend passes, then what only AD has (account control bits,
//! `sAMAccountName` rules, passwords only over TLS, `member` ranges), checked the way a
//! Windows admin would, with `ldapsearch`.

mod cli;
mod harness;
mod outbound;
mod windows;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use dingsync::api::target::Layout;
use dingsync::directory::{Attrs, Directory, PersonEntry};

use crate::support::conformance::{self, Harness};
use crate::support::samba::{self, Samba};
use harness::{AccountNames, open};

/// One DC; each slot of a scenario is its own OU.
struct Ad {
    dc: Samba,
    nodes: Mutex<HashMap<String, String>>,
    layout: Layout,
}

#[async_trait]
impl Harness for Ad {
    async fn node(&self, corp: &str, slot: &str) -> Box<dyn Directory> {
        let node = self.dc.new_node(&format!("node-{slot}")).expect("node");
        self.nodes.lock().unwrap().insert(slot.into(), node.clone());
        let dir = open(&self.dc, &node, corp, |t| t.layout = self.layout).await;
        Box::new(AccountNames(dir))
    }

    async fn seed_unlinked(&self, slot: &str, attrs: &Attrs) {
        let node = self
            .nodes
            .lock()
            .unwrap()
            .get(slot)
            .cloned()
            .expect("node first");
        let uid = attrs.first("uid").unwrap();
        let cn = attrs.first("cn").unwrap_or(uid);
        let mut ldif =
            format!("dn: CN={cn},OU=people,{node}\nobjectClass: user\nsAMAccountName: {uid}\n");
        for (k, vs) in attrs {
            if k.as_str() != "uid" && k.as_str() != "cn" {
                for v in vs {
                    ldif.push_str(&format!("{k}: {v}\n"));
                }
            }
        }
        self.dc.ldapadd(&ldif).expect("seed entry");
    }

    /// A display-name change renames the entry (`cn` is AD's RDN); `objectGUID` stays.
    fn same_entry(&self, before: &PersonEntry, after: &PersonEntry) -> bool {
        let guid = |p: &PersonEntry| p.attrs.first("objectguid").map(str::to_owned);
        guid(before).is_some() && guid(before) == guid(after)
    }
}

// `half_applied_plan_converges` is left out: it compares the account names of two nodes
// synced from one org, which on AD share one domain where `sAMAccountName` is unique, so the
// second node's people rightly get suffixed names.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(dc) = samba::start_or_skip().await else { return };
            let layout = Layout::FlatWithGroups;
            conformance::$name(&Ad { dc, nodes: Default::default(), layout }).await;
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
    delete_and_retain_policies,
    removed_departments_go_children_first,
);

/// `OuTree`: departments are also OUs, people live in their main department's and move with
/// it; the suite's renames and moves hold there too (each with a fresh domain, as account
/// names are unique across one).
macro_rules! ou_tree_scenarios {
    ($($test:ident: $name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $test() {
            let Some(dc) = samba::start_or_skip().await else { return };
            let layout = Layout::OuTree;
            conformance::$name(&Ad { dc, nodes: Default::default(), layout }).await;
        }
    )*};
}

ou_tree_scenarios!(
    ou_tree_moves_people: ou_tree_moves_people,
    ou_tree_renames_and_moves: renames_and_moves,
    ou_tree_removed_departments_go_children_first: removed_departments_go_children_first,
);
