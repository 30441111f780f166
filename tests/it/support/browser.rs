//! What the headless-browser login tests need: Chromium, its driver, and the `.venv` with the
//! relying-party app's libraries.

use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What is missing to run a browser, if anything.
pub fn missing_pieces() -> Vec<String> {
    let mut m = Vec::new();
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !std::path::Path::new(bin).exists() {
            m.push(bin.to_string());
        }
    }
    let ok = Command::new(root().join(".venv/bin/python"))
        .args(["-c", "import selenium, authlib, flask"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        m.push(".venv with selenium, authlib, flask".into());
    }
    m
}

/// Whether a browser test can run; when it cannot, says why (and fails where servers are
/// required: CI, `DINGSYNC_REQUIRE_SERVERS=1` or `DINGSYNC_REQUIRE_BROWSER=1`).
pub fn available() -> bool {
    let missing = missing_pieces();
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {}", missing.join(", "));
    if std::env::var("DINGSYNC_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("browser test required but {why}");
    }
    super::require::unavailable("the browser", &why);
    false
}

/// A loopback port nothing listens on now, for a server a child process starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
