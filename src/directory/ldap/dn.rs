//! Distinguished names (RFC 4514) and search filter values (RFC 4515).
//!
//! Values that end up in a DN or a filter come from DingTalk (names such as `张,伟+"\<>;#`), so
//! they are always escaped here, never pasted. DNs read back from the server are parsed, not
//! compared as strings: OpenLDAP returns its own spelling of escapes (`\,` for `\2C`), and
//! attribute types and most naming values compare case-insensitively.

use std::fmt;

/// Escape a value for use in one RDN (RFC 4514 section 2.4).
///
/// `,` `+` `"` `\` `<` `>` `;` are escaped with a backslash, as are `=` (harmless and
/// clearer), a leading `#` or space and a trailing space; NUL becomes `\00`. Other characters,
/// including non-ASCII UTF-8, stay as they are.
pub fn escape_rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

/// Escape a value for use in a search filter assertion (RFC 4515 section 3): `*` `(` `)` `\`
/// and NUL become `\2a` `\28` `\29` `\5c` `\00`.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// Why a DN string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN {dn:?}: {reason}")]
pub struct DnError {
    pub dn: String,
    pub reason: &'static str,
}

/// One attribute type and value of an RDN, value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: String,
}

/// A parsed DN, kept compact (people DNs are indexed by the hundred thousand): its escaped
/// text and its normalised comparison key in one exact-size buffer, and where each RDN
/// starts in both.
#[derive(Debug, Clone)]
pub struct Dn {
    /// The text, then the key.
    buf: Box<str>,
    /// Where the key starts in `buf`.
    split: u32,
    /// (start in the text, start in the key) of each RDN, leftmost first.
    bounds: Box<[(u32, u32)]>,
}

/// A DN being built: grown piece by piece, then frozen into a [`Dn`].
#[derive(Default)]
struct Parts {
    text: String,
    key: String,
    bounds: Vec<(u32, u32)>,
}

impl Parts {
    fn freeze(self) -> Dn {
        let mut buf = String::with_capacity(self.text.len() + self.key.len());
        buf.push_str(&self.text);
        buf.push_str(&self.key);
        Dn {
            buf: buf.into_boxed_str(),
            split: self.text.len() as u32,
            bounds: self.bounds.into_boxed_slice(),
        }
    }
}

impl Dn {
    /// The empty (root) DN.
    pub fn root() -> Self {
        Parts::default().freeze()
    }

    fn text(&self) -> &str {
        &self.buf[..self.split as usize]
    }

    /// The DN as text (what `to_string` gives), borrowed.
    pub fn as_str(&self) -> &str {
        self.text()
    }

    fn key_part(&self) -> &str {
        &self.buf[self.split as usize..]
    }

    fn from_rdns(rdns: &[Vec<Ava>]) -> Self {
        let mut dn = Parts::default();
        for (i, r) in rdns.iter().enumerate() {
            if i > 0 {
                dn.text.push(',');
                dn.key.push(',');
            }
            dn.bounds.push((dn.text.len() as u32, dn.key.len() as u32));
            dn.text.push_str(&fmt_rdn(r));
            dn.key.push_str(&rdn_key(r));
        }
        dn.freeze()
    }

    /// Parse an RFC 4514 string.
    pub fn parse(s: &str) -> Result<Self, DnError> {
        parse_rdns(s).map(|r| Dn::from_rdns(&r))
    }

    /// A DN of one RDN `attr=value` under `parent`.
    pub fn child(parent: &Dn, attr: &str, value: &str) -> Self {
        let first = [Ava {
            attr: attr.to_string(),
            value: value.to_string(),
        }];
        let rdn_text = fmt_rdn(&first);
        let rdn_key = rdn_key(&first);
        let sep = usize::from(!parent.bounds.is_empty());
        let dt = (rdn_text.len() + sep) as u32;
        let dk = (rdn_key.len() + sep) as u32;
        let mut text = rdn_text;
        let mut key = rdn_key;
        if sep == 1 {
            text.push(',');
            key.push(',');
        }
        text.push_str(parent.text());
        key.push_str(parent.key_part());
        let mut bounds = Vec::with_capacity(parent.bounds.len() + 1);
        bounds.push((0, 0));
        bounds.extend(parent.bounds.iter().map(|(t, k)| (t + dt, k + dk)));
        Parts { text, key, bounds }.freeze()
    }

