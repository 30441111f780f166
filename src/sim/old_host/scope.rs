//! What an app may see: departments and people inside its contact scope, and the scope itself
//! as `/auth/scopes` reports it.

use axum::response::Response;
use serde_json::json;

use super::envelope::{reply, request_id};
use super::params::Params;
use crate::sim::error::{ApiError, api_err};
use crate::sim::org::{self, App, Org, Person, ROOT_DEPT};
use crate::sim::state::State;

/// A department id that exists (40009 for ids below 1, 60003 for unknown ones).
pub fn exists(org: &Org, id: i64) -> Result<(), ApiError> {
    if id < 1 {
        return Err(api_err(40009, "不合法的部门id"));
    }
    org.department(id)
        .map(|_| ())
        .ok_or_else(|| api_err(60003, "部门不存在"))
}

pub fn dept_visible(org: &Org, app: &App, id: i64) -> Result<(), ApiError> {
    exists(org, id)?;
    if !org.dept_in_scope(app, id) {
        return Err(api_err(50004, "部门不在授权范围内"));
    }
    Ok(())
}

pub fn user_visible<'a>(org: &'a Org, app: &App, userid: &str) -> Result<&'a Person, ApiError> {
    let p = org
        .person(userid)
        .ok_or_else(|| api_err(60121, "找不到该用户"))?;
    if !org.person_in_scope(app, p) {
        return Err(api_err(50002, "员工不在授权范围内"));
    }
    Ok(p)
}

/// `/auth/scopes`: the departments and people the app sees, and the user fields it may read.
/// An app scoped to the whole enterprise gets `authed_dept: [1]` and an empty `authed_user`;
/// one scoped to departments and people gets exactly those, and `listsub`, `user/list` and
/// `user/get` refuse what lies outside them (50004, 50002).
pub fn auth_scopes(_: &mut State, app: &App, _: &Params) -> Result<Response, ApiError> {
    let depts: Vec<i64> = if app.scope.is_whole_org() {
        vec![ROOT_DEPT]
    } else {
        app.scope.departments.clone()
    };
    let mut fields = vec![
        "name",
        "userid",
        "unionid",
        "dept_id_list",
        "job_number",
        "title",
        "avatar",
    ];
    if app.has(org::PERM_FIELD_MOBILE) {
        fields.push("mobile");
    }
    if app.has(org::PERM_FIELD_PERSONAL) {
        fields.extend([
            "email",
            "org_email",
            "work_place",
            "remark",
            "extension",
            "hired_date",
            "telephone",
        ]);
    }
    Ok(reply(json!({
        "errcode": 0, "errmsg": "ok", "auth_user_field": fields,
        "auth_org_scopes": {"authed_dept": depts, "authed_user": app.scope.users},
        "request_id": request_id(),
    })))
}
