//! Reading what DingTalk's org says next to what a directory holds: the checks several
//! integration tests share.

use dingsync::{directory::Snapshot, sim::org::Person};
use serde_json::Value;

/// What the org says a person's custom field `key` is, as text (DingTalk sends `extension`
/// as a JSON object in a string; a number reads as its digits).
pub fn custom(p: &Person, key: &str) -> Option<String> {
    let ext: Value = serde_json::from_str(p.extension.as_deref()?).expect("JSON object");
    match &ext[key] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The directory key (LDAP DN, SCIM id), lowercased, of the enabled entry of DingTalk user
/// `id`: what a reference to that person holds.
pub fn key_of(snap: &Snapshot, id: &str) -> Option<String> {
    let p = snap.people.iter().find(|p| p.id.as_deref() == Some(id));
    p.filter(|p| !p.disabled).map(|p| p.key.to_lowercase())
}
