//! Third-party (suite) apps: their credentials, the suiteTicket DingTalk pushes them, and
//! whether the simulated enterprise has authorised them. The wire side (corp tokens, the
//! authorisation page, ticket pushes) lives in `sim/suite.rs`.

use std::collections::BTreeMap;

/// The suite every simulator offers (also `dingsync sim`'s).
pub const DEFAULT_SUITE_KEY: &str = "suitesimkey000000001";
pub const DEFAULT_SUITE_SECRET: &str =
    "sim-suite-secret-000000000000000000000000000000000000000000001";

/// One third-party app as its provider registered it.
pub struct Suite {
    pub suite_key: String,
    pub suite_secret: String,
    /// The ticket pushed last; `None` until the first push.
    pub ticket: Option<String>,
    /// The ticket before it: DingTalk keeps accepting it for a while after a push, so a
    /// provider that has not seen the new ticket yet keeps working.
    pub previous_ticket: Option<String>,
    /// The enterprise's admin has authorised (installed) the suite.
    pub authorised: bool,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("suite_key", &self.suite_key)
            .field("authorised", &self.authorised)
            .finish_non_exhaustive()
    }
}

impl Suite {
    pub fn new(suite_key: &str, suite_secret: &str) -> Self {
        Self {
            suite_key: suite_key.to_owned(),
            suite_secret: suite_secret.to_owned(),
            ticket: None,
            previous_ticket: None,
            authorised: false,
        }
    }

    /// The current or the previous ticket.
    pub fn ticket_valid(&self, ticket: &str) -> bool {
        !ticket.is_empty()
            && (self.ticket.as_deref() == Some(ticket)
                || self.previous_ticket.as_deref() == Some(ticket))
    }

    /// A new ticket; the current one becomes the previous one.
    pub fn rotate_ticket(&mut self) -> String {
        let t = uuid::Uuid::new_v4().simple().to_string();
        self.previous_ticket = self.ticket.replace(t.clone());
        t
    }
}

/// Every suite the simulator knows, by suiteKey.
#[derive(Debug)]
pub struct Suites(pub BTreeMap<String, Suite>);

impl Default for Suites {
    fn default() -> Self {
        let mut m = BTreeMap::new();
        m.insert(
            DEFAULT_SUITE_KEY.to_owned(),
            Suite::new(DEFAULT_SUITE_KEY, DEFAULT_SUITE_SECRET),
        );
        Self(m)
    }
}

impl Suites {
    /// `None` for a key that is no suite, else whether the secret is the suite's.
    pub fn check_secret(&self, suite_key: &str, secret: &str) -> Option<bool> {
        self.0.get(suite_key).map(|s| s.suite_secret == secret)
    }

    pub fn get(&self, suite_key: &str) -> Option<&Suite> {
        self.0.get(suite_key)
    }

    pub fn get_mut(&mut self, suite_key: &str) -> Option<&mut Suite> {
        self.0.get_mut(suite_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_ticket_stays_valid_for_one_rotation() {
        let mut s = Suite::new("k", "s");
        assert!(!s.ticket_valid(""));
        let a = s.rotate_ticket();
        let b = s.rotate_ticket();
        assert!(s.ticket_valid(&a) && s.ticket_valid(&b));
        s.rotate_ticket();
        assert!(!s.ticket_valid(&a) && s.ticket_valid(&b));
        assert!(!format!("{s:?}").contains("s\""));
    }
}
