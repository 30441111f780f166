//! OIDC clients, declared in YAML (the `clients.yaml` key of the Secret a binding's `login`
//! section references, so client secrets stay in a Secret while the rest lives in Git):
//!
//! ```yaml
//! clients:
//!   - id: grafana
//!     secret: change-me                  # omit for a public client (PKCE then required)
//!     redirectUris: [https://grafana.example.com/login/generic_oauth]
//!     scopes: [openid, profile, email, groups]   # what it may ask for (default: all)
//!     requirePkce: true                  # default true
//!     homepage: https://grafana.example.com/login/generic_oauth   # Workbench lands here
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::LoginError;
use crate::secret::Secret;

/// Scopes the provider knows.
pub const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "phone",
    "groups",
    "offline_access",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    clients: Vec<Raw>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    id: String,
    #[serde(default)]
    secret: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    require_pkce: Option<bool>,
    #[serde(default)]
    homepage: Option<String>,
}

/// One registered client. Debug never prints the secret.
#[derive(Clone)]
pub struct Client {
    pub id: String,
    secret: Option<Secret>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub require_pkce: bool,
    pub homepage: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("confidential", &self.secret.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

impl Client {
    /// Public clients (no secret) prove themselves with PKCE alone.
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }

    /// Exact match, as OAuth 2.0 Security BCP asks (no prefix or wildcard matching).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }

    /// Constant-time comparison of the presented secret.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret {
            None => false,
            Some(s) => {
                let (a, b) = (s.expose().as_bytes(), presented.as_bytes());
                a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            }
        }
    }
}

/// The registered clients by id.
#[derive(Debug, Clone, Default)]
pub struct Clients(BTreeMap<String, Client>);

/// A redirect URI must parse, carry no fragment and be https (http only for loopback);
/// `field` names the client and field in the error.
fn check_redirect_uri(field: &str, u: &str) -> Result<(), LoginError> {
    let parsed = url::Url::parse(u).map_err(|source| LoginError::ClientUrl {
        at: field.to_string(),
        url: u.to_string(),
        source,
    })?;
    if parsed.fragment().is_some() {
        return Err(LoginError::Clients(format!(
            "{field} {u:?}: must not contain a fragment"
        )));
    }
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return Err(LoginError::Clients(format!(
            "{field} {u:?}: must be https (http only for loopback)"
        )));
    }
    Ok(())
}

impl Clients {
    /// Parses `clients.yaml`; every error names the client and field.
    pub fn parse(yaml: &str) -> Result<Self, LoginError> {
        let file: File = serde_yaml::from_str(yaml).map_err(LoginError::ClientsFile)?;
        let mut out = BTreeMap::new();
        for (i, r) in file.clients.into_iter().enumerate() {
            let at = |field: &str| {
                if r.id.is_empty() {
                    format!("clients[{i}].{field}")
                } else {
                    format!("client {:?}: {field}", r.id)
                }
            };
            if r.id.trim().is_empty() {
                return Err(LoginError::Clients(format!(
                    "{} must not be empty",
                    at("id")
                )));
            }
            if let Some(s) = &r.secret
                && s.len() < 16
            {
                return Err(LoginError::Clients(format!(
                    "{} must be at least 16 characters",
                    at("secret")
                )));
            }
            if r.redirect_uris.is_empty() {
                return Err(LoginError::Clients(format!(
                    "{} must list at least one URI",
                    at("redirectUris")
                )));
            }
            let field = at("redirectUris");
            for u in &r.redirect_uris {
                check_redirect_uri(&field, u)?;
            }
            let scopes = r
                .scopes
                .unwrap_or_else(|| SCOPES.iter().map(|s| s.to_string()).collect());
            if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return Err(LoginError::Clients(format!(
                    "{} {bad:?} is not one of {}",
                    at("scopes"),
                    SCOPES.join(", ")
                )));
            }
            if !scopes.iter().any(|s| s == "openid") {
                return Err(LoginError::Clients(format!(
                    "{} must include openid",
                    at("scopes")
                )));
            }
            let require_pkce = r.require_pkce.unwrap_or(true);
            if r.secret.is_none() && !require_pkce {
                return Err(LoginError::Clients(format!(
                    "{} cannot be false for a public client (no secret)",
                    at("requirePkce")
                )));
            }
            if let Some(h) = &r.homepage {
                url::Url::parse(h).map_err(|source| LoginError::ClientUrl {
                    at: at("homepage"),
                    url: h.clone(),
                    source,
                })?;
            }
            if out.contains_key(&r.id) {
                return Err(LoginError::Clients(format!(
                    "client {:?} is declared twice",
                    r.id
                )));
            }
            out.insert(
                r.id.clone(),
                Client {
                    id: r.id,
                    secret: r.secret.map(Secret::new),
                    redirect_uris: r.redirect_uris,
                    scopes,
                    require_pkce,
                    homepage: r.homepage,
                },
            );
        }
        Ok(Clients(out))
    }

    pub fn get(&self, id: &str) -> Option<&Client> {
        self.0.get(id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let c = Clients::parse(
            "clients:\n- id: app\n  secret: 0123456789abcdef\n  redirectUris: [https://app.example.com/cb]\n- id: cli\n  redirectUris: [http://127.0.0.1:8000/callback]\n  scopes: [openid, email]\n",
        )
        .unwrap();
        let app = c.get("app").unwrap();
        assert!(!app.is_public() && app.require_pkce);
        assert!(app.secret_matches("0123456789abcdef"));
        assert!(!app.secret_matches("0123456789abcdeF"));
        assert!(app.allows_redirect("https://app.example.com/cb"));
        assert!(!app.allows_redirect("https://app.example.com/cb/evil"));
        assert!(c.get("cli").unwrap().is_public());
        assert!(!format!("{app:?}").contains("0123456789"));
    }

    #[test]
    fn errors_name_the_client_and_field() {
        for (yaml, want) in [
            (
                "clients:\n- id: a\n  redirectUris: []\n",
                "client \"a\": redirectUris",
            ),
            (
                "clients:\n- id: a\n  redirectUris: [http://app.example.com/cb]\n",
                "must be https",
            ),
            (
                "clients:\n- id: a\n  secret: short\n  redirectUris: [https://x/cb]\n",
                "client \"a\": secret",
            ),
            (
                "clients:\n- id: a\n  redirectUris: [https://x/cb]\n  scopes: [openid, admin]\n",
                "\"admin\" is not one of",
            ),
            (
                "clients:\n- id: a\n  redirectUris: [https://x/cb]\n  requirePkce: false\n",
                "requirePkce",
            ),
            (
                "clients:\n- id: a\n  redirectUris: [https://x/cb]\n- id: a\n  redirectUris: [https://x/cb]\n",
                "declared twice",
            ),
            (
                "clients:\n- id: a\n  redirectUri: [https://x/cb]\n",
                "unknown field",
            ),
            (
                "clients:\n- id: ''\n  redirectUris: [https://x/cb]\n",
                "clients[0].id",
            ),
        ] {
            let e = Clients::parse(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
    #[test]
    fn unparsable_urls_keep_the_parse_error() {
        let e = Clients::parse("clients:\n- id: a\n  redirectUris: ['not a url']\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("client \"a\": redirectUris \"not a url\": "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some(), "{e}");
    }
}
