//! The words a run's plan and report use for what an operation is about and what it does.
//! They reach status conditions and the CLI's output, so each spells exactly one fixed string.

use std::fmt;

/// What a planned operation or a failure is about.
///
/// People are named differently by the two directions: Inbound writes a directory `User`
/// entry, Outbound pushes a directory `Person` to DingTalk. Both spellings are kept so reports
/// read as they always have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Department,
    /// A person as Inbound writes them: a directory user entry.
    User,
    /// A person as Outbound reads them: a directory entry pushed to DingTalk.
    Person,
    /// A role's directory group (`inbound/roles.rs`).
    Role,
}

impl ObjectKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Department => "Department",
            ObjectKind::User => "User",
            ObjectKind::Person => "Person",
            ObjectKind::Role => "Role",
        }
    }
}

/// What a planned inbound operation does, as `dingsync plan` and the status count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Create,
    Move,
    Update,
    Link,
    Enable,
    AddMembers,
    RemoveMembers,
    Disable,
    Delete,
}

impl Verb {
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Move => "move",
            Verb::Update => "update",
            Verb::Link => "link",
            Verb::Enable => "enable",
            Verb::AddMembers => "add members",
            Verb::RemoveMembers => "remove members",
            Verb::Disable => "disable",
            Verb::Delete => "delete",
        }
    }
}

/// Display, comparison with the plain string, and conversion to it: callers that print,
/// pad (`{:<8}`) or compare the word see exactly the string it always was.
macro_rules! spelled {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl From<$t> for &'static str {
            fn from(v: $t) -> Self {
                v.as_str()
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> Self {
                v.as_str().to_string()
            }
        }
    };
}

spelled!(ObjectKind);
spelled!(Verb);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_print_and_compare_as_their_strings() {
        assert_eq!(format!("{:<8}|", Verb::Create), "create  |");
        assert_eq!(Verb::AddMembers.to_string(), "add members");
        assert!(ObjectKind::User == "User");
        assert_eq!(String::from(ObjectKind::Person), "Person");
    }
}
