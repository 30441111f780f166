//! Directory backends (filled in by its own change).

pub mod scim;
