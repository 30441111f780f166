//! Digests of the attributes dingsync owns, so a full read need not keep them.
//!
//! A resync compares, per person, what the mapping renders with what the entry holds. At a
//! million people holding every entry's attributes for that is most of a run's memory, and
//! nearly every comparison says "the same". A lean read ([`Directory::read_lean`]) keeps, for
//! each anchored person, one 64-bit digest of the owned attributes instead of their values;
//! the plan digests what it renders the same way, and only the people whose digests differ
//! are read again in full to say exactly what changed.
//!
//! [`Directory::read_lean`]: super::Directory::read_lean

use std::hash::{Hash, Hasher};

use super::{Attrs, Name, Snapshot};

/// The attributes a lean read digests: names lowercased, sorted, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digested {
    names: Vec<Name>,
}

impl Digested {
    /// Digest `names` (compared case-insensitively); `except` (the naming attribute, which
    /// the plan reads by value) is never digested.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, except: &str) -> Self {
        let mut names: Vec<Name> = names
            .into_iter()
            .map(str::to_ascii_lowercase)
            .filter(|n| !n.eq_ignore_ascii_case(except))
            .map(|n| Name::new(&n))
            .collect();
        names.sort();
        names.dedup();
        Digested { names }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether `name` is digested (any case).
    pub fn contains(&self, name: &str) -> bool {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            let lower = name.to_ascii_lowercase();
            self.names
                .binary_search_by(|n| n.as_str().cmp(&lower))
                .is_ok()
        } else {
            self.names
                .binary_search_by(|n| n.as_str().cmp(name))
                .is_ok()
        }
    }

    /// The digest of what `attrs` holds of the digested attributes. An absent attribute and
    /// one with no values digest alike (both mean "not set"); the order of an attribute's
    /// values does not count, as it does not when values are compared.
    pub fn digest(&self, attrs: &Attrs) -> u64 {
        let mut held: Vec<(String, Vec<&str>)> = attrs
            .iter()
            .filter(|(k, v)| !v.is_empty() && self.contains(k))
            .map(|(k, v)| {
                let mut values: Vec<&str> = v.collect();
                values.sort_unstable();
                (k.to_ascii_lowercase(), values)
            })
            .collect();
        held.sort();
        // SipHash with fixed keys: the same input gives the same digest within a process,
        // which is all a digest needs (both sides are digested by the same run).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        held.hash(&mut h);
        h.finish()
    }

    /// Replace the digested attributes of `attrs` by their digest.
    pub fn fold(&self, attrs: &mut Attrs) -> u64 {
        let d = self.digest(attrs);
        attrs.retain(|k, _| !self.contains(k));
        d
    }
}

impl Snapshot {
    /// The lean form of a full read: each anchored person's digested attributes folded into
    /// their digest (what a backend without a lean read of its own returns).
    pub fn fold_digests(&mut self, digested: &Digested) {
        if digested.is_empty() {
            return;
        }
        for p in &mut self.people {
            p.digest = Some(digested.fold(&mut p.attrs));
            p.attrs.shrink();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &[&str])]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn digests_compare_what_a_value_comparison_compares() {
        let d = Digested::new(["mail", "displayName", "memberOf"], "uid");
        let read = attrs(&[
            ("mail", &["a@x.test"]),
            ("displayname", &["A"]),
            ("memberof", &["g1", "g2"]),
            ("uid", &["a"]),
            ("description", &["not owned"]),
        ]);
        let rendered = attrs(&[
            ("displayName", &["A"]),
            ("memberOf", &["g2", "g1"]),
            ("mail", &["a@x.test"]),
            ("telephoneNumber", &[]),
        ]);
        assert_eq!(d.digest(&read), d.digest(&rendered), "case, order, unowned");
        let empty = attrs(&[("displayName", &["A"]), ("memberOf", &["g2", "g1"])]);
        let blank = attrs(&[
            ("displayName", &["A"]),
            ("memberOf", &["g2", "g1"]),
            ("mail", &[]),
        ]);
        assert_eq!(d.digest(&empty), d.digest(&blank), "absent is empty");
        assert_ne!(d.digest(&read), d.digest(&empty), "a value removed");
        let changed = attrs(&[
            ("mail", &["b@x.test"]),
            ("displayName", &["A"]),
            ("memberOf", &["g1", "g2"]),
        ]);
        assert_ne!(d.digest(&read), d.digest(&changed), "a value changed");
        let moved = attrs(&[
            ("displayname", &["a@x.test"]),
            ("mail", &["A"]),
            ("memberof", &["g1", "g2"]),
        ]);
        assert_ne!(
            d.digest(&read),
            d.digest(&moved),
            "values under other names"
        );
    }

    #[test]
    fn folding_keeps_the_naming_and_unowned_attributes() {
        let d = Digested::new(["mail", "uid"], "uid");
        let mut a = attrs(&[
            ("mail", &["a@x.test"]),
            ("uid", &["a"]),
            ("description", &["x"]),
        ]);
        let want = d.digest(&a);
        assert_eq!(d.fold(&mut a), want);
        assert_eq!(
            a.keys().map(Name::as_str).collect::<Vec<_>>(),
            ["description", "uid"]
        );
    }
}
