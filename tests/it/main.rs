//! dingsync's integration tests, in one binary so that the suite links once: each module is
//! one topic, and `support` holds what they share (real servers, the simulated world, the
//! manifests, the behaviour suite every directory backend runs).
//!
//! Tests that need slapd, scim2-server or a browser skip with a printed reason when it is
//! missing, unless `CI` or `DINGSYNC_REQUIRE_SERVERS=1` is set: then they fail (see
//! `support/require.rs`).

mod support;

mod ad;
mod api;
mod bad_input;
mod big_trees;
mod controller;
mod dingtalk;
mod dingtalk_paths;
mod e2e;
mod engine;
mod every_event;
mod fidelity;
mod incremental;
mod ldap;
mod ldap_sync;
mod login;
mod login_account;
mod login_browser;
mod login_inapp;
mod login_ledger;
mod login_provision;
mod login_strict;
mod managers;
mod outbound;
mod outbound_scim;
mod plan;
mod quickbind;
mod real_tenant;
mod reliability;
mod report_cli;
mod roles;
mod scim;
mod scim_sync;
mod scim_waves;
mod scope_filters;
mod secrets;
mod sim;