    /// The DN from RDN `i` up (a suffix).
    fn suffix(&self, i: usize) -> Dn {
        if i >= self.bounds.len() {
            return Dn::root();
        }
        let (t0, k0) = self.bounds[i];
        Parts {
            text: self.text()[t0 as usize..].to_string(),
            key: self.key_part()[k0 as usize..].to_string(),
            bounds: self.bounds[i..]
                .iter()
                .map(|(t, k)| (t - t0, k - k0))
                .collect(),
        }
        .freeze()
    }

    /// The parent DN (the root has none).
    pub fn parent(&self) -> Option<Dn> {
        (!self.bounds.is_empty()).then(|| self.suffix(1))
    }

    fn first_rdn_text(&self) -> &str {
        match self.bounds.get(1) {
            Some((t, _)) => &self.text()[..*t as usize - 1],
            None => self.text(),
        }
    }

    /// The first (leftmost) RDN's AVAs.
    pub fn rdn(&self) -> Vec<Ava> {
        parse_rdns(self.first_rdn_text())
            .ok()
            .and_then(|mut r| (!r.is_empty()).then(|| r.swap_remove(0)))
            .unwrap_or_default()
    }

    /// The first RDN as a string, escaped.
    pub fn rdn_string(&self) -> String {
        self.first_rdn_text().to_string()
    }

    /// The leftmost RDN's value for `attr` (case-insensitive type).
    pub fn rdn_value(&self, attr: &str) -> Option<String> {
        self.rdn()
            .into_iter()
            .find(|a| a.attr.eq_ignore_ascii_case(attr))
            .map(|a| a.value)
    }

    /// Number of RDNs.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// True when `self` is `other` or below it.
    pub fn is_within(&self, other: &Dn) -> bool {
        if other.bounds.is_empty() {
            return true;
        }
        let n = other.bounds.len();
        if self.bounds.len() < n {
            return false;
        }
        let (_, k) = self.bounds[self.bounds.len() - n];
        &self.key_part()[k as usize..] == other.key_part()
    }

    /// A comparison key: attribute types and values lowercased, AVAs sorted, re-escaped.
    /// Every naming attribute dingsync uses (`uid`, `cn`, `ou`) matches case-insensitively.
    pub fn key(&self) -> String {
        self.key_part().to_string()
    }

    /// The comparison key, borrowed.
    pub fn key_str(&self) -> &str {
        self.key_part()
    }

    /// `self` moved from under `old` to under `new`; `None` when it is not under `old`.
    pub fn rebased(&self, old: &Dn, new: &Dn) -> Option<Dn> {
        if !self.is_within(old) {
            return None;
        }
        let keep = self.bounds.len() - old.bounds.len();
        let (text, key) = (self.text(), self.key_part());
        let mut out = Parts::default();
        let (tk, kk) = self
            .bounds
            .get(keep)
            .copied()
            .unwrap_or((text.len() as u32 + 1, key.len() as u32 + 1));
        if keep > 0 {
            out.text.push_str(&text[..tk as usize - 1]);
            out.key.push_str(&key[..kk as usize - 1]);
            out.bounds.extend_from_slice(&self.bounds[..keep]);
            if !new.bounds.is_empty() {
                out.text.push(',');
                out.key.push(',');
            }
        }
        let (dt, dk) = (out.text.len() as u32, out.key.len() as u32);
        out.text.push_str(new.text());
        out.key.push_str(new.key_part());
        out.bounds
            .extend(new.bounds.iter().map(|(t, k)| (t + dt, k + dk)));
        Some(out.freeze())
    }
}

