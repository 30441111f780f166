//! The token endpoint (authorization code and refresh token grants) and userinfo: what a
//! client does with a code once the browser has brought it back.
//!
//! Every token descends from one authorization code, its grant: access and refresh tokens
//! carry the code's id (`gid`), so a replayed code or a replayed refresh token revokes all of
//! them at once (RFC 6749 §4.1.2 and §10.4) through the provider's [`Ledger`](super::Ledger).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    Account, LoginError,
    clients::Client,
    keys::random_token,
    provider::{Pending, Provider, TOKEN_TTL, is_pkce_value, no_store},
};

/// Refresh tokens (scope `offline_access`); each use replaces the token with a new one.
pub const REFRESH_TTL: SignedDuration = SignedDuration::from_hours(24 * 7);

#[derive(Default)]
struct TokenParams {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

fn parse_form(bytes: &[u8]) -> TokenParams {
    let mut f = TokenParams::default();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        let v = Some(v.into_owned());
        match &*k {
            "grant_type" => f.grant_type = v,
            "code" => f.code = v,
            "redirect_uri" => f.redirect_uri = v,
            "code_verifier" => f.code_verifier = v,
            "client_id" => f.client_id = v,
            "client_secret" => f.client_secret = v,
            "refresh_token" => f.refresh_token = v,
            "scope" => f.scope = v,
            _ => {}
        }
    }
    f
}

/// The credentials of an `Authorization` header of `scheme` (compared case-insensitively, as
/// RFC 7235 §2.1 wants for every auth scheme).
pub(super) fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = v.trim_start().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let b = credentials(headers, "Basic")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    // RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
    let dec = |x: &str| {
        url::form_urlencoded::parse(format!("a={x}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

/// A refused token request: HTTP status, OAuth error code and description.
struct Refusal(StatusCode, &'static str, &'static str);

fn grant_refused(description: &'static str) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn server_error(e: LoginError) -> Refusal {
    tracing::error!(error = %e, "token: provider failed");
    Refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the token could not be issued",
    )
}

/// JSON error from the token endpoint (RFC 6749 §5.2).
fn token_error(Refusal(status, error, description): Refusal) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    no_store(r.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dingsync\""),
        );
    }
    r
}

pub(super) async fn token(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return token_error(Refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body too large",
        ));
    };
    let f = parse_form(&bytes);
    let issued = match f.grant_type.as_deref() {
        Some("authorization_code") | Some("refresh_token") => {
            match authenticate_client(&p, &headers, &f) {
                Ok(client) if f.grant_type.as_deref() == Some("refresh_token") => {
                    refresh_grant(&p, &client, &f).await
                }
                Ok(client) => code_grant(&p, &client, &f).await,
                Err(r) => Err(r),
            }
        }
        _ => Err(Refusal(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        )),
    };
    match issued {
        Ok(body) => {
            let mut r = axum::Json(body).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(refusal) => token_error(refusal),
    }
}

/// The client a token request comes from, authenticated by Basic or by `client_id` (+
/// `client_secret`) in the form; public clients send no secret.
fn authenticate_client(
    p: &Provider,
    headers: &HeaderMap,
    f: &TokenParams,
) -> Result<Client, Refusal> {
    let (client_id, secret) = match basic_credentials(headers) {
        Some((id, s)) => (Some(id), Some(s)),
        None => (f.client_id.clone(), f.client_secret.clone()),
    };
    let Some(client) = client_id.as_deref().and_then(|id| p.client(id)) else {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client",
        ));
    };
    let authenticated = match (&secret, client.is_public()) {
        (Some(s), false) => client.secret_matches(s),
        (None, true) => true,
        _ => false,
    };
    if !authenticated {
        tracing::info!(client = %client.id, "token: client authentication failed");
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ));
    }
    Ok(client)
}

/// What every token of one login shares.
struct Grant {
    /// The id of the authorization code the login produced.
    gid: String,
    userid: String,
    scope: String,
    auth_time: Value,
    nonce: Option<String>,
    claims: Map<String, Value>,
}

