//! Command-line entry points, one module per subcommand.

pub mod approve;
pub mod bind;
pub mod crd;
pub mod demo;
pub mod login;
pub mod plan;
mod plan_view;
mod report;
pub mod reports;
pub mod sim;
