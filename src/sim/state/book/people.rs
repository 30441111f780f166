//! Hiring, editing, removing and rehiring people.

use serde_json::{Value, json};

use super::rules::check_name;
use super::writes::UserWrite;
use super::{AddressBook, Departed, Written};
use crate::sim::error::{ApiError, api_err};
use crate::sim::org::{Person, ROOT_DEPT, derive_unionid};
use crate::sim::state::event::Change;

impl AddressBook {
    /// Validates and applies a create. `strict` = the old host's rules (mobile required,
    /// re-add cooldown); the admin API (HR in the console) is lenient about mobile.
    pub fn create_user(&mut self, w: UserWrite, strict: bool, now: i64) -> Written<Person> {
        self.org_changed();
        let name = w
            .name
            .clone()
            .ok_or_else(|| api_err(40035, "缺少参数 name"))?;
        check_name(&name)?;
        let userid = self.new_userid(&w)?;
        self.check_new_account(&w, strict, now)?;
        let mut p = Person {
            unionid: self
                .departed
                .get(&userid)
                .map(|d| d.person.unionid.clone())
                .unwrap_or_else(|| derive_unionid(&self.org.corp_id, &userid)),
            userid,
            name,
            state_code: "86".into(),
            active: w.active.unwrap_or(true),
            created_ms: now,
            modified_ms: now,
            ..Person::default()
        };
        self.apply_user_fields(&mut p, &w, true)?;
        self.org.people.push(p.clone());
        let mut changes = vec![Change::user("user_add_org", &p.userid)];
        if p.admin {
            changes.push(Change::user("org_admin_add", &p.userid));
        }
        Ok((p, changes))
    }

    /// The userid asked for (1–64 characters, not taken), or a fresh one.
    fn new_userid(&mut self, w: &UserWrite) -> Result<String, ApiError> {
        let userid = match &w.userid {
            Some(u) => {
                if u.is_empty() || u.chars().count() > 64 {
                    return Err(api_err(40035, "不合法的参数 userid: 长度必须为1-64"));
                }
                u.clone()
            }
            None => self.fresh_userid(),
        };
        if self.org.person(&userid).is_some() {
            return Err(api_err(60102, "UserID在公司中已存在"));
        }
        Ok(userid)
    }

