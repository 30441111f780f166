//! The rules AD puts on user accounts that OpenLDAP does not have: the `userAccountControl`
//! bits, the 20-character `sAMAccountName`, `cn` unique within its container, and passwords
//! written as `unicodePwd`.

use crate::secret::Secret;

/// `userAccountControl` ACCOUNTDISABLE: the account cannot log on.
pub const ACCOUNTDISABLE: u32 = 0x2;
/// `userAccountControl` PASSWD_NOTREQD: what AD itself sets on an account created without a
/// password; dingsync uses it to tell "waiting for its first password" from "leaver".
pub const PASSWD_NOTREQD: u32 = 0x20;
/// `userAccountControl` NORMAL_ACCOUNT.
pub const NORMAL_ACCOUNT: u32 = 0x200;
/// A leaver's account: 514.
pub const DISABLED: u32 = NORMAL_ACCOUNT | ACCOUNTDISABLE;
/// An account with a password that may log on: 512.
pub const ENABLED: u32 = NORMAL_ACCOUNT;
/// A new account that has no password yet: 546, disabled until someone sets one.
pub const AWAITING_PASSWORD: u32 = NORMAL_ACCOUNT | ACCOUNTDISABLE | PASSWD_NOTREQD;

/// The longest `sAMAccountName` AD accepts for a user (the pre-Windows 2000 logon name).
pub const SAM_MAX: usize = 20;

/// Whether an account with these `userAccountControl` bits was disabled as a leaver. An
/// account still waiting for its first password is disabled too, but is not a leaver: the
/// engine must neither re-enable it (it has no password) nor count it as gone.
pub fn is_leaver(uac: u32) -> bool {
    uac & ACCOUNTDISABLE != 0 && uac & PASSWD_NOTREQD == 0
}

/// The bits of a leaver's account: disabled, other bits (`DONT_EXPIRE_PASSWORD`, ...) kept.
pub fn disabled(uac: u32) -> u32 {
    (uac | NORMAL_ACCOUNT | ACCOUNTDISABLE) & !PASSWD_NOTREQD
}

/// The bits of a rehired person's account: enabled when it has a password
/// (`pwdLastSet` not 0), otherwise back to waiting for one.
pub fn enabled(uac: u32, has_password: bool) -> u32 {
    if has_password {
        (uac | NORMAL_ACCOUNT) & !(ACCOUNTDISABLE | PASSWD_NOTREQD)
    } else {
        uac | AWAITING_PASSWORD
    }
}

/// `sAMAccountName` must fit AD's limit and hold none of the characters AD forbids in it.
pub fn check_sam(name: &str) -> Result<(), String> {
    const FORBIDDEN: &[char] = &[
        '"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '@',
    ];
    let n = name.chars().count();
    if n == 0 || n > SAM_MAX {
        return Err(format!(
            "sAMAccountName {name:?} has {n} characters; AD allows 1 to {SAM_MAX} (set \
             the mapping's uniqueName.maxLength to {SAM_MAX})"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| FORBIDDEN.contains(c) || c.is_control())
    {
        return Err(format!(
            "sAMAccountName {name:?} holds {c:?}, which AD does not allow"
        ));
    }
    if name.ends_with('.') {
        return Err(format!("sAMAccountName {name:?} may not end with a dot"));
    }
    Ok(())
}

/// The `cn` an entry gets when the wanted one is taken in its container: the wanted value
/// with the account (or department) name in parentheses, so it stays readable and unique.
pub fn suffixed_cn(wanted: &str, unique: &str) -> String {
    format!("{wanted} ({unique})")
}

/// The `cn` the mapping wrote, from the one the entry has: [`suffixed_cn`] undone.
pub fn wanted_cn<'a>(cn: &'a str, unique: &str) -> &'a str {
    cn.strip_suffix(&format!(" ({unique})"))
        .filter(|w| !w.is_empty())
        .unwrap_or(cn)
}

/// A fresh random password that meets AD's default complexity rules (upper, lower, digit,
/// symbol; 24 characters). ASCII only, so its `unicodePwd` encoding is also valid text.
pub fn random_password() -> Secret {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let body: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    Secret::new(format!("{body}-Aa9"))
}

/// The value AD wants in `unicodePwd`: the password in double quotes, UTF-16LE. AD only
/// accepts it over an encrypted connection. The password must be ASCII (as
/// [`random_password`]'s are), so the bytes are valid UTF-8 and travel as an ordinary value.
pub fn unicode_pwd(password: &Secret) -> Result<String, String> {
    let p = password.expose();
    if !p.is_ascii() {
        return Err("a password set by dingsync must be ASCII".into());
    }
    let quoted = format!("\"{p}\"");
    let bytes: Vec<u8> = quoted.encode_utf16().flat_map(u16::to_le_bytes).collect();
    String::from_utf8(bytes).map_err(|_| "password encoding".into())
}

/// `objectGUID` as AD prints it (`{...}` without braces): the first three fields are stored
/// little-endian. Extended DNs (`<GUID=...>`) take this form.
pub fn guid_string(raw: &[u8]) -> Option<String> {
    let b: [u8; 16] = raw.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        hex::encode(&b[10..])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_control_round_trip() {
        assert_eq!(disabled(ENABLED), 514);
        assert_eq!(disabled(AWAITING_PASSWORD), 514);
        assert_eq!(enabled(514, true), 512);
        assert_eq!(enabled(514, false), 546);
        assert!(is_leaver(514));
        assert!(!is_leaver(546));
        assert!(!is_leaver(512));
        // DONT_EXPIRE_PASSWORD survives both ways.
        assert_eq!(enabled(disabled(0x10200), true), 0x10200);
    }

    #[test]
    fn sam_names_fit_ads_rules() {
        assert!(check_sam("zhangwei").is_ok());
        assert!(check_sam("abcdefghijklmnopqrst").is_ok());
        assert!(check_sam("abcdefghijklmnopqrstu").is_err());
        assert!(check_sam("a/b").is_err());
        assert!(check_sam("").is_err());
        assert!(check_sam("a.").is_err());
    }

    #[test]
    fn suffixed_cns_round_trip() {
        let cn = suffixed_cn("张伟", "zhangwei2");
        assert_eq!(cn, "张伟 (zhangwei2)");
        assert_eq!(wanted_cn(&cn, "zhangwei2"), "张伟");
        assert_eq!(wanted_cn("张伟 (x)", "zhangwei2"), "张伟 (x)");
    }

    #[test]
    fn passwords_encode_and_stay_secret() {
        let p = random_password();
        let shown = format!("{p:?}");
        assert!(!shown.contains(p.expose()));
        let enc = unicode_pwd(&Secret::new("ab")).unwrap();
        assert_eq!(enc.as_bytes(), b"\"\0a\0b\0\"\0");
        assert!(unicode_pwd(&Secret::new("pässword")).is_err());
        let pw = p.expose();
        assert!(pw.chars().any(|c| c.is_ascii_uppercase()));
        assert!(pw.chars().any(|c| c.is_ascii_lowercase()));
        assert!(pw.chars().any(|c| c.is_ascii_digit()));
    }

    #[test]
    fn guids_print_like_ad() {
        let raw = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            guid_string(&raw).unwrap(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(guid_string(&[1, 2]), None);
    }
}
