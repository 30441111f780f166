//! A person's order and title in their department (`dept_order_list`, `dept_title_list`):
//! DingTalk keeps them per department, so they are written for the one department the
//! person is placed in, once it exists, by an update of their own.

use std::collections::BTreeMap;

use super::{failure, plan::Parent};
use crate::{
    dingtalk::contacts::User,
    sync::{Failure, ObjectKind},
};

/// What the mapping wants in the person's department.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PerDept {
    pub order: Option<i64>,
    pub title: Option<String>,
}

/// Takes the per-department fields out of a person's `fields` (the user write never carries
/// them), checked: the order a whole number, the title at most 200 characters.
pub(super) fn take(
    fields: &mut BTreeMap<String, String>,
    userid: &str,
    key: &str,
) -> Result<PerDept, Failure> {
    let fail = |m: String| failure(ObjectKind::Person, userid, key, "InvalidValue", m);
    let order = match fields
        .remove("dept_order_list")
        .filter(|v| !v.trim().is_empty())
    {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<i64>()
                .map_err(|_| fail(format!("dept_order_list: {v:?} is not a whole number")))?,
        ),
    };
    let title = fields.remove("dept_title_list").filter(|v| !v.is_empty());
    if let Some(t) = &title
        && t.chars().count() > 200
    {
        return Err(fail("dept_title_list: more than 200 characters".into()));
    }
    Ok(PerDept { order, title })
}

/// What differs from DingTalk's user `cur` in department `dept` (all of it for someone new
/// or moving); `None` when nothing does.
pub(super) fn differing(want: PerDept, cur: Option<&User>, dept: &Parent) -> Option<PerDept> {
    let (Some(cur), Parent::Id(id)) = (cur, dept) else {
        return (want != PerDept::default()).then_some(want);
    };
    let order_now = (cur.dept_order_list.iter().flatten())
        .find(|o| o.dept_id == *id)
        .and_then(|o| o.order)
        .or(cur.dept_order);
    let title_now = (cur.dept_position_list.iter().flatten())
        .find(|p| p.dept_id == *id)
        .and_then(|p| p.title.clone())
        .or_else(|| cur.title.clone());
    let out = PerDept {
        order: want.order.filter(|o| order_now != Some(*o)),
        title: want
            .title
            .filter(|t| title_now.as_deref() != Some(t.as_str())),
    };
    (out != PerDept::default()).then_some(out)
}
