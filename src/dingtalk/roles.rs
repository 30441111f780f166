//! Roles (DingTalk's role groups and roles, the "label" API family): the list of every role
//! and the members of one. The reference documents only the person's `role_list`; what these
//! calls look like is taken from DingTalk's legacy API and marked (unconfirmed):
//! - `POST /topapi/role/list` `{offset, size ≤ 200}` → `result: {hasMore, list: [{groupId,
//!   name, roles: [{id, name}]}]}`, paged by role group (unconfirmed).
//! - `POST /topapi/role/simplelist` `{role_id, offset, size ≤ 200}` → `result: {hasMore,
//!   list: [{userid, name}]}` (unconfirmed). Whether members outside the app's contact scope
//!   are listed is not stated (unconfirmed); the sync only keeps members that are its own
//!   directory's people, so either answer is safe.
//!
//! More pages than any enterprise has is an error rather than a shorter list: a short role
//! list would delete role groups.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{DingTalkClient, DingTalkError, wire};

pub const API_ROLE_LIST: &str = "/topapi/role/list";
pub const API_ROLE_MEMBERS: &str = "/topapi/role/simplelist";

const PAGE: usize = 200;
/// More pages than this is a server that never says "no more".
const MAX_PAGES: usize = 10_000;

/// A role as DingTalk lists it, with its group's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub id: i64,
    pub name: String,
    pub group_name: String,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default, rename = "hasMore", deserialize_with = "wire::opt_bool")]
    has_more: Option<bool>,
    #[serde(default = "Vec::new")]
    list: Vec<T>,
}

#[derive(Deserialize)]
struct GroupWire {
    #[serde(default)]
    name: String,
    #[serde(default)]
    roles: Vec<RoleWire>,
}

#[derive(Deserialize)]
struct RoleWire {
    #[serde(deserialize_with = "wire::opt_i64", default)]
    id: Option<i64>,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct MemberWire {
    #[serde(default)]
    userid: String,
}

fn parse<T: serde::de::DeserializeOwned>(api: &str, v: Value) -> Result<Page<T>, DingTalkError> {
    serde_json::from_value(v).map_err(|e| DingTalkError::decode(api, e))
}

impl DingTalkClient {
    /// Every role of the enterprise, group by group.
    pub async fn list_roles(&self) -> Result<Vec<RoleInfo>, DingTalkError> {
        let mut out = vec![];
        for n in 0..MAX_PAGES {
            let body = json!({"offset": n * PAGE, "size": PAGE});
            let page: Page<GroupWire> =
                parse(API_ROLE_LIST, self.oapi(API_ROLE_LIST, &body).await?)?;
            for g in page.list {
                for r in g.roles {
                    let id = r
                        .id
                        .ok_or_else(|| DingTalkError::decode(API_ROLE_LIST, "a role without id"))?;
                    out.push(RoleInfo {
                        id,
                        name: r.name,
                        group_name: g.name.clone(),
                    });
                }
            }
            if page.has_more != Some(true) {
                return Ok(out);
            }
        }
        Err(DingTalkError::decode(
            API_ROLE_LIST,
            "the role list never ended",
        ))
    }

    /// The userids holding role `id`.
    pub async fn role_members(&self, id: i64) -> Result<Vec<String>, DingTalkError> {
        let mut out = vec![];
        for n in 0..MAX_PAGES {
            let body = json!({"role_id": id, "offset": n * PAGE, "size": PAGE});
            let page: Page<MemberWire> =
                parse(API_ROLE_MEMBERS, self.oapi(API_ROLE_MEMBERS, &body).await?)?;
            out.extend(
                page.list
                    .into_iter()
                    .map(|m| m.userid)
                    .filter(|u| !u.is_empty()),
            );
            if page.has_more != Some(true) {
                return Ok(out);
            }
        }
        Err(DingTalkError::decode(
            API_ROLE_MEMBERS,
            "the member list never ended",
        ))
    }
}
