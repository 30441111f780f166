//! dingsync keeps a DingTalk address book and an LDAP or SCIM directory in step, and fronts
//! DingTalk's login with an OIDC provider.
//!
//! The sync engine (`model`, `mapping`, `sync`, `directory`, `dingtalk`) never talks to the
//! Kubernetes API, so `plan`, `demo`, tests and benchmarks run it exactly as the controller does.

pub mod api;
pub mod cli;
pub mod controller;
pub mod dingtalk;
pub mod directory;
pub mod login;
pub mod mapping;
pub mod model;
pub mod report;
pub mod resolve;
pub mod runtime;
pub mod secret;
pub mod sim;
pub mod sync;
pub mod telemetry;
