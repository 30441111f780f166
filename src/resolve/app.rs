//! The credentials a binding reaches DingTalk with: an internal app's AppKey and AppSecret, or
//! a third-party (suite) app's SuiteKey and SuiteSecret. For a suite, the suiteTicket kept in
//! the binding's ticket Secret is handed to the suite's shared ticket cell, so a restarted
//! process can buy corp tokens before DingTalk's next push.

use super::{ObjectSource, Problem, SecretAt, SourceError, secret_text};
use crate::api::DingTalkBinding;
use crate::dingtalk::suite::tickets_of;
use crate::secret::Secret;

/// Key of the ticket Secret holding the suiteTicket.
pub const TICKET_KEY: &str = "suiteTicket";

/// The Secret a suite binding keeps its latest ticket in.
pub fn ticket_secret_name(binding: &DingTalkBinding) -> Option<String> {
    let suite = binding.spec.suite.as_ref()?;
    Some(match &suite.ticket_secret_ref {
        Some(r) => r.name.clone(),
        None => format!(
            "{}-suite-ticket",
            binding.metadata.name.clone().unwrap_or_default()
        ),
    })
}

/// `(key, secret)` of the binding's app, or the problem naming the missing Secret or key.
pub async fn app_credentials(
    objects: &dyn ObjectSource,
    ns: &str,
    binding: &DingTalkBinding,
) -> Result<Result<(String, Secret), Problem>, SourceError> {
    let (name, key_key, secret_key, what) = match &binding.spec.suite {
        Some(s) => {
            let r = &s.secret_ref;
            let what = "binding suite.secretRef";
            (&r.name, &r.suite_key_key, &r.suite_secret_key, what)
        }
        None => {
            let r = &binding.spec.credentials_secret_ref;
            let what = "binding credentialsSecretRef";
            (&r.name, &r.app_key_key, &r.app_secret_key, what)
        }
    };
    let key = secret_text(objects, ns, name, key_key, what).await?;
    let secret = secret_text(objects, ns, name, secret_key, what).await?;
    let (key, secret) = match (key, secret) {
        (Ok(k), Ok(s)) => (k, Secret::new(s)),
        (Err(p), _) | (_, Err(p)) => return Ok(Err(p)),
    };
    if let Some(ticket_name) = ticket_secret_name(binding) {
        let at = SecretAt {
            ns,
            name: &ticket_name,
            key: TICKET_KEY,
            field: "binding suite.ticketSecretRef",
        };
        // No ticket kept yet is fine: the suite's Stream connection brings one.
        if let Ok(bytes) = objects.secret_key(at).await?
            && let Ok(t) = String::from_utf8(bytes)
            && !t.trim().is_empty()
        {
            tickets_of(&key).offer_stored(Secret::new(t.trim()));
        }
    }
    Ok(Ok((key, secret)))
}
