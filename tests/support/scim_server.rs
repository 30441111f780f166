//! A real `scim2-server` (PyPI) on a free loopback port, stopped by PID when dropped.
//! `tests/run` installs it into `.venv/`; without it the tests that need it say so and skip.

#![allow(dead_code)]

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct ScimServer {
    child: Child,
    pub base_url: String,
    pub token: String,
    pub port: u16,
}

/// Where `scim2-server` lives: `$SCIM2_SERVER`, else the project's `.venv`.
fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SCIM2_SERVER") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/scim2-server");
    p.exists().then_some(p)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ScimServer {
    /// Start a fresh, empty server; `None` (with a printed reason) when it is not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = binary() else {
            eprintln!(
                "skipped: scim2-server not installed (run tests/run, which installs it into .venv)"
            );
            return None;
        };
        let port = free_port();
        let token = format!("tok-{}", uuid::Uuid::new_v4());
        let child = Command::new(&bin)
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                &token,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let server = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}/v2"),
            token,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "scim2-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// Stop the server (SIGTERM by PID) and wait for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        self.stop();
    }
}
