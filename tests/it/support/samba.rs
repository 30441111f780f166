//! A throwaway Samba Active Directory domain controller for tests.
//!
//! `samba-tool domain provision` writes a fresh domain (`DINGSYNC.TEST`, RFC 2307 schema, no
//! DNS) into a temp dir, with a throwaway CA and server certificate for 127.0.0.1 in place of
//! the self-signed one Samba would make (which names the host, not the address); then
//! `samba -i -M single` runs only the LDAP service in the foreground, on 127.0.0.1. It is
//! killed by PID (its process group) on drop.
//!
//! Samba's LDAP ports are fixed (389, 636), and it only listens on addresses an interface
//! has, so one machine runs one such DC at a time: the tests of a process take turns
//! ([`start_or_skip`]), each with a fresh copy of one provisioned domain.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The domain every test DC serves.
pub const REALM: &str = "DINGSYNC.TEST";
pub const DOMAIN: &str = "DINGSYNC";
pub const BASE_DN: &str = "DC=dingsync,DC=test";
/// The provisioned administrator, bound to by user principal name (simple bind, no Kerberos).
pub const ADMIN_UPN: &str = "Administrator@dingsync.test";
/// Where the DC listens.
pub const HOST: &str = "127.0.0.1";

/// Stands for the domain's directory in the template's `smb.conf`.
const DIR_MARK: &str = "@DINGSYNC_SAMBA_DIR@";

const DEBIAN_PACKAGES: &str = "samba samba-ad-dc samba-ad-provision winbind ldap-utils";

/// Why a Samba DC cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    for bin in ["samba", "samba-tool", "ldapsearch", "openssl"] {
        if find_binary(bin).is_none() {
            return Some(format!(
                "`{bin}` not found: install `DEBIAN_FRONTEND=noninteractive apt-get install -y \
                 --no-install-recommends {DEBIAN_PACKAGES}`"
            ));
        }
    }
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() != 0) {
        return Some("the AD DC listens on ports 389 and 636, which needs root".into());
    }
    if !Path::new("/usr/share/samba/setup/ad-schema").is_dir() {
        return Some(format!(
            "the AD schema files are missing: install {DEBIAN_PACKAGES}"
        ));
    }
    None
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Tests wait here for their turn at the one DC a machine can run.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh DC for this test, once the previous test's is gone; `None` after saying why when
/// Samba is missing (a panic when servers are required, see `require.rs`).
pub async fn start_or_skip() -> Option<Samba> {
    if let Some(why) = unavailable() {
        super::require::unavailable("samba AD DC", &why);
        return None;
    }
    let turn = TURN.lock().await;
    Some(Samba::start(turn).unwrap_or_else(|e| panic!("samba AD DC did not start: {e}")))
}

