//! An HTTP callback push is attacker-controlled until its signature checks out: whatever the
//! query and body hold, the receiver answers with an error or a message, never a panic.
#![no_main]

use dingsync::dingtalk::callback::CallbackCrypto;
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "fuzztoken";
const AES_KEY: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const OWNER: &str = "dingfuzzcorp";

fuzz_target!(|data: &[u8]| {
    let crypto = CallbackCrypto::new(TOKEN, AES_KEY, OWNER).expect("fixed key is valid");
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (ts, nonce, encrypt, sig) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    // Garbage ciphertext, unsigned.
    let _ = crypto.decrypt(&text);
    let _ = crypto.verify_and_decrypt(sig, ts, nonce, encrypt);
    // Correctly signed garbage reaches the decryptor through the receiver's own path.
    let signed = crypto.sign(ts, nonce, encrypt);
    let _ = crypto.verify_and_decrypt(&signed, ts, nonce, encrypt);
    // And a genuine message always round-trips.
    let sealed = crypto.encrypt(&text);
    let signed = crypto.sign(ts, nonce, &sealed);
    assert_eq!(
        crypto
            .verify_and_decrypt(&signed, ts, nonce, &sealed)
            .ok()
            .as_deref(),
        Some(&*text)
    );
});
