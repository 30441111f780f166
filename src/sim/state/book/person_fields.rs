//! Applies a [`UserWrite`] to a person, field group by field group, with DingTalk's rules:
//! contact details unique in the company, text limits, a manager who exists, departments
//! that exist, and account flags.

use serde_json::Value;

use super::AddressBook;
use super::rules::{check_email, check_mobile, limit, non_empty, set_limited};
use super::writes::UserWrite;
use crate::sim::error::{ApiError, api_err};
use crate::sim::org::{Org, Person};

impl AddressBook {
    /// Omitted fields keep their value; `creating` allows an empty department list.
    pub(super) fn apply_user_fields(
        &self,
        p: &mut Person,
        w: &UserWrite,
        creating: bool,
    ) -> Result<(), ApiError> {
        if let Some(n) = &w.name {
            p.name = n.clone();
        }
        contact(&self.org, p, w)?;
        profile(p, w)?;
        manager(&self.org, p, w)?;
        memberships(&self.org, p, w, creating)?;
        account(p, w)
    }
}

/// Mobile, email and telephone: each unique among the other people of the company.
fn contact(org: &Org, p: &mut Person, w: &UserWrite) -> Result<(), ApiError> {
    let mut others = org.people.iter().filter(|o| o.userid != p.userid);
    if let Some(m) = &w.mobile {
        check_mobile(m)?;
        if others.clone().any(|o| o.mobile.as_ref() == Some(m)) {
            return Err(api_err(60104, "手机号码在公司中已存在"));
        }
        p.mobile = Some(m.clone());
        if let Some(code) = m.strip_prefix('+').and_then(|r| r.split('-').next()) {
            p.state_code = code.to_owned();
        }
    }
    if let Some(e) = &w.email {
        if e.is_empty() {
            p.email = None;
        } else {
            check_email(e)?;
            if others.clone().any(|o| o.email.as_ref() == Some(e)) {
                return Err(api_err(60106, "邮箱在公司中已存在"));
            }
            p.email = Some(e.clone());
        }
    }
    if let Some(t) = &w.telephone {
        limit("telephone", t, 50)?;
        if !t.is_empty() && others.any(|o| o.telephone.as_ref() == Some(t)) {
            return Err(api_err(40100, "分机号已经存在"));
        }
        p.telephone = non_empty(t);
    }
    Ok(())
}

/// Job number, title, org email, work place, remark, extension (a JSON object), hire date.
fn profile(p: &mut Person, w: &UserWrite) -> Result<(), ApiError> {
    if let Some(v) = &w.job_number {
        if v.chars().count() > 50 {
            return Err(api_err(60123, "工号不合法"));
        }
        p.job_number = non_empty(v);
    }
    set_limited(&mut p.title, &w.title, "title", 200)?;
    set_limited(&mut p.org_email, &w.org_email, "org_email", 100)?;
    set_limited(&mut p.work_place, &w.work_place, "work_place", 100)?;
    set_limited(&mut p.remark, &w.remark, "remark", 2000)?;
    if let Some(v) = &w.extension {
        limit("extension", v, 2000)?;
        if !v.is_empty() && !serde_json::from_str::<Value>(v).is_ok_and(|j| j.is_object()) {
            return Err(api_err(40035, "不合法的参数 extension: 必须是JSON对象"));
        }
        p.extension = non_empty(v);
    }
    if let Some(h) = w.hired_date {
        if h < 1 {
            return Err(api_err(40035, "不合法的参数 hired_date"));
        }
        p.hired_date = Some(h);
    }
    Ok(())
}

/// The direct manager: someone else in the company; empty clears it.
fn manager(org: &Org, p: &mut Person, w: &UserWrite) -> Result<(), ApiError> {
    if let Some(m) = &w.manager_userid {
        if m.is_empty() {
            p.manager_userid = None;
        } else if m == &p.userid || org.person(m).is_none() {
            return Err(api_err(60128, "主管ID不合法"));
        } else {
            p.manager_userid = Some(m.clone());
        }
    }
    Ok(())
}

/// Departments (replacing the set), the order in each, and where the person leads.
fn memberships(org: &Org, p: &mut Person, w: &UserWrite, creating: bool) -> Result<(), ApiError> {
    if let Some(depts) = &w.departments {
        if depts.is_empty() && !creating {
            return Err(api_err(40035, "不合法的参数 dept_id_list"));
        }
        if depts.len() > 300 {
            return Err(api_err(40035, "不合法的参数 dept_id_list: 部门过多"));
        }
        if let Some(d) = depts.iter().find(|d| org.department(**d).is_none()) {
            return Err(api_err(60003, format!("部门不存在: {d}")));
        }
        let mut uniq = Vec::new();
        for d in depts {
            if !uniq.contains(d) {
                uniq.push(*d);
            }
        }
        p.departments = uniq;
        p.leader_in.retain(|d| depts.contains(d));
        p.dept_order.retain(|d, _| depts.contains(d));
    }
    if let Some(o) = &w.dept_order {
        for (d, v) in o {
            if p.departments.contains(d) {
                p.dept_order.insert(*d, *v);
            }
        }
    }
    if let Some(l) = &w.leader_in {
        p.leader_in = l
            .iter()
            .copied()
            .filter(|d| p.departments.contains(d))
            .collect();
    }
    Ok(())
}

/// Flags, the exclusive-account type, login id and avatar.
fn account(p: &mut Person, w: &UserWrite) -> Result<(), ApiError> {
    for (slot, value) in [
        (&mut p.hide_mobile, w.hide_mobile),
        (&mut p.senior, w.senior),
        (&mut p.active, w.active),
        (&mut p.admin, w.admin),
        (&mut p.boss, w.boss),
        (&mut p.exclusive_account, w.exclusive_account),
    ] {
        if let Some(v) = value {
            *slot = v;
        }
    }
    if let Some(t) = &w.exclusive_account_type {
        if t != "sso" && t != "dingtalk" {
            return Err(api_err(40035, "不合法的参数 exclusive_account_type"));
        }
        p.exclusive_account_type = Some(t.clone());
    }
    if let Some(v) = &w.login_id {
        p.login_id = non_empty(v);
    }
    if let Some(v) = &w.avatar {
        p.avatar = non_empty(v);
    }
    Ok(())
}
