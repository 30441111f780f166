//! A suite binding's latest suiteTicket, copied from the suite's ticket cell (which its
//! Stream connection feeds) into the binding's ticket Secret: a replica started later, or
//! this one after a restart, finds it there (`resolve::app`) and buys corp tokens before
//! DingTalk's next push, hours away.

use std::time::Duration;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

use crate::api::DingTalkBinding;
use crate::dingtalk::suite::tickets_of;
use crate::resolve::app::{TICKET_KEY, ticket_secret_name};

/// A suite binding is looked at this often, so that a pushed ticket reaches its Secret soon.
pub const STORE_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The label marking the ticket Secrets dingsync created: the only Secrets it rewrites.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const MANAGER: &str = "dingsync";

fn made_here(s: &Secret) -> bool {
    let labels = s.metadata.labels.as_ref();
    labels.and_then(|l| l.get(MANAGED_BY)).map(String::as_str) == Some(MANAGER)
}

/// Writes the suite's latest ticket into the binding's ticket Secret (created if missing);
/// `true` when something was written.
pub async fn store(
    client: &kube::Client,
    ns: &str,
    binding: &DingTalkBinding,
    suite_key: &str,
) -> Result<bool, kube::Error> {
    let (Some(name), Some(ticket)) = (ticket_secret_name(binding), tickets_of(suite_key).get())
    else {
        return Ok(false);
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let value = ByteString(ticket.expose().as_bytes().to_vec());
    match api.get_opt(&name).await? {
        // Only a Secret dingsync created is ever rewritten: `ticketSecretRef` naming another
        // Secret (an AppSecret, say) must not get the controller to overwrite it.
        Some(s) if !made_here(&s) => {
            tracing::warn!(
                secret = %name,
                "the suiteTicket is not stored: the Secret exists and was not created by dingsync"
            );
            return Ok(false);
        }
        Some(mut s) => {
            let data = s.data.get_or_insert_with(Default::default);
            if data.get(TICKET_KEY) == Some(&value) {
                return Ok(false);
            }
            data.insert(TICKET_KEY.to_owned(), value);
            api.replace(&name, &PostParams::default(), &s).await?;
        }
        None => {
            let s = Secret {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(ns.to_owned()),
                    labels: Some([(MANAGED_BY.to_owned(), MANAGER.to_owned())].into()),
                    ..Default::default()
                },
                data: Some([(TICKET_KEY.to_owned(), value)].into()),
                ..Default::default()
            };
            api.create(&PostParams::default(), &s).await?;
        }
    }
    Ok(true)
}
