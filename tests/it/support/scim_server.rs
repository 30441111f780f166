//! A real `scim2-server` (PyPI) on a free loopback port, stopped by PID when dropped.
//! `tests/run` installs it into `.venv/`; without it the tests that need it say so and skip,
//! or fail when servers are required (see `require.rs`).

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

/// Where `scim2-server` lives: `$SCIM2_SERVER`, else the project's `.venv`; or why not.
fn binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SCIM2_SERVER") {
        let p = PathBuf::from(p);
        return match p.is_file() {
            true => Ok(p),
            false => Err(format!("SCIM2_SERVER={} is not a file", p.display())),
        };
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/scim2-server");
    match p.exists() {
        true => Ok(p),
        false => Err("not installed (run tests/run, which installs it into .venv)".into()),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ScimServer {
    /// Start a fresh, empty server. When it is not installed: `None` after printing why, or
    /// a panic when servers are required.
    pub fn start() -> Option<Self> {
        let bin = match binary() {
            Ok(bin) => bin,
            Err(why) => {
                super::require::unavailable("scim2-server", &why);
                return None;
            }
        };
        // A free port can be taken by a parallel test between our probe and the server's bind;
        // so check that the server answering is ours (it accepts our token) and retry if not.
        for _ in 0..10 {
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
            let mut server = Self {
                child,
                base_url: format!("http://127.0.0.1:{port}/v2"),
                token,
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if server.child.try_wait().ok().flatten().is_some() {
                    break; // it could not bind: try another port
                }
                if let Some(ours) = server.answers_with_our_token() {
                    if ours {
                        return Some(server);
                    }
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "scim2-server did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            server.stop();
        }
        panic!("scim2-server could not start on a free port");
    }

    /// `Some(true)` when the server on our port accepts our token, `Some(false)` when another
    /// server answers there, `None` while nothing answers yet.
    fn answers_with_our_token(&self) -> Option<bool> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let req = format!(
            "GET /v2/Users?count=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        Some(head.ends_with(b"200"))
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
