//! Every reason dingsync writes into a condition (and the few it only counts in metrics), each
//! documented once with where it appears. The strings are part of the API: alerts, `kubectl
//! wait` and the README's resource table match on them, so a variant's name is its string.

use std::fmt;

use super::condition_type as ct;

const BINDING: &str = "DingTalkBinding";
const MAPPING: &str = "FieldMapping";
const TARGET: &str = "SyncTarget";

/// One place a reason is written: the kind of the object and the condition type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Use {
    pub kind: &'static str,
    pub condition: &'static str,
}

/// Declares [`Reason`] from one list, so the enum, its strings and its uses cannot drift apart.
macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident => [$($kind:ident . $cond:ident),*], )*) => {
        /// A condition reason (or, for the last few, a failed reconcile's reason in metrics).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $( $(#[$doc])* $name, )*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The string written into `reason`, exactly the variant's name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }

            /// Where the reason is written; empty for the metrics-only reasons.
            pub fn uses(self) -> &'static [Use] {
                match self {
                    $(Reason::$name => &[$(Use { kind: $kind, condition: ct::$cond }),*],)*
                }
            }
        }
    };
}

reasons! {
    // DingTalkBinding.
    /// The binding's credentials work and the address book is readable (`Ready`,
    /// `CredentialsValid`); a FieldMapping's templates all compile (`Ready`).
    Valid => [BINDING.READY, BINDING.CREDENTIALS_VALID, MAPPING.READY],
    /// A referenced Secret does not exist (the binding's credentials, the login clients, or a
    /// target's app or directory credentials).
    SecretNotFound => [
        BINDING.READY, BINDING.CREDENTIALS_VALID, BINDING.LOGIN_READY, TARGET.READY
    ],
    /// A referenced Secret lacks the key, the value is empty, or it is not UTF-8 text.
    SecretKeyMissing => [
        BINDING.READY, BINDING.CREDENTIALS_VALID, BINDING.LOGIN_READY, TARGET.READY
    ],
    /// DingTalk refused the AppKey/AppSecret: waits for the Secret to change.
    InvalidCredentials => [BINDING.READY, BINDING.CREDENTIALS_VALID],
    /// The enterprise removed the third-party (suite) app it had authorised: not Ready, its
    /// targets stop syncing and nobody is disabled; looked at again every few minutes.
    Deauthorized => [BINDING.READY, BINDING.CREDENTIALS_VALID],
    /// DingTalk could not be reached to check the credentials: retried with backoff.
    ApiUnreachable => [BINDING.READY],
    /// The app cannot read the address book (binding), or an Outbound target's binding lacks
    /// the write permission (target).
    PermissionMissing => [BINDING.READY, BINDING.PERMISSIONS_GRANTED, TARGET.READY, TARGET.SYNCED],
    /// The address book is readable but some permissions (listed in the message) are not
    /// granted.
    PartiallyGranted => [BINDING.PERMISSIONS_GRANTED],
    /// Every address-book permission dingsync asks for is granted.
    Granted => [BINDING.PERMISSIONS_GRANTED],
    /// The corpId is already bound by an older binding, or a target's node overlaps an older
    /// target's node in the same directory.
    Conflict => [BINDING.READY, TARGET.READY],
    /// The binding's login provider has everything it needs and is served.
    Serving => [BINDING.LOGIN_READY],
    /// The login clients Secret's `clients.yaml` does not parse or lists no client.
    InvalidClients => [BINDING.LOGIN_READY],
    /// `login.targetRef` names a SyncTarget that does not exist.
    TargetNotFound => [BINDING.LOGIN_READY],
    /// The FieldMapping a target (or the login's target) refers to does not exist.
    MappingNotFound => [BINDING.LOGIN_READY, TARGET.READY],
    /// A required field is missing or wrong: the login's issuer, clients Secret or target, or
    /// a target's directory without exactly one of ldap and scim.
    InvalidSpec => [BINDING.LOGIN_READY, TARGET.READY],

    // FieldMapping.
    /// A template does not compile; the message names the rule and position.
    InvalidRule => [MAPPING.READY],

    // SyncTarget: prerequisites.
    /// `spec.suspend` is true: nothing is synced.
    Suspended => [TARGET.READY],
    /// `spec.bindingRef` names a DingTalkBinding that does not exist.
    BindingNotFound => [TARGET.READY],
    /// The target's DingTalkBinding is not `Ready`; the message carries the binding's reason.
    BindingNotReady => [TARGET.READY],
    /// The target's FieldMapping does not compile.
    MappingInvalid => [TARGET.READY],

    // SyncTarget: full sync outcome.
    /// The run would remove more than the deletion limits allow and waits for approval.
    AwaitingApproval => [TARGET.READY, TARGET.SYNCED],
    /// `spec.dryRun` is true: the plan is in `status.plan`, nothing was written.
    DryRun => [TARGET.READY, TARGET.SYNCED],
    /// The DingTalk read was incomplete: nothing was disabled or deleted; the next run retries.
    IncompleteRead => [TARGET.READY, TARGET.SYNCED, TARGET.QUARANTINED],
    /// The run finished but some objects failed (listed in `status.failures`).
    PartiallySynced => [TARGET.READY, TARGET.SYNCED],
    /// The run finished and the directory matches DingTalk.
    Synced => [TARGET.READY, TARGET.SYNCED],
    /// The directory refused dingsync's credentials.
    DirectoryAuthFailed => [TARGET.READY, TARGET.SYNCED, TARGET.QUARANTINED],
    /// The run failed for any other reason (the message says why).
    SyncFailed => [TARGET.READY, TARGET.SYNCED, TARGET.QUARANTINED],
    /// The first success after a quarantine.
    Recovered => [TARGET.QUARANTINED],

    // SyncTarget: incremental sync.
    /// Events are applied as they arrive (Inbound), or the directory is polled (Outbound).
    Active => [TARGET.INCREMENTAL_ACTIVE],
    /// `spec.incrementalSync.enabled` is false: full syncs only. Also why a binding's login
    /// is not built while `login.enabled` is false (never written: `LoginReady` is removed).
    Disabled => [TARGET.INCREMENTAL_ACTIVE],
    /// No complete full sync at the current spec yet: events are counted, not applied.
    NoBaseline => [TARGET.INCREMENTAL_ACTIVE],
    /// Events may have been missed; a full sync closes the gap.
    GapDetected => [TARGET.INCREMENTAL_ACTIVE],
    /// The last event batch (or outbound poll) could not be applied.
    ApplyFailed => [TARGET.INCREMENTAL_ACTIVE],
    /// The binding's event connection could not be set up.
    NoEvents => [TARGET.INCREMENTAL_ACTIVE],
    /// The directory could not be opened for applying events.
    DirectoryUnavailable => [TARGET.INCREMENTAL_ACTIVE],

    // DingTalkBinding: the event connection.
    /// The Stream connection is up, or pushes are taken at the callback route.
    Connected => [BINDING.EVENTS_CONNECTED],
    /// The first Stream connection is being opened, or no target has started the binding's
    /// events yet (they start after a target's first full sync).
    Connecting => [BINDING.EVENTS_CONNECTED],
    /// The Stream connection was lost; the message carries the error, reconnects go on.
    Disconnected => [BINDING.EVENTS_CONNECTED],
    /// `events.delivery` is `None`: full syncs only.
    EventsOff => [BINDING.EVENTS_CONNECTED],

    // Failed reconciles that are not conditions: counted in `dingsync_reconcile_failures`.
    /// The Kubernetes API failed: retried with backoff.
    KubeApiError => [],
    /// An object could not be read into its type: waits for an edit.
    InvalidObject => [],
    /// The login keys Secret could not be read or written: retried with backoff.
    LoginKeys => [],
}

