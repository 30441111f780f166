//! `/topapi/v2/user/*` and `/topapi/user/*`: paging, finding, reading and writing people.

use axum::response::Response;
use serde_json::{Value, json};

use super::envelope::{ok_plain, ok_result};
use super::params::Params;
use super::render::render_user;
use super::requests::user_write;
use super::scope::{dept_visible, exists, user_visible};
use crate::sim::error::{ApiError, api_err};
use crate::sim::org::App;
use crate::sim::state::State;

/// `v2/user/list`: a page of a department's direct members, in full.
pub fn list(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    page(st, app, p, false)
}

/// `user/listsimple`: the same page, userid and name only.
pub fn list_simple(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    page(st, app, p, true)
}

fn page(st: &mut State, app: &App, p: &Params, simple: bool) -> Result<Response, ApiError> {
    let id = p.req_i64("dept_id")?;
    let cursor = p.req_i64("cursor")?;
    let size = p.req_i64("size")?;
    if !(0..=100_000).contains(&cursor) {
        return Err(api_err(40035, "不合法的参数: cursor"));
    }
    if !(1..=100).contains(&size) {
        return Err(api_err(40035, "不合法的参数: size 必须在1到100之间"));
    }
    dept_visible(st.org(), app, id)?;
    let order = p.str("order_field")?.unwrap_or_else(|| "custom".into());
    let listing = st.book.listing(id, &order)?;
    let start = (cursor as usize).min(listing.len());
    let end = (start + size as usize).min(listing.len());
    let people = &st.org().people;
    let list: Vec<Value> = listing[start..end]
        .iter()
        .map(|i| {
            let m = &people[*i];
            if simple {
                json!({"userid": m.userid, "name": m.name})
            } else {
                let mut v = render_user(app, m, Some(id));
                if st.faults.list_omits_manager
                    && let Some(o) = v.as_object_mut()
                {
                    o.remove("manager_userid");
                }
                crate::sim::roles::put_role_list(st.org(), &mut v);
                v
            }
        })
        .collect();
    let has_more = end < listing.len();
    let mut result = json!({"has_more": has_more, "list": list});
    // UNCONFIRMED what DingTalk sends as next_cursor on the last page; omit it.
    if has_more {
        result["next_cursor"] = json!(end);
    }
    Ok(ok_result(result))
}

pub fn list_ids(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let id = p.req_i64("dept_id")?;
    exists(st.org(), id)?;
    let ids: Vec<&str> = st
        .org()
        .members(id)
        .iter()
        .map(|m| m.userid.as_str())
        .collect();
    Ok(ok_result(json!({"userid_list": ids})))
}

pub fn count(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let only_active = p
        .bool("only_active")?
        .ok_or_else(|| api_err(40035, "缺少参数 only_active"))?;
    let n = st
        .org()
        .people
        .iter()
        .filter(|x| !only_active || x.active)
        .count();
    Ok(ok_result(json!({"count": n})))
}

pub fn get(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let uid = p.req_str("userid")?;
    if uid.chars().count() > 64 {
        return Err(api_err(33012, "无效的USERID"));
    }
    let person = user_visible(st.org(), app, &uid)?;
    let mut v = render_user(app, person, None);
    crate::sim::roles::put_role_list(st.org(), &mut v);
    Ok(ok_result(v))
}

pub fn by_unionid(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let union = p.req_str("unionid")?;
    let person = st
        .org()
        .people
        .iter()
        .find(|x| x.unionid == union)
        .ok_or_else(|| api_err(60121, "找不到该用户"))?;
    Ok(ok_result(
        json!({"contact_type": 0, "userid": person.userid}),
    ))
}

pub fn by_mobile(st: &mut State, _: &App, p: &Params) -> Result<Response, ApiError> {
    let mobile = p.req_str("mobile")?;
    let exclusive = p.bool("support_exclusive_account_search")?.unwrap_or(false);
    let person = st
        .org()
        .people
        .iter()
        .find(|x| {
            x.mobile.as_deref() == Some(mobile.as_str()) && (exclusive || !x.exclusive_account)
        })
        .ok_or_else(|| api_err(60121, "找不到该用户"))?;
    let mut r = json!({"userid": person.userid});
    if exclusive {
        r["exclusive_account_userid_list"] = json!([]);
    }
    Ok(ok_result(r))
}

/// `v2/user/getuserinfo`: who an in-app login code belongs to.
pub fn by_auth_code(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let code = p.req_str("code")?;
    let now = st.now_ms();
    let c = st
        .auth
        .redeem_code(&code, &app.app_key, now)
        .ok_or_else(|| api_err(40078, "不存在的临时授权码"))?;
    let person = st
        .org()
        .person(&c.userid)
        .ok_or_else(|| api_err(60121, "找不到该用户"))?;
    let sys_level = if person.boss {
        100
    } else if person.admin {
        2
    } else {
        0
    };
    Ok(ok_result(json!({
        "userid": person.userid, "unionid": person.unionid, "name": person.name,
        "sys": person.admin, "sys_level": sys_level, "device_id": "",
    })))
}

pub fn create(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let w = user_write(p)?;
    for d in w.departments.iter().flatten() {
        if st.org().department(*d).is_some() && !st.org().dept_in_scope(app, *d) {
            return Err(api_err(50004, "部门不在授权范围内"));
        }
    }
    let created = st.create_user(w, true)?;
    Ok(ok_result(
        json!({"userid": created.userid, "unionId": created.unionid}),
    ))
}

pub fn update(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let uid = p.req_str("userid")?;
    user_visible(st.org(), app, &uid)?;
    let mut w = user_write(p)?;
    w.userid = None;
    let force = p.str_list("force_update_fields")?.unwrap_or_default();
    if force.iter().any(|f| f == "manager_userid") && w.manager_userid.is_none() {
        w.manager_userid = Some(String::new());
    }
    if let Some(l) = p.str("loginId")? {
        w.login_id = Some(l);
    }
    st.update_user(&uid, w, true)?;
    Ok(ok_plain())
}

pub fn delete(st: &mut State, app: &App, p: &Params) -> Result<Response, ApiError> {
    let uid = p.req_str("userid")?;
    user_visible(st.org(), app, &uid)?;
    st.delete_user(&uid)?;
    Ok(ok_plain())
}
