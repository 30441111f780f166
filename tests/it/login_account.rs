//! Account self-service against a real slapd with ppolicy (`pwdMinLength` 8, quality checked):
//! after a DingTalk login the person sets their directory password through `/account`, then an
//! LDAP simple bind with it succeeds; a too-short password is refused with the server's reason;
//! a session whose DingTalk login is older than 5 minutes is sent to log in again; the CSRF
//! token, the Origin check and the rate limit hold; a disabled account cannot use the page; no
//! password reaches the logs, at trace level. A SCIM server that offers `changePassword` gets the
//! password by PATCH.

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

use dingsync::{
    api::{mapping::FieldMappingSpec, target::Layout},
    directory::{
        Directory,
        ldap::{ConnectOptions, Secret as LdapSecret},
        scim::ScimDirectory,
    },
    login::{
        Clients, DirectoryAccounts, KeySet, LdapPasswords, Provider, ProviderConfig, Providers,
        ScimPasswords, claim_rules,
    },
    sim::SimConfig,
};
use jiff::{SignedDuration, Timestamp};
use reqwest::{StatusCode, redirect::Policy};

use crate::support::{self, slapd::SERVICE_DN};

const CORP: &str = "dingsimcorp";
const GOOD: &str = "Corr3ct-Horse-Battery";
const SHORT: &str = "Sh0rt!";

struct Sink(Arc<Mutex<Vec<u8>>>);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A browser: cookies kept, redirects followed by hand, DingTalk's QR page "scanned" as
/// `userid`. Also used by `login_provision.rs`.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    pub(crate) cookies: Vec<String>,
    pub(crate) sim: String,
    pub(crate) issuer: String,
    pub(crate) userid: String,
}

impl Browser {
    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let c = v.to_str().unwrap().split(';').next().unwrap().to_string();
            let name = format!("{}=", c.split('=').next().unwrap());
            self.cookies.retain(|x| !x.starts_with(&name));
            self.cookies.push(c);
        }
    }

    /// Follows `r`'s redirects; returns the last response's status, URL and body, and how
    /// many times DingTalk's login page was passed.
    pub(crate) async fn follow(
        &mut self,
        r: reqwest::Response,
    ) -> (StatusCode, String, String, usize) {
        self.follow_until(r, None).await
    }

    /// Like [`follow`](Self::follow), but a redirect to a URL under `stop` ends it there
    /// (status 200, that URL, no body): the app, which this test does not run.
    pub(crate) async fn follow_until(
        &mut self,
        mut r: reqwest::Response,
        stop: Option<&str>,
    ) -> (StatusCode, String, String, usize) {
        let mut url = r.url().to_string();
        let mut logins = 0;
        for _ in 0..6 {
            self.keep(&r);
            if !r.status().is_redirection() {
                let s = r.status();
                return (s, url, r.text().await.unwrap(), logins);
            }
            let next = r.headers()["location"].to_str().unwrap().to_string();
            if stop.is_some_and(|s| next.starts_with(s)) {
                return (StatusCode::OK, next, String::new(), logins);
            }
            if next.starts_with(&self.sim) {
                logins += 1;
                let q: std::collections::HashMap<String, String> = url::Url::parse(&next)
                    .unwrap()
                    .query_pairs()
                    .into_owned()
                    .collect();
                let scan = self
                    .http
                    .post(format!("{}/oauth2/auth/scan", self.sim))
                    .form(&[
                        ("client_id", q["client_id"].as_str()),
                        ("redirect_uri", q["redirect_uri"].as_str()),
                        ("state", q["state"].as_str()),
                        ("scope", q["scope"].as_str()),
                        ("userid", self.userid.as_str()),
                        ("action", "confirm"),
                    ])
                    .send()
                    .await
                    .unwrap();
                url = scan.headers()["location"].to_str().unwrap().to_string();
            } else {
                url = next;
            }
            r = self.get_raw(&url).await;
        }
        panic!("too many redirects")
    }

    pub(crate) async fn get_raw(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .unwrap()
    }

    async fn account(&mut self) -> (StatusCode, String, String, usize) {
        let r = self.get_raw(&format!("{}/account", self.issuer)).await;
        self.follow(r).await
    }

    async fn post(&mut self, form: &[(&str, &str)], origin: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/account/password", self.issuer))
            .header("cookie", self.cookies.join("; "))
            .form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.unwrap()
    }
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