impl Reason {
    /// The reason whose string is `s`.
    pub fn from_name(s: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// The reasons written into condition `condition` of kind `kind`.
    pub fn written_to(kind: &str, condition: &str) -> impl Iterator<Item = Reason> {
        Reason::ALL.iter().copied().filter(move |r| {
            r.uses()
                .iter()
                .any(|u| u.kind == kind && u.condition == condition)
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason compares equal to its string, as status and tests read it.
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl AsRef<str> for Reason {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn strings_are_the_names_and_unique() {
        assert_eq!(Reason::SecretKeyMissing.as_str(), "SecretKeyMissing");
        assert_eq!(Reason::GapDetected.to_string(), "GapDetected");
        let names: BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert_eq!(Reason::from_name(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::from_name("NoSuchReason"), None);
    }

    /// The strings are API: renaming a variant must fail here, not silently in status.
    #[test]
    fn strings_are_unchanged() {
        let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            all,
            [
                "Valid",
                "SecretNotFound",
                "SecretKeyMissing",
                "InvalidCredentials",
                "Deauthorized",
                "ApiUnreachable",
                "PermissionMissing",
                "PartiallyGranted",
                "Granted",
                "Conflict",
                "Serving",
                "InvalidClients",
                "TargetNotFound",
                "MappingNotFound",
                "InvalidSpec",
                "InvalidRule",
                "Suspended",
                "BindingNotFound",
                "BindingNotReady",
                "MappingInvalid",
                "AwaitingApproval",
                "DryRun",
                "IncompleteRead",
                "PartiallySynced",
                "Synced",
                "DirectoryAuthFailed",
                "SyncFailed",
                "Recovered",
                "Active",
                "Disabled",
                "NoBaseline",
                "GapDetected",
                "ApplyFailed",
                "NoEvents",
                "DirectoryUnavailable",
                "Connected",
                "Connecting",
                "Disconnected",
                "EventsOff",
                "KubeApiError",
                "InvalidObject",
                "LoginKeys",
            ]
        );
    }

    /// The README's table cells, split on `|` but not on an escaped `\|`.
    fn cells(row: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut escaped = false;
        for c in row.chars() {
            match c {
                '|' if !escaped => out.push(String::new()),
                _ => out.last_mut().expect("one cell").push(c),
            }
            escaped = c == '\\';
        }
        out.iter().map(|c| c.trim().to_string()).collect()
    }

    /// The text outside parentheses: the notes after a reason may quote fields.
    fn outside_parens(s: &str) -> String {
        let mut depth = 0usize;
        s.chars()
            .filter(|&c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ => return depth == 0,
                }
                false
            })
            .collect()
    }

    /// The `code` spans of a piece of Markdown.
    fn code_spans(s: &str) -> Vec<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// (kind, condition type) -> reasons, from the `condition reasons` column of the README's
    /// `### The resources` table, e.g. "`Ready`: `Valid`, `Conflict` (...); `LoginReady`: ...".
    fn readme_reasons() -> BTreeMap<(String, String), BTreeSet<String>> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### The resources")
            .nth(1)
            .expect("README has `### The resources`");
        let mut rows = section.lines().skip_while(|l| !l.starts_with('|'));
        let header = cells(rows.next().expect("a table"));
        let column = header
            .iter()
            .position(|h| h == "condition reasons")
            .expect("a `condition reasons` column");
        let mut out = BTreeMap::new();
        for row in rows.skip(1).take_while(|l| l.starts_with('|')) {
            let cells = cells(row);
            let kind = code_spans(&cells[1]).remove(0);
            for part in cells[column].split(';') {
                let (head, tail) = part.split_once(':').expect("`Type`: reasons");
                let condition = code_spans(head).remove(0);
                let reasons = code_spans(&outside_parens(tail)).into_iter().collect();
                out.insert((kind.clone(), condition), reasons);
            }
        }
        out
    }

    #[test]
    fn readme_table_lists_exactly_the_ready_and_login_reasons() {
        let readme = readme_reasons();
        assert_eq!(readme.len(), 4, "{readme:?}");
        let mut code = BTreeMap::new();
        for kind in [BINDING, MAPPING, TARGET] {
            for condition in [ct::READY, ct::LOGIN_READY] {
                let reasons: BTreeSet<String> = Reason::written_to(kind, condition)
                    .map(|r| r.as_str().to_string())
                    .collect();
                if !reasons.is_empty() {
                    code.insert((kind.to_string(), condition.to_string()), reasons);
                }
            }
        }
        assert_eq!(
            readme, code,
            "the README's resource table and Reason::uses() disagree: fix whichever is wrong"
        );
    }
}