/// Opens the authorization code and checks it was issued to `client` for this redirect URI
/// and PKCE verifier, unexpired and never redeemed before (on any replica). A second
/// redemption revokes what the first one got: one of the two holders is not the client.
async fn code_grant(p: &Provider, client: &Client, f: &TokenParams) -> Result<Value, Refusal> {
    let now = p.now();
    let Some(code) = f
        .code
        .as_deref()
        .and_then(|c| p.keys().open("code", c).ok())
    else {
        return Err(grant_refused("the code is invalid"));
    };
    let exp = code["exp"].as_i64().unwrap_or(0);
    if exp <= now.as_second() {
        return Err(grant_refused("the code has expired"));
    }
    let Ok(req) = serde_json::from_value::<Pending>(code["req"].clone()) else {
        return Err(grant_refused("the code is invalid"));
    };
    if req.c != client.id {
        return Err(grant_refused("the code was issued to another client"));
    }
    if f.redirect_uri.as_deref() != Some(req.r.as_str()) {
        return Err(grant_refused(
            "redirect_uri does not match the authorization request",
        ));
    }
    check_pkce(&req, f.code_verifier.as_deref())?;
    let (Some(jti), Some(userid)) = (code["jti"].as_str(), code["u"].as_str()) else {
        return Err(grant_refused("the code is invalid"));
    };
    let replayed = Replay {
        what: "authorization code",
        revokes: jti,
        refusal: "the code has already been used",
    };
    spend_once(p, client, jti, (exp, now), replayed).await?;
    let grant = Grant {
        gid: jti.to_string(),
        userid: userid.to_string(),
        scope: req.sc.clone(),
        auth_time: code["auth_time"].clone(),
        nonce: req.n.clone(),
        claims: code["claims"].as_object().cloned().unwrap_or_default(),
    };
    issue(p, client, &grant, now).map_err(server_error)
}

/// What a replayed code or refresh token revokes, and how it is refused.
struct Replay<'a> {
    what: &'static str,
    /// The grant whose tokens a replay revokes.
    revokes: &'a str,
    refusal: &'static str,
}

/// Spends the single-use id `jti` (valid until `exp`) in the ledger all replicas share; a
/// second use revokes every token of its grant and is refused.
async fn spend_once(
    p: &Provider,
    client: &Client,
    jti: &str,
    (exp, now): (i64, Timestamp),
    replay: Replay<'_>,
) -> Result<(), Refusal> {
    let until = Timestamp::from_second(exp).unwrap_or(now);
    if p.ledger.first_use(jti, until).await.map_err(server_error)? {
        return Ok(());
    }
    tracing::warn!(client = %client.id, what = replay.what, "token: replayed; its grant's tokens are revoked");
    p.ledger
        .revoke(replay.revokes, now + REFRESH_TTL)
        .await
        .map_err(server_error)?;
    Err(grant_refused(replay.refusal))
}

fn check_pkce(req: &Pending, verifier: Option<&str>) -> Result<(), Refusal> {
    match (&req.p, verifier) {
        (Some(challenge), Some(v)) if is_pkce_value(v) => {
            let got = B64.encode(Sha256::digest(v.as_bytes()));
            if &got != challenge {
                return Err(grant_refused("PKCE verification failed"));
            }
            Ok(())
        }
        (Some(_), _) => Err(grant_refused(
            "PKCE verification failed (code_verifier missing or malformed)",
        )),
        (None, Some(_)) => Err(grant_refused(
            "code_verifier sent but no code_challenge was",
        )),
        (None, None) => Ok(()),
    }
}

/// A refresh token is used once: the response carries its successor, and a second use of the
/// same token (stolen, or replayed) revokes the whole grant. The account is looked up again,
/// so a leaver's refresh token stops working at the next sync.
async fn refresh_grant(p: &Provider, client: &Client, f: &TokenParams) -> Result<Value, Refusal> {
    let now = p.now();
    let Some(rt) = f
        .refresh_token
        .as_deref()
        .and_then(|t| p.keys().open("refresh", t).ok())
    else {
        return Err(grant_refused("the refresh token is invalid"));
    };
    let exp = rt["exp"].as_i64().unwrap_or(0);
    if exp <= now.as_second() {
        return Err(grant_refused("the refresh token has expired"));
    }
    if rt["c"].as_str() != Some(client.id.as_str()) {
        return Err(grant_refused(
            "the refresh token was issued to another client",
        ));
    }
    let (Some(jti), Some(gid), Some(userid), Some(scope)) = (
        rt["jti"].as_str(),
        rt["gid"].as_str(),
        rt["u"].as_str(),
        rt["sc"].as_str(),
    ) else {
        return Err(grant_refused("the refresh token is invalid"));
    };
    if let Some(asked) = &f.scope
        && asked
            .split_whitespace()
            .any(|s| !scope.split(' ').any(|g| g == s))
    {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope exceeds the original grant",
        ));
    }
    if p.ledger.revoked(gid).await.map_err(server_error)? {
        return Err(grant_refused("the grant was revoked"));
    }
    let replayed = Replay {
        what: "refresh token",
        revokes: gid,
        refusal: "the refresh token has already been used",
    };
    spend_once(p, client, jti, (exp, now), replayed).await?;
    let claims = match p.accounts.lookup(userid).await {
        Ok(Account::Active(c)) => c,
        Ok(Account::Disabled | Account::Missing) => {
            tracing::info!(client = %client.id, sub = %p.subject(userid), "token: refresh refused, account disabled or gone");
            p.ledger
                .revoke(gid, now + REFRESH_TTL)
                .await
                .map_err(server_error)?;
            return Err(grant_refused("the account is disabled"));
        }
        Err(e) => return Err(server_error(e)),
    };
    let scope = f.scope.clone().unwrap_or_else(|| scope.to_string());
    let grant = Grant {
        gid: gid.to_string(),
        userid: userid.to_string(),
        scope,
        auth_time: rt["at"].clone(),
        nonce: None,
        claims,
    };
    issue(p, client, &grant, now).map_err(server_error)
}

