//! Which department groups each person is a direct member of, as a read finds them.
//!
//! A read of a whole node learns memberships from the groups' `member` values. Keyed by the
//! member's DN text, that map cost about 230 bytes per person (a key, a vector, an id per
//! department) at the moment a read holds the most; here a membership costs 16 bytes: the
//! hash of the member's DN key and where the value is, sorted once. A hash match is
//! confirmed against the member value itself, so two DNs with the same hash never mix.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use super::Group;
use crate::directory::ldap::dn::Dn;

/// Direct memberships, to be taken person by person.
pub(super) enum Memberships {
    /// Each member's department ids by the member's DN key (a targeted read: few people).
    ByKey(HashMap<String, Vec<String>>),
    /// Found in the `member` values of the groups read (a read of the whole node).
    InGroups(Compact),
}

pub(super) struct Compact {
    hasher: RandomState,
    /// (hash of the member's DN key, the group's position, the value's position among the
    /// group's `member` values), sorted by hash.
    slots: Vec<(u64, u32, u32)>,
}

impl Compact {
    pub(super) fn new() -> Self {
        Compact {
            hasher: RandomState::new(),
            slots: Vec::new(),
        }
    }

    /// Records that value `value` of group `group` names the entry whose DN key is `key`.
    pub(super) fn add(&mut self, key: &str, group: usize, value: usize) {
        let (Ok(g), Ok(v)) = (u32::try_from(group), u32::try_from(value)) else {
            return;
        };
        self.slots.push((self.hasher.hash_one(key), g, v));
    }

    /// Done adding: sorts for lookups and gives back what the growth over-allocated.
    pub(super) fn seal(mut self) -> Memberships {
        self.slots.sort_unstable();
        self.slots.shrink_to_fit();
        Memberships::InGroups(self)
    }
}

impl Memberships {
    /// The department ids `dn` is a direct member of, sorted and without repeats.
    pub(super) fn take(&mut self, dn: &Dn, groups: &[Group]) -> Vec<String> {
        let mut ids = match self {
            Memberships::ByKey(map) => map.remove(dn.key_str()).unwrap_or_default(),
            Memberships::InGroups(c) => c.find(dn, groups),
        };
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Compact {
    fn find(&self, dn: &Dn, groups: &[Group]) -> Vec<String> {
        let key = dn.key_str();
        let h = self.hasher.hash_one(key);
        let start = self.slots.partition_point(|s| s.0 < h);
        self.slots[start..]
            .iter()
            .take_while(|s| s.0 == h)
            .filter_map(|&(_, g, v)| {
                let group = groups.get(g as usize)?;
                let value = group.raw.get("member").nth(v as usize)?;
                let same = Dn::parse(value).is_ok_and(|m| m.key_str() == key);
                same.then(|| group.id.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::ldap::client::RawEntry;
    use crate::directory::{Attrs, Name};

    fn group(id: &str, members: &[&str]) -> Group {
        let mut attrs = Attrs::new();
        attrs.insert(
            Name::new("member"),
            members.iter().map(|m| m.to_string()).collect(),
        );
        let dn = format!("cn={id},ou=groups,dc=x");
        Group {
            dn: Dn::parse(&dn).unwrap(),
            raw: RawEntry {
                dn,
                attrs,
                digest: None,
            },
            id: id.into(),
        }
    }

    fn compact(groups: &[Group]) -> Memberships {
        let mut c = Compact::new();
        for (gi, g) in groups.iter().enumerate() {
            for (vi, m) in g.raw.get("member").enumerate() {
                c.add(Dn::parse(m).unwrap().key_str(), gi, vi);
            }
        }
        c.seal()
    }

    #[test]
    fn each_person_gets_exactly_their_groups_whatever_the_spelling_of_the_dn() {
        let groups = [
            group("2", &["uid=a,ou=people,dc=x", "UID=B, OU=People,DC=x"]),
            group("1", &["uid=b,ou=people,dc=x"]),
            group("3", &["uid=c,ou=people,dc=x", "uid=a,ou=people,dc=x"]),
        ];
        let mut m = compact(&groups);
        let dn = |s: &str| Dn::parse(s).unwrap();
        assert_eq!(m.take(&dn("uid=a,ou=people,dc=x"), &groups), ["2", "3"]);
        assert_eq!(m.take(&dn("uid=b,ou=people,dc=x"), &groups), ["1", "2"]);
        assert_eq!(m.take(&dn("uid=c,ou=people,dc=x"), &groups), ["3"]);
        assert!(m.take(&dn("uid=d,ou=people,dc=x"), &groups).is_empty());
    }

    #[test]
    fn a_hash_match_is_confirmed_against_the_member_value() {
        let groups = [group("1", &["uid=a,ou=people,dc=x"])];
        let mut c = Compact::new();
        // A slot claiming the other person's hash: only the value itself may decide.
        c.add(Dn::parse("uid=z,ou=people,dc=x").unwrap().key_str(), 0, 0);
        let mut m = c.seal();
        let z = Dn::parse("uid=z,ou=people,dc=x").unwrap();
        assert!(m.take(&z, &groups).is_empty());
    }
}
