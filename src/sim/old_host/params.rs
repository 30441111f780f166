//! Request parameters of the old host, read the way DingTalk reads them: query string plus a
//! JSON **or** form-urlencoded body, every scalar possibly a string (`"dept_id":"1"`,
//! `"hide_mobile":"true"`), lists as JSON arrays, JSON text or comma strings.

use serde_json::{Map, Value};

use crate::sim::error::{ApiError, api_err};

/// Merged parameters (body wins over query).
#[derive(Debug, Default)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// Parses the query and the body (by content type, or by sniffing `{`).
    pub fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut m = Map::new();
        if let Some(q) = query {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                m.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        let trimmed = body.iter().position(|b| !b.is_ascii_whitespace());
        if let Some(start) = trimmed {
            let looks_json = body[start] == b'{';
            if ct.contains("json") || (looks_json && !ct.contains("x-www-form-urlencoded")) {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|_| api_err(40035, "不合法的参数: 请求体不是合法的JSON"))?;
                let Value::Object(obj) = v else {
                    return Err(api_err(40035, "不合法的参数: 请求体必须是JSON对象"));
                };
                m.extend(obj);
            } else {
                for (k, v) in url::form_urlencoded::parse(body) {
                    m.insert(k.into_owned(), Value::String(v.into_owned()));
                }
            }
        }
        Ok(Self(m))
    }

    pub fn has(&self, k: &str) -> bool {
        self.0.get(k).is_some_and(|v| !v.is_null())
    }

    pub fn str(&self, k: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(bad(k)),
        }
    }

    pub fn req_str(&self, k: &str) -> Result<String, ApiError> {
        self.str(k)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing(k))
    }

    pub fn i64(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| bad(k)),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(k)),
            Some(_) => Err(bad(k)),
        }
    }

    pub fn req_i64(&self, k: &str) -> Result<i64, ApiError> {
        self.i64(k)?.ok_or_else(|| missing(k))
    }

    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                "" => Ok(None),
                _ => Err(bad(k)),
            },
            Some(Value::Number(n)) => Ok(Some(n.as_i64() != Some(0))),
            Some(_) => Err(bad(k)),
        }
    }

    /// A list: JSON array, JSON array text, or comma-separated string.
    pub fn list(&self, k: &str) -> Result<Option<Vec<Value>>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.starts_with('[') {
                    match serde_json::from_str::<Value>(t) {
                        Ok(Value::Array(a)) => Ok(Some(a)),
                        _ => Err(bad(k)),
                    }
                } else if t.is_empty() {
                    Ok(Some(Vec::new()))
                } else {
                    Ok(Some(
                        t.split([',', '，'])
                            .map(|x| Value::String(x.trim().to_owned()))
                            .collect(),
                    ))
                }
            }
            Some(Value::Number(n)) => Ok(Some(vec![Value::Number(n.clone())])),
            Some(_) => Err(bad(k)),
        }
    }

    /// A list whose every item `item` accepts (the first it refuses makes the parameter bad).
    fn list_of<T>(
        &self,
        k: &str,
        item: impl Fn(Value) -> Option<T>,
    ) -> Result<Option<Vec<T>>, ApiError> {
        let Some(items) = self.list(k)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .map(|v| item(v).ok_or_else(|| bad(k)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn id_list(&self, k: &str) -> Result<Option<Vec<i64>>, ApiError> {
        self.list_of(k, |v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    pub fn str_list(&self, k: &str) -> Result<Option<Vec<String>>, ApiError> {
        self.list_of(k, |v| match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }

    /// A list of objects (`dept_order_list`), possibly sent as JSON text.
    pub fn objects(&self, k: &str) -> Result<Option<Vec<Map<String, Value>>>, ApiError> {
        self.list_of(k, |v| match v {
            Value::Object(o) => Some(o),
            _ => None,
        })
    }
}

/// Reads an integer that may be sent as a string from an object.
pub fn obj_i64(o: &Map<String, Value>, k: &str) -> Option<i64> {
    match o.get(k)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bad(k: &str) -> ApiError {
    api_err(40035, format!("不合法的参数: {k}"))
}

fn missing(k: &str) -> ApiError {
    api_err(40035, format!("缺少参数 {k}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_form_and_string_scalars() {
        let p = Params::parse(
            Some("access_token=t"),
            Some("application/json;charset=utf-8"),
            br#"{"dept_id":"12","size":100,"hide":"true","ids":"1,2","ids2":"[3,4]","o":[{"dept_id":"5","order":1}]}"#,
        )
        .unwrap();
        assert_eq!(p.req_i64("dept_id").unwrap(), 12);
        assert_eq!(p.i64("size").unwrap(), Some(100));
        assert_eq!(p.bool("hide").unwrap(), Some(true));
        assert_eq!(p.id_list("ids").unwrap(), Some(vec![1, 2]));
        assert_eq!(p.id_list("ids2").unwrap(), Some(vec![3, 4]));
        assert_eq!(p.str("access_token").unwrap().as_deref(), Some("t"));
        assert_eq!(
            obj_i64(&p.objects("o").unwrap().unwrap()[0], "dept_id"),
            Some(5)
        );
        let f = Params::parse(
            None,
            Some("application/x-www-form-urlencoded"),
            b"dept_id=7&access_token=x",
        )
        .unwrap();
        assert_eq!(f.req_i64("dept_id").unwrap(), 7);
        assert_eq!(f.req_i64("nope").unwrap_err().errcode, 40035);
        assert_eq!(f.bool("access_token").unwrap_err().errcode, 40035);
        assert!(Params::parse(None, Some("application/json"), b"{nope").is_err());
    }
}
