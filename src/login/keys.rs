//! The provider's keys: RSA keys that sign ID and access tokens (RS256, the algorithm every
//! OIDC client must accept; the JWS itself is made and checked by `jsonwebtoken`) and symmetric
//! keys that seal the login state and authorization codes so any replica can open what another
//! issued.
//!
//! A [`KeySet`] is plain data (serialised into one Secret key by the controller) with a
//! rotation rule: a new key is published in the JWKS an hour before it signs anything (so every
//! replica and every client cache has it), and an old key stays published a day after it
//! stopped signing (so tokens it signed still verify).

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, RandomizedNonceKey},
    encoding::AsDer,
    rand::{SecureRandom, SystemRandom},
    rsa::KeySize,
    signature::{KeyPair as _, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::LoginError;

/// How long a new key is published before it signs.
pub const PUBLISH_AHEAD: SignedDuration = SignedDuration::from_hours(1);
/// How long a retired key stays published (longer than any token it signed lives).
pub const KEEP_RETIRED: SignedDuration = SignedDuration::from_hours(24);
/// Default age at which the signing key is replaced.
pub const ROTATE_AFTER: SignedDuration = SignedDuration::from_hours(24 * 30);

/// One generation of keys.
struct Generation {
    kid: String,
    created: Timestamp,
    /// Signs from this instant.
    active_from: Timestamp,
    /// Stopped signing at this instant (a newer key took over).
    retired_at: Option<Timestamp>,
    rsa: RsaKeyPair,
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    seal_raw: Vec<u8>,
    seal: RandomizedNonceKey,
}

/// The stored form (one JSON document in the Secret's `keys.json`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredGeneration {
    kid: String,
    created: Timestamp,
    active_from: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<Timestamp>,
    /// PKCS#8 DER, base64url.
    rsa_pkcs8: String,
    /// 32 bytes, base64url.
    seal_key: String,
}

/// Signing and sealing keys, newest last. Debug prints key ids only.
pub struct KeySet {
    generations: Vec<Generation>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "kids",
                &self.generations.iter().map(|g| &g.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn random<const N: usize>() -> Result<[u8; N], LoginError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| LoginError::Crypto("random bytes"))?;
    Ok(b)
}

/// A random, URL-safe token of `n` bytes of entropy.
pub fn random_token(n: usize) -> Result<String, LoginError> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| LoginError::Crypto("random bytes"))?;
    Ok(B64.encode(b))
}

impl Generation {
    fn generate(now: Timestamp, active_from: Timestamp) -> Result<Self, LoginError> {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| LoginError::Crypto("RSA key generation"))?;
        let pkcs8 = rsa
            .as_der()
            .map_err(|_| LoginError::Crypto("RSA key export"))?
            .as_ref()
            .to_vec();
        let seal_raw = random::<32>()?.to_vec();
        let kid = B64.encode(random::<9>()?);
        Self::assemble(kid, now, active_from, None, pkcs8, seal_raw)
    }

    fn assemble(
        kid: String,
        created: Timestamp,
        active_from: Timestamp,
        retired_at: Option<Timestamp>,
        pkcs8: Vec<u8>,
        seal_raw: Vec<u8>,
    ) -> Result<Self, LoginError> {
        let rsa = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|source| LoginError::KeyRejected {
            kid: kid.clone(),
            problem: "not an RSA PKCS#8 key",
            source,
        })?;
        if rsa.public_modulus_len() < 256 {
            return Err(LoginError::Keys(format!(
                "key {kid}: RSA keys must be at least 2048 bits"
            )));
        }
        let pkcs1 = pkcs8_private_key(&pkcs8)
            .ok_or_else(|| LoginError::Keys(format!("key {kid}: not a PKCS#8 PrivateKeyInfo")))?;
        let encoding = EncodingKey::from_rsa_der(pkcs1);
        let pk = rsa.public_key();
        let decoding = DecodingKey::from_rsa_raw_components(
            pk.modulus().big_endian_without_leading_zero(),
            pk.exponent().big_endian_without_leading_zero(),
        );
        let seal = RandomizedNonceKey::new(&AES_256_GCM, &seal_raw)
            .map_err(|_| LoginError::Keys(format!("key {kid}: seal key must be 32 bytes")))?;
        Ok(Generation {
            kid,
            created,
            active_from,
            retired_at,
            rsa,
            pkcs8,
            encoding,
            decoding,
            seal_raw,
            seal,
        })
    }

    fn jwk(&self) -> Value {
        let pk = self.rsa.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": B64.encode(pk.modulus().big_endian_without_leading_zero()),
            "e": B64.encode(pk.exponent().big_endian_without_leading_zero()),
        })
    }
}

