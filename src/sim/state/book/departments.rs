//! Creating, changing and deleting departments.

use super::rules::{check_dept_name, non_empty, set_limited};
use super::writes::DeptWrite;
use super::{AddressBook, Written};
use crate::sim::error::{ApiError, api_err};
use crate::sim::org::{Department, ROOT_DEPT};
use crate::sim::state::event::Change;

impl AddressBook {
    /// Create a department.
    pub fn create_department(&mut self, w: DeptWrite) -> Written<Department> {
        self.org_changed();
        let name = w
            .name
            .clone()
            .ok_or_else(|| api_err(40035, "缺少参数 name"))?;
        check_dept_name(&name)?;
        let parent = w
            .parent_id
            .ok_or_else(|| api_err(40035, "缺少参数 parent_id"))?;
        if self.org.department(parent).is_none() {
            return Err(api_err(60004, "父部门不存在"));
        }
        if self.org.children(parent).iter().any(|c| c.name == name) {
            return Err(api_err(60021, "该部门下已存在同名部门"));
        }
        if self.org.depth(parent) + 1 > self.max_depth {
            return Err(api_err(60002, "部门层级深度超过限制"));
        }
        let id = self.next_dept_id;
        self.next_dept_id += 1;
        let mut d = Department::new(id, name, Some(parent));
        apply_dept_fields(&mut d, &w)?;
        self.org.departments.push(d.clone());
        Ok((d, vec![Change::dept("org_dept_create", id)]))
    }

    /// Update a department (rename, move, order, heads...).
    pub fn update_department(&mut self, id: i64, w: DeptWrite) -> Written<Department> {
        self.org_changed();
        if id == ROOT_DEPT {
            return Err(api_err(60018, "根部门不能更新"));
        }
        let mut d = self
            .org
            .department(id)
            .cloned()
            .ok_or_else(|| api_err(60003, "部门不存在"))?;
        if let Some(n) = &w.name {
            check_dept_name(n)?;
        }
        let parent = w.parent_id.or(d.parent_id).unwrap_or(ROOT_DEPT);
        if w.parent_id.is_some() {
            self.check_move(id, parent)?;
        }
        let name = w.name.clone().unwrap_or_else(|| d.name.clone());
        if self
            .org
            .children(parent)
            .iter()
            .any(|c| c.id != id && c.name == name)
        {
            return Err(api_err(60021, "该部门下已存在同名部门"));
        }
        if let Some(u) = w.manager_userids.iter().flatten().find(|u| {
            !self
                .org
                .person(u)
                .is_some_and(|p| p.departments.contains(&id))
        }) {
            return Err(api_err(40031, format!("不合法的UserID列表: {u}")));
        }
        d.name = name;
        d.parent_id = Some(parent);
        apply_dept_fields(&mut d, &w)?;
        if let Some(slot) = self.org.departments.iter_mut().find(|x| x.id == id) {
            *slot = d.clone();
        }
        if w.manager_userids.is_some() {
            // One fact, two views: the department's heads are its members' leader flags.
            for p in &mut self.org.people {
                p.leader_in.retain(|x| *x != id);
                if d.manager_userids.contains(&p.userid) {
                    p.leader_in.push(id);
                }
            }
        }
        Ok((d, vec![Change::dept("org_dept_modify", id)]))
    }

    /// Moving `id` under `parent`: the parent exists, is not inside `id`, and the moved
    /// subtree stays within the depth limit.
    fn check_move(&self, id: i64, parent: i64) -> Result<(), ApiError> {
        if self.org.department(parent).is_none() {
            return Err(api_err(60004, "父部门不存在"));
        }
        if parent == id || self.org.descendants(id).contains(&parent) {
            return Err(api_err(60010, "部门之间存在循环"));
        }
        let subtree_height = self
            .org
            .descendants(id)
            .iter()
            .map(|x| self.org.depth(*x) + 1 - self.org.depth(id))
            .max()
            .unwrap_or(1);
        if self.org.depth(parent) + subtree_height > self.max_depth {
            return Err(api_err(60002, "部门层级深度超过限制"));
        }
        Ok(())
    }

    /// The enterprise renamed in the admin console. The root department carries the
    /// enterprise's name, and the root cannot be changed through the department API.
    /// DingTalk announces `org_change`, naming no record; UNCONFIRMED whether an
    /// `org_dept_modify` of the root comes with it: none is sent here, so only a full read
    /// sees the new name.
    pub fn rename_org(&mut self, name: &str) -> Written<Department> {
        self.org_changed();
        check_dept_name(name)?;
        self.org.name = name.to_owned();
        let root = self
            .org
            .departments
            .iter_mut()
            .find(|d| d.id == ROOT_DEPT)
            .ok_or_else(|| api_err(60003, "部门不存在"))?;
        root.name = name.to_owned();
        let change = Change {
            event_type: "org_change",
            user_ids: Vec::new(),
            dept_ids: Vec::new(),
            diff: None,
        };
        Ok((root.clone(), vec![change]))
    }

    /// Delete a department: refuses the root, departments with sub-departments or with members.
    pub fn delete_department(&mut self, id: i64) -> Written<Department> {
        self.org_changed();
        if id == ROOT_DEPT {
            return Err(api_err(60007, "根部门不能删除"));
        }
        let d = self
            .org
            .department(id)
            .cloned()
            .ok_or_else(|| api_err(60003, "部门不存在"))?;
        // UNCONFIRMED whether DingTalk cascades over empty sub-departments; refusing is safer.
        if !self.org.children(id).is_empty() {
            return Err(api_err(60006, "部门下存在子部门，不能删除"));
        }
        if !self.org.members(id).is_empty() {
            return Err(api_err(60005, "部门下存在员工，不能删除"));
        }
        self.org.departments.retain(|x| x.id != id);
        Ok((d, vec![Change::dept("org_dept_remove", id)]))
    }
}

fn apply_dept_fields(d: &mut Department, w: &DeptWrite) -> Result<(), ApiError> {
    if let Some(o) = w.order {
        d.order = o;
    }
    if let Some(s) = &w.source_identifier {
        d.source_identifier = non_empty(s);
    }
    for (slot, value) in [
        (&mut d.create_dept_group, w.create_dept_group),
        (&mut d.auto_add_user, w.auto_add_user),
        (&mut d.hide_dept, w.hide_dept),
        (&mut d.outer_dept, w.outer_dept),
    ] {
        if let Some(v) = value {
            *slot = v;
        }
    }
    if let Some(m) = &w.manager_userids {
        d.manager_userids = m.clone();
    }
    set_limited(&mut d.brief, &w.brief, "brief", 255)?;
    set_limited(&mut d.telephone, &w.telephone, "telephone", 50)?;
    set_limited(&mut d.code, &w.code, "code", 30)
}
