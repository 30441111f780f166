//! Address-book events: the [`Change`] a write reports, and the [`Event`] DingTalk announces
//! for it, in each channel's payload shape.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What one address-book write changed, before it gets an id, a corp and a birth time.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub event_type: &'static str,
    pub user_ids: Vec<String>,
    pub dept_ids: Vec<i64>,
    pub diff: Option<Value>,
}

impl Change {
    pub fn user(event_type: &'static str, userid: &str) -> Self {
        Self {
            event_type,
            user_ids: vec![userid.to_owned()],
            dept_ids: Vec::new(),
            diff: None,
        }
    }

    pub fn dept(event_type: &'static str, id: i64) -> Self {
        Self {
            event_type,
            user_ids: Vec::new(),
            dept_ids: vec![id],
            diff: None,
        }
    }
}

/// One address-book change, as DingTalk announces it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub corp_id: String,
    pub born_ms: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dept_ids: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Value>,
    /// Stream `data` of an event that is not an address-book change (a suite ticket, an
    /// authorisation), sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Event {
    pub fn new(change: Change, corp_id: &str, born_ms: i64) -> Self {
        Self {
            event_id: uuid::Uuid::new_v4().simple().to_string(),
            event_type: change.event_type.to_owned(),
            corp_id: corp_id.to_owned(),
            born_ms,
            user_ids: change.user_ids,
            dept_ids: change.dept_ids,
            diff: change.diff,
            data: None,
        }
    }

    /// Stream `data`: lowerCamelCase business fields.
    pub fn stream_data(&self) -> Value {
        if let Some(d) = &self.data {
            return d.clone();
        }
        let mut m = serde_json::Map::new();
        if !self.user_ids.is_empty() {
            if self.event_type != "user_active_org" {
                m.insert("timeStamp".into(), json!(self.born_ms.to_string()));
            }
            m.insert("userId".into(), json!(self.user_ids));
        }
        if !self.dept_ids.is_empty() {
            m.insert("deptId".into(), json!(self.dept_ids));
        }
        if let Some(d) = &self.diff {
            m.insert("diffInfo".into(), d.clone());
        }
        Value::Object(m)
    }

    /// HTTP push configured in the developer console (new style).
    pub fn console_payload(&self) -> Value {
        let mut v = self.stream_data();
        let m = v.as_object_mut().expect("object");
        m.insert("EventType".into(), json!(self.event_type));
        m.insert("EventTime".into(), json!(self.born_ms));
        m.insert("CorpId".into(), json!(self.corp_id));
        m.insert("BizId".into(), json!(self.born_ms.to_string()));
        m.insert("eventId".into(), json!(self.event_id));
        v
    }

    /// Legacy `register_call_back` push: PascalCase keys.
    pub fn legacy_payload(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("EventType".into(), json!(self.event_type));
        m.insert("TimeStamp".into(), json!(self.born_ms));
        if !self.user_ids.is_empty() {
            m.insert("UserId".into(), json!(self.user_ids));
        }
        if !self.dept_ids.is_empty() {
            m.insert("DeptId".into(), json!(self.dept_ids));
        }
        if let Some(d) = &self.diff {
            m.insert("DiffInfo".into(), d.clone());
        }
        m.insert("CorpId".into(), json!(self.corp_id));
        Value::Object(m)
    }
}
