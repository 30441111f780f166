//! A private OpenLDAP `slapd` for tests and benchmarks.
//!
//! Writes its own `slapd.conf` into a temp dir (core, cosine, nis, inetorgperson schemas;
//! back_mdb with memberof, refint, ppolicy and syncprov for RFC 4533 content sync;
//! `dbnosync`), checks it with `slaptest`, starts `slapd -d 0` on a free loopback port, waits
//! until it answers, and adds the base entries: the suffix, a service account
//! `cn=dingsync,<suffix>` that may write everything but is held to the server's size limit
//! (the rootdn is not), and a default password policy so that a `pwdAccountLockedTime` lock
//! takes effect on bind. The process is killed by PID on drop (also on panic), and can be
//! stopped and restarted on the same port and database for fault tests. `DINGSYNC_SLAPD`
//! names another `slapd` binary.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Suffix of the test database.
pub const SUFFIX: &str = "dc=example,dc=com";
/// The database's root DN (no limits, no access control).
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
/// The service account dingsync binds as in tests.
pub const SERVICE_DN: &str = "cn=dingsync,dc=example,dc=com";
/// Size limit every non-root search is held to, so paging is really exercised.
pub const SIZE_LIMIT: usize = 500;
/// An account whose paged searches are capped at [`LIMITED_TOTAL`] entries in all, to prove
/// that a read the server cuts short is reported, not taken as complete.
pub const LIMITED_DN: &str = "cn=limited,dc=example,dc=com";
pub const LIMITED_TOTAL: usize = 300;

const BINARIES: [&str; 3] = ["slapd", "slaptest", "slappasswd"];
const CLIENTS: [&str; 2] = ["ldapadd", "ldapsearch"];

/// Environment variable naming the `slapd` binary to run (default: found on `PATH` or in
/// the sbin directories).
pub const SLAPD_BINARY: &str = "DINGSYNC_SLAPD";

/// Why slapd cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    if let Some(p) = std::env::var_os(SLAPD_BINARY)
        && !Path::new(&p).is_file()
    {
        return Some(format!(
            "{SLAPD_BINARY}={} is not a file",
            Path::new(&p).display()
        ));
    }
    for bin in BINARIES.iter().chain(CLIENTS.iter()) {
        if find_binary(bin).is_none() {
            return Some(format!(
                "`{bin}` not found: install OpenLDAP with \
                 `DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slapd ldap-utils`"
            ));
        }
    }
    None
}

/// Whether slapd can run here. When not: `false` after printing why, or a panic when servers
/// are required (see `require.rs`).
pub fn available_or_skip() -> bool {
    match unavailable() {
        Some(why) => {
            super::require::unavailable("slapd", &why);
            false
        }
        None => true,
    }
}

/// Start a slapd for this test. When OpenLDAP is missing: `None` after printing why, or a
/// panic when servers are required (see `require.rs`).
pub fn start_or_skip() -> Option<Slapd> {
    if !available_or_skip() {
        return None;
    }
    Some(Slapd::start().unwrap_or_else(|e| panic!("slapd did not start: {e}")))
}

