//! The legacy `oapi.dingtalk.com` surface: `/gettoken`, `/topapi/...`, `/auth/scopes`,
//! `/call_back/...`. Always HTTP 200 with the `errcode/errmsg/request_id` envelope (§1.2).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Shared;
use super::org::{self, App, Org, Person, ROOT_DEPT};
use super::params::{Params, obj_i64};
use super::state::{
    ApiError, DeptWrite, FaultKind, State, TokenCheck, TokenKind, UserWrite, api_err, request_id,
};

/// One JSON answer with HTTP 200 (oapi never uses HTTP status for business errors).
pub fn reply(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// `{"errcode":0,"errmsg":"ok","result":...,"request_id":...}`.
fn ok_result(result: Value) -> Response {
    reply(json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": request_id()}))
}

fn ok_plain() -> Response {
    reply(json!({"errcode": 0, "errmsg": "ok", "request_id": request_id()}))
}

pub fn error(e: &ApiError) -> Response {
    reply(json!({"errcode": e.errcode, "errmsg": e.errmsg, "request_id": request_id()}))
}

/// Gateway-level errors are wrapped as errcode 88 with a **string** `sub_code` (§1.2).
fn err88(sub_code: &str, sub_msg: &str) -> Response {
    reply(json!({
        "errcode": 88,
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "errmsg": format!("ding talk error[subcode={sub_code},submsg={sub_msg}]"),
        "request_id": request_id(),
    }))
}

/// APIs served here and the permission each needs (`None` = token only).
fn known_api(path: &str) -> Option<Option<&'static str>> {
    use org::*;
    Some(match path {
        "/topapi/v2/department/listsub"
        | "/topapi/v2/department/listsubid"
        | "/topapi/v2/department/get"
        | "/topapi/v2/department/listparentbydept"
        | "/topapi/v2/department/listparentbyuser" => Some(PERM_DEPT_LIST),
        "/topapi/v2/user/list"
        | "/topapi/user/listsimple"
        | "/topapi/user/listid"
        | "/topapi/user/count" => Some(PERM_DEPT_MEMBER),
        "/topapi/v2/user/get" | "/topapi/user/getbyunionid" => Some(PERM_MEMBER),
        "/topapi/v2/user/getbymobile" => Some(PERM_MEMBER_BY_MOBILE),
        "/topapi/v2/user/create"
        | "/topapi/v2/user/update"
        | "/topapi/v2/user/delete"
        | "/topapi/v2/department/create"
        | "/topapi/v2/department/update"
        | "/topapi/v2/department/delete" => Some(PERM_MANAGE),
        "/topapi/v2/user/getuserinfo"
        | "/auth/scopes"
        | "/call_back/register_call_back"
        | "/call_back/update_call_back"
        | "/call_back/get_call_back"
        | "/call_back/delete_call_back"
        | "/call_back/get_call_back_failed_result" => None,
        _ => return None,
    })
}

/// Sleeps for the configured latency plus a latency fault; returns a non-latency fault to answer.
pub async fn prelude(sh: &Shared, api: &str, app_key: Option<&str>) -> Option<FaultKind> {
    let (latency, fault) = {
        let mut st = sh.lock();
        st.count_call(api);
        let f = st.take_fault(api, app_key);
        (st.latency_ms, f)
    };
    let extra = match &fault {
        Some(FaultKind::Latency { ms }) => *ms,
        _ => 0,
    };
    if latency + extra > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency + extra)).await;
    }
    fault.filter(|f| !matches!(f, FaultKind::Latency { .. }))
}

