//! `/topapi/v2/department/*`: listing, reading and writing departments.

use axum::response::Response;
use serde_json::{Value, json};

use super::envelope::{ok_plain, ok_result};
use super::params::Params;
use super::render::render_dept;
use super::requests::dept_write;
use super::scope::{dept_visible, exists, user_visible};
use crate::sim::error::{ApiError, api_err};
use crate::sim::org::{App, ROOT_DEPT};
use crate::sim::state::State;

/// `department/listsub`: the sub-departments of `dept_id` (the root when absent). Hidden
/// departments are listed like the others and listsub carries no `hide_dept`: only
/// `department/get` says whether one is hidden. Whether DingTalk lists hidden departments to
/// an app at all is not documented; listing them is the case a reader must handle.
pub fn list_sub(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.i64("dept_id")?.unwrap_or(ROOT_DEPT);
    let org = st.org();
    dept_visible(org, app, id)?;
    let list: Vec<Value> = org
        .children(id)
        .into_iter()
        .map(|d| {
            let mut v = json!({
                "dept_id": d.id, "name": d.name, "parent_id": d.parent_id,
                "create_dept_group": d.create_dept_group, "auto_add_user": d.auto_add_user,
            });
            if let Some(s) = &d.source_identifier {
                v["source_identifier"] = json!(s);
            }
            v
        })
        .collect();
    Ok(ok_result(Value::Array(list)))
}

pub fn list_sub_ids(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("dept_id")?;
    exists(st.org(), id)?;
    let ids: Vec<i64> = st.org().children(id).iter().map(|d| d.id).collect();
    Ok(ok_result(json!({"dept_id_list": ids})))
}

pub fn get(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("dept_id")?;
    if id < 1 {
        return Err(api_err(40009, "不合法的部门id"));
    }
    dept_visible(st.org(), app, id)?;
    Ok(ok_result(render_dept(st.org(), id)))
}

pub fn parents_of_dept(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("dept_id")?;
    exists(st.org(), id)?;
    Ok(ok_result(json!({"parent_id_list": st.org().ancestry(id)})))
}

pub fn parents_of_user(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let uid = p.req_str("userid")?;
    let org = st.org();
    let person = user_visible(org, app, &uid)?;
    let list: Vec<Value> = person
        .departments
        .iter()
        .map(|d| json!({"parent_dept_id_list": org.ancestry(*d)}))
        .collect();
    Ok(ok_result(json!({"parent_list": list})))
}

pub fn create(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let w = dept_write(p)?;
    if let Some(parent) = w.parent_id
        && st.org().department(parent).is_some()
        && !st.org().dept_in_scope(app, parent)
    {
        return Err(api_err(50004, "部门不在授权范围内"));
    }
    let d = st.create_department(w)?;
    Ok(ok_result(json!({"dept_id": d.id})))
}

pub fn update(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("dept_id")?;
    if id < 1 {
        return Err(api_err(40009, "不合法的部门id"));
    }
    if id != ROOT_DEPT {
        dept_visible(st.org(), app, id)?;
    }
    let mut w = dept_write(p)?;
    // Clearing the heads takes `force_update_fields`; an empty list alone is refused.
    let force = p.str_list("force_update_fields")?.unwrap_or_default();
    let forced = force.iter().any(|f| f == "dept_manager_userid_list");
    match &w.manager_userids {
        Some(m) if m.is_empty() && !forced => {
            return Err(api_err(40031, "不合法的UserID列表"));
        }
        None if forced => w.manager_userids = Some(Vec::new()),
        _ => {}
    }
    st.update_department(id, w)?;
    Ok(ok_plain())
}

pub fn delete(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("dept_id")?;
    if id != ROOT_DEPT && st.org().department(id).is_some() {
        dept_visible(st.org(), app, id)?;
    }
    st.delete_department(id)?;
    Ok(ok_plain())
}
