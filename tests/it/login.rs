//! The OIDC provider over HTTP, against the simulator's login page and a synced directory:
//! the whole authorization-code flow with PKCE, tokens verified independently (jsonwebtoken,
//! with the published JWKS), claims equal to the directory account, outsiders and people
//! without an account refused, the SSO session and Workbench entry, and every refusal the
//! protocol asks for (tampered state, foreign browser, replayed / expired / foreign code, PKCE
//! mismatch, unregistered redirect URI, wrong client secret, tampered tokens). Nothing secret
//! reaches the logs.

use std::{
    collections::HashMap,
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

use crate::support;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use dingsync::{
    api::mapping::FieldMappingSpec,
    directory::{Directory, memory::MemoryDirectory},
    login::{Clients, DirectoryAccounts, KeySet, Provider, ProviderConfig, Providers, claim_rules},
    sim::{self, SimConfig, SimHandle, UserWrite},
    sync::{self, Options, dingtalk_source::DingTalkSource},
};
use jiff::{SignedDuration, Timestamp};
use reqwest::{StatusCode, redirect::Policy};
use serde_json::Value;
use sha2::{Digest, Sha256};

const CORP: &str = "dingsimcorp";
const APP_SECRET: &str = "app-secret-0123456789";
const APP_CB: &str = "http://127.0.0.1:9/app/cb";
const SPA_CB: &str = "http://127.0.0.1:9/spa/cb";
const HOME: &str = "http://127.0.0.1:9/app/login";

/// Everything logged while one test runs, for the secrets check. The subscriber is the test
/// thread's default only (the test's runtime is single-threaded, so the provider and the
/// simulator log there too): other tests in this binary neither add to it nor pay for it.
struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _scope: tracing::subscriber::DefaultGuard,
}

