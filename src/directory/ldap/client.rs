//! Connections to one LDAP server: TLS, simple bind, a small pool, paged search, and the
//! mapping of LDAP result codes to error kinds the sync engine can act on.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use tokio::sync::Mutex;

use super::dn::DnError;
use crate::directory::{Attrs, Name, attrs::Values};

pub use crate::secret::Secret;

/// How to reach and authenticate to the server.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    pub start_tls: bool,
    pub bind_dn: String,
    pub password: Secret,
    /// PEM CA bundle; when set, only these CAs are trusted.
    pub ca_pem: Option<String>,
    /// Connections in the pool; an apply keeps 8 writes in flight per connection.
    pub connections: usize,
    /// Timeout for connecting and for each operation.
    pub timeout: Duration,
    /// Page size of searches (simple paged results control).
    pub page_size: i32,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>, bind_dn: impl Into<String>, password: Secret) -> Self {
        ConnectOptions {
            url: url.into(),
            start_tls: false,
            bind_dn: bind_dn.into(),
            password,
            ca_pem: None,
            connections: 4,
            timeout: Duration::from_secs(30),
            page_size: 500,
        }
    }
}

/// What went wrong talking to the server, classified for the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdapError {
    /// Bad options (URL, CA bundle, DN syntax of the configuration).
    #[error("LDAP configuration: {0}")]
    Config(String),
    /// A DN that does not parse; `what` says whose (the node, an entry handed in).
    #[error("LDAP configuration: {what}: {source}")]
    BadDn {
        what: &'static str,
        #[source]
        source: DnError,
    },
    /// The bind was refused or the account lacks rights.
    #[error("LDAP authentication as {bind_dn:?} failed: {message}")]
    Auth { bind_dn: String, message: String },
    /// The server is unreachable, busy or the connection broke; retrying later may work.
    #[error("LDAP server unavailable: {0}")]
    Unavailable(String),
    /// The server returned fewer entries than exist (size/time/admin limit): a read that must
    /// not be taken as complete.
    #[error("LDAP search under {base:?} incomplete: {message}")]
    Incomplete { base: String, message: String },
    /// The entry does not exist.
    #[error("LDAP entry {dn:?} does not exist")]
    NoSuchObject { dn: String },
    /// An entry with that DN already exists.
    #[error("LDAP entry {dn:?} already exists")]
    AlreadyExists { dn: String },
    /// The server refused this one object (schema, constraint, syntax); others may go on.
    #[error("LDAP refused {dn:?}{}: {message} (result {rc})", attribute.as_ref().map(|a| format!(" (attribute {a})")).unwrap_or_default())]
    Rejected {
        dn: String,
        attribute: Option<String>,
        rc: u32,
        message: String,
    },
    /// Anything else the server said.
    #[error("LDAP operation on {dn:?} failed: {message} (result {rc})")]
    Other {
        dn: String,
        rc: u32,
        message: String,
    },
}

impl LdapError {
    /// True when the same request may succeed later (connection-level problems).
    pub fn is_transient(&self) -> bool {
        matches!(self, LdapError::Unavailable(_))
    }
}

/// DNs longer than this that draw a bare `other` (80) are taken as too long for the server.
const LONG_DN: usize = 240;

