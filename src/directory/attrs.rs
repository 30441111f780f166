//! Attribute values by attribute name, the currency of every directory read and write.
//!
//! A read of 100,000 entries holds about a million of these; as a `BTreeMap<String,
//! Vec<String>>` each entry cost a tree node and an owned name per attribute (some 3 KB an
//! entry). Here an entry is one sorted vector, and names are interned: a directory has a few
//! dozen attribute names, shared by every entry that carries them.

use std::{
    borrow::Borrow,
    collections::HashSet,
    fmt,
    ops::Deref,
    sync::{Arc, Mutex, OnceLock},
};

/// An attribute name, shared between entries.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

/// Distinct names kept; past this, names are still correct, just not shared. Attribute names
/// come from a schema, so this is never reached by a real directory.
const MAX_INTERNED: usize = 4096;

impl Name {
    pub fn new(s: &str) -> Self {
        static NAMES: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
        let mut names = NAMES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = names.get(s) {
            return Name(n.clone());
        }
        let n: Arc<str> = Arc::from(s);
        if names.len() < MAX_INTERNED {
            names.insert(n.clone());
        }
        Name(n)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name::new(&s)
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name::new(s)
    }
}

impl From<&Name> for Name {
    fn from(n: &Name) -> Self {
        n.clone()
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.0.to_string()
    }
}

/// Attribute values by name, sorted by name, each name once.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Attrs(Vec<(Name, Vec<String>)>);

impl Attrs {
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&Vec<String>> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Vec<String>> {
        self.position(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Set an attribute's values; returns the values it had.
    pub fn insert(&mut self, key: impl Into<Name>, values: Vec<String>) -> Option<Vec<String>> {
        let key = key.into();
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, values)),
            Err(i) => {
                self.0.insert(i, (key, values));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Vec<String>> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    /// An attribute's values, added empty when absent (a map's `entry(k).or_default()`).
    pub fn values_mut(&mut self, key: &str) -> &mut Vec<String> {
        let i = match self.position(key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (Name::new(key), Vec::new()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Name, &Vec<String>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Name> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Vec<String>> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Name, &mut Vec<String>) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }

    /// Build from pairs whose names may repeat (an LDAP entry's attribute names in two
    /// spellings): the values of a repeated name are joined. Sized once, not grown.
    pub fn merging(pairs: impl IntoIterator<Item = (Name, Vec<String>)>) -> Self {
        let mut v: Vec<(Name, Vec<String>)> = pairs.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1.append(&mut later.1);
                true
            } else {
                false
            }
        });
        v.shrink_to_fit();
        Attrs(v)
    }

    /// The first value of an attribute.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.get(key)?.first().map(String::as_str)
    }
}

impl<K: Into<Name>> FromIterator<(K, Vec<String>)> for Attrs {
    /// Later values of a repeated name win, as in a map.
    fn from_iter<I: IntoIterator<Item = (K, Vec<String>)>>(iter: I) -> Self {
        let mut v: Vec<(Name, Vec<String>)> =
            iter.into_iter().map(|(k, v)| (k.into(), v)).collect();
        // Stable: among equal names the last one given stays last, and is kept.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Name, Vec<String>)> = Vec::with_capacity(v.len());
        for (k, vals) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = vals,
                _ => out.push((k, vals)),
            }
        }
        Attrs(out)
    }
}

impl std::ops::Index<&str> for Attrs {
    type Output = Vec<String>;
    /// Panics when absent, as a map's index does (tests and invariants only).
    fn index(&self, key: &str) -> &Vec<String> {
        self.get(key)
            .unwrap_or_else(|| panic!("no attribute {key:?}"))
    }
}

impl<K: Into<Name>, const N: usize> From<[(K, Vec<String>); N]> for Attrs {
    fn from(pairs: [(K, Vec<String>); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Into<Name>> Extend<(K, Vec<String>)> for Attrs {
    fn extend<I: IntoIterator<Item = (K, Vec<String>)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for Attrs {
    type Item = (Name, Vec<String>);
    type IntoIter = std::vec::IntoIter<(Name, Vec<String>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a Name, &'a Vec<String>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Name, Vec<String>)>,
        fn(&'a (Name, Vec<String>)) -> (&'a Name, &'a Vec<String>),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_map(self.iter().map(|(k, v)| (k.as_str(), v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut a: Attrs = [
            ("mail", v(&["a@x"])),
            ("cn", v(&["A"])),
            ("mail", v(&["b@x"])),
        ]
        .into_iter()
        .collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("mail"), Some(&v(&["b@x"])), "the later value wins");
        assert_eq!(
            a.keys().map(Name::as_str).collect::<Vec<_>>(),
            ["cn", "mail"]
        );
        assert_eq!(a.insert("sn", v(&["Z"])), None);
        assert_eq!(a.insert("cn", v(&["B"])), Some(v(&["A"])));
        a.values_mut("objectclass").push("top".into());
        a.values_mut("objectclass").push("person".into());
        assert_eq!(a.first("objectclass"), Some("top"));
        assert_eq!(a.remove("mail"), Some(v(&["b@x"])));
        assert!(!a.contains_key("mail"));
        assert_eq!(
            a.keys().map(Name::as_str).collect::<Vec<_>>(),
            ["cn", "objectclass", "sn"]
        );
        a.retain(|k, _| k != "sn");
        assert_eq!(
            format!("{a:?}"),
            r#"{"cn": ["B"], "objectclass": ["top", "person"]}"#
        );
    }

    #[test]
    fn merging_joins_the_values_of_a_repeated_name() {
        let a = Attrs::merging([
            (Name::new("mail"), v(&["a@x"])),
            (Name::new("cn"), v(&["A"])),
            (Name::new("mail"), v(&["b@x"])),
        ]);
        assert_eq!(a.len(), 2);
        assert_eq!(a["mail"], v(&["a@x", "b@x"]));
    }

    #[test]
    fn names_are_shared() {
        let a = Name::new("telephonenumber");
        let b = Name::from(String::from("telephonenumber"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "telephonenumber");
    }
}
