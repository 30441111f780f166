//! Who the person is in the synced directory: the ID token's claims come from the account
//! dingsync keeps for them (found by its anchor), not from DingTalk's profile, so an app sees
//! the same username, mail and groups as everything else that uses the directory, and a
//! leaver (disabled account) cannot log in even while DingTalk still knows them.

use std::{collections::BTreeSet, sync::Arc};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::LoginError;
use crate::{
    api::mapping::FieldMappingSpec,
    directory::{Anchors, Directory},
};

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
        // Two searches by anchor per login, whatever the node's size: the person's entry,
        // then the entries of their departments (whose names are the `groups` claim).
        let asked = Anchors {
            people: BTreeSet::from([userid.to_owned()]),
            ..Default::default()
        };
        let snap = self.dir.read_some(&asked).await?;
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
        let depts = Anchors {
            departments: p.departments.iter().cloned().collect(),
            ..Default::default()
        };
        let mut groups: Vec<String> = if depts.is_empty() {
            Vec::new()
        } else {
            let read = self.dir.read_some(&depts).await?;
            (read.departments.into_iter())
                .filter(|d| p.departments.contains(&d.id))
                .map(|d| d.name)
                .collect()
        };
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

#[cfg(test)]
mod lookup_tests {
    use super::*;
    use crate::directory::{Attrs, DirectoryError, Snapshot, memory::MemoryDirectory};

    /// A node whose full read fails: a lookup that works on it asked by anchor only.
    struct NoFullRead(MemoryDirectory);

    fn unused() -> Result<(), DirectoryError> {
        Err(DirectoryError::Config("not used by a lookup".into()))
    }

    #[async_trait]
    impl Directory for NoFullRead {
        async fn read(&self) -> Result<Snapshot, DirectoryError> {
            Err(DirectoryError::Unavailable(
                "a login read the whole node".into(),
            ))
        }
        async fn read_some(&self, anchors: &Anchors) -> Result<Snapshot, DirectoryError> {
            Ok(self.0.read().await?.restrict(anchors))
        }
        async fn create_person(
            &self,
            _: &str,
            _: &Attrs,
            _: Option<&str>,
        ) -> Result<(), DirectoryError> {
            unused()
        }
        async fn link_person(&self, _: &str, _: &str) -> Result<(), DirectoryError> {
            unused()
        }
        async fn update_person(&self, _: &str, _: &Attrs) -> Result<(), DirectoryError> {
            unused()
        }
        async fn move_person(&self, _: &str, _: &str, _: &str) -> Result<(), DirectoryError> {
            unused()
        }
        async fn disable_person(&self, _: &str) -> Result<(), DirectoryError> {
            unused()
        }
        async fn enable_person(&self, _: &str) -> Result<(), DirectoryError> {
            unused()
        }
        async fn delete_person(&self, _: &str) -> Result<(), DirectoryError> {
            unused()
        }
        async fn add_members(&self, _: &str, _: &[String]) -> Result<(), DirectoryError> {
            unused()
        }
        async fn remove_members(&self, _: &str, _: &[String]) -> Result<(), DirectoryError> {
            unused()
        }
        async fn create_dept(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: &Attrs,
        ) -> Result<(), DirectoryError> {
            unused()
        }
        async fn update_dept(&self, _: &str, _: &Attrs) -> Result<(), DirectoryError> {
            unused()
        }
        async fn move_dept(&self, _: &str, _: &str, _: Option<&str>) -> Result<(), DirectoryError> {
            unused()
        }
        async fn delete_dept(&self, _: &str) -> Result<(), DirectoryError> {
            unused()
        }
        fn writes(&self) -> u64 {
            0
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect()
    }

    async fn node() -> NoFullRead {
        let dir = MemoryDirectory::new("uid");
        dir.create_dept("1", "Acme", None, &Attrs::default())
            .await
            .unwrap();
        dir.create_dept("2", "R&D", Some("1"), &Attrs::default())
            .await
            .unwrap();
        dir.create_dept("3", "Sales", Some("1"), &Attrs::default())
            .await
            .unwrap();
        let alice = attrs(&[("uid", "alice"), ("mail", "alice@acme.test")]);
        dir.create_person("u1", &alice, None).await.unwrap();
        dir.add_members("2", &["u1".to_owned()]).await.unwrap();
        dir.create_person("u2", &attrs(&[("uid", "bob")]), None)
            .await
            .unwrap();
        dir.disable_person("u2").await.unwrap();
        NoFullRead(dir)
    }

    fn accounts(dir: NoFullRead) -> DirectoryAccounts {
        let rules = vec![
            ClaimRule {
                claim: "preferred_username".into(),
                attribute: "uid".into(),
            },
            ClaimRule {
                claim: "email".into(),
                attribute: "mail".into(),
            },
        ];
        DirectoryAccounts::new(Arc::new(dir), rules)
    }

    #[tokio::test]
    async fn a_login_finds_the_account_and_its_groups_by_anchor_alone() {
        let accounts = accounts(node().await);
        let Account::Active(claims) = accounts.lookup("u1").await.unwrap() else {
            panic!("alice is active");
        };
        assert_eq!(claims["preferred_username"], "alice");
        assert_eq!(claims["email"], "alice@acme.test");
        assert_eq!(claims["groups"], serde_json::json!(["R&D"]));
        assert_eq!(accounts.lookup("u2").await.unwrap(), Account::Disabled);
        assert_eq!(accounts.lookup("nobody").await.unwrap(), Account::Missing);
    }
}