/// A running Samba AD DC.
pub struct Samba {
    dir: tempfile::TempDir,
    child: Option<Child>,
    admin_password: String,
    ca_pem: String,
    /// Held until the server is stopped (fields drop after [`Drop::drop`] ran).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Samba {
    /// A copy of the provisioned domain (see [`template`]) in a temp dir, serving LDAP.
    fn start(turn: tokio::sync::MutexGuard<'static, ()>) -> Result<Self, String> {
        let template = template()?;
        let dir = tempfile::Builder::new()
            .prefix("dingsync-samba-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let copy = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", template.display()))
            .arg(dir.path())
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !copy.success() {
            return Err(format!("copying {} failed", template.display()));
        }
        let conf = dir.path().join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).map_err(|e| format!("smb.conf: {e}"))?;
        let text = text.replace(DIR_MARK, &dir.path().display().to_string());
        std::fs::write(&conf, text).map_err(|e| format!("smb.conf: {e}"))?;
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f));
        let admin_password = read("admin-password").map_err(|e| format!("password: {e}"))?;
        let ca_pem = read("tls/ca.pem").map_err(|e| format!("ca.pem: {e}"))?;
        let mut me = Samba {
            dir,
            child: None,
            admin_password,
            ca_pem,
            _turn: turn,
        };
        me.spawn()?;
        Ok(me)
    }

    fn spawn(&mut self) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        // The previous test's DC may still be going away.
        let free_by = Instant::now() + Duration::from_secs(20);
        while [389, 636]
            .iter()
            .any(|p| std::net::TcpStream::connect((HOST, *p)).is_ok())
        {
            if Instant::now() > free_by {
                return Err(format!(
                    "{HOST}:389/636 are taken (another Samba or LDAP server runs here)"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::File::create(self.dir.path().join("samba.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(find_binary("samba").unwrap_or("samba".into()))
            .args(["-i", "-M", "single", "--debuglevel=1", "-s"])
            .arg(self.dir.path().join("etc/smb.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| format!("log: {e}"))?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn samba: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("samba exited with {status}: {}", self.log()));
            }
            if self
                .search(BASE_DN, "(objectClass=domain)", &["dn"])
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("samba did not answer within 60 s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("samba.log")).unwrap_or_default()
    }

    /// `ldaps://127.0.0.1:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{HOST}:636")
    }

    /// `ldap://127.0.0.1:389` (for StartTLS; Samba refuses simple binds without TLS).
    pub fn ldap_url(&self) -> String {
        format!("ldap://{HOST}:389")
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// PEM of the CA that signed the DC's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn ldap_tool(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut child = Command::new(tool)
            .env("LDAPTLS_CACERT", self.dir.path().join("tls/ca.pem"))
            .args(["-x", "-H", &self.ldaps_url(), "-D", ADMIN_UPN, "-w"])
            .arg(&self.admin_password)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{tool}: {e}"))?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(stdin.unwrap_or_default().as_bytes())
                .map_err(|e| format!("{tool} stdin: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{tool}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ldapsearch` over LDAPS as the administrator: the LDIF it prints (`-LLL`, no wrapping).
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<String, String> {
        let mut args = vec!["-LLL", "-o", "ldif-wrap=no", "-b", base, filter];
        args.extend_from_slice(attrs);
        self.ldap_tool("ldapsearch", &args, None)
    }

    /// `ldapmodify -a` over LDAPS as the administrator.
    pub fn ldapadd(&self, ldif: &str) -> Result<(), String> {
        self.ldap_tool("ldapmodify", &["-a"], Some(ldif))
            .map(|_| ())
    }

    /// A fresh OU under the domain for one test's node.
    pub fn new_node(&self, name: &str) -> Result<String, String> {
        let dn = format!("OU={name}-{},{BASE_DN}", uuid::Uuid::new_v4().simple());
        self.ldapadd(&format!("dn: {dn}\nobjectClass: organizationalUnit\n"))?;
        Ok(dn)
    }

    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The whole process group: Samba forks helpers even in the single process model.
        let group = format!("-{}", child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A provisioned domain to copy from: made once per Samba version and kept under the build's
/// temp dir, as provisioning takes seconds of CPU and every test needs a fresh domain.
fn template() -> Result<PathBuf, String> {
    let version = Command::new(find_binary("samba").unwrap_or("samba".into()))
        .arg("-V")
        .output()
        .map_err(|e| format!("samba -V: {e}"))?;
    let version: String = String::from_utf8_lossy(&version.stdout)
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let done = root.join(format!("samba-ad-{version}"));
    if done.join("admin-password").is_file() {
        return Ok(done);
    }
    // Made under a private name and renamed, so concurrent test processes never see half.
    let fresh = root.join(format!(
        "samba-ad-{version}.{}",
        uuid::Uuid::new_v4().simple()
    ));
    let tls = fresh.join("tls");
    std::fs::create_dir_all(&tls).map_err(|e| format!("tls dir: {e}"))?;
    make_certs(&tls)?;
    // AD's default policy wants three character classes and 7+ characters.
    let admin_password = format!("Adm-{}9", uuid::Uuid::new_v4().simple());
    provision(&fresh, &admin_password)?;
    // Copies put their own directory in place of the template's.
    let conf = fresh.join("etc/smb.conf");
    let text = std::fs::read_to_string(&conf).map_err(|e| format!("smb.conf: {e}"))?;
    std::fs::write(&conf, text.replace(&fresh.display().to_string(), DIR_MARK))
        .map_err(|e| format!("smb.conf: {e}"))?;
    std::fs::write(fresh.join("admin-password"), &admin_password)
        .map_err(|e| format!("admin-password: {e}"))?;
    match std::fs::rename(&fresh, &done) {
        Ok(()) => Ok(done),
        // Another process was first: use theirs.
        Err(_) if done.join("admin-password").is_file() => {
            let _ = std::fs::remove_dir_all(&fresh);
            Ok(done)
        }
        Err(e) => Err(format!("template: {e}")),
    }
}

/// `samba-tool domain provision` into `dir`, listening on [`HOST`] only, LDAP only, with the
/// certificates in `dir/tls`.
fn provision(dir: &Path, admin_password: &str) -> Result<(), String> {
    let d = dir.display();
    let options = [
        format!("interfaces={HOST}"),
        "bind interfaces only=yes".into(),
        "server services=ldap".into(),
        format!("pid directory={d}"),
        format!("log file={d}/log.%m"),
        "tls enabled=yes".into(),
        format!("tls keyfile={d}/tls/server.key"),
        format!("tls certfile={d}/tls/server.pem"),
        format!("tls cafile={d}/tls/ca.pem"),
    ];
    let mut cmd = Command::new(find_binary("samba-tool").unwrap_or("samba-tool".into()));
    cmd.args([
        "domain",
        "provision",
        "--use-rfc2307",
        "--server-role=dc",
        "--dns-backend=NONE",
    ])
    .arg(format!("--realm={REALM}"))
    .arg(format!("--domain={DOMAIN}"))
    .arg(format!("--adminpass={admin_password}"))
    .arg(format!("--targetdir={d}"));
    for o in &options {
        cmd.arg(format!("--option={o}"));
    }
    let out = cmd.output().map_err(|e| format!("samba-tool: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "samba-tool domain provision failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A CA and a server certificate for 127.0.0.1 in `dir`, made with `openssl`; the CA's PEM.
fn make_certs(dir: &Path) -> Result<String, String> {
    let ca = super::certs::make_certs(dir, "dingsync test AD CA")?;
    // Samba refuses a private key others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| format!("server.key: {e}"))?;
    Ok(ca)
}