    /// Mobile and department rules of a create.
    fn check_new_account(&self, w: &UserWrite, strict: bool, now: i64) -> Result<(), ApiError> {
        let exclusive = w.exclusive_account.unwrap_or(false);
        if exclusive && w.mobile.is_some() && strict {
            return Err(api_err(
                40035,
                "不合法的参数 mobile: 企业账号不能设置手机号",
            ));
        }
        if strict && !exclusive && w.mobile.is_none() {
            return Err(api_err(40035, "缺少参数 mobile"));
        }
        let depts = w
            .departments
            .as_ref()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| api_err(40035, "缺少参数 dept_id_list"))?;
        if depts.len() > 100 {
            return Err(api_err(40035, "不合法的参数 dept_id_list: 最多100个部门"));
        }
        if strict
            && let Some(m) = &w.mobile
            && self.departed.values().any(|d| {
                d.person.mobile.as_ref() == Some(m) && now - d.left_ms < self.rehire_cooldown_ms
            })
        {
            // DingTalk sends an invitation instead of adding someone removed less than 24 h ago.
            return Err(api_err(40103, "邀请已发送，需要用户同意后才能加入企业"));
        }
        Ok(())
    }

    /// Validates and applies an update: omitted fields keep their value.
    pub fn update_user(
        &mut self,
        userid: &str,
        w: UserWrite,
        strict: bool,
        now: i64,
    ) -> Written<Person> {
        self.org_changed();
        let idx = self.position(userid)?;
        let before = self.org.people[idx].clone();
        if let Some(m) = &w.mobile
            && before.mobile.as_ref() != Some(m)
            && strict
        {
            return Err(api_err(
                40022,
                "企业中的手机号码和登录钉钉的手机号码不一致,暂时不支持修改用户信息,可以删除后重新添加",
            ));
        }
        if let Some(n) = &w.name {
            check_name(n)?;
        }
        let mut p = before.clone();
        self.apply_user_fields(&mut p, &w, false)?;
        p.modified_ms = now;
        self.org.people[idx] = p.clone();
        // One fact, two views: a department's heads are its members' leader flags.
        for d in &mut self.org.departments {
            let heads = p.leader_in.contains(&d.id);
            let listed = d.manager_userids.contains(&p.userid);
            if heads && !listed {
                d.manager_userids.push(p.userid.clone());
            } else if listed && !heads {
                d.manager_userids.retain(|u| *u != p.userid);
            }
        }
        let admin_changed = before.admin != p.admin;
        let activated = !before.active && p.active;
        // Being made an admin, or activating DingTalk, is no edit of the org profile: DingTalk
        // announces it with its own event alone.
        let mut profile = p.clone();
        (profile.admin, profile.active, profile.modified_ms) =
            (before.admin, before.active, before.modified_ms);
        let mut changes = Vec::new();
        if !(admin_changed || activated) || profile != before {
            changes.push(Change {
                diff: Some(diff_info(&before, &p)),
                ..Change::user("user_modify_org", &p.userid)
            });
        }
        if admin_changed {
            let t = if p.admin {
                "org_admin_add"
            } else {
                "org_admin_remove"
            };
            changes.push(Change::user(t, &p.userid));
        }
        if activated {
            changes.push(Change::user("user_active_org", &p.userid));
        }
        Ok((p, changes))
    }

    fn position(&self, userid: &str) -> Result<usize, ApiError> {
        self.org
            .people
            .iter()
            .position(|p| p.userid == userid)
            .ok_or_else(|| api_err(60121, "找不到该用户"))
    }

    /// Removes a person; they can be rehired with [`Self::rehire`].
    pub fn delete_user(&mut self, userid: &str, now: i64) -> Written<Person> {
        self.org_changed();
        let idx = self.position(userid)?;
        let p = self.org.people.remove(idx);
        for d in &mut self.org.departments {
            d.manager_userids.retain(|u| u != userid);
        }
        for other in &mut self.org.people {
            if other.manager_userid.as_deref() == Some(userid) {
                other.manager_userid = None;
            }
        }
        self.departed.insert(
            p.userid.clone(),
            Departed {
                person: p.clone(),
                left_ms: now,
            },
        );
        let changes = vec![Change::user("user_leave_org", &p.userid)];
        Ok((p, changes))
    }

    /// HR re-adds a departed person with the same userid/unionid (into `departments`, or the old ones).
    pub fn rehire(
        &mut self,
        userid: &str,
        departments: Option<Vec<i64>>,
        now: i64,
    ) -> Written<Person> {
        self.org_changed();
        if self.org.person(userid).is_some() {
            return Err(api_err(60102, "UserID在公司中已存在"));
        }
        let mut p = self
            .departed
            .remove(userid)
            .ok_or_else(|| api_err(60121, "找不到该用户"))?
            .person;
        let mut depts = departments.unwrap_or_else(|| p.departments.clone());
        depts.retain(|d| self.org.department(*d).is_some());
        if depts.is_empty() {
            depts.push(ROOT_DEPT);
        }
        if let Some(m) = &p.mobile
            && self.org.people.iter().any(|o| o.mobile.as_ref() == Some(m))
        {
            p.mobile = None;
        }
        p.departments = depts;
        p.leader_in.clear();
        p.dept_order.retain(|d, _| p.departments.contains(d));
        p.manager_userid = p.manager_userid.filter(|m| self.org.person(m).is_some());
        p.created_ms = now;
        p.modified_ms = now;
        self.org.people.push(p.clone());
        let changes = vec![Change::user("user_add_org", &p.userid)];
        Ok((p, changes))
    }
}

/// `user_modify_org` diffInfo with the fields DingTalk reports (camelCase).
fn diff_info(a: &Person, b: &Person) -> Value {
    let pick = |p: &Person| {
        json!({
            "name": p.name,
            "managerUserid": p.manager_userid.clone().unwrap_or_default(),
            "email": p.email.clone().unwrap_or_default(),
            "jobNumber": p.job_number.clone().unwrap_or_default(),
            "workPlace": p.work_place.clone().unwrap_or_default(),
            "telephone": p.telephone.clone().unwrap_or_default(),
            "hiredDate": p.hired_date.map(|h| h.to_string()).unwrap_or_default(),
        })
    };
    json!({"userid": b.userid, "prev": pick(a), "curr": pick(b)})
}