/// Classify a non-success LDAP result. `attrs` are the attribute names the request carried, so
/// a schema refusal can name the offending one even when the server's text is vague.
pub fn classify(rc: u32, text: &str, dn: &str, attrs: &[&str], bind_dn: &str) -> LdapError {
    let message = if text.is_empty() {
        rc_name(rc).to_string()
    } else {
        format!("{} ({})", text, rc_name(rc))
    };
    match rc {
        // invalidCredentials, inappropriateAuthentication, insufficientAccessRights,
        // strongerAuthRequired, confidentialityRequired
        49 | 48 | 50 | 8 | 13 => LdapError::Auth {
            bind_dn: bind_dn.to_string(),
            message,
        },
        // OpenLDAP's back-mdb answers a bare `other` to a DN longer than its index keys
        // (about 250 bytes here): that is this entry's fault, not the server's, and must not
        // stop the run for everyone else.
        80 if text.is_empty() && dn.len() > LONG_DN => LdapError::Rejected {
            dn: dn.to_string(),
            attribute: None,
            rc,
            message: format!(
                "{message}: the DN is {} bytes, longer than this server accepts; shorten the \
                 name the mapping puts into the RDN",
                dn.len()
            ),
        },
        // timeLimitExceeded is only transient for writes; searches map it to Incomplete.
        51..=53 | 80 | 3 => LdapError::Unavailable(format!("{dn}: {message}")),
        4 | 11 => LdapError::Incomplete {
            base: dn.to_string(),
            message,
        },
        32 => LdapError::NoSuchObject { dn: dn.to_string() },
        68 => LdapError::AlreadyExists { dn: dn.to_string() },
        // constraintViolation, attributeOrValueExists, invalidAttributeSyntax,
        // undefinedAttributeType, noSuchAttribute, inappropriateMatching, namingViolation,
        // objectClassViolation, notAllowedOnNonLeaf, notAllowedOnRDN,
        // objectClassModsProhibited, invalidDNSyntax, unwillingToPerform
        19 | 20 | 21 | 17 | 16 | 18 | 64 | 65 | 66 | 67 | 69 | 34 => LdapError::Rejected {
            dn: dn.to_string(),
            attribute: offending_attribute(text, attrs),
            rc,
            message,
        },
        _ => LdapError::Other {
            dn: dn.to_string(),
            rc,
            message,
        },
    }
}

/// Find the attribute a schema error is about: OpenLDAP says `attribute 'x' not allowed`,
/// `object class 'y' requires attribute 'x'` or `x: value #0 invalid per syntax`.
fn offending_attribute(text: &str, attrs: &[&str]) -> Option<String> {
    if let Some(pos) = text.find("attribute '") {
        let rest = &text[pos + "attribute '".len()..];
        if let Some(end) = rest.find('\'') {
            return Some(rest[..end].to_string());
        }
    }
    if let Some((head, _)) = text.split_once(": value #") {
        let name = head.rsplit(' ').next().unwrap_or(head);
        if !name.is_empty() {
            return Some(name.to_string());
        }
    }
    let lower = text.to_ascii_lowercase();
    attrs
        .iter()
        .find(|a| {
            let a = a.to_ascii_lowercase();
            lower
                .match_indices(&a)
                .any(|(i, _)| is_word_boundary(&lower, i, a.len()))
        })
        .map(|a| a.to_string())
}

fn is_word_boundary(s: &str, start: usize, len: usize) -> bool {
    let b = s.as_bytes();
    let before = start == 0 || !b[start - 1].is_ascii_alphanumeric();
    let after = start + len >= b.len() || !b[start + len].is_ascii_alphanumeric();
    before && after
}

fn rc_name(rc: u32) -> &'static str {
    match rc {
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        11 => "adminLimitExceeded",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        80 => "other",
        _ => "error",
    }
}

/// Map a client-side error (connection, TLS, timeout) or a result error.
pub(super) fn from_ldap3(
    e: ldap3::LdapError,
    dn: &str,
    attrs: &[&str],
    bind_dn: &str,
) -> LdapError {
    use ldap3::LdapError as E;
    match e {
        E::LdapResult { result } => classify(result.rc, &result.text, dn, attrs, bind_dn),
        E::UrlParsing { .. } | E::UnknownScheme(_) | E::FilterParsing => {
            LdapError::Config(e.to_string())
        }
        E::DNSName { .. } => LdapError::Config(format!("TLS server name: {e}")),
        // Io, OpSend, ResultRecv, Timeout, EndOfStream, Rustls handshake failures...
        other => LdapError::Unavailable(other.to_string()),
    }
}

/// One entry as read: DN, attributes (type names lowercased), operational data we asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    pub attrs: Attrs,
    /// Set by the shaping step of [`Pool::search_shaped`]: the digest of the attributes it
    /// folded out of `attrs`.
    pub digest: Option<u64>,
}

impl RawEntry {
    pub fn get(&self, attr: &str) -> Values<'_> {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .unwrap_or_else(Values::empty)
    }
    pub fn first(&self, attr: &str) -> Option<&str> {
        self.get(attr).first()
    }
}

/// A small pool of bound connections, each multiplexing requests.
pub struct Pool {
    opts: ConnectOptions,
    slots: Vec<Mutex<Option<ldap3::Ldap>>>,
    next: AtomicUsize,
    /// Write requests sent (add, modify, modrdn, delete; each attempt).
    writes_sent: AtomicU64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.opts.url)
            .field("bind_dn", &self.opts.bind_dn)
            .field("connections", &self.slots.len())
            .finish()
    }
}

