//! The old host's route table: each API path, the permission it needs and what answers it.

use axum::response::Response;

use super::params::Params;
use super::{departments, scope, users};
use crate::sim::error::ApiError;
use crate::sim::org::{
    App, PERM_DEPT_LIST, PERM_DEPT_MEMBER, PERM_MANAGE, PERM_MEMBER, PERM_MEMBER_BY_MOBILE,
};
use crate::sim::state::State;

/// An address-book API: runs on the locked state for an app allowed to call it.
pub type Handler = fn(&mut State, &App, &Params) -> Result<Response, ApiError>;

pub enum Answer {
    Contacts(Handler),
    /// `/call_back/*`: may push to the receiver, so it runs without the lock.
    Callbacks,
}

pub struct Api {
    /// The app permission the API needs (`None` = a valid app token is enough).
    pub perm: Option<&'static str>,
    pub answer: Answer,
}

/// The API served at `path`, if any.
pub fn find(path: &str) -> Option<Api> {
    let (perm, handler): (Option<&'static str>, Handler) = match path {
        "/topapi/v2/department/listsub" => (Some(PERM_DEPT_LIST), departments::list_sub),
        "/topapi/v2/department/listsubid" => (Some(PERM_DEPT_LIST), departments::list_sub_ids),
        "/topapi/v2/department/get" => (Some(PERM_DEPT_LIST), departments::get),
        "/topapi/v2/department/listparentbydept" => {
            (Some(PERM_DEPT_LIST), departments::parents_of_dept)
        }
        "/topapi/v2/department/listparentbyuser" => {
            (Some(PERM_DEPT_LIST), departments::parents_of_user)
        }
        "/topapi/v2/user/list" => (Some(PERM_DEPT_MEMBER), users::list),
        "/topapi/user/listsimple" => (Some(PERM_DEPT_MEMBER), users::list_simple),
        "/topapi/user/listid" => (Some(PERM_DEPT_MEMBER), users::list_ids),
        "/topapi/user/count" => (Some(PERM_DEPT_MEMBER), users::count),
        "/topapi/v2/user/get" => (Some(PERM_MEMBER), users::get),
        "/topapi/user/getbyunionid" => (Some(PERM_MEMBER), users::by_unionid),
        "/topapi/v2/user/getbymobile" => (Some(PERM_MEMBER_BY_MOBILE), users::by_mobile),
        "/topapi/v2/user/create" => (Some(PERM_MANAGE), users::create),
        "/topapi/v2/user/update" => (Some(PERM_MANAGE), users::update),
        "/topapi/v2/user/delete" => (Some(PERM_MANAGE), users::delete),
        "/topapi/v2/department/create" => (Some(PERM_MANAGE), departments::create),
        "/topapi/v2/department/update" => (Some(PERM_MANAGE), departments::update),
        "/topapi/v2/department/delete" => (Some(PERM_MANAGE), departments::delete),
        "/topapi/v2/user/getuserinfo" => (None, users::by_auth_code),
        "/topapi/role/list" => (Some(PERM_MEMBER), crate::sim::roles::list),
        "/topapi/role/simplelist" => (Some(PERM_MEMBER), crate::sim::roles::simple_list),
        "/topapi/role/getrole" => (Some(PERM_MEMBER), crate::sim::roles::get_role),
        "/auth/scopes" => (None, scope::auth_scopes),
        "/call_back/register_call_back"
        | "/call_back/update_call_back"
        | "/call_back/get_call_back"
        | "/call_back/delete_call_back"
        | "/call_back/get_call_back_failed_result" => {
            return Some(Api {
                perm: None,
                answer: Answer::Callbacks,
            });
        }
        _ => return None,
    };
    Some(Api {
        perm,
        answer: Answer::Contacts(handler),
    })
}
