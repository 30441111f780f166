//! DingTalk's encrypted HTTP callback crypto, both directions.
//!
//! DingTalk pushes `POST <url>?signature=..&timestamp=..&nonce=..` (newer pages name the first
//! parameter `msg_signature`) with the body `{"encrypt":"<base64>"}` and expects an encrypted
//! `success` back. The scheme, as in DingTalk's official `DingCallbackCrypto`:
//!
//! * signature = lowercase hex SHA-1 of the lexicographically sorted concatenation of
//!   token, timestamp, nonce and encrypt (no separators);
//! * key = base64(EncodingAESKey + "="), 32 bytes, AES-256-CBC with iv = key[..16];
//! * plaintext frame = 16 random bytes ‖ u32 big-endian length ‖ message ‖ owner key
//!   (the corpId for `register_call_back`, the AppKey for console subscriptions), PKCS#7-padded
//!   to a multiple of **32** bytes.
//!
//! The simulator uses [`CallbackCrypto::encrypt`] and [`CallbackCrypto::sign`] to push, the
//! dingsync receiver uses [`CallbackCrypto::verify_and_decrypt`] and
//! [`CallbackCrypto::success_reply`] to answer.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// DingTalk pads to 32-byte blocks, not AES's 16 (the official test vectors carry pads > 16).
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;

/// What can go wrong on the receiving side (or with a bad configuration).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("callback token must not be empty")]
    EmptyToken,
    #[error("EncodingAESKey must be 43 characters of [A-Za-z0-9], got {0} characters")]
    BadAesKeyLength(usize),
    #[error("EncodingAESKey is not valid base64")]
    BadAesKey,
    #[error("callback signature does not match")]
    SignatureMismatch,
    #[error("`encrypt` is not valid base64")]
    BadBase64,
    #[error("ciphertext length {0} is not a positive multiple of 16")]
    BadCiphertextLength(usize),
    #[error("decrypted frame is malformed: {0}")]
    BadFrame(&'static str),
    #[error("decrypted message is not UTF-8")]
    NotUtf8,
    #[error("callback is addressed to another owner (corpId/AppKey)")]
    OwnerMismatch,
}

/// The JSON body DingTalk expects as the answer to a push (and that it sends as a push, minus
/// the signature fields, which travel in the query string).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedReply {
    pub msg_signature: String,
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    pub nonce: String,
    pub encrypt: String,
}

/// Token, AES key and owner key of one callback subscription.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
    owner_key: String,
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("token", &"***")
            .field("key", &"***")
            .field("owner_key", &self.owner_key)
            .finish()
    }
}

