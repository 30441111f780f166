//! DingTalk's user requests built from a person's mapped fields, and a user's current value
//! of a field to compare with.

use std::collections::BTreeMap;

use crate::{
    dingtalk::{
        contacts::User,
        write::{UserCreate, UserUpdate},
    },
    mapping::outbound::OutboundPerson,
};

/// A user's current value of a mapped field, as DingTalk reported it.
pub(super) fn current_field(u: &User, field: &str) -> Option<String> {
    match field {
        "name" => u.name.clone(),
        "mobile" => u.mobile.clone(),
        "email" => u.email.clone(),
        "org_email" => u.org_email.clone(),
        "title" => u.title.clone(),
        "job_number" => u.job_number.clone(),
        "work_place" => u.work_place.clone(),
        "telephone" => u.telephone.clone(),
        "remark" => u.remark.clone(),
        "manager_userid" => u.manager_userid.clone(),
        "hired_date" => u.hired_date.map(|d| d.to_string()),
        f => f.strip_prefix("extension.").and_then(|k| {
            let ext: serde_json::Value = serde_json::from_str(u.extension.as_deref()?).ok()?;
            ext.get(k).and_then(|v| v.as_str()).map(str::to_string)
        }),
    }
}

/// The `extension.<key>` fields with a value, as DingTalk's `extension` object.
fn extension_of(fields: &BTreeMap<String, String>) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| {
            k.strip_prefix("extension.")
                .map(|key| (key.to_string(), serde_json::Value::String(v.clone())))
        })
        .collect()
}

/// Builds the create request (validated later, at apply, with the dept id known).
pub(super) fn user_create(p: &OutboundPerson, dept: i64) -> UserCreate {
    let get = |f: &str| p.fields.get(f).filter(|v| !v.is_empty()).cloned();
    let ext = extension_of(&p.fields);
    UserCreate {
        userid: Some(p.userid.clone()),
        name: get("name").unwrap_or_default(),
        mobile: get("mobile"),
        dept_id_list: vec![dept],
        email: get("email"),
        org_email: get("org_email"),
        title: get("title"),
        job_number: get("job_number"),
        work_place: get("work_place"),
        telephone: get("telephone"),
        remark: get("remark"),
        extension: (!ext.is_empty()).then_some(ext),
        hired_date: get("hired_date").and_then(|v| v.parse().ok()),
        manager_userid: get("manager_userid"),
        ..Default::default()
    }
}

/// The update request for `fields`. `current` is DingTalk's `extension` as read: the mapped
/// keys are merged into it and the whole object written (read-merge-write), so keys the
/// mapping does not name survive whatever DingTalk's update mode does with a partial one.
pub(super) fn user_update(
    userid: &str,
    fields: &BTreeMap<String, String>,
    depts: Option<Vec<i64>>,
    current: Option<&str>,
) -> UserUpdate {
    let get = |f: &str| fields.get(f).cloned();
    let mut ext = extension_of(fields);
    if !ext.is_empty()
        && let Some(serde_json::Value::Object(mut merged)) =
            current.and_then(|c| serde_json::from_str(c).ok())
    {
        merged.append(&mut ext);
        ext = merged;
    }
    UserUpdate {
        userid: userid.to_string(),
        name: get("name"),
        email: get("email"),
        org_email: get("org_email"),
        title: get("title"),
        job_number: get("job_number"),
        work_place: get("work_place"),
        telephone: get("telephone"),
        remark: get("remark"),
        extension: (!ext.is_empty()).then_some(ext),
        hired_date: get("hired_date").and_then(|v| v.parse().ok()),
        manager_userid: get("manager_userid").filter(|m| !m.is_empty()),
        // An empty manager is "none": DingTalk clears it only when told to.
        clear_manager: fields.get("manager_userid").is_some_and(String::is_empty),
        dept_id_list: depts,
        ..Default::default()
    }
}

/// A `hired_date` as DingTalk takes it, milliseconds since the epoch: given so, or as a
/// date (`2024-03-01`), taken as midnight in China (UTC+8), where DingTalk keeps its dates.
pub(super) fn hired_ms(v: &str) -> Result<String, String> {
    let v = v.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return match ms >= 1 {
            true => Ok(ms.to_string()),
            false => Err(format!("hired_date: {ms} is before 1970")),
        };
    }
    let date: jiff::civil::Date = v.parse().map_err(|_| {
        format!("hired_date: {v:?} is neither a date (YYYY-MM-DD) nor milliseconds since 1970")
    })?;
    let china = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
    let at = date
        .to_zoned(china)
        .map_err(|e| format!("hired_date: {v:?}: {e}"))?;
    Ok(at.timestamp().as_millisecond().to_string())
}
