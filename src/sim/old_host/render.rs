//! How the old host shows people and departments, with the fields an app's permissions allow.

use serde_json::{Map, Value, json};

use crate::sim::org::{self, App, Org, Person};

/// A user as `user/get` (listing = None) or `user/list` (listing = the queried dept) shows it,
/// with the fields the app's permissions allow (missing permission = field omitted).
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
    // In `user/list` too: UNCONFIRMED. The SDK's list model does not name the field, but
    // DingTalk's list documentation says it is omitted when empty (so sent when set); a full
    // read that had to `user/get` everyone for it would cost a call per person.
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

pub fn render_dept(org: &Org, id: i64) -> Value {
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
        "outer_dept": d.outer_dept,
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
