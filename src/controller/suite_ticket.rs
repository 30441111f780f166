//! The latest suiteTicket of every third-party (suite) app the controller's bindings use,
//! copied from the suite's ticket cell (which its Stream connection feeds) into one Secret in
//! the controller's own namespace, keyed by SuiteKey: a replica started later, or this one
//! after a restart, finds it there and buys corp tokens before DingTalk's next push, hours
//! away. One Secret, by name, in the release namespace: the controller needs no write access
//! to Secrets anywhere else.

use std::time::Duration;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

use crate::dingtalk::suite::tickets_of;

/// A suite binding is looked at this often, so that a pushed ticket reaches its Secret soon.
pub const STORE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Where the tickets are kept: namespace and Secret name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketStore {
    pub namespace: String,
    pub name: String,
}

/// The Secret key of a suite's ticket: the SuiteKey when it is a valid key (it is, as DingTalk
/// issues them), else its SHA-256 in hex.
fn key_of(suite_key: &str) -> String {
    let valid = !suite_key.is_empty()
        && suite_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        return suite_key.to_owned();
    }
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(suite_key.as_bytes()))
}

impl TicketStore {
    /// Offers the kept ticket of `suite_key` to its cell (which takes it only when it holds
    /// none: a pushed ticket is newer); `true` when one was kept.
    pub async fn load(&self, client: &kube::Client, suite_key: &str) -> Result<bool, kube::Error> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let kept = api.get_opt(&self.name).await?;
        let ticket = kept
            .and_then(|s| s.data?.remove(&key_of(suite_key)))
            .and_then(|v| String::from_utf8(v.0).ok())
            .filter(|t| !t.trim().is_empty());
        Ok(match ticket {
            Some(t) => {
                tickets_of(suite_key).offer_stored(crate::secret::Secret::new(t.trim()));
                true
            }
            None => false,
        })
    }

    /// Writes the suite's latest ticket (created if missing); `true` when something was
    /// written.
    pub async fn store(&self, client: &kube::Client, suite_key: &str) -> Result<bool, kube::Error> {
        let Some(ticket) = tickets_of(suite_key).get() else {
            return Ok(false);
        };
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let value = ByteString(ticket.expose().as_bytes().to_vec());
        let key = key_of(suite_key);
        match api.get_opt(&self.name).await? {
            Some(mut s) => {
                let data = s.data.get_or_insert_with(Default::default);
                if data.get(&key) == Some(&value) {
                    return Ok(false);
                }
                data.insert(key, value);
                api.replace(&self.name, &PostParams::default(), &s).await?;
            }
            None => {
                let s = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    data: Some([(key, value)].into()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &s).await?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_keys_are_secret_keys_or_their_digest() {
        assert_eq!(key_of("suitesimkey000000001"), "suitesimkey000000001");
        let odd = key_of("suite key/1");
        assert_eq!(odd.len(), 64);
        assert!(odd.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
