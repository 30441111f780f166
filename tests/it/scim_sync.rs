//! The engine's behaviour suite (`support::conformance`) against a real scim2-server: the same
//! scenarios the in-memory and OpenLDAP backends pass, once with the PATCH of members the
//! server offers and once on the replace path a server without PATCH gets (`replace::`).
//! Both enterprises share one server, so "never merge" is tested where it matters.

use crate::support::scim_server;
use async_trait::async_trait;
use dingsync::directory::{
    Attrs, Directory,
    scim::{
        ScimDirectory,
        client::{BearerToken, ScimClient},
    },
};

use crate::support::conformance::{self, Harness};
use scim_server::ScimServer;
use serde_json::json;

/// SCIM users have no container, so a node of one enterprise is a whole server: each slot gets
/// its own, unless `shared` puts every node on one (for enterprises side by side).
struct Scim {
    shared: Option<ScimServer>,
    /// Use PATCH where the server offers it; `false` forces read-modify-write.
    patch: bool,
    servers: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<ScimServer>>>,
}

impl Scim {
    fn new(shared: bool, patch: bool) -> Option<Self> {
        let shared = if shared {
            Some(ScimServer::start()?)
        } else {
            None
        };
        Some(Self {
            shared,
            patch,
            servers: Default::default(),
        })
    }

    async fn client(&self, slot: &str) -> ScimClient {
        let (url, token) = match &self.shared {
            Some(s) => (s.base_url.clone(), s.token.clone()),
            None => {
                let s = self
                    .servers
                    .lock()
                    .unwrap()
                    .entry(slot.to_string())
                    .or_insert_with(|| {
                        std::sync::Arc::new(ScimServer::start().expect("scim2-server"))
                    })
                    .clone();
                (s.base_url.clone(), s.token.clone())
            }
        };
        ScimClient::connect(&url, BearerToken::new(&token), None)
            .await
            .expect("connect")
    }
}

#[async_trait]
impl Harness for Scim {
    async fn node(&self, corp: &str, slot: &str) -> Box<dyn Directory> {
        let client = self.client(slot).await;
        let client = if self.patch {
            client
        } else {
            client.without_patch()
        };
        Box::new(ScimDirectory::new(client, corp, slot))
    }

    async fn seed_unlinked(&self, slot: &str, attrs: &Attrs) {
        let first = |k: &str| attrs.first(k).map(str::to_owned).unwrap_or_default();
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": first("uid"),
            "displayName": first("cn"),
            "name": {"familyName": first("sn")},
            "emails": [{"type": "work", "value": first("mail")}],
            "phoneNumbers": [{"type": "mobile", "value": first("mobile")}],
            "active": true,
        });
        self.client(slot)
            .await
            .create("Users", user)
            .await
            .expect("seed user");
    }
}

macro_rules! scenarios {
    ($patch:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(h) = Scim::new(false, $patch) else { return };
            conformance::$name(&h).await;
        }
    )*};
}

macro_rules! all_scenarios {
    ($patch:expr) => {
        scenarios!(
            $patch;
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
            one_failure_never_stops_the_rest,
        );
    };
}

all_scenarios!(true);

/// The same scenarios on the replace path.
mod replace {
    use super::*;

    all_scenarios!(false);

    #[tokio::test]
    async fn two_enterprises_share_one_server_without_merging() {
        let Some(h) = Scim::new(true, false) else {
            return;
        };
        conformance::two_enterprises_never_merge(&h).await;
    }
}

#[tokio::test]
async fn two_enterprises_share_one_server_without_merging() {
    let Some(h) = Scim::new(true, true) else {
        return;
    };
    conformance::two_enterprises_never_merge(&h).await;
}
