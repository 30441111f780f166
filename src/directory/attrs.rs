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

/// Attribute values by name, sorted by name, each name once. All values live in one text
/// buffer: an entry is three allocations however many attributes it has.
#[derive(Clone, Default)]
pub struct Attrs {
    /// Each name with the range of its values in `spans`.
    names: Vec<(Name, u32, u32)>,
    /// Each value's range in `text`.
    spans: Vec<(u32, u32)>,
    text: String,
    /// Bytes of `text` no value uses any more (replaced or removed values).
    garbage: usize,
}

/// The values of one attribute.
#[derive(Clone)]
pub struct Values<'a> {
    text: &'a str,
    spans: std::slice::Iter<'a, (u32, u32)>,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let &(a, b) = self.spans.next()?;
        Some(&self.text[a as usize..b as usize])
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
    /// Constant time: a read looks up single values of groups with many thousands.
    fn nth(&mut self, n: usize) -> Option<&'a str> {
        let &(a, b) = self.spans.nth(n)?;
        Some(&self.text[a as usize..b as usize])
    }
}

impl ExactSizeIterator for Values<'_> {}

impl DoubleEndedIterator for Values<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let &(a, b) = self.spans.next_back()?;
        Some(&self.text[a as usize..b as usize])
    }
}

impl<'a> Values<'a> {
    /// No values (an absent attribute read as empty).
    pub fn empty() -> Self {
        Values {
            text: "",
            spans: [].iter(),
        }
    }
    pub fn first(&self) -> Option<&'a str> {
        self.clone().next()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn contains(&self, value: &str) -> bool {
        self.clone().any(|v| v == value)
    }
    pub fn to_vec(&self) -> Vec<String> {
        self.clone().map(str::to_owned).collect()
    }
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Values<'_> {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.clone().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Values<'_> {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Values<'_> {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl Attrs {
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|(k, _, _)| k.as_str().cmp(key))
    }

    fn values_at(&self, i: usize) -> Values<'_> {
        let (_, a, b) = self.names[i];
        Values {
            text: &self.text,
            spans: self.spans[a as usize..b as usize].iter(),
        }
    }

    /// Append values to the buffers; their range in `spans`. Values past 4 GiB of text (no
    /// directory entry comes near) are left out rather than cut.
    fn push_values<S: AsRef<str>>(&mut self, values: &[S]) -> (u32, u32) {
        let first = self.spans.len();
        for v in values {
            let v = v.as_ref();
            let (Ok(a), Ok(b)) = (
                u32::try_from(self.text.len()),
                u32::try_from(self.text.len() + v.len()),
            ) else {
                continue;
            };
            self.text.push_str(v);
            self.spans.push((a, b));
        }
        let last = self.spans.len();
        (
            u32::try_from(first).unwrap_or(u32::MAX),
            u32::try_from(last).unwrap_or(u32::MAX),
        )
    }

    fn forget(&mut self, i: usize) {
        let garbage: usize = self.values_at(i).map(str::len).sum();
        self.garbage += garbage;
    }

    pub fn get(&self, key: &str) -> Option<Values<'_>> {
        self.position(key).ok().map(|i| self.values_at(i))
    }

    /// An attribute's values, owned.
    pub fn values_of(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| v.to_vec())
    }

    /// The first value of an attribute.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.get(key)?.first()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Set an attribute's values; returns the values it had.
    pub fn insert(&mut self, key: impl Into<Name>, values: Vec<String>) -> Option<Vec<String>> {
        let key = key.into();
        let (a, b) = self.push_values(&values);
        match self.position(&key) {
            Ok(i) => {
                let old = self.values_at(i).to_vec();
                self.forget(i);
                self.names[i] = (key, a, b);
                Some(old)
            }
            Err(i) => {
                self.names.insert(i, (key, a, b));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Vec<String>> {
        let i = self.position(key).ok()?;
        let old = self.values_at(i).to_vec();
        self.forget(i);
        self.names.remove(i);
        Some(old)
    }

    /// Change an attribute's values in place (added, empty, when absent).
    pub fn update(&mut self, key: &str, change: impl FnOnce(&mut Vec<String>)) {
        let mut values = self.remove(key).unwrap_or_default();
        change(&mut values);
        self.insert(key, values);
    }

    /// Drop the text of replaced and removed values and spare capacity: for entries that are
    /// kept (a read of 100,000 of them) after being edited.
    pub fn shrink(&mut self) {
        if self.garbage > 0 {
            let mut fresh = Attrs {
                names: Vec::with_capacity(self.names.len()),
                spans: Vec::with_capacity(self.spans.len()),
                text: String::with_capacity(self.text.len() - self.garbage),
                garbage: 0,
            };
            for i in 0..self.names.len() {
                let values: Vec<&str> = self.values_at(i).collect();
                let (a, b) = fresh.push_values(&values);
                fresh.names.push((self.names[i].0.clone(), a, b));
            }
            *self = fresh;
        }
        self.names.shrink_to_fit();
        self.spans.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Name, Values<'_>)> {
        (0..self.names.len()).map(|i| (&self.names[i].0, self.values_at(i)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Name> {
        self.names.iter().map(|(k, _, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = Values<'_>> {
        (0..self.names.len()).map(|i| self.values_at(i))
    }

    /// Keep the attributes `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&Name, Values<'_>) -> bool) {
        let drop: Vec<usize> = (0..self.names.len())
            .filter(|&i| !keep(&self.names[i].0, self.values_at(i)))
            .collect();
        for i in drop.into_iter().rev() {
            self.forget(i);
            self.names.remove(i);
        }
    }

    /// Build from pairs sorted by name, each name once.
    fn from_sorted(pairs: Vec<(Name, Vec<String>)>) -> Self {
        let spans: usize = pairs.iter().map(|(_, v)| v.len()).sum();
        let text: usize = pairs.iter().flat_map(|(_, v)| v).map(String::len).sum();
        let mut out = Attrs {
            names: Vec::with_capacity(pairs.len()),
            spans: Vec::with_capacity(spans),
            text: String::with_capacity(text),
            garbage: 0,
        };
        for (k, v) in pairs {
            let (a, b) = out.push_values(&v);
            out.names.push((k, a, b));
        }
        out
    }

    /// Build from pairs whose names may repeat (an LDAP entry's attribute names in two
    /// spellings): the values of a repeated name are joined.
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
        Self::from_sorted(v)
    }
}

impl PartialEq for Attrs {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((ka, va), (kb, vb))| ka == kb && va.eq(vb))
    }
}

impl Eq for Attrs {}

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
        Self::from_sorted(out)
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
        let pairs: Vec<(Name, Vec<String>)> =
            self.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect();
        pairs.into_iter()
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a Name, Values<'a>);
    type IntoIter = Box<dyn Iterator<Item = (&'a Name, Values<'a>)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_map(self.iter().map(|(k, v)| (k.as_str(), v.to_vec())))
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
        assert_eq!(a.get("mail").unwrap(), v(&["b@x"]), "the later value wins");
        assert_eq!(
            a.keys().map(Name::as_str).collect::<Vec<_>>(),
            ["cn", "mail"]
        );
        assert_eq!(a.insert("sn", v(&["Z"])), None);
        assert_eq!(a.insert("cn", v(&["B"])), Some(v(&["A"])));
        a.update("objectclass", |v| v.push("top".into()));
        a.update("objectclass", |v| v.push("person".into()));
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
        let before = a.clone();
        a.shrink();
        assert_eq!(a, before, "shrinking keeps every value");
        assert_eq!(a.text, "Btopperson", "and only the values in use");
        let pairs: Vec<(Name, Vec<String>)> = a.into_iter().collect();
        assert_eq!(pairs[1].1, v(&["top", "person"]));
    }

    #[test]
    fn merging_joins_the_values_of_a_repeated_name() {
        let a = Attrs::merging([
            (Name::new("mail"), v(&["a@x"])),
            (Name::new("cn"), v(&["A"])),
            (Name::new("mail"), v(&["b@x"])),
        ]);
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("mail").unwrap(), v(&["a@x", "b@x"]));
        assert_eq!(
            a.get("mail").unwrap().rev().collect::<Vec<_>>(),
            ["b@x", "a@x"]
        );
    }

    #[test]
    fn equality_ignores_how_the_values_were_stored() {
        let mut a: Attrs = [("cn", v(&["x"])), ("sn", v(&["y"]))].into();
        a.insert("cn", v(&["A"]));
        let b: Attrs = [("cn", v(&["A"])), ("sn", v(&["y"]))].into();
        assert_eq!(a, b);
        assert_ne!(a, Attrs::from([("cn", v(&["A"]))]));
    }

    #[test]
    fn names_are_shared() {
        let a = Name::new("telephonenumber");
        let b = Name::from(String::from("telephonenumber"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "telephonenumber");
    }
}
