//! SCIM 2.0 directory backend.

pub mod client;
