//! OpenLDAP backend.

pub mod client;
pub mod dn;
pub mod schema;
pub mod store;
