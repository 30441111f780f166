//! Old-host parameters read into the address book's write requests.

use serde_json::Value;

use super::params::{Params, obj_i64};
use crate::sim::error::{ApiError, api_err};
use crate::sim::state::{DeptWrite, UserWrite};

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
        userid: p.str("userid")?,
        name: p.str("name")?,
        mobile: p.str("mobile")?,
        email: p.str("email")?,
        org_email: p.str("org_email")?,
        title,
        job_number: p.str("job_number")?,
        telephone: p.str("telephone")?,
        work_place: p.str("work_place")?,
        remark: p.str("remark")?,
        extension,
        hired_date: p.i64("hired_date")?,
        manager_userid: p.str("manager_userid")?,
        departments: p.id_list("dept_id_list")?,
        dept_order,
        hide_mobile: p.bool("hide_mobile")?,
        senior: p.bool("senior_mode")?,
        exclusive_account: p.bool("exclusive_account")?,
        exclusive_account_type: p.str("exclusive_account_type")?,
        login_id: p.str("login_id")?,
        ..Default::default()
    })
}

pub fn dept_write(p: &Params) -> Result<DeptWrite, ApiError> {
    let order = match p.i64("order") {
        Ok(o) => o,
        Err(_) => return Err(api_err(40011, "不合法的排序值")),
    };
    Ok(DeptWrite {
        name: p.str("name")?,
        parent_id: p.i64("parent_id")?,
        order,
        source_identifier: p.str("source_identifier")?,
        create_dept_group: p.bool("create_dept_group")?,
        auto_add_user: p.bool("auto_add_user")?,
        hide_dept: p.bool("hide_dept")?,
        manager_userids: p.str_list("dept_manager_userid_list")?,
        brief: p.str("brief")?,
        telephone: p.str("telephone")?,
        code: p.str("code")?,
    })
}