fn capture_logs() -> Logs {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || Sink(b.clone()))
        .finish();
    Logs {
        buf,
        _scope: tracing::subscriber::set_default(sub),
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

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

struct World {
    sim: SimHandle,
    issuer: String,
    http: reqwest::Client,
    dir: Arc<MemoryDirectory>,
    skew: Arc<AtomicI64>,
    source: DingTalkSource,
    providers: Providers,
    logs: Logs,
}

fn spec() -> FieldMappingSpec {
    serde_yaml::from_str(
        "user:\n  attributes:\n  - {target: cn, template: '{{ name }}'}\n  - {target: mail, template: '{{ email | lower }}'}\n  - {target: mobile, template: '{{ mobile }}'}\n  uniqueName: {attribute: uid, template: '{{ name | pinyin }}'}\n",
    )
    .unwrap()
}

async fn world() -> World {
    let logs = capture_logs();
    let base = support::World::builder()
        .people(30)
        .departments(5)
        .seed(4)
        .sim_config(SimConfig::fast())
        .build()
        .await
        .expect("a world without servers");
    let source = base.source();
    let (sim, client) = (base.sim, base.client);
    let dir = Arc::new(MemoryDirectory::new("uid"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dingtalk/acme", listener.local_addr().unwrap());
    let skew = Arc::new(AtomicI64::new(0));
    let keys = Arc::new(std::sync::RwLock::new(Arc::new(
        KeySet::generate(Timestamp::now()).unwrap(),
    )));
    let clients = Clients::parse(&format!(
        "clients:\n- id: app\n  secret: {APP_SECRET}\n  redirectUris: [{APP_CB}]\n  homepage: {HOME}\n- id: spa\n  redirectUris: [{SPA_CB}]\n  scopes: [openid, profile]\n"
    ))
    .unwrap();
    let s = skew.clone();
    let provider = Provider::new(
        ProviderConfig {
            issuer: issuer.clone(),
            corp_id: CORP.into(),
            display_name: "Acme".into(),
            session_ttl: SignedDuration::from_hours(8),
        },
        clients,
        keys,
        Arc::new(client),
        Arc::new(DirectoryAccounts::new(
            dir.clone() as Arc<dyn Directory>,
            claim_rules(&spec(), &[]),
        )),
    )
    .unwrap()
    .with_clock(move || Timestamp::now() + SignedDuration::from_secs(s.load(Ordering::SeqCst)));
    let providers = Providers::default();
    providers.put(Arc::new(provider));
    let router = providers.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let w = World {
        sim,
        issuer,
        http: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
        dir,
        skew,
        source,
        providers,
        logs,
    };
    w.sync().await;
    w
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = format!("v{}", B64.encode(rand_bytes()));
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn rand_bytes() -> [u8; 32] {
    rand::random()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect()
}

/// Where a login ended: redirected to the app, or a page.
enum Outcome {
    App(HashMap<String, String>),
    Page(StatusCode, String),
}

impl World {
    async fn sync(&self) {
        let r = sync::run(
            &self.source,
            self.dir.as_ref(),
            &crate::support::conformance::mapping(),
            &Options {
                max_percent: 100,
                ..Default::default()
            },
            false,
            &|_, _, _| {},
        )
        .await
        .unwrap();
        assert!(r.failures.is_empty(), "{:?}", r.failures);
    }

    fn authorize_url(&self, client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
        let mut u = url::Url::parse(&format!("{}/authorize", self.issuer)).unwrap();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", client)
                .append_pair("redirect_uri", redirect)
                .append_pair("state", "app-state-1")
                .append_pair("nonce", "n-0S6_WzA2Mj");
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        u.into()
    }

    /// Browser steps: app → /authorize → DingTalk page → "scan" as `userid` → /callback.
    /// `cookies` carries the browser's cookies between calls.
    async fn browse(&self, start: &str, userid: &str, cookies: &mut Vec<String>) -> Outcome {
        let mut url = start.to_string();
        for _ in 0..6 {
            let r = self
                .http
                .get(&url)
                .header("cookie", cookies.join("; "))
                .send()
                .await
                .unwrap();
            for c in set_cookies(&r) {
                let name = c.split('=').next().unwrap().to_string();
                cookies.retain(|x| !x.starts_with(&format!("{name}=")));
                cookies.push(c);
            }
            if !r.status().is_redirection() {
                let s = r.status();
                return Outcome::Page(s, r.text().await.unwrap());
            }
            let next = location(&r);
            if next.starts_with(&self.sim.base_url()) {
                // DingTalk's login page: "scan" as the person.
                let q = query(&next);
                let scan = self
                    .http
                    .post(format!("{}/oauth2/auth/scan", self.sim.base_url()))
                    .form(&[
                        ("client_id", q["client_id"].as_str()),
                        ("redirect_uri", q["redirect_uri"].as_str()),
                        ("state", q["state"].as_str()),
                        ("scope", q["scope"].as_str()),
                        ("userid", userid),
                        ("action", "confirm"),
                    ])
                    .send()
                    .await
                    .unwrap();
                url = location(&scan);
            } else if next.starts_with(&self.issuer) {
                url = next;
            } else {
                return Outcome::App(
                    query(&next)
                        .into_iter()
                        .chain([("__url".into(), next)])
                        .collect(),
                );
            }
        }
        panic!("too many redirects")
    }

    async fn login(
        &self,
        client: &str,
        redirect: &str,
        userid: &str,
        p: &Pkce,
    ) -> HashMap<String, String> {
        let start = self.authorize_url(
            client,
            redirect,
            &[
                ("scope", "openid profile email phone groups"),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        match self.browse(&start, userid, &mut Vec::new()).await {
            Outcome::App(q) => q,
            Outcome::Page(s, b) => panic!("login of {userid} ended on a page {s}: {b}"),
        }
    }

    async fn token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}/token", self.issuer)).form(form);
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store");
        (r.status(), r.json().await.unwrap())
    }

    async fn redeem(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", APP_CB),
                ("code_verifier", verifier),
            ],
            Some(("app", APP_SECRET)),
        )
        .await
    }

    /// Verifies an ID token the way a relying party does: JWKS from discovery, RS256.
    async fn verify_id_token(&self, tok: &str, aud: &str) -> Result<Value, String> {
        let disc: Value = self
            .http
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwks: Value = self
            .http
            .get(disc["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(tok).map_err(|e| e.to_string())?;
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"].as_str() == header.kid.as_deref())
            .ok_or("no such kid")?;
        let dk = jsonwebtoken::DecodingKey::from_rsa_components(
            key["n"].as_str().unwrap(),
            key["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[aud]);
        v.set_issuer(&[&self.issuer]);
        jsonwebtoken::decode::<Value>(tok, &dk, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    fn member(&self) -> (String, String) {
        let org = self.sim.org();
        let p = org
            .people
            .iter()
            .find(|p| p.email.as_deref().is_some_and(|e| !e.is_empty()) && p.mobile.is_some())
            .expect("someone with a mail");
        (p.userid.clone(), p.name.clone())
    }
}

#[tokio::test]
async fn login_gives_verified_tokens_whose_claims_are_the_directory_account() {
    let w = world().await;
    let (userid, _) = w.member();
    let p = pkce();
    let q = w.login("app", APP_CB, &userid, &p).await;
    assert_eq!(q["state"], "app-state-1");
    let (status, t) = w.redeem(&q["code"], &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    let claims = w
        .verify_id_token(t["id_token"].as_str().unwrap(), "app")
        .await
        .unwrap();
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");

    // The claims are the directory entry's values.
    let snap = w.dir.read().await.unwrap();
    let entry = snap
        .people
        .iter()
        .find(|e| e.id.as_deref() == Some(userid.as_str()))
        .unwrap();
    let attr = |a: &str| entry.attrs.first(a).unwrap().to_owned();
    assert_eq!(claims["preferred_username"], attr("uid"));
    assert_eq!(claims["email"], attr("mail"));
    assert_eq!(claims["phone_number"], attr("mobile"));
    assert_eq!(claims["name"], attr("cn"));
    let dept_names: Vec<String> = snap
        .departments
        .iter()
        .filter(|d| entry.departments.contains(&d.id))
        .map(|d| d.name.clone())
        .collect();
    let groups: Vec<String> = serde_json::from_value(claims["groups"].clone()).unwrap();
    assert!(!groups.is_empty());
    for g in &groups {
        assert!(dept_names.contains(g), "{g} not in {dept_names:?}");
    }

    // userinfo answers the same claims for the access token.
    let ui: Value = w
        .http
        .get(format!("{}/userinfo", w.issuer))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ui["sub"], claims["sub"]);
    assert_eq!(ui["preferred_username"], claims["preferred_username"]);
    assert_eq!(ui["email"], claims["email"]);

    // sub is stable per person, different between people, and is not the userid.
    let q2 = w.login("app", APP_CB, &userid, &p).await;
    let (_, t2) = w.redeem(&q2["code"], &p.verifier).await;
    let c2 = w
        .verify_id_token(t2["id_token"].as_str().unwrap(), "app")
        .await
        .unwrap();
    assert_eq!(c2["sub"], claims["sub"]);
    assert_ne!(claims["sub"], userid.as_str());
    let other = w
        .sim
        .org()
        .people
        .iter()
        .find(|x| x.userid != userid)
        .unwrap()
        .userid
        .clone();
    let q3 = w.login("app", APP_CB, &other, &p).await;
    let (_, t3) = w.redeem(&q3["code"], &p.verifier).await;
    let c3 = w
        .verify_id_token(t3["id_token"].as_str().unwrap(), "app")
        .await
        .unwrap();
    assert_ne!(c3["sub"], claims["sub"]);

    // Nothing secret in the logs.
    let logs = w.logs.text();
    assert!(logs.contains("token issued"), "the provider logs at all");
    for secret in [
        q["code"].as_str(),
        t["access_token"].as_str().unwrap(),
        t["id_token"].as_str().unwrap(),
        APP_SECRET,
        sim::DEFAULT_APP_SECRET,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn people_outside_the_enterprise_or_without_an_account_are_refused() {
    let w = world().await;
    let (userid, _) = w.member();
    // A former employee still has a DingTalk account; DingTalk says they are not a member.
    w.sim.leave(&userid).unwrap();
    let p = pkce();
    let start = w.authorize_url(
        "app",
        APP_CB,
        &[
            ("scope", "openid"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    match w.browse(&start, &userid, &mut Vec::new()).await {
        Outcome::Page(s, body) => {
            assert_eq!(s, StatusCode::FORBIDDEN);
            assert!(
                body.contains("id=\"refused\"") && body.contains("not a member of Acme"),
                "{body}"
            );
        }
        Outcome::App(q) => panic!("an outsider got through: {q:?}"),
    }
    // A new hire DingTalk knows but the directory does not have yet.
    let hired = w
        .sim
        .hire(UserWrite {
            name: Some("新同事".into()),
            departments: Some(vec![1]),
            ..Default::default()
        })
        .unwrap();
    match w.browse(&start, &hired.userid, &mut Vec::new()).await {
        Outcome::Page(s, body) => {
            assert_eq!(s, StatusCode::FORBIDDEN);
            assert!(body.contains("no account in the directory"), "{body}");
        }
        Outcome::App(q) => panic!("someone without an account got through: {q:?}"),
    }
    // After the sync gives them an account, they get in.
    w.sync().await;
    assert!(matches!(
        w.browse(&start, &hired.userid, &mut Vec::new()).await,
        Outcome::App(q) if q.contains_key("code")
    ));
}

#[tokio::test]
async fn protocol_refusals() {
    let w = world().await;
    let (userid, _) = w.member();
    let p = pkce();

    // Unregistered redirect URI (even a longer one with the same prefix): a page, no redirect.
    for bad in ["http://127.0.0.1:9/evil", "http://127.0.0.1:9/app/cb/x"] {
        let r = w
            .http
            .get(w.authorize_url("app", bad, &[("scope", "openid")]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    // Unknown client: a page.
    let r = w
        .http
        .get(w.authorize_url("nobody", APP_CB, &[("scope", "openid")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Errors the app can handle come back to it.
    for (extra, want) in [
        (vec![("scope", "openid")], "invalid_request"), // no PKCE
        (
            vec![
                ("scope", "openid"),
                ("code_challenge", p.challenge.as_str()),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("scope", "profile"),
                ("code_challenge", p.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
            "invalid_scope",
        ),
    ] {
        let r = w
            .http
            .get(w.authorize_url("app", APP_CB, &extra))
            .send()
            .await
            .unwrap();
        let q = query(&location(&r));
        assert_eq!(q["error"], want, "{extra:?}");
        assert_eq!(q["state"], "app-state-1");
    }
    let r = w
        .http
        .get(w.authorize_url(
            "spa",
            SPA_CB,
            &[
                ("scope", "openid email"),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        query(&location(&r))["error"],
        "invalid_scope",
        "scope beyond the client's"
    );

    // Wrong state at the callback: tampered, or from another browser.
    let start = w.authorize_url(
        "app",
        APP_CB,
        &[
            ("scope", "openid"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let r = w.http.get(&start).send().await.unwrap();
    let cookie = set_cookies(&r).join("; ");
    let dt = query(&location(&r));
    let code = w
        .sim
        .mint_auth_code(sim::DEFAULT_APP_KEY, &userid, false)
        .unwrap();
    let mut tampered = dt["state"].clone();
    tampered.insert(tampered.len() - 4, 'x');
    for (state, cookie, what) in [
        (tampered.as_str(), cookie.as_str(), "tampered state"),
        ("", cookie.as_str(), "no state"),
        (
            dt["state"].as_str(),
            "dingsync_login=someone-else",
            "another browser",
        ),
    ] {
        let r = w
            .http
            .get(format!("{}/callback", w.issuer))
            .query(&[("authCode", code.as_str()), ("state", state)])
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(r.text().await.unwrap().contains("Login expired"), "{what}");
    }

    // Code checks at /token.
    let q = w.login("app", APP_CB, &userid, &p).await;
    let (s, e) = w.redeem(&q["code"], &pkce().verifier).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "PKCE mismatch"
    );
    let (s, e) = w
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", APP_CB),
            ],
            Some(("app", APP_SECRET)),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "no verifier"
    );
    let (s, e) = w
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", APP_CB),
                ("code_verifier", &p.verifier),
            ],
            Some(("app", "wrong-secret-0123456789")),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (s, e) = w
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", SPA_CB),
                ("code_verifier", &p.verifier),
                ("client_id", "spa"),
            ],
            None,
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "another client's code"
    );
    let (s, e) = w
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", &p.verifier),
            ],
            Some(("app", APP_SECRET)),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "redirect_uri differs"
    );
    let (s, _) = w.redeem(&q["code"], &p.verifier).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the failed attempts did not burn the code"
    );
    let (s, e) = w.redeem(&q["code"], &p.verifier).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "replayed code"
    );
    let mut forged = q["code"].clone();
    forged.insert(forged.len() - 3, 'A');
    let (s, e) = w.redeem(&forged, &p.verifier).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "forged code"
    );

    // Expired code: 60 s.
    let q = w.login("app", APP_CB, &userid, &p).await;
    w.skew.store(61, Ordering::SeqCst);
    let (s, e) = w.redeem(&q["code"], &p.verifier).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "expired code"
    );
    w.skew.store(0, Ordering::SeqCst);

    // Tampered tokens.
    let q = w.login("app", APP_CB, &userid, &p).await;
    let (_, t) = w.redeem(&q["code"], &p.verifier).await;
    let id = t["id_token"].as_str().unwrap();
    let mut parts: Vec<String> = id.split('.').map(str::to_string).collect();
    let mut body: Value = serde_json::from_slice(&B64.decode(&parts[1]).unwrap()).unwrap();
    body["preferred_username"] = "admin".into();
    parts[1] = B64.encode(serde_json::to_vec(&body).unwrap());
    assert!(w.verify_id_token(&parts.join("."), "app").await.is_err());
    assert!(
        w.verify_id_token(id, "spa").await.is_err(),
        "audience is the client"
    );
    let at = t["access_token"].as_str().unwrap();
    let mut at_parts: Vec<String> = at.split('.').map(str::to_string).collect();
    let mut at_body: Value = serde_json::from_slice(&B64.decode(&at_parts[1]).unwrap()).unwrap();
    at_body["sub"] = "someone-else".into();
    at_parts[1] = B64.encode(serde_json::to_vec(&at_body).unwrap());
    for bad in [at_parts.join("."), id.to_string(), "garbage".into()] {
        let r = w
            .http
            .get(format!("{}/userinfo", w.issuer))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    // An access token past its hour.
    w.skew.store(3601, Ordering::SeqCst);
    let r = w
        .http
        .get(format!("{}/userinfo", w.issuer))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    w.skew.store(0, Ordering::SeqCst);
}

#[tokio::test]
async fn sso_session_and_workbench_entry() {
    let w = world().await;
    let (userid, _) = w.member();
    let p = pkce();
    let mut cookies = Vec::new();
    // Workbench: no session yet → the in-app page (it asks DingTalk's JSAPI for a code)...
    match w
        .browse(
            &format!("{}/workbench?client_id=app", w.issuer),
            &userid,
            &mut Vec::new(),
        )
        .await
    {
        Outcome::Page(s, b) => {
            assert_eq!(s, StatusCode::OK);
            assert!(b.contains("requestAuthCode") && b.contains("qr=1"), "{b}");
        }
        Outcome::App(q) => panic!("the in-app page was skipped: {q:?}"),
    }
    // ...whose fallback without DingTalk's client is the QR login → the app's homepage.
    match w
        .browse(
            &format!("{}/workbench?client_id=app&qr=1", w.issuer),
            &userid,
            &mut cookies,
        )
        .await
    {
        Outcome::App(q) => assert_eq!(q["__url"], HOME),
        Outcome::Page(s, b) => panic!("{s}: {b}"),
    }
    assert!(cookies.iter().any(|c| c.starts_with("dingsync_session=")));
    // The app starts its login; the session answers without DingTalk (no scan: a scan as
    // somebody else would show up in the claims).
    let start = w.authorize_url(
        "app",
        APP_CB,
        &[
            ("scope", "openid profile"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
        ],
    );
    let Outcome::App(q) = w.browse(&start, "nobody-should-scan", &mut cookies).await else {
        panic!("the session did not answer")
    };
    let (_, t) = w.redeem(&q["code"], &p.verifier).await;
    let c = w
        .verify_id_token(t["id_token"].as_str().unwrap(), "app")
        .await
        .unwrap();
    let snap = w.dir.read().await.unwrap();
    let uid = snap
        .people
        .iter()
        .find(|e| e.id.as_deref() == Some(userid.as_str()))
        .unwrap()
        .attrs
        .first("uid")
        .unwrap()
        .to_owned();
    assert_eq!(c["preferred_username"], uid);
    // prompt=none without a session: login_required, back at the app.
    let Outcome::App(q) = w.browse(&start, "x", &mut Vec::new()).await else {
        panic!()
    };
    assert_eq!(q["error"], "login_required");
    // A leaver with a live session is refused: the account is checked on every login.
    w.sim.leave(&userid).unwrap();
    w.sync().await;
    match w.browse(&start, "x", &mut cookies).await {
        Outcome::Page(s, b) => {
            assert_eq!(s, StatusCode::FORBIDDEN);
            assert!(b.contains("disabled"), "{b}");
        }
        Outcome::App(q) => panic!("a leaver's session still works: {q:?}"),
    }
    // A session cookie from another issuer's keys means nothing.
    let other = KeySet::generate(Timestamp::now()).unwrap();
    let fake = other
        .seal(
            Timestamp::now(),
            "session",
            &serde_json::json!({"u": userid, "exp": Timestamp::now().as_second() + 3600}),
        )
        .unwrap();
    let Outcome::App(q) = w
        .browse(&start, "x", &mut vec![format!("dingsync_session={fake}")])
        .await
    else {
        panic!()
    };
    assert_eq!(q["error"], "login_required");
}

#[tokio::test]
async fn discovery_keys_and_paths() {
    let w = world().await;
    let d: Value = w
        .http
        .get(format!("{}/.well-known/openid-configuration", w.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], w.issuer.as_str());
    assert_eq!(
        d["authorization_endpoint"],
        format!("{}/authorize", w.issuer)
    );
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&"RS256".into())
    );
    let jwks: Value = w
        .http
        .get(format!("{}/jwks", w.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k = &jwks["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["alg"].as_str(), k["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(
        k.get("d").is_none() && k.get("p").is_none(),
        "no private parts published"
    );
    // Paths outside the issuer are not answered.
    let root = w.issuer.trim_end_matches("/dingtalk/acme");
    for path in ["/dingtalk/acm/jwks", "/dingtalk/acmejwks", "/jwks"] {
        let r = w.http.get(format!("{root}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(w.providers.issuers(), vec![w.issuer.clone()]);
    assert!(
        w.providers
            .path_taken_by(&format!("https://other.example{}", "/dingtalk/acme"))
            .is_some()
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_stop_when_the_account_is_disabled() {
    let w = world().await;
    let (userid, _) = w.member();
    let p = pkce();
    let start = w.authorize_url(
        "app",
        APP_CB,
        &[
            ("scope", "openid profile offline_access"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
            ("max_age", "not-a-number"),
        ],
    );
    // A malformed max_age is an error the app is told about, with iss (RFC 9207).
    let Outcome::App(q) = w.browse(&start, &userid, &mut Vec::new()).await else {
        panic!("no redirect to the app")
    };
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["iss"], w.issuer);
    let start = start.replace("max_age=not-a-number", "max_age=300");
    let Outcome::App(q) = w.browse(&start, &userid, &mut Vec::new()).await else {
        panic!("no redirect to the app")
    };
    assert_eq!(q["iss"], w.issuer);
    let (s, t) = w.redeem(&q["code"], &p.verifier).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let refresh = |rt: String| {
        let w = &w;
        async move {
            w.token(
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                Some(("app", APP_SECRET)),
            )
            .await
        }
    };
    let rt1 = t["refresh_token"]
        .as_str()
        .expect("offline_access")
        .to_string();
    let (s, t2) = refresh(rt1.clone()).await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "rotated");
    // Another client cannot use it.
    let (s, e) = w
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
            Some(("spa", "")),
        )
        .await;
    assert_ne!(s, StatusCode::OK, "{e}");
    // Disabled in the directory: refused, and the grant is gone for good.
    w.dir.disable_person(&userid).await.unwrap();
    let (s, e) = refresh(rt2.clone()).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    w.dir.enable_person(&userid).await.unwrap();
    let (s, _) = refresh(rt2).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a revoked grant stays revoked");
    // Without offline_access there is no refresh token.
    let p = pkce();
    let q = w.login("app", APP_CB, &userid, &p).await;
    let (_, t) = w.redeem(&q["code"], &p.verifier).await;
    assert!(t.get("refresh_token").is_none(), "{t}");
}