impl Pool {
    /// Connect and bind once, so bad credentials or an unreachable server surface now.
    pub async fn connect(opts: ConnectOptions) -> Result<Arc<Self>, LdapError> {
        // ldap3 builds its default TLS config from the process-wide provider, which rustls
        // cannot pick by itself when several are compiled in; another one already set wins.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let n = opts.connections.max(1);
        let pool = Arc::new(Pool {
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            writes_sent: AtomicU64::new(0),
            opts,
        });
        pool.handle(0).await?;
        Ok(pool)
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// Write requests sent so far: what the server had to process, which a directory-level
    /// count of operations (one may take several requests) does not show.
    pub fn writes_sent(&self) -> u64 {
        self.writes_sent.load(Ordering::Relaxed)
    }

    fn sending_write(&self) {
        self.writes_sent.fetch_add(1, Ordering::Relaxed);
    }

    fn settings(&self) -> Result<LdapConnSettings, LdapError> {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(self.opts.timeout)
            .set_starttls(self.opts.start_tls);
        if self.opts.start_tls && self.opts.url.starts_with("ldaps://") {
            return Err(LdapError::Config(
                "startTLS cannot be combined with an ldaps:// URL".into(),
            ));
        }
        if let Some(pem) = &self.opts.ca_pem {
            s = s.set_config(Arc::new(tls_config(pem)?));
        }
        Ok(s)
    }

    async fn open(&self) -> Result<ldap3::Ldap, LdapError> {
        let url = &self.opts.url;
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return Err(LdapError::Config(format!(
                "url {url:?} must start with ldap:// or ldaps://"
            )));
        }
        let bind_dn = &self.opts.bind_dn;
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings()?, url)
            .await
            .map_err(|e| from_ldap3(e, url, &[], bind_dn))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.opts.timeout);
        let res = ldap
            .simple_bind(bind_dn, self.opts.password.expose())
            .await
            .map_err(|e| from_ldap3(e, bind_dn, &[], bind_dn))?;
        if res.rc != 0 {
            // A refused bind is an authentication problem whatever the code says.
            return Err(match classify(res.rc, &res.text, bind_dn, &[], bind_dn) {
                e @ (LdapError::Auth { .. } | LdapError::Unavailable(_)) => e,
                other => LdapError::Auth {
                    bind_dn: bind_dn.clone(),
                    message: other.to_string(),
                },
            });
        }
        Ok(ldap)
    }

    /// A bound connection of its own, outside the pool, for a search that stays open (a
    /// content-sync session): it must hold no pooled slot, and no per-operation timeout.
    pub async fn dedicated(&self) -> Result<ldap3::Ldap, LdapError> {
        self.open().await
    }

    /// A bound handle from slot `i`, reconnecting when the slot is empty or closed.
    async fn handle(&self, i: usize) -> Result<(usize, ldap3::Ldap), LdapError> {
        let i = i % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(h) = slot.as_mut()
            && !h.is_closed()
        {
            return Ok((i, h.clone()));
        }
        let h = self.open().await?;
        *slot = Some(h.clone());
        Ok((i, h))
    }

    async fn any(&self) -> Result<(usize, ldap3::Ldap), LdapError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.handle(i).await
    }

    /// Forget a broken connection so the next use reconnects.
    async fn drop_slot(&self, i: usize) {
        *self.slots[i].lock().await = None;
    }

    async fn run<T, F, Fut>(
        &self,
        dn: &str,
        attrs: &[&str],
        retry: bool,
        f: F,
    ) -> Result<T, LdapError>
    where
        F: Fn(ldap3::Ldap) -> Fut,
        Fut: std::future::Future<Output = Result<T, ldap3::LdapError>>,
    {
        let attempts = if retry { 3 } else { 1 };
        let mut last = None;
        for attempt in 0..attempts {
            let (i, h) = match self.any().await {
                Ok(x) => x,
                Err(e) if e.is_transient() && attempt + 1 < attempts => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut h = h;
            h.with_timeout(self.opts.timeout);
            match f(h).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let e = from_ldap3(e, dn, attrs, &self.opts.bind_dn);
                    if e.is_transient() {
                        self.drop_slot(i).await;
                        if attempt + 1 < attempts {
                            last = Some(e);
                            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                            continue;
                        }
                    }
                    return Err(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| LdapError::Unavailable("no attempt made".into())))
    }

    /// Paged subtree (or one-level) search returning every entry, or an error: a search the
    /// server cut short (size, time or admin limit) is `Incomplete`, never a short list.
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<RawEntry>, LdapError> {
        self.search_shaped(base, scope, filter, attrs, |_| {}).await
    }

    /// [`Pool::search`], with `shape` applied to each entry as it arrives: what it drops is
    /// never held for the whole result (a read of a million entries).
    pub async fn search_shaped(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        shape: impl Fn(&mut RawEntry) + Sync,
    ) -> Result<Vec<RawEntry>, LdapError> {
        let shape = &shape;
        let attrs_owned: Vec<String> = attrs.iter().map(|s| s.to_string()).collect();
        let page = self.opts.page_size;
        let bind_dn = self.opts.bind_dn.clone();
        self.run(base, &[], true, |mut h| {
            let attrs = attrs_owned.clone();
            let bind_dn = bind_dn.clone();
            async move {
                let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = vec![
                    Box::new(EntriesOnly::new()),
                    Box::new(PagedResults::new(page)),
                ];
                let mut stream = h
                    .streaming_search_with(adapters, base, scope, filter, attrs)
                    .await?;
                let mut out = Vec::new();
                while let Some(re) = stream.next().await? {
                    let e = SearchEntry::construct(re);
                    let attrs = Attrs::merging(
                        e.attrs
                            .into_iter()
                            .chain(guid_as_hex(e.bin_attrs))
                            .map(|(k, v)| (Name::new(&k.to_ascii_lowercase()), v)),
                    );
                    let mut entry = RawEntry {
                        dn: e.dn,
                        attrs,
                        digest: None,
                    };
                    shape(&mut entry);
                    out.push(entry);
                }
                let res = stream.finish().await;
                match res.rc {
                    0 => Ok(out),
                    // A missing base is an empty result for the caller to interpret.
                    32 => Err(ldap3::LdapError::LdapResult { result: res }),
                    3 | 4 | 11 => {
                        let _ = bind_dn;
                        Err(ldap3::LdapError::LdapResult {
                            result: ldap3::LdapResult {
                                rc: if res.rc == 3 { 11 } else { res.rc },
                                ..res
                            },
                        })
                    }
                    _ => Err(ldap3::LdapError::LdapResult { result: res }),
                }
            }
        })
        .await
    }

    /// Read one entry by DN; `None` when it does not exist.
    pub async fn read(&self, dn: &str, attrs: &[&str]) -> Result<Option<RawEntry>, LdapError> {
        match self.search(dn, Scope::Base, "(objectClass=*)", attrs).await {
            Ok(mut v) => Ok(v.pop()),
            Err(LdapError::NoSuchObject { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Add an entry.
    pub async fn add(&self, dn: &str, attrs: &Attrs) -> Result<(), LdapError> {
        let names: Vec<&str> = attrs.keys().map(Name::as_str).collect();
        let list: Vec<(String, HashSet<String>)> = attrs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned).collect()))
            .collect();
        self.run(dn, &names, false, |mut h| {
            let list = list.clone();
            self.sending_write();
            async move { h.add(dn, list).await?.success().map(|_| ()) }
        })
        .await
    }

    /// Apply modifications: `Some(values)` replaces (empty removes the attribute),
    /// plus value-level adds and deletes (used for group members).
    pub async fn modify(&self, dn: &str, mods: Vec<Modification>) -> Result<(), LdapError> {
        if mods.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = mods.iter().map(|m| m.attr().to_string()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.run(dn, &names, false, |mut h| {
            let mods: Vec<Mod<String>> = mods.iter().map(Modification::to_mod).collect();
            self.sending_write();
            async move { h.modify(dn, mods).await?.success().map(|_| ()) }
        })
        .await
    }

    /// Sets `dn`'s password with the Password Modify extended operation (RFC 3062): the server
    /// hashes it and applies its password policy, whose refusal comes back as `Rejected`.
    pub async fn password_modify(&self, dn: &str, new: &Secret) -> Result<(), LdapError> {
        self.run(dn, &["userPassword"], false, |mut h| {
            self.sending_write();
            let op = ldap3::exop::PasswordModify {
                user_id: Some(dn),
                old_pass: None,
                new_pass: Some(new.expose()),
            };
            async move { h.extended(op).await?.success().map(|_| ()) }
        })
        .await
    }

    /// Rename and/or move (modrdn), deleting the old RDN value.
    pub async fn modify_dn(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> Result<(), LdapError> {
        self.run(dn, &[], false, |mut h| {
            self.sending_write();
            async move {
                h.modifydn(dn, new_rdn, true, new_parent)
                    .await?
                    .success()
                    .map(|_| ())
            }
        })
        .await
    }

    /// Delete one (leaf) entry.
    pub async fn delete(&self, dn: &str) -> Result<(), LdapError> {
        self.run(dn, &[], false, |mut h| {
            self.sending_write();
            async move { h.delete(dn).await?.success().map(|_| ()) }
        })
        .await
    }

    /// Unbind every open connection.
    pub async fn close(&self) {
        for slot in &self.slots {
            if let Some(mut h) = slot.lock().await.take() {
                let _ = h.unbind().await;
            }
        }
    }
}

/// Active Directory's `objectGUID` (binary, so ldap3 keeps it apart from the text values),
/// as hex text; other binary values are not read.
fn guid_as_hex(
    bin: std::collections::HashMap<String, Vec<Vec<u8>>>,
) -> impl Iterator<Item = (String, Vec<String>)> {
    bin.into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("objectGUID"))
        .map(|(k, v)| (k, v.iter().map(hex::encode).collect()))
}

/// One change to an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modification {
    /// Set exactly these values; empty removes the attribute.
    Replace(String, Vec<String>),
    /// Add these values.
    Add(String, Vec<String>),
    /// Remove these values (empty: the whole attribute).
    Delete(String, Vec<String>),
}

impl Modification {
    fn attr(&self) -> &str {
        match self {
            Modification::Replace(a, _) | Modification::Add(a, _) | Modification::Delete(a, _) => a,
        }
    }
    fn to_mod(&self) -> Mod<String> {
        let set = |v: &Vec<String>| v.iter().cloned().collect::<HashSet<String>>();
        match self {
            Modification::Replace(a, v) => Mod::Replace(a.clone(), set(v)),
            Modification::Add(a, v) => Mod::Add(a.clone(), set(v)),
            Modification::Delete(a, v) => Mod::Delete(a.clone(), set(v)),
        }
    }
}

fn tls_config(pem: &str) -> Result<rustls::ClientConfig, LdapError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| LdapError::Config(format!("CA bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| LdapError::Config(format!("CA bundle: {e}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(LdapError::Config(
            "CA bundle: no PEM certificate found".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_never_printed() {
        let o = ConnectOptions::new("ldap://x", "cn=a", Secret::new("hunter2"));
        assert!(!format!("{o:?}").contains("hunter2"));
    }

    #[test]
    fn result_codes_map_to_kinds() {
        assert!(matches!(
            classify(49, "", "cn=x", &[], "cn=svc"),
            LdapError::Auth { .. }
        ));
        assert!(classify(52, "", "cn=x", &[], "cn=svc").is_transient());
        assert!(classify(51, "", "cn=x", &[], "cn=svc").is_transient());
        assert!(matches!(
            classify(4, "", "ou=x", &[], "cn=svc"),
            LdapError::Incomplete { .. }
        ));
        assert!(matches!(
            classify(68, "", "cn=x", &[], "cn=svc"),
            LdapError::AlreadyExists { .. }
        ));
        match classify(
            65,
            "object class 'inetOrgPerson' requires attribute 'sn'",
            "uid=a",
            &["cn", "uid"],
            "cn=svc",
        ) {
            LdapError::Rejected { attribute, .. } => assert_eq!(attribute.as_deref(), Some("sn")),
            e => panic!("{e:?}"),
        }
        match classify(21, "mail: value #0 invalid per syntax", "uid=a", &[], "s") {
            LdapError::Rejected { attribute, .. } => {
                assert_eq!(attribute.as_deref(), Some("mail"))
            }
            e => panic!("{e:?}"),
        }
        match classify(19, "too long", "uid=a", &["mobile", "cn"], "s") {
            LdapError::Rejected { attribute, .. } => assert_eq!(attribute, None),
            e => panic!("{e:?}"),
        }
        match classify(19, "mobile is too long", "uid=a", &["mobile", "cn"], "s") {
            LdapError::Rejected { attribute, .. } => {
                assert_eq!(attribute.as_deref(), Some("mobile"))
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn ca_bundle_must_hold_a_certificate() {
        assert!(matches!(tls_config("garbage"), Err(LdapError::Config(_))));
    }
}
