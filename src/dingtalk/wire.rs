//! Serde helpers for DingTalk's wire values: the docs render numbers and booleans as strings
//! and lists as comma strings, the SDKs send real JSON types; accept both.

use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;

fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    to_i64(&v).ok_or_else(|| D::Error::custom(format!("expected an integer, got {v}")))
}

pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => to_i64(&v)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected an integer, got {v}"))),
    }
}

pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) => match s.trim() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            "" => Ok(None),
            other => Err(D::Error::custom(format!(
                "expected a boolean, got {other:?}"
            ))),
        },
        Some(Value::Number(n)) => Ok(Some(n.as_i64().unwrap_or(0) != 0)),
        Some(v) => Err(D::Error::custom(format!("expected a boolean, got {v}"))),
    }
}

/// `[1,2]`, `["1","2"]` or `"1,2"`.
pub fn opt_i64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| to_i64(i).ok_or_else(|| D::Error::custom(format!("not an id: {i}"))))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse()
                    .map_err(|_| D::Error::custom(format!("not an id: {p:?}")))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(v) => to_i64(&v)
            .map(|i| Some(vec![i]))
            .ok_or_else(|| D::Error::custom(format!("expected a list of ids, got {v}"))),
    }
}

/// `["a","b"]` or `"a,b"`.
pub fn opt_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(
            items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        )),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )),
        Some(v) => Err(D::Error::custom(format!("expected a list, got {v}"))),
    }
}
