//! The simulator's two error types: [`ApiError`], a DingTalk business error that every host
//! renders in its own envelope, and [`SimError`], what the in-process API reports.

use serde::Serialize;

use super::org::OrgError;

/// A DingTalk business error: `errcode` + `errmsg` (old host) — mapped to HTTP for `/v1.0` and admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("errcode {errcode}: {errmsg}")]
pub struct ApiError {
    pub errcode: i64,
    pub errmsg: String,
}

pub fn api_err(errcode: i64, errmsg: impl Into<String>) -> ApiError {
    ApiError {
        errcode,
        errmsg: errmsg.into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("no such app: {0}")]
    UnknownApp(String),
    #[error("callback registration failed: {0}")]
    Callback(String),
}
