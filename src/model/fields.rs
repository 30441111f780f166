//! A record's fields, stored compactly: one text buffer and a sorted index of spans.
//!
//! A scope of 100,000 people holds some 25 fields each; as a map of JSON values that was
//! roughly 2.8 KB a person (a node, a key and a value allocation per field), the largest
//! share of a run's memory. Here a record is two allocations behind an `Arc`, so cloning a
//! record or handing its fields to a template costs nothing, and a template looks up only the
//! fields it names instead of converting all of them first.

use std::{collections::BTreeMap, fmt, sync::Arc};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value as JValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

/// How a value's text is read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    False,
    True,
    /// A JSON number, as its text.
    Number,
    Text,
    /// An array or object, as JSON text (`dept_id_list`, `dept_names`, `extension`).
    Json,
}

/// Where one field lives in the buffer: its name at `start`, then its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    start: u32,
    key_len: u16,
    kind: Kind,
    len: u32,
}

#[derive(PartialEq, Default)]
struct Inner {
    buf: Box<str>,
    /// Sorted by field name.
    slots: Box<[Slot]>,
}

/// Field values by name, as DingTalk (or the outbound source) names them. Cheap to clone.
#[derive(Clone, PartialEq, Default)]
pub struct Fields(Arc<Inner>);

impl Inner {
    fn key(&self, s: &Slot) -> &str {
        &self.buf[s.start as usize..s.start as usize + s.key_len as usize]
    }

    fn raw(&self, s: &Slot) -> &str {
        let at = s.start as usize + s.key_len as usize;
        &self.buf[at..at + s.len as usize]
    }

    fn find(&self, key: &str) -> Option<&Slot> {
        self.slots
            .binary_search_by(|s| self.key(s).cmp(key))
            .ok()
            .map(|i| &self.slots[i])
    }

    fn json(&self, s: &Slot) -> Value {
        let raw = self.raw(s);
        match s.kind {
            Kind::Null => Value::Null,
            Kind::False => Value::Bool(false),
            Kind::True => Value::Bool(true),
            Kind::Text => Value::String(raw.to_owned()),
            Kind::Number | Kind::Json => serde_json::from_str(raw).unwrap_or(Value::Null),
        }
    }

    fn jinja(&self, s: &Slot) -> JValue {
        let raw = self.raw(s);
        match s.kind {
            Kind::Null => JValue::from(()),
            Kind::False => JValue::from(false),
            Kind::True => JValue::from(true),
            Kind::Text => JValue::from(raw),
            Kind::Number => raw
                .parse::<i64>()
                .map(JValue::from)
                .or_else(|_| raw.parse::<u64>().map(JValue::from))
                .or_else(|_| raw.parse::<f64>().map(JValue::from))
                .unwrap_or_default(),
            Kind::Json => JValue::from_serialize(self.json(s)),
        }
    }
}

impl Fields {
    /// A field's value, as JSON.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.0.find(key).map(|s| self.0.json(s))
    }

    /// A text or number field's text, untrimmed; `None` for anything else or when absent.
    pub fn text(&self, key: &str) -> Option<&str> {
        let s = self.0.find(key)?;
        matches!(s.kind, Kind::Text | Kind::Number).then(|| self.0.raw(s))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.find(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.slots.is_empty()
    }

    /// Every field, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Value)> + '_ {
        self.0.slots.iter().map(|s| (self.0.key(s), self.0.json(s)))
    }

    /// Set one field (rebuilds the record: for edits, not for bulk loading).
    pub fn insert(&mut self, key: &str, value: Value) {
        *self = self.with(&[(key, value)]);
    }

    /// The fields as a template context whose lookups read the buffer directly.
    pub fn to_jinja(&self) -> JValue {
        JValue::from_dyn_object(self.0.clone())
    }
}

/// A value as stored: its kind and its text.
fn encode(v: &Value) -> (Kind, std::borrow::Cow<'_, str>) {
    match v {
        Value::Null => (Kind::Null, "".into()),
        Value::Bool(false) => (Kind::False, "".into()),
        Value::Bool(true) => (Kind::True, "".into()),
        Value::Number(n) => (Kind::Number, n.to_string().into()),
        Value::String(s) => (Kind::Text, s.as_str().into()),
        other => (Kind::Json, other.to_string().into()),
    }
}

/// Writes fields in name order into a new record.
#[derive(Default)]
struct Builder {
    buf: String,
    slots: Vec<Slot>,
}

impl Builder {
    fn with_capacity(bytes: usize, fields: usize) -> Self {
        Self {
            buf: String::with_capacity(bytes),
            slots: Vec::with_capacity(fields),
        }
    }

