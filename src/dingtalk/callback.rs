//! DingTalk's HTTP callback crypto: the SHA-1 signature over (token, timestamp, nonce, encrypt)
//! and AES-256-CBC with the 43-character EncodingAESKey, PKCS#7-padded to 32-byte blocks, over
//! `random16 ‖ len(u32 BE) ‖ msg ‖ owner_key`. Both directions, so the receiver verifies and
//! decrypts and the simulator (and the `success` reply) encrypt. Garbage in is an error, never a
//! panic.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha1::{Digest, Sha1};

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// DingTalk pads to this block size, not AES's 16 (pad values up to 32 are seen on the wire).
const PAD_BLOCK: usize = 32;

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("EncodingAESKey must be 43 base64 characters")]
    BadKey,
    #[error("signature mismatch")]
    BadSignature,
    #[error("ciphertext is not valid base64 AES-CBC data")]
    BadCiphertext,
    #[error("decrypted frame is malformed")]
    BadFrame,
    #[error("message is addressed to another app or corp")]
    WrongOwner,
}

/// The crypto of one callback registration.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: String,
    key: [u8; 32],
    owner_key: String,
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("owner_key", &self.owner_key)
            .finish_non_exhaustive()
    }
}

/// `lowercase_hex(sha1(concat(sorted([token, timestamp, nonce, encrypt]))))`.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

impl CallbackCrypto {
    /// `owner_key` is the AppKey for console-subscribed events of an internal app, the corpId
    /// for `register_call_back`, the suiteKey for ISV apps.
    pub fn new(token: &str, aes_key: &str, owner_key: &str) -> Result<Self, CallbackError> {
        if aes_key.len() != 43 {
            return Err(CallbackError::BadKey);
        }
        // The 43rd character carries two unused bits that DingTalk's keys do not zero.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient
            .decode(format!("{aes_key}="))
            .map_err(|_| CallbackError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CallbackError::BadKey)?;
        Ok(Self {
            token: token.into(),
            key,
            owner_key: owner_key.into(),
        })
    }

    /// Encrypt `msg` with a given 16-byte random prefix (deterministic, for tests).
    pub fn encrypt_with(&self, msg: &str, random: &[u8; 16]) -> String {
        let mut frame = Vec::with_capacity(16 + 4 + msg.len() + self.owner_key.len() + PAD_BLOCK);
        frame.extend_from_slice(random);
        frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        frame.extend_from_slice(msg.as_bytes());
        frame.extend_from_slice(self.owner_key.as_bytes());
        let pad = PAD_BLOCK - frame.len() % PAD_BLOCK;
        frame.extend(std::iter::repeat_n(pad as u8, pad));
        let len = frame.len();
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 bytes");
        let out = Enc::new(&self.key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut frame, len)
            .expect("the frame is block aligned");
        STANDARD.encode(out)
    }

    /// Encrypt `msg` with a fresh alphanumeric random prefix, as DingTalk's own code does.
    pub fn encrypt(&self, msg: &str) -> String {
        use rand::Rng;
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::rng();
        let random: [u8; 16] = std::array::from_fn(|_| ALNUM[rng.random_range(0..ALNUM.len())]);
        self.encrypt_with(msg, &random)
    }