async fn bind(url: &str, dn: &str, password: &str) -> u32 {
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(url).await.unwrap();
    ldap3::drive!(conn);
    let rc = ldap.simple_bind(dn, password).await.unwrap().rc;
    let _ = ldap.unbind().await;
    rc
}

#[tokio::test]
async fn people_set_their_directory_password_after_a_recent_dingtalk_login() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let l = logs.clone();
    let _scope = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(l.clone()))
            .finish(),
    );
    let Some(w) = support::World::builder()
        .people(10)
        .departments(3)
        .seed(41)
        .sim_config(SimConfig::fast())
        .slapd()
        .build()
        .await
    else {
        return;
    };
    let slapd = w.slapd();
    slapd
        .ldapmodify(&format!(
            "dn: cn=default,ou=policies,{}\nchangetype: modify\nadd: pwdMinLength\npwdMinLength: 8\n-\nadd: pwdCheckQuality\npwdCheckQuality: 2\n",
            support::slapd::SUFFIX
        ))
        .expect("password policy");
    let dir: Arc<dyn Directory> = Arc::new(w.ldap(&w.node("acct"), Layout::FlatWithGroups).await);
    let report = support::import::sync_once(&w, dir.as_ref(), "account").await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let userid = w.sim.org().people[0].userid.clone();
    let entry = dir
        .read()
        .await
        .unwrap()
        .people
        .into_iter()
        .find(|p| p.id.as_deref() == Some(userid.as_str()))
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dingtalk/acme", listener.local_addr().unwrap());
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "user:\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  uniqueName: {attribute: uid, template: '{{ name | pinyin }}'}\n",
    )
    .unwrap();
    let skew = Arc::new(AtomicI64::new(0));
    let s = skew.clone();
    let provider = Provider::new(
        ProviderConfig {
            issuer: issuer.clone(),
            corp_id: CORP.into(),
            display_name: "Acme".into(),
            session_ttl: SignedDuration::from_hours(8),
        },
        Clients::parse("clients:\n- id: app\n  redirectUris: [https://app.example/cb]\n").unwrap(),
        Arc::new(std::sync::RwLock::new(Arc::new(
            KeySet::generate(Timestamp::now()).unwrap(),
        ))),
        Arc::new(w.client.clone()),
        Arc::new(DirectoryAccounts::new(dir.clone(), claim_rules(&spec, &[]))),
    )
    .unwrap()
    .with_self_service(Arc::new(LdapPasswords::new(
        dir.clone(),
        ConnectOptions::new(
            slapd.url(),
            SERVICE_DN,
            LdapSecret::new(slapd.service_password()),
        ),
    )))
    .with_clock(move || Timestamp::now() + SignedDuration::from_secs(s.load(Ordering::SeqCst)));
    let providers = Providers::default();
    providers.put(Arc::new(provider));
    let router = providers.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let mut b = Browser {
        http: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
        cookies: Vec::new(),
        sim: w.sim.base_url(),
        issuer: issuer.clone(),
        userid: userid.clone(),
    };
    // No session: DingTalk's login first, then the account page.
    let (status, url, page, logins) = b.account().await;
    assert_eq!((status, logins), (StatusCode::OK, 1), "{url}: {page}");
    let uid = entry.attrs.first("uid").unwrap().to_string();
    assert!(page.contains(&format!("id=\"login\">{uid}<")), "{page}");
    let csrf = csrf_of(&page);

    // Too short: the server's policy refuses it and the page says so.
    let r = b
        .post(
            &[("csrf", &csrf), ("password", SHORT), ("confirm", SHORT)],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.unwrap();
    assert!(text.contains("too short or too simple"), "{text}");
    assert!(text.contains("quality"), "the server's reason: {text}");
    assert_ne!(bind(&slapd.url(), &entry.key, SHORT).await, 0);

    // Forged or cross-site posts.
    for (token, origin) in [
        ("", None),
        ("forged.token", None),
        (csrf.as_str(), Some("https://evil.example")),
    ] {
        let r = b
            .post(
                &[("csrf", token), ("password", GOOD), ("confirm", GOOD)],
                origin,
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token:?} {origin:?}");
    }

    // Set: a bind with the new password succeeds.
    let r = b
        .post(
            &[("csrf", &csrf), ("password", GOOD), ("confirm", GOOD)],
            Some(
                &url::Url::parse(&issuer)
                    .unwrap()
                    .origin()
                    .ascii_serialization(),
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Your password was set."));
    assert_eq!(
        bind(&slapd.url(), &entry.key, GOOD).await,
        0,
        "bind with it"
    );
    assert_ne!(bind(&slapd.url(), &entry.key, "wrong-password").await, 0);

    // Rate limit: two attempts so far, three more allowed, then 429.
    for i in 0..4 {
        let r = b
            .post(
                &[("csrf", &csrf), ("password", GOOD), ("confirm", "x")],
                None,
            )
            .await;
        let want = if i < 3 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status(), want, "attempt {}", i + 3);
    }

    // Six minutes later the session still serves logins, but not account changes.
    skew.store(6 * 60, Ordering::SeqCst);
    let r = b
        .post(
            &[("csrf", &csrf), ("password", GOOD), ("confirm", GOOD)],
            None,
        )
        .await;
    assert!(r.status().is_redirection());
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&b.sim)
    );
    let (status, _, _, logins) = b.account().await;
    assert_eq!(
        (status, logins),
        (StatusCode::OK, 1),
        "a fresh DingTalk login"
    );

    // A disabled account cannot use the page.
    skew.store(0, Ordering::SeqCst);
    dir.disable_person(&userid).await.unwrap();
    let (status, _, page, _) = b.account().await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("disabled"), "{page}");

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("password set"), "an audit line");
    for secret in [GOOD, SHORT, slapd.service_password()] {
        assert!(!text.contains(secret), "{secret} in the logs");
    }
}

