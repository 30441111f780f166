//! The OpenLDAP backend against a real, private `slapd` per test.
//!
//! Every test starts its own server (see `support/slapd.rs`); without OpenLDAP installed it
//! skips with a printed reason, or fails when servers are required (see `support/require.rs`).

mod client;
mod store;
mod writes;