    /// Check the signature, decrypt, and check the message is addressed to us.
    pub fn verify_and_decrypt(
        &self,
        sig: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CallbackError> {
        let want = signature(&self.token, timestamp, nonce, encrypt);
        // Compare without an early exit, so timing does not reveal how much matched.
        let ok = want.len() == sig.len()
            && want
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !ok {
            return Err(CallbackError::BadSignature);
        }
        self.decrypt(encrypt)
    }

    /// Decrypt and check the owner (no signature check).
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CallbackError> {
        let mut data = STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CallbackError::BadCiphertext)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CallbackError::BadCiphertext);
        }
        let iv: [u8; 16] = self.key[..16].try_into().expect("16 bytes");
        let plain = Dec::new(&self.key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CallbackError::BadCiphertext)?;
        let pad = *plain.last().ok_or(CallbackError::BadFrame)? as usize;
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CallbackError::BadFrame);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < 20 {
            return Err(CallbackError::BadFrame);
        }
        let len = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
        let end = 20usize
            .checked_add(len)
            .filter(|&e| e <= body.len())
            .ok_or(CallbackError::BadFrame)?;
        let msg = std::str::from_utf8(&body[20..end]).map_err(|_| CallbackError::BadFrame)?;
        if &body[end..] != self.owner_key.as_bytes() {
            return Err(CallbackError::WrongOwner);
        }
        Ok(msg.to_string())
    }

    /// The JSON body DingTalk requires as the answer: the encrypted `success`, signed.
    pub fn success_reply(&self, timestamp: &str, nonce: &str) -> serde_json::Value {
        let encrypt = self.encrypt("success");
        serde_json::json!({
            "msg_signature": signature(&self.token, timestamp, nonce, &encrypt),
            "timeStamp": timestamp,
            "nonce": nonce,
            "encrypt": encrypt,
        })
    }
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
        plain: &'static str,
        cipher: &'static str,
        random: &'static str,
    }

    // DingTalk's published callback test vectors.
    const VECTORS: [Vector; 3] = [
        Vector {
            token: "mryue",
            aes_key: "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
            owner: "ding6ccabc44d2c8d38b",
            timestamp: "1608001896814",
            nonce: "WL4PK6yA",
            signature: "03044561471240d4a14bb09372dfcfd4fd0e40cb",
            plain: r#"{"EventType":"check_url"}"#,
            cipher: "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3",
            random: "l7Y3EcX2CU5w8av3",
        },
        Vector {
            token: "123456",
            aes_key: "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
            owner: "suite4xxxxxxxxxxxxxxx",
            timestamp: "1445827045067",
            nonce: "nEXhMP4r",
            signature: "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
            plain: r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#,
            cipher: "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==",
            random: "hU3bEfGZZewzhG5a",
        },
        Vector {
            token: "123456",
            aes_key: "1234567890123456789012345678901234567890123",
            owner: "dingsnotzck6pm5veliw",
            timestamp: "1614767836",
            nonce: "A7Co0cJLMzIDtMMI",
            signature: "9a95a004dd16f5c307e849b994173f76aa26e5eb",
            plain: "success",
            cipher: "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA==",
            random: "dICkEDLj0eb6yAbc",
        },
    ];

    #[test]
    fn published_vectors_verify_decrypt_and_reencrypt() {
        for v in VECTORS {
            let c = CallbackCrypto::new(v.token, v.aes_key, v.owner).unwrap();
            assert_eq!(
                signature(v.token, v.timestamp, v.nonce, v.cipher),
                v.signature
            );
            assert_eq!(
                c.verify_and_decrypt(v.signature, v.timestamp, v.nonce, v.cipher)
                    .unwrap(),
                v.plain
            );
            let random: [u8; 16] = v.random.as_bytes().try_into().unwrap();
            assert_eq!(c.encrypt_with(v.plain, &random), v.cipher, "byte-for-byte");
        }
    }

    #[test]
    fn forged_or_garbage_callbacks_are_refused_without_panicking() {
        let v = &VECTORS[0];
        let c = CallbackCrypto::new(v.token, v.aes_key, v.owner).unwrap();
        assert_eq!(
            c.verify_and_decrypt("00", v.timestamp, v.nonce, v.cipher),
            Err(CallbackError::BadSignature)
        );
        let other = CallbackCrypto::new(v.token, v.aes_key, "dingsomeothercorp").unwrap();
        assert_eq!(
            other.verify_and_decrypt(v.signature, v.timestamp, v.nonce, v.cipher),
            Err(CallbackError::WrongOwner)
        );
        for garbage in [
            "",
            "!!!",
            "AAAA",
            "AAAAAAAAAAAAAAAAAAAAAA==",
            &STANDARD.encode([7u8; 48]),
        ] {
            let sig = signature(v.token, v.timestamp, v.nonce, garbage);
            assert!(
                c.verify_and_decrypt(&sig, v.timestamp, v.nonce, garbage)
                    .is_err(),
                "{garbage:?}"
            );
        }
        assert_eq!(
            CallbackCrypto::new("t", "short", "x").unwrap_err(),
            CallbackError::BadKey
        );
    }

    #[test]
    fn success_reply_round_trips() {
        let v = &VECTORS[2];
        let c = CallbackCrypto::new(v.token, v.aes_key, v.owner).unwrap();
        let reply = c.success_reply("1700000000", "abc");
        let enc = reply["encrypt"].as_str().unwrap();
        assert_eq!(
            c.verify_and_decrypt(
                reply["msg_signature"].as_str().unwrap(),
                "1700000000",
                "abc",
                enc
            )
            .unwrap(),
            "success"
        );
    }
}