/// A SCIM directory whose `ServiceProviderConfig` offers `changePassword` (the test
/// scim2-server's): the password is set by one PATCH of the person's User.
#[tokio::test]
async fn a_scim_directory_that_offers_change_password_gets_a_patch() {
    let Some(w) = support::World::builder()
        .people(6)
        .departments(2)
        .seed(43)
        .sim_config(SimConfig::fast())
        .scim()
        .build()
        .await
    else {
        return;
    };
    let dir: Arc<dyn Directory> =
        Arc::new(ScimDirectory::new(w.scim_client().await, w.corp(), "acct"));
    let report = support::import::sync_once(&w, dir.as_ref(), "account").await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let userid = w.sim.org().people[0].userid.clone();
    let scim = w.scim_client().await;
    assert!(scim.capabilities().change_password);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dingtalk/acme", listener.local_addr().unwrap());
    let spec: FieldMappingSpec = serde_yaml::from_str(
        "user:\n  attributes:\n  - {target: displayName, template: '{{ name }}'}\n  uniqueName: {attribute: userName, template: '{{ name | pinyin }}'}\n",
    )
    .unwrap();
    let passwords = Arc::new(ScimPasswords::new(dir.clone(), scim.clone()));
    let provider = Provider::new(
        ProviderConfig {
            issuer: issuer.clone(),
            corp_id: CORP.into(),
            display_name: "Acme".into(),
            session_ttl: SignedDuration::from_hours(8),
        },
        Clients::parse("clients:\n- id: app\n  redirectUris: [https://app.example/cb]\n").unwrap(),
        Arc::new(std::sync::RwLock::new(Arc::new(
            KeySet::generate(Timestamp::now()).unwrap(),
        ))),
        Arc::new(w.client.clone()),
        Arc::new(DirectoryAccounts::new(dir.clone(), claim_rules(&spec, &[]))),
    )
    .unwrap()
    .with_self_service(passwords);
    let providers = Providers::default();
    providers.put(Arc::new(provider));
    let router = providers.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let mut b = Browser {
        http: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
        cookies: Vec::new(),
        sim: w.sim.base_url(),
        issuer,
        userid,
    };
    let (status, url, page, _) = b.account().await;
    assert_eq!(status, StatusCode::OK, "{url}: {page}");
    let csrf = csrf_of(&page);
    let sent = scim.requests_sent();
    let r = b
        .post(
            &[("csrf", &csrf), ("password", GOOD), ("confirm", GOOD)],
            None,
        )
        .await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("Your password was set."), "{text}");
    assert_eq!(scim.requests_sent(), sent + 1, "one PATCH");
}
