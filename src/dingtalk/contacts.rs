//! Address-book reads: typed wire structs (every optional field an `Option`: absent is not
//! cleared) and the single calls; `scope.rs` reads a binding's whole scope with them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use super::scope::{ScopeFailure, ScopeRead, ScopeSnapshot};
use super::{DingTalkClient, DingTalkError, wire};

pub const API_LISTSUB: &str = "/topapi/v2/department/listsub";
pub const API_LISTSUBID: &str = "/topapi/v2/department/listsubid";
pub const API_DEPT_GET: &str = "/topapi/v2/department/get";
pub const API_USER_LIST: &str = "/topapi/v2/user/list";
pub const API_USER_GET: &str = "/topapi/v2/user/get";
pub const API_BY_UNIONID: &str = "/topapi/user/getbyunionid";
pub const API_BY_MOBILE: &str = "/topapi/v2/user/getbymobile";

/// `user/list` page size: DingTalk's maximum.
pub const PAGE_SIZE: u32 = 100;

/// A department as `listsub` (summary) or `department/get` (detail) returns it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Department {
    #[serde(deserialize_with = "wire::i64_lenient")]
    pub dept_id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_id: Option<i64>,
    /// Sort value within the parent, smaller first (`department/get` only).
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub order: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identifier: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub create_dept_group: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_add_user: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_union_org: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dept_group_chat_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_contain_sub_dept: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_dept_owner: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::opt_string_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub dept_manager_userid_list: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub hide_dept: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_i64_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub dept_permits: Option<Vec<i64>>,
    #[serde(
        default,
        deserialize_with = "wire::opt_string_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_permits: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub outer_dept: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_i64_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub outer_permit_depts: Option<Vec<i64>>,
    #[serde(
        default,
        deserialize_with = "wire::opt_string_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub outer_permit_users: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_approve_apply: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Members including sub-departments.
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub member_count: Option<i64>,
    /// Direct members only.
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub owning_member_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// `{corp_id, dept_id}` of a linked department (key casing UNCONFIRMED: kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub union_dept_ext: Option<Value>,
    /// Fields this client does not know yet, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeptOrder {
    #[serde(deserialize_with = "wire::i64_lenient")]
    pub dept_id: i64,
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub order: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeptLeader {
    #[serde(deserialize_with = "wire::i64_lenient")]
    pub dept_id: i64,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub leader: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeptPosition {
    #[serde(deserialize_with = "wire::i64_lenient")]
    pub dept_id: i64,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_main: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
}

/// A person as `user/list` or `user/get` returns them. Absent fields are `None`: DingTalk
/// omits empty values and values the app has no permission to see.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct User {
    pub userid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub hide_mobile: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_email_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// All departments of the user.
    #[serde(
        default,
        deserialize_with = "wire::opt_i64_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub dept_id_list: Option<Vec<i64>>,
    /// `user/list` only: order within the queried department.
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub dept_order: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dept_order_list: Option<Vec<DeptOrder>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_in_dept: Option<Vec<DeptLeader>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dept_position_list: Option<Vec<DeptPosition>>,
    /// A JSON object serialized as a string, as DingTalk sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(
        default,
        deserialize_with = "wire::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub hired_date: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_userid: Option<String>,
    /// Has activated DingTalk (not "is employed").
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub active: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub admin: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub boss: Option<bool>,
    /// `user/list` only: head of the queried department.
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub leader: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub senior: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub real_authed: Option<bool>,
    #[serde(
        default,
        deserialize_with = "wire::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub exclusive_account: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_account_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_list: Option<Vec<Role>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub union_emp_ext: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_i18n: Option<Value>,
    /// Fields this client does not know yet, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// All fields as DingTalk names them (absent ones left out), for templates.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Department ids, empty when DingTalk did not send them.
    pub fn departments(&self) -> &[i64] {
        self.dept_id_list.as_deref().unwrap_or_default()
    }
}

