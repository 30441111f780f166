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
