//! The OpenLDAP backend against a real, private `slapd` per test.
//!
//! Every test starts its own server (see `support/slapd.rs`) and skips with a printed reason
//! when OpenLDAP is not installed.

#[path = "support/slapd.rs"]
mod slapd;

#[path = "ldap/client.rs"]
mod client;
#[path = "ldap/store.rs"]
mod store;