impl CallbackCrypto {
    /// `aes_key` is the 43-character EncodingAESKey; `owner_key` the corpId, AppKey or suiteKey
    /// that DingTalk appends to every plaintext.
    pub fn new(token: &str, aes_key: &str, owner_key: &str) -> Result<Self, CallbackError> {
        if token.is_empty() {
            return Err(CallbackError::EmptyToken);
        }
        if aes_key.len() != 43 || !aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CallbackError::BadAesKeyLength(aes_key.chars().count()));
        }
        // Java's decoder ignores the 2 spare bits of the 43rd character; so must we.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let raw = lenient
            .decode(format!("{aes_key}="))
            .map_err(|_| CallbackError::BadAesKey)?;
        let key: [u8; 32] = raw.try_into().map_err(|_| CallbackError::BadAesKey)?;
        Ok(Self {
            token: token.to_owned(),
            key,
            owner_key: owner_key.to_owned(),
        })
    }

    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    /// The signature over token, timestamp, nonce and the encrypted text.
    pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        sign(&self.token, timestamp, nonce, encrypt)
    }

    /// Encrypts `msg` with a fresh random prefix (ASCII alphanumerics, as DingTalk does).
    pub fn encrypt(&self, msg: &str) -> String {
        let mut random = [0u8; RANDOM_LEN];
        let mut rng = rand::rng();
        for b in &mut random {
            *b = rng.sample(rand::distr::Alphanumeric);
        }
        self.encrypt_with_random(msg, &random)
    }

    /// Deterministic variant of [`Self::encrypt`] (test vectors).
    pub fn encrypt_with_random(&self, msg: &str, random: &[u8; RANDOM_LEN]) -> String {
        let owner = self.owner_key.as_bytes();
        let mut frame = Vec::with_capacity(RANDOM_LEN + 4 + msg.len() + owner.len() + PAD_BLOCK);
        frame.extend_from_slice(random);
        // A callback message never approaches 4 GiB; saturate rather than wrap.
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(msg.as_bytes());
        frame.extend_from_slice(owner);
        let pad = PAD_BLOCK - frame.len() % PAD_BLOCK;
        frame.extend(std::iter::repeat_n(pad as u8, pad));
        let cipher = cbc::Encryptor::<Aes256>::new(&self.key.into(), (&self.iv()).into());
        let ct = cipher.encrypt_padded_vec_mut::<NoPadding>(&frame);
        B64.encode(ct)
    }

    /// Decrypts `encrypt` and checks the owner key; does not look at any signature.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CallbackError> {
        let ct = B64
            .decode(encrypt.trim())
            .map_err(|_| CallbackError::BadBase64)?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(CallbackError::BadCiphertextLength(ct.len()));
        }
        let cipher = cbc::Decryptor::<Aes256>::new(&self.key.into(), (&self.iv()).into());
        let plain = cipher
            .decrypt_padded_vec_mut::<NoPadding>(&ct)
            .map_err(|_| CallbackError::BadCiphertextLength(ct.len()))?;
        let pad = *plain.last().ok_or(CallbackError::BadFrame("empty"))? as usize;
        // The official code treats pad values outside 1..=32 as 0.
        let pad = if (1..=PAD_BLOCK).contains(&pad) {
            pad
        } else {
            0
        };
        let body = plain
            .get(..plain.len() - pad)
            .ok_or(CallbackError::BadFrame("padding longer than frame"))?;
        let len_bytes: [u8; 4] = body
            .get(RANDOM_LEN..RANDOM_LEN + 4)
            .ok_or(CallbackError::BadFrame("too short"))?
            .try_into()
            .map_err(|_| CallbackError::BadFrame("too short"))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let start = RANDOM_LEN + 4;
        let msg = body
            .get(start..start.saturating_add(len))
            .ok_or(CallbackError::BadFrame("length exceeds frame"))?;
        let owner = &body[start + len..];
        if owner != self.owner_key.as_bytes() {
            return Err(CallbackError::OwnerMismatch);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CallbackError::NotUtf8)
    }

    /// Receiver side: checks the signature, decrypts, checks the owner key.
    pub fn verify_and_decrypt(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CallbackError> {
        let expected = self.sign(timestamp, nonce, encrypt);
        if !constant_time_eq(
            expected.as_bytes(),
            signature.trim().to_ascii_lowercase().as_bytes(),
        ) {
            return Err(CallbackError::SignatureMismatch);
        }
        self.decrypt(encrypt)
    }

    /// Encrypts and signs `msg` as a reply body.
    pub fn encrypted_reply(&self, msg: &str, timestamp: &str, nonce: &str) -> EncryptedReply {
        let encrypt = self.encrypt(msg);
        EncryptedReply {
            msg_signature: self.sign(timestamp, nonce, &encrypt),
            time_stamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            encrypt,
        }
    }

    /// The answer DingTalk requires after every push, including `check_url`.
    pub fn success_reply(&self, timestamp: &str, nonce: &str) -> EncryptedReply {
        self.encrypted_reply("success", timestamp, nonce)
    }

    /// Sender side: checks that `reply` is a correctly signed, encrypted `success`.
    pub fn verify_success_reply(&self, reply: &EncryptedReply) -> Result<bool, CallbackError> {
        let msg = self.verify_and_decrypt(
            &reply.msg_signature,
            &reply.time_stamp,
            &reply.nonce,
            &reply.encrypt,
        )?;
        Ok(msg == "success")
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }
}