fn find_binary(name: &str) -> Option<PathBuf> {
    if name == "slapd"
        && let Some(p) = std::env::var_os(SLAPD_BINARY)
    {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A running private slapd.
pub struct Slapd {
    ppolicy: bool,
    dir: tempfile::TempDir,
    port: u16,
    /// With TLS: the ldaps:// port and the PEM of the CA that signed the server certificate.
    tls: Option<(u16, String)>,
    child: Option<Child>,
    root_password: String,
    service_password: String,
}

impl Slapd {
    /// Write the config, check it, start the server and add the base entries.
    pub fn start() -> Result<Self, String> {
        Self::start_with(false, true)
    }

    /// A server without the ppolicy overlay (accounts cannot be locked).
    pub fn start_without_ppolicy() -> Result<Self, String> {
        Self::start_with(false, false)
    }

    /// Like [`Slapd::start`], with a throwaway CA and server certificate (for 127.0.0.1), so
    /// that StartTLS on `ldap://` and `ldaps://` both work.
    pub fn start_tls() -> Result<Self, String> {
        Self::start_with(true, true)
    }

    fn start_with(tls: bool, ppolicy: bool) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("dingsync-slapd-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        std::fs::create_dir_all(dir.path().join("db")).map_err(|e| format!("db dir: {e}"))?;
        let root_password = format!("root-{}", uuid::Uuid::new_v4().simple());
        let service_password = format!("svc-{}", uuid::Uuid::new_v4().simple());
        let hash = slappasswd(&root_password)?;
        let ca = if tls {
            Some(make_certs(dir.path())?)
        } else {
            None
        };
        let mut conf = config(dir.path(), &hash, tls);
        if !ppolicy {
            conf = conf
                .lines()
                .filter(|l| !l.contains("ppolicy"))
                .collect::<Vec<_>>()
                .join("\n");
        }
        std::fs::write(dir.path().join("slapd.conf"), conf).map_err(|e| format!("conf: {e}"))?;
        let out = Command::new(find_binary("slaptest").unwrap_or("slaptest".into()))
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-u")
            .output()
            .map_err(|e| format!("slaptest: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "slaptest rejected the config: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut me = Self {
            ppolicy,
            dir,
            port: 0,
            tls: ca.map(|pem| (0, pem)),
            child: None,
            root_password,
            service_password,
        };
        // The free port is found by binding and releasing it; another process may grab it in
        // between, so try a few ports.
        let mut last = String::new();
        for _ in 0..5 {
            me.port = free_port()?;
            if let Some((p, _)) = me.tls.as_mut() {
                *p = free_port()?;
            }
            match me.spawn() {
                Ok(()) => {
                    me.add_base_entries()?;
                    return Ok(me);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let stderr = std::fs::File::create(self.dir.path().join("slapd.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(find_binary("slapd").unwrap_or("slapd".into()))
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(match &self.tls {
                Some(_) => format!("{} {}", self.url(), self.ldaps_url().unwrap_or_default()),
                None => self.url(),
            })
            .arg("-d")
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn slapd: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "slapd exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
                ));
            }
            let probe = Command::new("ldapsearch")
                .args([
                    "-x",
                    "-LLL",
                    "-H",
                    &self.url(),
                    "-b",
                    "",
                    "-s",
                    "base",
                    "1.1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if probe.map(|s| s.success()).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("slapd did not answer within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn add_base_entries(&self) -> Result<(), String> {
        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
             cn: dingsync\nuserPassword: {}\n\n\
             dn: {LIMITED_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
             cn: limited\nuserPassword: {}\n\n\
             dn: ou=policies,{SUFFIX}\nobjectClass: organizationalUnit\nou: policies\n\n\
             dn: cn=default,ou=policies,{SUFFIX}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\n\
             cn: default\npwdAttribute: userPassword\npwdLockout: TRUE\n",
            self.service_password, self.service_password
        );
        if !self.ppolicy {
            ldif = ldif[..ldif.find("dn: cn=default").unwrap_or(ldif.len())].to_string();
        }
        self.ldapadd(&ldif)
    }

    /// Apply LDIF (add records, or changetype records) as the root DN.
    pub fn ldapadd(&self, ldif: &str) -> Result<(), String> {
        self.ldap_tool("ldapadd", &[], ldif)
    }

    /// Apply LDIF change records as the root DN (`ldapmodify`).
    pub fn ldapmodify(&self, ldif: &str) -> Result<(), String> {
        self.ldap_tool("ldapmodify", &[], ldif)
    }

    fn ldap_tool(&self, tool: &str, extra: &[&str], stdin: &str) -> Result<(), String> {
        let mut child = Command::new(tool)
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ROOT_DN,
                "-w",
                &self.root_password,
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{tool}: {e}"))?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes())
            .map_err(|e| format!("{tool} stdin: {e}"))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `ldapsearch` as root; returns the LDIF text (unwrapped lines).
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<String, String> {
        let out = Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url()])
            .args(["-D", ROOT_DN, "-w", &self.root_password, "-b", base, filter])
            .args(attrs)
            .output()
            .map_err(|e| format!("ldapsearch: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "ldapsearch failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.port)
    }

    /// `ldaps://127.0.0.1:PORT` when started with TLS.
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(p, _)| format!("ldaps://127.0.0.1:{p}/"))
    }

    /// PEM of the CA that signed the server certificate, when started with TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|(_, pem)| pem.as_str())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The root DN's password (tests only).
    pub fn root_password(&self) -> &str {
        &self.root_password
    }

    /// The service account's password (tests only).
    pub fn service_password(&self) -> &str {
        &self.service_password
    }

    /// Where the config, database and log live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's own PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stop the server (SIGTERM, then SIGKILL after 10 s); the database stays.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Start it again on the same port with the same database.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                // The port may still be in TIME_WAIT/closing for a moment.
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Create a fresh organizational unit under the suffix for one test's node.
    pub fn new_node(&self, name: &str) -> Result<String, String> {
        let dn = format!("ou={name},{SUFFIX}");
        self.ldapadd(&format!(
            "dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n"
        ))?;
        Ok(dn)
    }

    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM lets slapd close the database cleanly; `kill` the tool keeps us free of libc.
        let _ = Command::new("kill")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

fn slappasswd(password: &str) -> Result<String, String> {
    let out = Command::new(find_binary("slappasswd").unwrap_or("slappasswd".into()))
        .args(["-s", password])
        .output()
        .map_err(|e| format!("slappasswd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "slappasswd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A CA and a server certificate for 127.0.0.1, made with the `openssl` tool.
fn make_certs(dir: &Path) -> Result<String, String> {
    super::certs::make_certs(dir, "dingsync test CA")
}

fn config(dir: &Path, root_hash: &str, tls: bool) -> String {
    let d = dir.display();
    let tls = if tls {
        format!(
            "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n"
        )
    } else {
        String::new()
    };
    let modules = if Path::new("/usr/lib/ldap").is_dir() {
        "modulepath /usr/lib/ldap\n"
    } else {
        ""
    };
    format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
{modules}moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
moduleload syncprov
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
{tls}sizelimit size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.prtotal=unlimited

database mdb
maxsize 4294967296
suffix \"{SUFFIX}\"
rootdn \"{ROOT_DN}\"
rootpw {root_hash}
directory {d}/db
dbnosync
limits dn.exact=\"{LIMITED_DN}\" size.soft={LIMITED_TOTAL} size.hard={LIMITED_TOTAL} size.prtotal={LIMITED_TOTAL}
index objectClass eq
index entryUUID eq
index businessCategory eq
index uid,cn,mail,mobile,employeeNumber eq
index member,memberOf eq
index entryCSN eq
access to attrs=userPassword by dn.exact=\"{SERVICE_DN}\" write by anonymous auth by self write by * none
access to * by dn.exact=\"{SERVICE_DN}\" manage by * read


overlay memberof
overlay refint
refint_attributes member
overlay ppolicy
ppolicy_default \"cn=default,ou=policies,{SUFFIX}\"
ppolicy_use_lockout
overlay syncprov
syncprov-checkpoint 100 1
syncprov-sessionlog 10000
"
    )
}