impl KeySet {
    /// A fresh set whose first key signs at once.
    pub fn generate(now: Timestamp) -> Result<Self, LoginError> {
        Ok(KeySet {
            generations: vec![Generation::generate(now, now)?],
        })
    }

    /// Reads the Secret's `keys.json`. Errors name the key at fault.
    pub fn from_json(data: &[u8]) -> Result<Self, LoginError> {
        let stored: Vec<StoredGeneration> =
            serde_json::from_slice(data).map_err(LoginError::KeysFile)?;
        if stored.is_empty() {
            return Err(LoginError::Keys("keys.json: no keys".into()));
        }
        let mut generations = Vec::with_capacity(stored.len());
        for s in stored {
            let pkcs8 = B64
                .decode(&s.rsa_pkcs8)
                .map_err(|source| LoginError::KeyEncoding {
                    kid: s.kid.clone(),
                    field: "rsaPkcs8",
                    source,
                })?;
            let seal = B64
                .decode(&s.seal_key)
                .map_err(|source| LoginError::KeyEncoding {
                    kid: s.kid.clone(),
                    field: "sealKey",
                    source,
                })?;
            generations.push(Generation::assemble(
                s.kid,
                s.created,
                s.active_from,
                s.retired_at,
                pkcs8,
                seal,
            )?);
        }
        generations.sort_by_key(|g| g.active_from);
        Ok(KeySet { generations })
    }

    /// The Secret's `keys.json`.
    pub fn to_json(&self) -> Vec<u8> {
        let stored: Vec<StoredGeneration> = self
            .generations
            .iter()
            .map(|g| StoredGeneration {
                kid: g.kid.clone(),
                created: g.created,
                active_from: g.active_from,
                retired_at: g.retired_at,
                rsa_pkcs8: B64.encode(&g.pkcs8),
                seal_key: B64.encode(&g.seal_raw),
            })
            .collect();
        serde_json::to_vec_pretty(&stored).expect("key set serialises")
    }

    /// Key ids, oldest first.
    pub fn kids(&self) -> Vec<String> {
        self.generations.iter().map(|g| g.kid.clone()).collect()
    }

    /// The generation that signs and seals now: the newest one already active.
    fn current(&self, now: Timestamp) -> &Generation {
        self.generations
            .iter()
            .rev()
            .find(|g| g.active_from <= now)
            .unwrap_or(&self.generations[0])
    }

    /// Adds a successor when the signing key is older than `rotate_after`, retires keys whose
    /// successor took over, and drops keys retired longer than [`KEEP_RETIRED`]. Returns whether
    /// anything changed (the caller then writes the Secret).
    pub fn rotate(
        &mut self,
        now: Timestamp,
        rotate_after: SignedDuration,
    ) -> Result<bool, LoginError> {
        let mut changed = false;
        let newest = self.generations.last().expect("never empty");
        if newest.active_from + rotate_after <= now {
            self.generations
                .push(Generation::generate(now, now + PUBLISH_AHEAD)?);
            changed = true;
        }
        let current_kid = self.current(now).kid.clone();
        let mut seen_current = false;
        for g in self.generations.iter_mut().rev() {
            if g.kid == current_kid {
                seen_current = true;
                continue;
            }
            if seen_current && g.retired_at.is_none() {
                g.retired_at = Some(now);
                changed = true;
            }
        }
        let before = self.generations.len();
        self.generations
            .retain(|g| g.retired_at.is_none_or(|r| r + KEEP_RETIRED > now));
        Ok(changed || before != self.generations.len())
    }