fn fault_reply(f: &FaultKind) -> Response {
    match f {
        FaultKind::Http { status } => {
            let s = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            (s, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response()
        }
        FaultKind::SystemBusy => error(&api_err(-1, "系统繁忙")),
        FaultKind::UpstreamTimeout => reply(json!({
            "errcode": 15, "errmsg": "Remote service error",
            "sub_code": "isp.top-remote-connection-timeout", "sub_msg": "远程服务调用超时",
            "request_id": request_id(),
        })),
        FaultKind::Errcode { errcode, errmsg } => error(&api_err(
            *errcode,
            errmsg.clone().unwrap_or_else(|| "injected fault".into()),
        )),
        FaultKind::Throttle => throttled(),
        FaultKind::IpBan => reply(json!({
            "status": 1111, "wait": 5, "source": "x5", "punish": "deny",
            "uuid": uuid::Uuid::new_v4().to_string(),
        })),
        FaultKind::InvalidToken => err88("40014", "不合法的access_token"),
        FaultKind::Latency { .. } | FaultKind::BrokenPage { .. } => error(&api_err(-1, "系统繁忙")),
    }
}

fn throttled() -> Response {
    error(&api_err(
        90018,
        "当前企业调用该接口的QPS超过限制，请稍后重试",
    ))
}

/// Catch-all for everything that is not `/v1.0`, `/oauth2`, `/connect` or `/__sim`.
pub async fn dispatch(
    AxState(sh): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path.starts_with("/v1.0/") {
        return super::openapi::not_found(&path);
    }
    let params = match Params::parse(
        uri.query(),
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        if method == Method::GET { &[] } else { &body },
    ) {
        Ok(p) => p,
        Err(e) => {
            sh.lock().count_call(&path);
            return error(&e);
        }
    };
    if path == "/gettoken" {
        return gettoken(&sh, &params).await;
    }
    let Some(perm) = known_api(&path) else {
        sh.lock().count_call(&path);
        if let Some(rest) = path.strip_prefix("/topapi/") {
            let name = format!("dingtalk.oapi.{}", rest.trim_matches('/').replace('/', "."));
            let sub = format!("不合法ApiName，ApiName = {name}");
            return reply(
                json!({"errcode": 22, "sub_msg": sub, "errmsg": format!("Invalid method[submsg={sub}]"), "request_id": request_id()}),
            );
        }
        return reply(json!({"errcode": 404, "errmsg": "请求的URI地址不存在"}));
    };
    // Token first (the gateway checks it before anything else).
    let token = params
        .str("access_token")
        .ok()
        .flatten()
        .unwrap_or_default();
    let checked = if token.is_empty() {
        None
    } else {
        Some(sh.lock().check_token(&token))
    };
    let app_key = match &checked {
        Some(TokenCheck::Valid(t)) => Some(t.app_key.clone()),
        _ => None,
    };
    let broken_page = match prelude(&sh, &path, app_key.as_deref()).await {
        Some(FaultKind::BrokenPage { oversized }) => Some(oversized),
        Some(f) => return fault_reply(&f),
        None => None,
    };
    let info = match checked {
        None if headers.contains_key("x-acs-dingtalk-access-token") || token.is_empty() => {
            return err88("40000", "access_token is blank");
        }
        None | Some(TokenCheck::Invalid) => return err88("40014", "不合法的access_token"),
        // UNCONFIRMED whether an expired token answers 42001 or 88/40014; 42001 (wrapped) here,
        // 40014 for unknown or invalidated tokens, so clients meet both.
        Some(TokenCheck::Expired) => return err88("42001", "access_token超时"),
        Some(TokenCheck::Valid(info)) => info,
    };
    if matches!(info.kind, TokenKind::User { .. }) {
        return err88("40014", "不合法的access_token");
    }
    let app_key = info.app_key;
    if sh.lock().over_qps(&app_key, &path) {
        return throttled();
    }
    if path.starts_with("/call_back/") {
        return super::webhook::oapi(&sh, &path, &app_key, &params).await;
    }
    let out = {
        let mut st = sh.lock();
        let Some(app) = st.org.app(&app_key).cloned() else {
            return err88("40014", "不合法的access_token");
        };
        if let Some(p) = perm
            && !app.has(p)
        {
            return err88("60011", "没有调用该接口的权限");
        }
        handle(&mut st, &app, &path, &params)
    };
    sh.stream_wake.notify_one();
    sh.callback_wake.notify_one();
    match (out, broken_page) {
        (Ok(r), Some(oversized)) => {
            let cursor = params.i64("cursor").ok().flatten().unwrap_or(0);
            break_page(r, oversized, cursor).await
        }
        (Ok(r), None) => r,
        (Err(e), _) => error(&e),
    }
}

/// The page fault: the answer as it was, but with 150 people in it, or `has_more` pointing
/// back at the cursor just read.
async fn break_page(r: Response, oversized: bool, cursor: i64) -> Response {
    let Ok(bytes) = axum::body::to_bytes(r.into_body(), usize::MAX).await else {
        return error(&api_err(-1, "系统繁忙"));
    };
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return error(&api_err(-1, "系统繁忙"));
    };
    if let Some(result) = v.get_mut("result") {
        if oversized {
            if let Some(list) = result.get_mut("list").and_then(|l| l.as_array_mut())
                && let Some(first) = list.first().cloned()
            {
                while list.len() < 150 {
                    list.push(first.clone());
                }
            }
        } else {
            result["has_more"] = json!(true);
            result["next_cursor"] = json!(cursor);
        }
    }
    reply(v)
}