/// One `user/list` page.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct UserPage {
    #[serde(default)]
    pub list: Vec<User>,
    #[serde(default, deserialize_with = "wire::opt_bool")]
    pub has_more: Option<bool>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub next_cursor: Option<i64>,
}

impl UserPage {
    /// The cursor of the next page, if there is one. `next_cursor` is opaque; a cursor that
    /// does not move would loop forever, so it ends the listing.
    pub fn next(&self, cursor: i64) -> Option<i64> {
        match (self.has_more, self.next_cursor) {
            (Some(true), Some(next)) if next != cursor => Some(next),
            _ => None,
        }
    }
}

/// `getbyunionid`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UnionIdLookup {
    pub userid: String,
    /// 0 = employee, 1 = external contact.
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub contact_type: Option<i64>,
}

/// `getbymobile`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MobileLookup {
    #[serde(default)]
    pub userid: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string_list")]
    pub exclusive_account_userid_list: Option<Vec<String>>,
}

fn parse<T: serde::de::DeserializeOwned>(api: &str, v: Value) -> Result<T, DingTalkError> {
    serde_json::from_value(v).map_err(|e| DingTalkError::decode(api, e))
}

impl DingTalkClient {
    /// Direct sub-departments of `dept_id`, with their details (one call, no
    /// `department/get` per child).
    pub async fn list_sub_departments(
        &self,
        dept_id: i64,
    ) -> Result<Vec<Department>, DingTalkError> {
        let v = self.oapi(API_LISTSUB, &json!({"dept_id": dept_id})).await?;
        if v.is_null() {
            return Ok(vec![]);
        }
        parse(API_LISTSUB, v)
    }

    /// Ids of the direct sub-departments (not limited by the contact scope).
    pub async fn list_sub_department_ids(&self, dept_id: i64) -> Result<Vec<i64>, DingTalkError> {
        let v = self
            .oapi(API_LISTSUBID, &json!({"dept_id": dept_id}))
            .await?;
        #[derive(Deserialize)]
        struct R {
            #[serde(default, deserialize_with = "wire::opt_i64_list")]
            dept_id_list: Option<Vec<i64>>,
        }
        Ok(parse::<R>(API_LISTSUBID, v)?
            .dept_id_list
            .unwrap_or_default())
    }

    /// One department's details.
    pub async fn get_department(&self, dept_id: i64) -> Result<Department, DingTalkError> {
        let v = self
            .oapi(API_DEPT_GET, &json!({"dept_id": dept_id}))
            .await?;
        parse(API_DEPT_GET, v)
    }

    /// One page of a department's direct members (`size` ≤ 100).
    pub async fn list_users_page(
        &self,
        dept_id: i64,
        cursor: i64,
        size: u32,
    ) -> Result<UserPage, DingTalkError> {
        if !(1..=PAGE_SIZE).contains(&size) {
            return Err(DingTalkError::validation("size", "must be 1..=100"));
        }
        if cursor < 0 {
            return Err(DingTalkError::validation("cursor", "must not be negative"));
        }
        let v = self
            .oapi(
                API_USER_LIST,
                &json!({"dept_id": dept_id, "cursor": cursor, "size": size}),
            )
            .await?;
        parse(API_USER_LIST, v)
    }

    /// Every direct member of `dept_id`, following the cursor 100 at a time.
    pub async fn list_users(&self, dept_id: i64) -> Result<Vec<User>, DingTalkError> {
        let mut out = vec![];
        let mut cursor = 0;
        let mut seen = HashSet::from([0]);
        loop {
            let page = self.list_users_page(dept_id, cursor, PAGE_SIZE).await?;
            let broken = if page.list.len() > PAGE_SIZE as usize {
                Some(format!(
                    "a page of {} people, more than asked for",
                    page.list.len()
                ))
            } else if page.has_more == Some(true)
                && page.next_cursor.is_none_or(|n| seen.contains(&n))
            {
                Some(format!("the cursor did not advance past {cursor}"))
            } else {
                None
            };
            if let Some(message) = broken {
                return Err(DingTalkError::Decode {
                    api: API_USER_LIST.into(),
                    message,
                });
            }
            let next = page.next(cursor);
            out.extend(page.list);
            match next {
                Some(n) => {
                    seen.insert(n);
                    cursor = n;
                }
                None => return Ok(out),
            }
        }
    }

