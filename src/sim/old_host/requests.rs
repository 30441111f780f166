//! Old-host parameters read into the address book's write requests: each parameter read the
//! way DingTalk reads its type, under the name the write request gives it.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::params::{Params, obj_i64};
use crate::sim::error::{ApiError, api_err};
use crate::sim::state::{DeptWrite, UserWrite};

/// How a parameter is read.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Flag,
    Ids,
    Texts,
}

use Kind::{Flag, Ids, Int, Text, Texts};

/// (parameter, write-request field, kind), in the order DingTalk checks them.
type Fields = &'static [(&'static str, &'static str, Kind)];

const USER_FIELDS: Fields = &[
    ("userid", "userid", Text),
    ("name", "name", Text),
    ("mobile", "mobile", Text),
    ("email", "email", Text),
    ("org_email", "org_email", Text),
    ("job_number", "job_number", Text),
    ("telephone", "telephone", Text),
    ("work_place", "work_place", Text),
    ("remark", "remark", Text),
    ("hired_date", "hired_date", Int),
    ("manager_userid", "manager_userid", Text),
    ("dept_id_list", "departments", Ids),
    ("hide_mobile", "hide_mobile", Flag),
    ("senior_mode", "senior", Flag),
    ("exclusive_account", "exclusive_account", Flag),
    ("exclusive_account_type", "exclusive_account_type", Text),
    ("login_id", "login_id", Text),
];

const DEPT_FIELDS: Fields = &[
    ("name", "name", Text),
    ("parent_id", "parent_id", Int),
    ("source_identifier", "source_identifier", Text),
    ("create_dept_group", "create_dept_group", Flag),
    ("auto_add_user", "auto_add_user", Flag),
    ("hide_dept", "hide_dept", Flag),
    ("outer_dept", "outer_dept", Flag),
    ("dept_manager_userid_list", "manager_userids", Texts),
    ("brief", "brief", Text),
    ("telephone", "telephone", Text),
    ("code", "code", Text),
];

/// Reads `fields` from the parameters into the write request they fill.
fn read<W: DeserializeOwned>(p: &Params, fields: Fields) -> Result<W, ApiError> {
    let mut m = Map::new();
    for &(param, field, kind) in fields {
        let v = match kind {
            Text => p.str(param)?.map(Value::from),
            Int => p.i64(param)?.map(Value::from),
            Flag => p.bool(param)?.map(Value::from),
            Ids => p.id_list(param)?.map(Value::from),
            Texts => p.str_list(param)?.map(Value::from),
        };
        if let Some(v) = v {
            m.insert(field.to_owned(), v);
        }
    }
    // Each field above has the type the table reads it as: this cannot fail.
    serde_json::from_value(Value::Object(m))
        .map_err(|e| api_err(40035, format!("不合法的参数: {e}")))
}

pub fn user_write(p: &Params) -> Result<UserWrite, ApiError> {
    let extension = match p.0.get("extension") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(_) => return Err(api_err(40035, "不合法的参数: extension")),
    };
    let dept_order = p.objects("dept_order_list")?.map(|list| {
        list.iter()
            .filter_map(|o| Some((obj_i64(o, "dept_id")?, obj_i64(o, "order")?)))
            .collect()
    });
    let mut title = p.str("title")?;
    if title.is_none()
        && let Some(list) = p.objects("dept_title_list")?
    {
        title = list
            .first()
            .and_then(|o| o.get("title"))
            .and_then(|t| t.as_str())
            .map(str::to_owned);
    }
    Ok(UserWrite {
        extension,
        dept_order,
        title,
        ..read(p, USER_FIELDS)?
    })
}

pub fn dept_write(p: &Params) -> Result<DeptWrite, ApiError> {
    let order = match p.i64("order") {
        Ok(o) => o,
        Err(_) => return Err(api_err(40011, "不合法的排序值")),
    };
    Ok(DeptWrite {
        order,
        ..read(p, DEPT_FIELDS)?
    })
}
