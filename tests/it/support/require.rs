//! Whether a test may skip when a server it needs cannot start.
//!
//! On a developer's machine a missing slapd, scim2-server or browser is said and the test
//! returns early. Under CI (`CI` set to anything non-empty) or with
//! `DINGSYNC_REQUIRE_SERVERS=1` (which `tests/run` exports for the full run) such a test fails
//! instead, so a green run means every test really ran.

/// The flag `tests/run` sets; `CI` has the same effect.
pub const REQUIRE_SERVERS: &str = "DINGSYNC_REQUIRE_SERVERS";

/// Whether servers are required in this process's environment.
pub fn servers_required() -> bool {
    required_by(
        std::env::var("CI").ok().as_deref(),
        std::env::var(REQUIRE_SERVERS).ok().as_deref(),
    )
}

/// The decision itself: `CI` set and non-empty, or the flag set to `1`.
pub fn required_by(ci: Option<&str>, flag: Option<&str>) -> bool {
    ci.is_some_and(|v| !v.is_empty()) || flag == Some("1")
}

/// `server` cannot start because of `why`: fail when servers are required, else print why
/// the test skips (the caller then returns early).
pub fn unavailable(server: &str, why: &str) {
    if servers_required() {
        panic!(
            "{server} is required here (CI or {REQUIRE_SERVERS}=1 is set) but cannot start: {why}"
        );
    }
    eprintln!("SKIPPED: {server} unavailable: {why}");
}

#[test]
fn ci_or_the_flag_requires_servers() {
    assert!(!required_by(None, None));
    assert!(!required_by(Some(""), None));
    assert!(!required_by(None, Some("0")));
    assert!(required_by(Some("true"), None));
    assert!(required_by(Some("1"), Some("0")));
    assert!(required_by(None, Some("1")));
}

/// Set by [`a_missing_slapd_fails_when_servers_are_required`] in the child it starts.
const PROBE: &str = "DINGSYNC_REQUIRE_PROBE";

/// The child's side: start slapd the way every LDAP test does. Does nothing in a normal run.
#[test]
fn slapd_start_probe() {
    if std::env::var_os(PROBE).is_none() {
        return;
    }
    if super::slapd::start_or_skip().is_some() {
        println!("PROBE: slapd started");
    }
}

/// This binary again, running only [`slapd_start_probe`] with slapd's path pointing nowhere.
fn probe(require: bool) -> std::process::Output {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        "support::require::slapd_start_probe",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(PROBE, "1")
    .env(
        super::slapd::SLAPD_BINARY,
        "/nonexistent/dingsync-test/slapd",
    )
    .env_remove("CI")
    .env_remove(REQUIRE_SERVERS);
    if require {
        cmd.env(REQUIRE_SERVERS, "1");
    }
    cmd.output().expect("run the probe")
}

#[test]
fn a_missing_slapd_fails_when_servers_are_required() {
    let out = probe(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the probe passed: {stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("slapd is required here") && all.contains("/nonexistent/dingsync-test/slapd"),
        "the failure names the server and why: {all}"
    );

    let out = probe(false);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "without the flag it skips: {all}");
    assert!(all.contains("SKIPPED: slapd unavailable"), "{all}");
}