/// The token response: a signed access token, an ID token bound to it by `at_hash`, with the
/// claims the granted scopes allow, and with `offline_access` a refresh token.
fn issue(p: &Provider, client: &Client, g: &Grant, now: Timestamp) -> Result<Value, LoginError> {
    let issuer = p.issuer();
    let sub = p.subject(&g.userid);
    let scopes: Vec<&str> = g.scope.split(' ').collect();
    let claims = scoped_claims(g.claims.clone(), &scopes);
    let iat = now.as_second();
    let exp = (now + TOKEN_TTL).as_second();
    let keys = p.keys();
    let access = keys.sign(
        now,
        "at+jwt",
        &json!({
            "iss": issuer, "sub": sub, "aud": format!("{issuer}/userinfo"),
            "client_id": client.id, "scope": g.scope, "iat": iat, "exp": exp,
            "jti": random_token(12)?, "gid": g.gid, "claims": claims,
        }),
    )?;
    let digest = Sha256::digest(access.as_bytes());
    let mut id_claims = json!({
        "iss": issuer, "sub": sub, "aud": client.id, "azp": client.id,
        "iat": iat, "exp": exp, "auth_time": g.auth_time,
        "at_hash": B64.encode(&digest[..16]),
    });
    if let Some(n) = &g.nonce {
        id_claims["nonce"] = json!(n);
    }
    for (k, v) in claims {
        id_claims[k] = v;
    }
    let id_token = keys.sign(now, "JWT", &id_claims)?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL.as_secs(),
        "id_token": id_token,
        "scope": g.scope,
    });
    if scopes.contains(&"offline_access") {
        body["refresh_token"] = json!(keys.seal(
            now,
            "refresh",
            &json!({
                "jti": random_token(16)?, "gid": g.gid, "c": client.id, "u": g.userid,
                "sc": g.scope, "at": g.auth_time, "exp": (now + REFRESH_TTL).as_second(),
            }),
        )?);
    }
    tracing::info!(client = %client.id, sub = %sub, "token issued");
    Ok(body)
}

/// The claims a scope set grants (`openid` alone gives `sub` only).
fn scoped_claims(all: Map<String, Value>, scopes: &[&str]) -> Map<String, Value> {
    all.into_iter()
        .filter(|(k, _)| match k.as_str() {
            "email" | "email_verified" => scopes.contains(&"email"),
            "phone_number" => scopes.contains(&"phone"),
            "groups" => scopes.contains(&"groups"),
            _ => scopes.contains(&"profile"),
        })
        .collect()
}

/// Claims for an access token that is valid, unexpired and whose grant was not revoked.
pub(super) async fn userinfo(State(p): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let deny = |e: &str| {
        let mut r = (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": e}))).into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!("Bearer error=\"{e}\"")).expect("ascii"),
        );
        r
    };
    let Some(tok) = credentials(&headers, "Bearer") else {
        return deny("invalid_request");
    };
    let Ok(c) = p.keys().verify(tok, "at+jwt") else {
        return deny("invalid_token");
    };
    if c["iss"] != p.issuer() || c["exp"].as_i64().is_none_or(|e| e <= p.now().as_second()) {
        return deny("invalid_token");
    }
    match c["gid"].as_str() {
        Some(gid) => match p.ledger.revoked(gid).await {
            Ok(false) => {}
            Ok(true) => return deny("invalid_token"),
            Err(e) => {
                tracing::error!(error = %e, "userinfo: ledger not readable");
                return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
            }
        },
        None => return deny("invalid_token"),
    }
    let mut out = json!({"sub": c["sub"]});
    if let Some(m) = c["claims"].as_object() {
        for (k, v) in m {
            out[k] = v.clone();
        }
    }
    let mut r = axum::Json(out).into_response();
    no_store(r.headers_mut());
    r
}