    fn push(&mut self, key: &str, kind: Kind, text: &str) {
        // Field names are short and a record is one DingTalk answer; anything past these
        // bounds is not a field of a real record and is left out rather than cut.
        let (Ok(start), Ok(key_len), Ok(len), Ok(_)) = (
            u32::try_from(self.buf.len()),
            u16::try_from(key.len()),
            u32::try_from(text.len()),
            u32::try_from(self.buf.len() + key.len() + text.len()),
        ) else {
            return;
        };
        self.buf.push_str(key);
        self.buf.push_str(text);
        self.slots.push(Slot {
            start,
            key_len,
            kind,
            len,
        });
    }

    fn finish(self) -> Fields {
        Fields(Arc::new(Inner {
            buf: self.buf.into_boxed_str(),
            slots: self.slots.into_boxed_slice(),
        }))
    }
}

impl Fields {
    /// These fields with `updates` set (added or replaced): one pass that copies the other
    /// fields' text as it is, for setting a few fields on many records.
    pub fn with(&self, updates: &[(&str, Value)]) -> Fields {
        let mut ups: Vec<(&str, Kind, std::borrow::Cow<'_, str>)> = updates
            .iter()
            .map(|(k, v)| {
                let (kind, text) = encode(v);
                (*k, kind, text)
            })
            .collect();
        ups.sort_by(|a, b| a.0.cmp(b.0));
        ups.dedup_by(|later, kept| later.0 == kept.0);
        let extra: usize = ups.iter().map(|u| u.0.len() + u.2.len()).sum();
        let mut b = Builder::with_capacity(self.0.buf.len() + extra, self.len() + ups.len());
        let mut ups = ups.into_iter().peekable();
        for s in self.0.slots.iter() {
            let key = self.0.key(s);
            while let Some(u) = ups.next_if(|u| u.0 < key) {
                b.push(u.0, u.1, &u.2);
            }
            match ups.next_if(|u| u.0 == key) {
                Some(u) => b.push(u.0, u.1, &u.2),
                None => b.push(key, s.kind, self.0.raw(s)),
            }
        }
        for u in ups {
            b.push(u.0, u.1, &u.2);
        }
        b.finish()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Fields {
    /// Later values of a repeated name win, as in a map.
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut pairs: Vec<(K, Value)> = iter.into_iter().collect();
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut b = Builder::with_capacity(0, pairs.len());
        for (i, (k, v)) in pairs.iter().enumerate() {
            let key = k.as_ref();
            if pairs.get(i + 1).is_some_and(|n| n.0.as_ref() == key) {
                continue;
            }
            let (kind, text) = encode(v);
            b.push(key, kind, &text);
        }
        b.finish()
    }
}

impl From<BTreeMap<String, Value>> for Fields {
    fn from(map: BTreeMap<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.slots.iter().map(|s| (self.key(s), self.json(s))))
            .finish()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        BTreeMap::<String, Value>::deserialize(de).map(Into::into)
    }
}

impl Object for Inner {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        self.find(key.as_str()?).map(|s| self.jinja(s))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.slots
                .iter()
                .map(|s| JValue::from(self.key(s)))
                .collect(),
        )
    }
}