fn parse_rdns(s: &str) -> Result<Vec<Vec<Ava>>, DnError> {
    let err = |reason| DnError {
        dn: s.to_string(),
        reason,
    };
    let mut rdns = Vec::new();
    if s.trim().is_empty() {
        return Ok(rdns);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut rdn: Vec<Ava> = Vec::new();
    loop {
        // attribute type
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            if matches!(bytes[i], b',' | b'+' | b';') {
                return Err(err("attribute type without '='"));
            }
            i += 1;
        }
        if i >= bytes.len() {
            return Err(err("attribute type without '='"));
        }
        let attr = s[start..i].trim().to_string();
        if attr.is_empty() {
            return Err(err("empty attribute type"));
        }
        i += 1; // '='
        // value
        let mut value: Vec<u8> = Vec::new();
        let mut trailing_unescaped_spaces = 0usize;
        if i < bytes.len() && bytes[i] == b'#' {
            // hex-encoded BER value: keep it verbatim; we never create such DNs.
            let st = i;
            while i < bytes.len() && !matches!(bytes[i], b',' | b'+' | b';') {
                i += 1;
            }
            value.extend_from_slice(s[st..i].trim_end().as_bytes());
        } else {
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            while i < bytes.len() {
                match bytes[i] {
                    b',' | b'+' | b';' => break,
                    b'\\' => {
                        i += 1;
                        if i >= bytes.len() {
                            return Err(err("dangling backslash"));
                        }
                        let is_hex = |b: u8| b.is_ascii_hexdigit();
                        if is_hex(bytes[i]) && i + 1 < bytes.len() && is_hex(bytes[i + 1]) {
                            let h = &s[i..i + 2];
                            value.push(u8::from_str_radix(h, 16).map_err(|_| err("bad hex"))?);
                            i += 2;
                        } else {
                            value.push(bytes[i]);
                            i += 1;
                        }
                        trailing_unescaped_spaces = 0;
                    }
                    b' ' => {
                        value.push(b' ');
                        trailing_unescaped_spaces += 1;
                        i += 1;
                    }
                    b => {
                        value.push(b);
                        trailing_unescaped_spaces = 0;
                        i += 1;
                    }
                }
            }
            value.truncate(value.len() - trailing_unescaped_spaces);
        }
        let value = String::from_utf8(value).map_err(|_| err("value is not UTF-8"))?;
        rdn.push(Ava { attr, value });
        if i >= bytes.len() {
            rdns.push(std::mem::take(&mut rdn));
            break;
        }
        match bytes[i] {
            b'+' => {}
            _ => rdns.push(std::mem::take(&mut rdn)),
        }
        i += 1;
    }
    Ok(rdns)
}

fn rdn_key(rdn: &[Ava]) -> String {
    let mut avas: Vec<String> = rdn
        .iter()
        .map(|a| {
            format!(
                "{}={}",
                a.attr.to_ascii_lowercase(),
                escape_rdn_value(&a.value.to_lowercase())
            )
        })
        .collect();
    avas.sort();
    avas.join("+")
}

fn fmt_rdn(rdn: &[Ava]) -> String {
    rdn.iter()
        .map(|a| format!("{}={}", a.attr, escape_rdn_value(&a.value)))
        .collect::<Vec<_>>()
        .join("+")
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.key_part() == other.key_part()
    }
}

impl Eq for Dn {}