    /// The published keys (`/jwks`): every key not yet dropped, including the next one.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.generations.iter().map(Generation::jwk).collect::<Vec<_>>() })
    }

    /// A compact JWS (RS256) over `claims`, signed by the current key.
    pub fn sign(&self, now: Timestamp, typ: &str, claims: &Value) -> Result<String, LoginError> {
        let g = self.current(now);
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(typ.to_string());
        header.kid = Some(g.kid.clone());
        jsonwebtoken::encode(&header, claims, &g.encoding).map_err(LoginError::Jose)
    }

    /// Verifies a compact JWS signed by one of our keys (found by `kid`), of the given `typ`,
    /// RS256 only and unexpired (the crate's default leeway absorbs clock skew between
    /// replicas); returns its claims. Audience and issuer are the caller's business.
    pub fn verify(&self, token: &str, typ: &str) -> Result<Value, LoginError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| LoginError::BadToken)?;
        if header.alg != Algorithm::RS256 || header.typ.as_deref() != Some(typ) {
            return Err(LoginError::BadToken);
        }
        let g = header
            .kid
            .as_deref()
            .and_then(|kid| self.generations.iter().find(|g| g.kid == kid))
            .ok_or(LoginError::BadToken)?;
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Value>(token, &g.decoding, &v)
            .map(|d| d.claims)
            .map_err(|_| LoginError::BadToken)
    }

    /// Seals `payload` (AES-256-GCM with the current key; `purpose` is bound as associated data
    /// so a login state can never be replayed as a code). The key id travels in front.
    pub fn seal(
        &self,
        now: Timestamp,
        purpose: &str,
        payload: &Value,
    ) -> Result<String, LoginError> {
        let g = self.current(now);
        let mut data = serde_json::to_vec(payload).expect("json");
        let nonce = g
            .seal
            .seal_in_place_append_tag(Aad::from(purpose.as_bytes()), &mut data)
            .map_err(|_| LoginError::Crypto("seal"))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{}.{}", g.kid, B64.encode(out)))
    }

    /// Opens what [`seal`](Self::seal) made for the same `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Value, LoginError> {
        let bad = || LoginError::BadToken;
        let (kid, body) = sealed.split_once('.').ok_or_else(bad)?;
        let g = self
            .generations
            .iter()
            .find(|g| g.kid == kid)
            .ok_or_else(bad)?;
        let raw = B64.decode(body).map_err(|_| bad())?;
        if raw.len() < 12 + 16 {
            return Err(bad());
        }
        let (nonce, rest) = raw.split_at(12);
        let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = rest.to_vec();
        let plain = g
            .seal
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf)
            .map_err(|_| bad())?;
        serde_json::from_slice(plain).map_err(|_| bad())
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208): for RSA, the
/// PKCS#1 `RSAPrivateKey` that `jsonwebtoken` takes. The keys Secret keeps PKCS#8, which is
/// what aws-lc-rs generates and exports.
fn pkcs8_private_key(der: &[u8]) -> Option<&[u8]> {
    /// One DER element at the start of `b`: (tag, contents, rest).
    fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let (bytes, rest) = b.split_at(n);
            b = rest;
            bytes.iter().fold(0usize, |l, &x| (l << 8) | usize::from(x))
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (0x30, info, _) = element(der)? else {
        return None;
    };
    let (0x02, _version, rest) = element(info)? else {
        return None;
    };
    let (0x30, _algorithm, rest) = element(rest)? else {
        return None;
    };
    let (0x04, key, _) = element(rest)? else {
        return None;
    };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn signs_and_verifies_and_refuses_tampering() {
        let now = t("2026-01-01T00:00:00Z");
        let ks = KeySet::generate(now).unwrap();
        let exp = Timestamp::now().as_second() + 600;
        let tok = ks
            .sign(now, "JWT", &json!({"sub": "a", "exp": exp}))
            .unwrap();
        assert_eq!(ks.verify(&tok, "JWT").unwrap()["sub"], "a");
        assert!(ks.verify(&tok, "at+jwt").is_err(), "typ is checked");
        let expired = ks
            .sign(now, "JWT", &json!({"sub": "a", "exp": exp - 3600}))
            .unwrap();
        assert!(ks.verify(&expired, "JWT").is_err(), "exp is checked");
        let no_exp = ks.sign(now, "JWT", &json!({"sub": "a"})).unwrap();
        assert!(ks.verify(&no_exp, "JWT").is_err(), "exp is required");
        // An unsigned token with the same claims ("alg": "none") is refused.
        let (h, c) = (
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            tok.split('.').nth(1).unwrap(),
        );
        assert!(ks.verify(&format!("{h}.{c}."), "JWT").is_err());
        let mut parts: Vec<&str> = tok.split('.').collect();
        let forged = B64.encode(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert!(ks.verify(&parts.join("."), "JWT").is_err());
        let other = KeySet::generate(now).unwrap();
        assert!(
            other.verify(&tok, "JWT").is_err(),
            "another key set's token"
        );
    }

    #[test]
    fn seal_binds_purpose_and_survives_storage() {
        let now = t("2026-01-01T00:00:00Z");
        let ks = KeySet::generate(now).unwrap();
        let s = ks.seal(now, "code", &json!({"u": 1})).unwrap();
        let stored = KeySet::from_json(&ks.to_json()).unwrap();
        assert_eq!(stored.open("code", &s).unwrap()["u"], 1);
        assert!(stored.open("state", &s).is_err());
        let mut flipped = s.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(
            stored
                .open("code", &String::from_utf8(flipped).unwrap())
                .is_err()
        );
    }

    #[test]
    fn rotation_publishes_ahead_and_keeps_retired_keys_for_a_day() {
        let t0 = t("2026-01-01T00:00:00Z");
        let mut ks = KeySet::generate(t0).unwrap();
        let first = ks.kids()[0].clone();
        assert!(
            !ks.rotate(t0 + SignedDuration::from_hours(1), ROTATE_AFTER)
                .unwrap()
        );
        let t1 = t0 + ROTATE_AFTER;
        assert!(ks.rotate(t1, ROTATE_AFTER).unwrap());
        assert_eq!(ks.kids().len(), 2);
        let second = ks.kids()[1].clone();
        // Published but not yet signing.
        let claims = json!({"exp": Timestamp::now().as_second() + 600});
        let tok = ks.sign(t1, "JWT", &claims).unwrap();
        assert_eq!(ks.verify(&tok, "JWT").unwrap(), claims);
        assert!(tok_kid(&tok) == first);
        let t2 = t1 + PUBLISH_AHEAD;
        ks.rotate(t2, ROTATE_AFTER).unwrap();
        let tok2 = ks.sign(t2, "JWT", &claims).unwrap();
        assert_eq!(tok_kid(&tok2), second);
        // The old token still verifies until the retired key is dropped.
        assert!(ks.verify(&tok, "JWT").is_ok());
        assert!(ks.rotate(t2 + KEEP_RETIRED, ROTATE_AFTER).unwrap());
        assert_eq!(ks.kids(), vec![second]);
        assert!(ks.verify(&tok, "JWT").is_err());
    }

    fn tok_kid(tok: &str) -> String {
        let h: Value =
            serde_json::from_slice(&B64.decode(tok.split('.').next().unwrap()).unwrap()).unwrap();
        h["kid"].as_str().unwrap().to_string()
    }

    #[test]
    fn bad_stored_keys_are_named() {
        let e = KeySet::from_json(b"[]").unwrap_err().to_string();
        assert!(e.contains("no keys"), "{e}");
        let e = KeySet::from_json(
            br#"[{"kid":"k1","created":"2026-01-01T00:00:00Z","activeFrom":"2026-01-01T00:00:00Z","rsaPkcs8":"AAAA","sealKey":"AAAA"}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("k1"), "{e}");
    }
}
