//! Who the person is in the synced directory: the ID token's claims come from the account
//! dingsync keeps for them (found by its anchor), not from DingTalk's profile, so an app sees
//! the same username, mail and groups as everything else that uses the directory, and a
//! leaver (disabled account) cannot log in even while DingTalk still knows them.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::LoginError;
use crate::{api::mapping::FieldMappingSpec, directory::Directory};

/// One `claim ← directory attribute` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    pub claim: String,
    /// Attribute name as the FieldMapping spells it (compared case-insensitively).
    pub attribute: String,
}

/// The result of looking a person up.
#[derive(Debug, Clone, PartialEq)]
pub enum Account {
    /// Claims (standard names; `groups` is a list of department names).
    Active(Map<String, Value>),
    /// The account exists but is disabled (a leaver).
    Disabled,
    /// No account carries this person's anchor (not in any synced scope, or not synced yet).
    Missing,
}

/// Finds a person's account by DingTalk userid.
#[async_trait]
pub trait Accounts: Send + Sync {
    async fn lookup(&self, userid: &str) -> Result<Account, LoginError>;
}

/// Standard claim for a directory attribute the mapping writes, if there is one.
fn standard_claim(attribute: &str) -> Option<&'static str> {
    let a = attribute.to_ascii_lowercase();
    Some(match a.as_str() {
        "mail" => "email",
        "displayname" => "name",
        "givenname" | "name.givenname" => "given_name",
        "sn" | "name.familyname" => "family_name",
        "mobile" | "telephonenumber" => "phone_number",
        _ if a.starts_with("emails") => "email",
        _ if a.starts_with("phonenumbers") => "phone_number",
        _ => return None,
    })
}

/// The claim rules a FieldMapping implies: `preferred_username` from the naming attribute,
/// standard claims from the attributes it writes (`name` from `cn` when there is no
/// `displayName`), then `extra` (`claim: attribute`, from the binding's `login.claims`), which
/// override.
pub fn claim_rules(mapping: &FieldMappingSpec, extra: &[(String, String)]) -> Vec<ClaimRule> {
    let mut rules: Vec<ClaimRule> = vec![ClaimRule {
        claim: "preferred_username".into(),
        attribute: mapping.user.unique_name.attribute.clone(),
    }];
    let mut push = |claim: &str, attribute: &str| {
        if !rules.iter().any(|r| r.claim == claim) {
            rules.push(ClaimRule {
                claim: claim.into(),
                attribute: attribute.into(),
            });
        }
    };
    for rule in &mapping.user.attributes {
        if let Some(c) = standard_claim(&rule.target) {
            push(c, &rule.target);
        }
    }
    if let Some(cn) = mapping
        .user
        .attributes
        .iter()
        .find(|r| r.target.eq_ignore_ascii_case("cn"))
    {
        push("name", &cn.target);
    }
    for (claim, attribute) in extra {
        rules.retain(|r| &r.claim != claim);
        rules.push(ClaimRule {
            claim: claim.clone(),
            attribute: attribute.clone(),
        });
    }
    rules
}

/// Accounts in a directory node written by an Inbound target.
pub struct DirectoryAccounts {
    dir: Arc<dyn Directory>,
    rules: Vec<ClaimRule>,
}

impl DirectoryAccounts {
    pub fn new(dir: Arc<dyn Directory>, rules: Vec<ClaimRule>) -> Self {
        DirectoryAccounts { dir, rules }
    }
}

#[async_trait]
impl Accounts for DirectoryAccounts {
    async fn lookup(&self, userid: &str) -> Result<Account, LoginError> {
        // One read of the node per login: logins are rare next to syncs, and the read gives
        // the department names for `groups` as well.
        let snap = self.dir.read().await?;
        let Some(p) = snap.people.iter().find(|p| p.id.as_deref() == Some(userid)) else {
            return Ok(Account::Missing);
        };
        if p.disabled {
            return Ok(Account::Disabled);
        }
        let mut claims = Map::new();
        for r in &self.rules {
            let key = r.attribute.to_ascii_lowercase();
            if let Some(v) = p.attrs.first(&key)
                && !v.is_empty()
            {
                claims.insert(r.claim.clone(), Value::String(v.to_owned()));
            }
        }
        let mut groups: Vec<String> = snap
            .departments
            .iter()
            .filter(|d| p.departments.contains(&d.id))
            .map(|d| d.name.clone())
            .collect();
        groups.sort();
        claims.insert(
            "groups".into(),
            Value::Array(groups.into_iter().map(Value::String).collect()),
        );
        Ok(Account::Active(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_the_mapping() {
        let m: FieldMappingSpec = serde_yaml::from_str(
            "user:\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  - {target: mail, template: '{{ email }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n  uniqueName: {attribute: uid, template: '{{ name | pinyin }}'}\n",
        )
        .unwrap();
        let rules = claim_rules(&m, &[("employee_number".into(), "employeeNumber".into())]);
        let pairs: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r.claim.as_str(), r.attribute.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("preferred_username", "uid"),
                ("email", "mail"),
                ("phone_number", "mobile"),
                ("name", "cn"),
                ("employee_number", "employeeNumber"),
            ]
        );
    }
}