    /// One person's details.
    pub async fn get_user(&self, userid: &str) -> Result<User, DingTalkError> {
        if userid.is_empty() || userid.chars().count() > 64 {
            return Err(DingTalkError::validation(
                "userid",
                "must be 1..=64 characters",
            ));
        }
        let v = self.oapi(API_USER_GET, &json!({"userid": userid})).await?;
        parse(API_USER_GET, v)
    }

    /// The enterprise userid of a DingTalk unionId (needs the app token, not a user's).
    pub async fn get_user_by_unionid(&self, unionid: &str) -> Result<UnionIdLookup, DingTalkError> {
        if unionid.is_empty() || unionid.chars().count() > 100 {
            return Err(DingTalkError::validation(
                "unionid",
                "must be 1..=100 characters",
            ));
        }
        let v = self
            .oapi(API_BY_UNIONID, &json!({"unionid": unionid}))
            .await?;
        parse(API_BY_UNIONID, v)
    }

    /// The userid behind a mobile number (internal apps; departed people are not found).
    pub async fn get_user_by_mobile(&self, mobile: &str) -> Result<MobileLookup, DingTalkError> {
        if mobile.trim().is_empty() {
            return Err(DingTalkError::validation("mobile", "must not be empty"));
        }
        let v = self
            .oapi(
                API_BY_MOBILE,
                &json!({"mobile": mobile, "support_exclusive_account_search": true}),
            )
            .await?;
        parse(API_BY_MOBILE, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse_real_and_stringly_values_and_keep_unknown_fields() {
        let u: User = serde_json::from_value(json!({
            "userid": "u1", "name": "张三", "dept_id_list": [2, "3"], "active": "true",
            "hired_date": "1600000000000", "leader_in_dept": [{"dept_id": 2, "leader": false}],
            "new_field": {"x": 1}
        }))
        .unwrap();
        assert_eq!(u.departments(), &[2, 3]);
        assert_eq!(u.active, Some(true));
        assert_eq!(u.hired_date, Some(1_600_000_000_000));
        assert_eq!(u.mobile, None, "absent stays absent");
        assert_eq!(u.extra["new_field"], json!({"x": 1}));
        let back = u.to_json();
        assert!(back.get("mobile").is_none());
        assert_eq!(back["new_field"], json!({"x": 1}));
        let u: User =
            serde_json::from_value(json!({"userid": "u2", "dept_id_list": "4,5"})).unwrap();
        assert_eq!(u.departments(), &[4, 5]);
    }

    #[test]
    fn departments_parse() {
        let d: Vec<Department> = serde_json::from_value(json!([
            {"dept_id": 37, "name": "市场部", "parent_id": 1, "create_dept_group": true, "auto_add_user": true},
            {"dept_id": "38", "name": "x", "parent_id": "37", "order": "5", "dept_manager_userid_list": "a,b"}
        ]))
        .unwrap();
        assert_eq!(d[0].parent_id, Some(1));
        assert_eq!(d[0].order, None);
        assert_eq!(d[1].dept_id, 38);
        assert_eq!(d[1].order, Some(5));
        assert_eq!(
            d[1].dept_manager_userid_list.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
    }

    #[test]
    fn paging_stops_on_last_page_or_stuck_cursor() {
        let p = |has_more: Option<bool>, next: Option<i64>| UserPage {
            list: vec![],
            has_more,
            next_cursor: next,
        };
        assert_eq!(p(Some(true), Some(100)).next(0), Some(100));
        assert_eq!(p(Some(false), Some(200)).next(100), None);
        assert_eq!(p(Some(true), None).next(100), None);
        assert_eq!(p(Some(true), Some(100)).next(100), None);
        assert_eq!(p(None, None).next(0), None);
    }
}
