//! What the integration tests share; the benchmarks (`tests/bench/`) include it too, so
//! not every item is used by every binary.

#![allow(dead_code)]

pub mod bench;
pub mod browser;
pub mod certs;
pub mod conformance;
pub mod import;
pub mod manifests;
pub mod require;
pub mod samba;
pub mod scim_server;
pub mod slapd;
pub mod truth;
pub mod world;

#[allow(unused_imports)] // the benchmarks use the module, not the name
pub use world::{CORP, World};
