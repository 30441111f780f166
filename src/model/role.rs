//! A role as the source read it: DingTalk's role groups flattened into roles, each with the
//! people holding it.

use std::collections::BTreeSet;

/// One role and its holders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    /// DingTalk's role id, as text: the anchor of the role's group in the directory.
    pub id: String,
    pub name: String,
    /// The name of the role group it belongs to (may be empty).
    pub group_name: String,
    /// userids holding it.
    pub members: BTreeSet<String>,
}

impl Role {
    /// The directory group's name: `<group name>-<role name>`, or the role name alone when
    /// the group has none. A role and its group both renamed is still one rename: the group
    /// is found by the role id.
    pub fn group_title(&self) -> String {
        if self.group_name.trim().is_empty() {
            self.name.clone()
        } else {
            format!("{}-{}", self.group_name, self.name)
        }
    }
}
