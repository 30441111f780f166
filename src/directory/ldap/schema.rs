//! Where dingsync keeps its own data in standard OpenLDAP schema: the anchor value, the lock
//! used for disabled accounts, the object classes and the containers under the node.

/// Attribute that carries the anchor. `businessCategory` is in `inetOrgPerson`,
/// `groupOfNames` and `organizationalUnit` alike, multi-valued, and present in every stock
/// OpenLDAP (core schema), so no custom schema has to be deployed.
pub const ANCHOR_ATTR: &str = "businessCategory";
/// Prefix of dingsync's value inside [`ANCHOR_ATTR`]; other values are left alone.
pub const ANCHOR_PREFIX: &str = "dingsync:";
/// ppolicy operational attribute that locks an account.
pub const LOCK_ATTR: &str = "pwdAccountLockedTime";
/// The ppolicy value for "locked by an administrator until unlocked" (slapo-ppolicy(5)).
pub const LOCK_VALUE: &str = "000001010000Z";
/// Container of people under the node.
pub const PEOPLE_OU: &str = "people";
/// Container of department groups under the node.
pub const GROUPS_OU: &str = "groups";
/// Naming attribute of people.
pub const PERSON_RDN: &str = "uid";
/// Naming attribute of department groups.
pub const GROUP_RDN: &str = "cn";
/// Naming attribute of department OUs (`OuTree` layout).
pub const OU_RDN: &str = "ou";

/// What an anchor points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnchorKind {
    User,
    Dept,
    /// A role's group (`store/roles.rs`).
    Role,
}

impl AnchorKind {
    fn tag(self) -> &'static str {
        match self {
            AnchorKind::User => "user",
            AnchorKind::Dept => "dept",
            AnchorKind::Role => "role",
        }
    }
}

/// A decoded anchor value: `dingsync:<user|dept|role>:<corpId>:<source id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoredAnchor {
    pub kind: AnchorKind,
    pub corp_id: String,
    pub id: String,
}

impl StoredAnchor {
    pub fn new(kind: AnchorKind, corp_id: impl Into<String>, id: impl Into<String>) -> Self {
        StoredAnchor {
            kind,
            corp_id: corp_id.into(),
            id: id.into(),
        }
    }

    /// The attribute value. The source id goes last so it may itself contain `:`.
    pub fn encode(&self) -> String {
        format!(
            "{ANCHOR_PREFIX}{}:{}:{}",
            self.kind.tag(),
            self.corp_id,
            self.id
        )
    }

    /// Parse one attribute value; `None` for values that are not dingsync anchors.
    pub fn decode(value: &str) -> Option<Self> {
        let rest = strip_prefix_ci(value, ANCHOR_PREFIX)?;
        let mut it = rest.splitn(3, ':');
        let kind = match it.next()?.to_ascii_lowercase().as_str() {
            "user" => AnchorKind::User,
            "dept" => AnchorKind::Dept,
            "role" => AnchorKind::Role,
            _ => return None,
        };
        let corp_id = it.next()?.to_string();
        let id = it.next()?.to_string();
        if corp_id.is_empty() || id.is_empty() {
            return None;
        }
        Some(StoredAnchor { kind, corp_id, id })
    }

    /// The one anchor among an entry's values, or an error when it carries several.
    pub fn from_values<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Self>, String> {
        let found: Vec<StoredAnchor> = values.into_iter().filter_map(Self::decode).collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.into_iter().next()),
            _ => Err(format!(
                "{ANCHOR_ATTR} holds {} dingsync anchors: {}",
                found.len(),
                found
                    .iter()
                    .map(StoredAnchor::encode)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// True when `value` is a dingsync anchor (so a mapping never overwrites it).
pub fn is_anchor_value(value: &str) -> bool {
    strip_prefix_ci(value, ANCHOR_PREFIX).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_and_foreign_values_are_ignored() {
        let a = StoredAnchor::new(AnchorKind::User, "ding123", "user:with:colons");
        assert_eq!(a.encode(), "dingsync:user:ding123:user:with:colons");
        assert_eq!(StoredAnchor::decode(&a.encode()), Some(a.clone()));
        // Servers may hand back a different case (caseIgnoreMatch); the kind still parses.
        assert_eq!(
            StoredAnchor::decode("DINGSYNC:Dept:ding123:42"),
            Some(StoredAnchor::new(AnchorKind::Dept, "ding123", "42"))
        );
        assert_eq!(StoredAnchor::decode("Sales"), None);
        assert_eq!(StoredAnchor::decode("dingsync:user:corp:"), None);
        assert_eq!(StoredAnchor::decode("dingsync:group:c:1"), None);
        let vals = ["Sales".to_string(), a.encode()];
        assert_eq!(
            StoredAnchor::from_values(vals.iter().map(String::as_str)),
            Ok(Some(a.clone()))
        );
        let two = [a.encode(), "dingsync:user:ding123:other".to_string()];
        assert!(StoredAnchor::from_values(two.iter().map(String::as_str)).is_err());
        assert!(is_anchor_value("dingsync:user:x:y"));
        assert!(!is_anchor_value("ding"));
    }
}
