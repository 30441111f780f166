//! The write requests the address book takes: from the old host's create/update APIs and from
//! the admin API alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Write request for a person (old-host create/update and the admin API share it).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserWrite {
    pub userid: Option<String>,
    pub name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub org_email: Option<String>,
    pub title: Option<String>,
    pub job_number: Option<String>,
    pub telephone: Option<String>,
    pub work_place: Option<String>,
    pub remark: Option<String>,
    pub extension: Option<String>,
    pub hired_date: Option<i64>,
    pub manager_userid: Option<String>,
    /// Replaces the membership set (first = main department).
    #[serde(alias = "dept_id_list")]
    pub departments: Option<Vec<i64>>,
    pub dept_order: Option<BTreeMap<i64, i64>>,
    pub leader_in: Option<Vec<i64>>,
    pub hide_mobile: Option<bool>,
    pub senior: Option<bool>,
    pub active: Option<bool>,
    pub admin: Option<bool>,
    pub boss: Option<bool>,
    pub exclusive_account: Option<bool>,
    pub exclusive_account_type: Option<String>,
    pub login_id: Option<String>,
    pub avatar: Option<String>,
}

/// Write request for a department.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeptWrite {
    pub name: Option<String>,
    pub parent_id: Option<i64>,
    pub order: Option<i64>,
    pub source_identifier: Option<String>,
    pub create_dept_group: Option<bool>,
    pub auto_add_user: Option<bool>,
    pub hide_dept: Option<bool>,
    pub outer_dept: Option<bool>,
    pub manager_userids: Option<Vec<String>>,
    pub brief: Option<String>,
    pub telephone: Option<String>,
    pub code: Option<String>,
}
