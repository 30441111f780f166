//! Logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json|plain` picks the format.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Install the global subscriber once; later calls are ignored.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry
            .with(fmt::layer().json().with_current_span(false))
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
}