async fn gettoken(sh: &Shared, params: &Params) -> Response {
    let key = params
        .str("appkey")
        .ok()
        .flatten()
        .or_else(|| params.str("corpid").ok().flatten())
        .unwrap_or_default();
    let secret = params
        .str("appsecret")
        .ok()
        .flatten()
        .or_else(|| params.str("corpsecret").ok().flatten())
        .unwrap_or_default();
    if let Some(f) = prelude(sh, "/gettoken", (!key.is_empty()).then_some(key.as_str())).await {
        return fault_reply(&f);
    }
    if key.is_empty() || secret.is_empty() {
        return reply(json!({"errcode": 40035, "errmsg": "缺少参数 corpid or appkey"}));
    }
    let mut st = sh.lock();
    let valid = st.org.app(&key).is_some_and(|a| a.app_secret == secret);
    if !valid {
        return reply(json!({"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}));
    }
    if st.over_qps(&key, "/gettoken") {
        return throttled();
    }
    let (tok, exp) = st.issue_app_token(&key, sh.config.token_ttl.as_millis() as i64);
    reply(json!({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": exp}))
}

fn handle(st: &mut State, app: &App, path: &str, p: &Params) -> Result<Response, ApiError> {
    match path {
        "/topapi/v2/department/listsub" => {
            let id = p.i64("dept_id")?.unwrap_or(ROOT_DEPT);
            dept_visible(&st.org, app, id)?;
            let list: Vec<Value> = st
                .org
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
        "/topapi/v2/department/listsubid" => {
            let id = p.req_i64("dept_id")?;
            exists(&st.org, id)?;
            let ids: Vec<i64> = st.org.children(id).iter().map(|d| d.id).collect();
            Ok(ok_result(json!({"dept_id_list": ids})))
        }
        "/topapi/v2/department/get" => {
            let id = p.req_i64("dept_id")?;
            if id < 1 {
                return Err(api_err(40009, "不合法的部门id"));
            }
            dept_visible(&st.org, app, id)?;
            Ok(ok_result(render_dept(&st.org, id)))
        }
        "/topapi/v2/department/listparentbydept" => {
            let id = p.req_i64("dept_id")?;
            exists(&st.org, id)?;
            Ok(ok_result(json!({"parent_id_list": st.org.ancestry(id)})))
        }
        "/topapi/v2/department/listparentbyuser" => {
            let uid = p.req_str("userid")?;
            let person = user_visible(&st.org, app, &uid)?;
            let list: Vec<Value> = person
                .departments
                .iter()
                .map(|d| json!({"parent_dept_id_list": st.org.ancestry(*d)}))
                .collect();
            Ok(ok_result(json!({"parent_list": list})))
        }
        "/topapi/v2/user/list" | "/topapi/user/listsimple" => {
            let id = p.req_i64("dept_id")?;
            let cursor = p.req_i64("cursor")?;
            let size = p.req_i64("size")?;
            if !(0..=100_000).contains(&cursor) {
                return Err(api_err(40035, "不合法的参数: cursor"));
            }
            if !(1..=100).contains(&size) {
                return Err(api_err(40035, "不合法的参数: size 必须在1到100之间"));
            }
            dept_visible(&st.org, app, id)?;
            let order = p.str("order_field")?.unwrap_or_else(|| "custom".into());
            let listing = st.listing(id, &order)?;
            let members: Vec<&Person> = listing.iter().map(|i| &st.org.people[*i]).collect();
            let start = (cursor as usize).min(members.len());
            let end = (start + size as usize).min(members.len());
            let simple = path.ends_with("listsimple");
            let list: Vec<Value> = members[start..end]
                .iter()
                .map(|m| {
                    if simple {
                        json!({"userid": m.userid, "name": m.name})
                    } else {
                        render_user(app, m, Some(id))
                    }
                })
                .collect();
            let has_more = end < members.len();
            let mut result = json!({"has_more": has_more, "list": list});
            // UNCONFIRMED what DingTalk sends as next_cursor on the last page; omit it.
            if has_more {
                result["next_cursor"] = json!(end);
            }
            Ok(ok_result(result))
        }
        "/topapi/user/listid" => {
            let id = p.req_i64("dept_id")?;
            exists(&st.org, id)?;
            let ids: Vec<&str> = st
                .org
                .members(id)
                .iter()
                .map(|m| m.userid.as_str())
                .collect();
            Ok(ok_result(json!({"userid_list": ids})))
        }
        "/topapi/user/count" => {
            let only_active = p
                .bool("only_active")?
                .ok_or_else(|| api_err(40035, "缺少参数 only_active"))?;
            let n = st
                .org
                .people
                .iter()
                .filter(|x| !only_active || x.active)
                .count();
            Ok(ok_result(json!({"count": n})))
        }
        "/topapi/v2/user/get" => {
            let uid = p.req_str("userid")?;
            if uid.chars().count() > 64 {
                return Err(api_err(33012, "无效的USERID"));
            }
            let person = user_visible(&st.org, app, &uid)?;
            Ok(ok_result(render_user(app, person, None)))
        }
        "/topapi/user/getbyunionid" => {
            let union = p.req_str("unionid")?;
            let person = st
                .org
                .people
                .iter()
                .find(|x| x.unionid == union)
                .ok_or_else(|| api_err(60121, "找不到该用户"))?;
            Ok(ok_result(
                json!({"contact_type": 0, "userid": person.userid}),
            ))
        }
        "/topapi/v2/user/getbymobile" => {
            let mobile = p.req_str("mobile")?;
            let exclusive = p.bool("support_exclusive_account_search")?.unwrap_or(false);
            let person = st
                .org
                .people
                .iter()
                .find(|x| {
                    x.mobile.as_deref() == Some(mobile.as_str())
                        && (exclusive || !x.exclusive_account)
                })
                .ok_or_else(|| api_err(60121, "找不到该用户"))?;
            let mut r = json!({"userid": person.userid});
            if exclusive {
                r["exclusive_account_userid_list"] = json!([]);
            }
            Ok(ok_result(r))
        }
        "/topapi/v2/user/getuserinfo" => {
            let code = p.req_str("code")?;
            let now = st.now_ms();
            let c = st
                .auth_codes
                .remove(&code)
                .filter(|c| c.expires_ms > now && c.app_key == app.app_key)
                .ok_or_else(|| api_err(40078, "不存在的临时授权码"))?;
            let person = st
                .org
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
        "/auth/scopes" => {
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
        "/topapi/v2/user/create" => {
            let w = user_write(p)?;
            for d in w.departments.iter().flatten() {
                if st.org.department(*d).is_some() && !st.org.dept_in_scope(app, *d) {
                    return Err(api_err(50004, "部门不在授权范围内"));
                }
            }
            let created = st.create_user(w, true)?;
            Ok(ok_result(
                json!({"userid": created.userid, "unionId": created.unionid}),
            ))
        }
        "/topapi/v2/user/update" => {
            let uid = p.req_str("userid")?;
            user_visible(&st.org, app, &uid)?;
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
        "/topapi/v2/user/delete" => {
            let uid = p.req_str("userid")?;
            user_visible(&st.org, app, &uid)?;
            st.delete_user(&uid)?;
            Ok(ok_plain())
        }
        "/topapi/v2/department/create" => {
            let w = dept_write(p)?;
            if let Some(parent) = w.parent_id
                && st.org.department(parent).is_some()
                && !st.org.dept_in_scope(app, parent)
            {
                return Err(api_err(50004, "部门不在授权范围内"));
            }
            let d = st.create_department(w)?;
            Ok(ok_result(json!({"dept_id": d.id})))
        }
        "/topapi/v2/department/update" => {
            let id = p.req_i64("dept_id")?;
            if id < 1 {
                return Err(api_err(40009, "不合法的部门id"));
            }
            if id != ROOT_DEPT {
                dept_visible(&st.org, app, id)?;
            }
            let mut w = dept_write(p)?;
            let force = p.str_list("force_update_fields")?.unwrap_or_default();
            match &w.manager_userids {
                Some(m)
                    if m.is_empty() && !force.iter().any(|f| f == "dept_manager_userid_list") =>
                {
                    return Err(api_err(40031, "不合法的UserID列表"));
                }
                None if force.iter().any(|f| f == "dept_manager_userid_list") => {
                    w.manager_userids = Some(Vec::new());
                }
                _ => {}
            }
            st.update_department(id, w)?;
            Ok(ok_plain())
        }
        "/topapi/v2/department/delete" => {
            let id = p.req_i64("dept_id")?;
            if id != ROOT_DEPT && st.org.department(id).is_some() {
                dept_visible(&st.org, app, id)?;
            }
            st.delete_department(id)?;
            Ok(ok_plain())
        }
        _ => Err(api_err(22, "Invalid method")),
    }
}

fn exists(org: &Org, id: i64) -> Result<(), ApiError> {
    if id < 1 {
        return Err(api_err(40009, "不合法的部门id"));
    }
    org.department(id)
        .map(|_| ())
        .ok_or_else(|| api_err(60003, "部门不存在"))
}

fn dept_visible(org: &Org, app: &App, id: i64) -> Result<(), ApiError> {
    exists(org, id)?;
    if !org.dept_in_scope(app, id) {
        return Err(api_err(50004, "部门不在授权范围内"));
    }
    Ok(())
}

fn user_visible<'a>(org: &'a Org, app: &App, userid: &str) -> Result<&'a Person, ApiError> {
    let p = org
        .person(userid)
        .ok_or_else(|| api_err(60121, "找不到该用户"))?;
    if !org.person_in_scope(app, p) {
        return Err(api_err(50002, "员工不在授权范围内"));
    }
    Ok(p)
}

fn pinyin_key(s: &str) -> String {
    use pinyin::ToPinyin;
    s.chars()
        .map(|c| {
            let mut buf = [0u8; 4];
            let cs: &str = c.encode_utf8(&mut buf);
            cs.to_pinyin()
                .next()
                .flatten()
                .map(|p| p.plain().to_owned())
                .unwrap_or_else(|| c.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Direct members of `dept` in the order `order_field` asks for (indexes into `org.people`).
pub(super) fn sort_members(
    org: &Org,
    dept: i64,
    order: &str,
    m: &mut [usize],
) -> Result<(), ApiError> {
    let p = |i: &usize| &org.people[*i];
    match order {
        "entry_asc" => m.sort_by_key(|i| (p(i).created_ms, p(i).userid.clone())),
        "entry_desc" => {
            m.sort_by_key(|i| (std::cmp::Reverse(p(i).created_ms), p(i).userid.clone()))
        }
        "modify_asc" => m.sort_by_key(|i| (p(i).modified_ms, p(i).userid.clone())),
        "modify_desc" => {
            m.sort_by_key(|i| (std::cmp::Reverse(p(i).modified_ms), p(i).userid.clone()))
        }
        // UNCONFIRMED direction of per-department user order; larger first per the update doc.
        "custom" => m.sort_by_cached_key(|i| {
            (
                std::cmp::Reverse(p(i).dept_order.get(&dept).copied().unwrap_or(0)),
                pinyin_key(&p(i).name),
                p(i).userid.clone(),
            )
        }),
        _ => return Err(api_err(40035, "不合法的参数: order_field")),
    }
    Ok(())
}

/// A user as `user/get` (listing = None) or `user/list` (listing = the queried dept) shows it,
/// with the fields the app's permissions allow (§10.8: missing permission = field omitted).
pub fn render_user(app: &App, p: &Person, listing: Option<i64>) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("userid", json!(p.userid));
    put("unionid", json!(p.unionid));
    put("name", json!(p.name));
    if let Some(a) = &p.avatar {
        put("avatar", json!(a));
    }
    if app.has(org::PERM_FIELD_MOBILE)
        && let Some(mob) = &p.mobile
    {
        put("mobile", json!(mob));
        put("state_code", json!(p.state_code));
    }
    put("hide_mobile", json!(p.hide_mobile));
    put(
        "job_number",
        json!(p.job_number.clone().unwrap_or_default()),
    );
    put("title", json!(p.title.clone().unwrap_or_default()));
    if app.has(org::PERM_FIELD_PERSONAL) {
        for (k, v) in [
            ("telephone", &p.telephone),
            ("email", &p.email),
            ("org_email", &p.org_email),
            ("work_place", &p.work_place),
            ("remark", &p.remark),
            ("extension", &p.extension),
        ] {
            if let Some(v) = v {
                put(k, json!(v));
            }
        }
        if let Some(h) = p.hired_date {
            put("hired_date", json!(h));
        }
    }
    if let Some(mgr) = &p.manager_userid {
        put("manager_userid", json!(mgr));
    }
    put("dept_id_list", json!(p.departments));
    put("active", json!(p.active));
    put("admin", json!(p.admin));
    put("boss", json!(p.boss));
    put("exclusive_account", json!(p.exclusive_account));
    if let Some(t) = &p.exclusive_account_type {
        put("exclusive_account_type", json!(t));
    }
    if let Some(l) = &p.login_id {
        put("login_id", json!(l));
    }
    match listing {
        Some(d) => {
            put(
                "dept_order",
                json!(p.dept_order.get(&d).copied().unwrap_or(0)),
            );
            put("leader", json!(p.leader_in.contains(&d)));
        }
        None => {
            put("senior", json!(p.senior));
            put("real_authed", json!(p.real_authed));
            let orders: Vec<Value> = p
                .departments
                .iter()
                .map(|d| json!({"dept_id": d, "order": p.dept_order.get(d).copied().unwrap_or(0)}))
                .collect();
            put("dept_order_list", Value::Array(orders));
            let leaders: Vec<Value> = p
                .departments
                .iter()
                .map(|d| json!({"dept_id": d, "leader": p.leader_in.contains(d)}))
                .collect();
            put("leader_in_dept", Value::Array(leaders));
            put("role_list", json!([]));
        }
    }
    Value::Object(m)
}

fn render_dept(org: &Org, id: i64) -> Value {
    let Some(d) = org.department(id) else {
        return Value::Null;
    };
    // One pass over the people (not one per department of the subtree): the root's
    // `department/get` of a 100,000-person org must answer in milliseconds, as DingTalk does.
    let subtree: std::collections::HashSet<i64> =
        std::iter::once(id).chain(org.descendants(id)).collect();
    let (mut member_count, mut owning_member_count) = (0, 0);
    for p in &org.people {
        if p.departments.iter().any(|d| subtree.contains(d)) {
            member_count += 1;
        }
        if p.departments.contains(&id) {
            owning_member_count += 1;
        }
    }
    let mut v = json!({
        "dept_id": d.id,
        "name": d.name,
        "order": d.order,
        "create_dept_group": d.create_dept_group,
        "auto_add_user": d.auto_add_user,
        "group_contain_sub_dept": false,
        "hide_dept": d.hide_dept,
        "dept_permits": [],
        "user_permits": [],
        "outer_dept": false,
        "outer_permit_depts": [],
        "outer_permit_users": [],
        "auto_approve_apply": false,
        "from_union_org": false,
        "dept_manager_userid_list": d.manager_userids,
        "member_count": member_count,
        "owning_member_count": owning_member_count,
    });
    for (k, val) in [
        ("source_identifier", &d.source_identifier),
        ("brief", &d.brief),
        ("telephone", &d.telephone),
        ("code", &d.code),
    ] {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    }
    // UNCONFIRMED whether the root's parent_id is absent; we omit it.
    if let Some(pid) = d.parent_id {
        v["parent_id"] = json!(pid);
    }
    v
}

fn user_write(p: &Params) -> Result<UserWrite, ApiError> {
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

fn dept_write(p: &Params) -> Result<DeptWrite, ApiError> {
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