impl std::hash::Hash for Dn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key_part().hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdn_escaping_follows_rfc4514() {
        assert_eq!(escape_rdn_value("plain"), "plain");
        assert_eq!(escape_rdn_value("a,b"), "a\\,b");
        assert_eq!(escape_rdn_value("a+b"), "a\\+b");
        assert_eq!(escape_rdn_value("say \"hi\""), "say \\\"hi\\\"");
        assert_eq!(escape_rdn_value("back\\slash"), "back\\\\slash");
        assert_eq!(escape_rdn_value("<x>;"), "\\<x\\>\\;");
        assert_eq!(escape_rdn_value("#tag"), "\\#tag");
        assert_eq!(escape_rdn_value("mid#dle"), "mid#dle");
        assert_eq!(escape_rdn_value(" lead"), "\\ lead");
        assert_eq!(escape_rdn_value("trail "), "trail\\ ");
        assert_eq!(escape_rdn_value("in side"), "in side");
        assert_eq!(escape_rdn_value(" "), "\\ ");
        assert_eq!(escape_rdn_value("a=b"), "a\\=b");
        assert_eq!(escape_rdn_value("nul\0"), "nul\\00");
        assert_eq!(
            escape_rdn_value("张,伟+\"\\<>;#"),
            "张\\,伟\\+\\\"\\\\\\<\\>\\;#"
        );
    }

    #[test]
    fn filter_escaping_follows_rfc4515() {
        assert_eq!(escape_filter_value("plain"), "plain");
        assert_eq!(escape_filter_value("a*b"), "a\\2ab");
        assert_eq!(escape_filter_value("(x)"), "\\28x\\29");
        assert_eq!(escape_filter_value("a\\b"), "a\\5cb");
        assert_eq!(escape_filter_value("n\0"), "n\\00");
        assert_eq!(escape_filter_value("张*)(uid=*"), "张\\2a\\29\\28uid=\\2a");
    }

    #[test]
    fn nasty_values_round_trip_through_a_dn() {
        let parent = Dn::parse("ou=people,ou=acme,dc=example,dc=com").unwrap();
        for v in [
            "张,伟+\"\\<>;#",
            "#lead",
            " both ",
            "trail ",
            "a=b",
            "x\\,y",
            "普通",
        ] {
            let dn = Dn::child(&parent, "cn", v);
            let text = dn.to_string();
            let back = Dn::parse(&text).unwrap();
            assert_eq!(back.rdn_value("cn").as_deref(), Some(v), "{text}");
            assert_eq!(back, dn);
            assert_eq!(back.parent().unwrap(), parent);
        }
    }

    #[test]
    fn parsing_accepts_the_servers_spellings() {
        let a = Dn::parse("cn=A\\2CB,ou=People,DC=example,dc=com").unwrap();
        let b = Dn::parse("CN=a\\,b, ou=people,dc=Example,dc=com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.rdn_value("cn").as_deref(), Some("A,B"));
        let utf = Dn::parse("cn=\\E5\\BC\\A0,dc=x").unwrap();
        assert_eq!(utf.rdn_value("cn").as_deref(), Some("张"));
        let multi = Dn::parse("cn=x+uid=y,dc=z").unwrap();
        assert_eq!(multi.rdn().len(), 2);
        assert_eq!(multi, Dn::parse("uid=y+cn=x,dc=z").unwrap());
        assert!(Dn::parse("noequals,dc=x").is_err());
        assert!(Dn::parse("cn=x\\").is_err());
        assert!(Dn::parse("").unwrap().is_empty());
    }

    #[test]
    fn within_is_a_suffix_test() {
        let node = Dn::parse("ou=acme,dc=example,dc=com").unwrap();
        let inside = Dn::parse("uid=a,ou=people,OU=Acme,dc=example,dc=com").unwrap();
        let outside = Dn::parse("uid=a,ou=people,ou=acme2,dc=example,dc=com").unwrap();
        assert!(inside.is_within(&node));
        assert!(node.is_within(&node));
        assert!(!outside.is_within(&node));
        let moved = inside
            .rebased(&node, &Dn::parse("ou=new,dc=example,dc=com").unwrap())
            .unwrap();
        assert_eq!(
            moved.to_string(),
            "uid=a,ou=people,ou=new,dc=example,dc=com"
        );
        assert!(outside.rebased(&node, &moved).is_none());
        let up = moved.parent().unwrap().parent().unwrap();
        assert_eq!(up, Dn::parse("OU=New,dc=example,dc=com").unwrap());
        assert_eq!(up.rdn_value("ou").as_deref(), Some("new"));
        assert!(moved.is_within(&up));
        let top = Dn::child(&Dn::root(), "dc", "com");
        assert_eq!(top.to_string(), "dc=com");
        let deep = Dn::child(&Dn::child(&top, "cn", "a,b"), "uid", "x");
        assert_eq!(deep.to_string(), "uid=x,cn=a\\,b,dc=com");
        assert_eq!(
            deep.parent().unwrap().rdn_value("cn").as_deref(),
            Some("a,b")
        );
        assert_eq!(
            deep.rebased(&top, &Dn::parse("dc=org").unwrap())
                .unwrap()
                .to_string(),
            "uid=x,cn=a\\,b,dc=org"
        );
        assert_eq!(node.rebased(&node, &up).unwrap(), up);
    }
}