/// A person's custom fields (`extension`) as templates read them: a map of text by key.
///
/// DingTalk sends them as a JSON object inside a string (`"{\"工号\":\"A1\"}"`); decoded once
/// here, when the person enters the model, so `{{ extension.工号 }}` finds the value. A value
/// that is not text becomes its JSON text (`3` → `"3"`), so every key renders as written. Text
/// that is not a JSON object gives an empty map and a warning naming the person, never the
/// text (custom fields often hold personal data); the person is synced without them.
pub fn extension_map(userid: &str, value: Value) -> Value {
    let decoded = match value {
        Value::String(s) if s.trim().is_empty() => Ok(serde_json::Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(format!(
                "a JSON value of {} characters that is not an object",
                s.chars().count()
            )),
            Err(e) => Err(format!(
                "{} characters of text that is not JSON ({e})",
                s.chars().count()
            )),
        },
        // A source that already decoded it (a test, an outbound read).
        Value::Object(m) => Ok(m),
        Value::Null => Ok(serde_json::Map::new()),
        other => Err(format!("a JSON {} instead of an object", kind_of(&other))),
    };
    let map = decoded.unwrap_or_else(|why| {
        tracing::warn!(
            userid,
            "custom fields (extension) of {userid} ignored: DingTalk sent {why}; templates see none"
        );
        serde_json::Map::new()
    });
    Value::Object(
        map.into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => (k, Value::String(s)),
                other => (k, Value::String(other.to_string())),
            })
            .collect(),
    )
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Fields {
        serde_json::from_value(json!({
            "name": "张伟",
            "mobile": "13800000000",
            "hired_date": 1_600_000_000_000_i64,
            "ratio": 0.5,
            "active": true,
            "admin": false,
            "remark": null,
            "dept_id_list": [1, 2],
            "extension": {"工号": "A1"},
            "title": "",
        }))
        .unwrap()
    }

    #[test]
    fn values_read_back_as_they_were_given() {
        let f = sample();
        assert_eq!(f.len(), 10);
        assert_eq!(f.get("name"), Some(json!("张伟")));
        assert_eq!(f.get("hired_date"), Some(json!(1_600_000_000_000_i64)));
        assert_eq!(f.get("ratio"), Some(json!(0.5)));
        assert_eq!(f.get("active"), Some(json!(true)));
        assert_eq!(f.get("admin"), Some(json!(false)));
        assert_eq!(f.get("remark"), Some(Value::Null));
        assert_eq!(f.get("dept_id_list"), Some(json!([1, 2])));
        assert_eq!(f.get("extension"), Some(json!({"工号": "A1"})));
        assert_eq!(f.get("title"), Some(json!("")));
        assert_eq!(f.get("email"), None);
        assert_eq!(f.text("hired_date"), Some("1600000000000"));
        assert_eq!(f.text("active"), None);
        let back: Value = serde_json::to_value(&f).unwrap();
        assert_eq!(serde_json::from_value::<Fields>(back).unwrap(), f);
    }

    #[test]
    fn later_values_win_and_insert_replaces() {
        let mut f: Fields = [("a", json!(1)), ("b", json!("x")), ("a", json!(2))]
            .into_iter()
            .collect();
        assert_eq!(f.get("a"), Some(json!(2)));
        assert_eq!(f.len(), 2);
        let shared = f.clone();
        f.insert("b", json!("y"));
        f.insert("c", json!(null));
        assert_eq!(f.get("b"), Some(json!("y")));
        assert_eq!(f.len(), 3);
        assert_eq!(
            shared.get("b"),
            Some(json!("x")),
            "a clone keeps its values"
        );
    }

    #[test]
    fn with_sets_fields_and_keeps_the_others_as_they_were() {
        let f = sample();
        let g = f.with(&[
            ("main_dept_id", json!("7")),
            ("active", json!(false)),
            ("dept_id_list", json!([1, 2, 7])),
            ("zz", json!(null)),
        ]);
        let mut want: BTreeMap<String, Value> = f.iter().map(|(k, v)| (k.to_owned(), v)).collect();
        want.insert("main_dept_id".into(), json!("7"));
        want.insert("active".into(), json!(false));
        want.insert("dept_id_list".into(), json!([1, 2, 7]));
        want.insert("zz".into(), json!(null));
        assert_eq!(g, Fields::from(want));
        assert_eq!(
            f.get("active"),
            Some(json!(true)),
            "the original is unchanged"
        );
    }

    #[test]
    fn templates_see_the_same_values_as_from_a_map() {
        let f = sample();
        let env = minijinja::Environment::new();
        let tpl = "{{ name }}|{{ mobile[-4:] }}|{{ hired_date + 1 }}|{{ active }}|{{ remark is none }}|\
                   {{ dept_id_list | join(',') }}|{{ extension['工号'] }}|{{ email is undefined }}|\
                   {{ title | default('-', true) }}";
        let lazy = env.render_str(tpl, f.to_jinja()).unwrap();
        let map: BTreeMap<String, Value> = f.iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let eager = env.render_str(tpl, JValue::from_serialize(&map)).unwrap();
        assert_eq!(lazy, eager);
        assert_eq!(lazy, "张伟|0000|1600000000001|True|True|1,2|A1|True|-");
    }

    #[test]
    fn custom_fields_become_a_map_of_text() {
        let m = extension_map(
            "u1",
            json!("{\"工号\":\"A1\",\"desk no\":\"3F\",\"floor\":3,\"vip\":true,\"x\":null}"),
        );
        assert_eq!(
            m,
            json!({"工号": "A1", "desk no": "3F", "floor": "3", "vip": "true"})
        );
        assert_eq!(extension_map("u1", json!({"a": 1})), json!({"a": "1"}));
        assert_eq!(extension_map("u1", json!("")), json!({}));
    }

    #[test]
    fn malformed_custom_fields_leave_an_empty_map() {
        for bad in [
            json!("{not json"),
            json!("[1,2]"),
            json!("\"text\""),
            json!(7),
        ] {
            assert_eq!(extension_map("u1", bad.clone()), json!({}), "{bad}");
        }
    }
}
