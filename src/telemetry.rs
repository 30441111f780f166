//! Logging: `RUST_LOG` filters, `LOG_FORMAT=json|plain` picks the format. The controller logs
//! to stdout (default `info`), as a container should; the one-shot commands (`plan`, `apply`,
//! `demo`, `sim`) log to stderr (default `warn`) so their own output stays readable.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Install the controller's global subscriber once; later calls are ignored.
pub fn init() {
    install("info", false);
}

/// Install the subscriber of a one-shot command: stderr, quieter by default.
pub fn init_cli() {
    install("warn", true);
}

fn install(default: &str, stderr: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match (json, stderr) {
        (true, false) => registry
            .with(fmt::layer().json().with_current_span(false))
            .try_init(),
        (true, true) => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        (false, false) => registry.with(fmt::layer().with_target(false)).try_init(),
        (false, true) => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init(),
    };
}
