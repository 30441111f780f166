//! Directory backends: where dingsync writes (inbound) or reads (outbound) people and groups.

pub mod ldap;
pub mod scim;