/// SHA-1 over the sorted concatenation of the four values, lowercase hex.
pub fn sign(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vector {
        token: &'static str,
        aes_key: &'static str,
        owner: &'static str,
        timestamp: &'static str,
        nonce: &'static str,
        signature: &'static str,
        plaintext: &'static str,
        random: &'static str,
        encrypt: &'static str,
    }

    // Official vectors from DingTalk's crypto repository and docs.
    const VECTORS: [Vector; 3] = [
        Vector {
            token: "mryue",
            aes_key: "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
            owner: "ding6ccabc44d2c8d38b",
            timestamp: "1608001896814",
            nonce: "WL4PK6yA",
            signature: "03044561471240d4a14bb09372dfcfd4fd0e40cb",
            plaintext: r#"{"EventType":"check_url"}"#,
            random: "l7Y3EcX2CU5w8av3",
            encrypt: "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3",
        },
        Vector {
            token: "123456",
            aes_key: "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
            owner: "suite4xxxxxxxxxxxxxxx",
            timestamp: "1445827045067",
            nonce: "nEXhMP4r",
            signature: "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
            plaintext: r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#,
            random: "hU3bEfGZZewzhG5a",
            encrypt: "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==",
        },
        Vector {
            token: "123456",
            aes_key: "1234567890123456789012345678901234567890123",
            owner: "dingsnotzck6pm5veliw",
            timestamp: "1614767836",
            nonce: "A7Co0cJLMzIDtMMI",
            signature: "9a95a004dd16f5c307e849b994173f76aa26e5eb",
            plaintext: "success",
            random: "dICkEDLj0eb6yAbc",
            encrypt: "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==",
        },
    ];

    #[test]
    fn official_vectors_sign_and_decrypt() {
        for v in &VECTORS {
            let c = CallbackCrypto::new(v.token, v.aes_key, v.owner).unwrap();
            assert_eq!(c.sign(v.timestamp, v.nonce, v.encrypt), v.signature);
            let plain = c
                .verify_and_decrypt(v.signature, v.timestamp, v.nonce, v.encrypt)
                .unwrap();
            assert_eq!(plain, v.plaintext);
        }
    }

    #[test]
    fn official_vectors_encrypt_byte_for_byte() {
        for v in &VECTORS {
            let c = CallbackCrypto::new(v.token, v.aes_key, v.owner).unwrap();
            let random: [u8; 16] = v.random.as_bytes().try_into().unwrap();
            assert_eq!(c.encrypt_with_random(v.plaintext, &random), v.encrypt);
        }
    }

    #[test]
    fn round_trip_and_success_reply() {
        let c = CallbackCrypto::new("tok", VECTORS[0].aes_key, "dingcorp").unwrap();
        for msg in [
            "",
            "x",
            "钉钉事件",
            &"a".repeat(31),
            &"b".repeat(32),
            &"c".repeat(1000),
        ] {
            let enc = c.encrypt(msg);
            assert_eq!(c.decrypt(&enc).unwrap(), msg);
        }
        let reply = c.success_reply("123", "nonce");
        assert!(c.verify_success_reply(&reply).unwrap());
        let json = serde_json::to_value(&reply).unwrap();
        assert!(json.get("msg_signature").is_some() && json.get("timeStamp").is_some());
    }

    #[test]
    fn rejects_wrong_signature_owner_and_garbage() {
        let v = &VECTORS[0];
        let c = CallbackCrypto::new(v.token, v.aes_key, v.owner).unwrap();
        assert_eq!(
            c.verify_and_decrypt("00", v.timestamp, v.nonce, v.encrypt),
            Err(CallbackError::SignatureMismatch)
        );
        let other = CallbackCrypto::new(v.token, v.aes_key, "dingother").unwrap();
        assert_eq!(
            other.verify_and_decrypt(v.signature, v.timestamp, v.nonce, v.encrypt),
            Err(CallbackError::OwnerMismatch)
        );
        for garbage in [
            "",
            "!!!",
            "AAAA",
            "AAAAAAAAAAAAAAAAAAAAAA==",
            &B64.encode([7u8; 64]),
        ] {
            assert!(c.decrypt(garbage).is_err(), "{garbage:?}");
        }
        // Wrong key: decrypts to noise, must be an error, not a panic.
        let wrong = CallbackCrypto::new(v.token, VECTORS[2].aes_key, v.owner).unwrap();
        assert!(wrong.decrypt(v.encrypt).is_err());
        assert!(matches!(
            CallbackCrypto::new("t", "short", "o"),
            Err(CallbackError::BadAesKeyLength(5))
        ));
        assert_eq!(
            CallbackCrypto::new("", v.aes_key, "o").unwrap_err(),
            CallbackError::EmptyToken
        );
        assert!(!format!("{c:?}").contains(v.token));
    }
}
