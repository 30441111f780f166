//! Linking a directory person to a DingTalk user who already exists under another userid: the
//! FieldMapping's `match` rules, tried in order against DingTalk's users in the target's
//! subtree. The first rule that finds exactly one user links them; a rule that finds several
//! links none, and the person is refused (never created beside them). A user is linked to one
//! directory person at most, and never one whose userid some entry renders (that user is
//! already somebody's).

use std::collections::HashSet;

use super::fields::current_field;
use crate::{dingtalk::contacts::User, mapping::outbound::OutboundPerson};

/// What the rules found for one person.
#[derive(Debug)]
pub(super) enum Found<'a> {
    Nobody,
    One(&'a User),
    /// The rule's DingTalk field, and every user it found.
    Several(String, Vec<&'a User>),
}

/// DingTalk's users no entry renders, and who was linked already in this run.
pub(super) struct Matcher<'a> {
    free: Vec<&'a User>,
    linked: HashSet<&'a str>,
}

impl<'a> Matcher<'a> {
    /// `rendered`: every userid the directory's entries render.
    pub(super) fn new(users: &'a [User], rendered: &HashSet<&str>) -> Self {
        Matcher {
            free: users
                .iter()
                .filter(|u| !rendered.contains(u.userid.as_str()))
                .collect(),
            linked: HashSet::new(),
        }
    }

    /// The DingTalk user `person`'s rules find, rule by rule.
    pub(super) fn find(&mut self, person: &OutboundPerson) -> Found<'a> {
        for (field, value) in &person.keys {
            let want = normalized(field, value);
            let hits: Vec<&'a User> = (self.free.iter().copied())
                .filter(|u| !self.linked.contains(u.userid.as_str()))
                .filter(|u| value_of(u, field).is_some_and(|v| normalized(field, &v) == want))
                .collect();
            match hits.as_slice() {
                [] => continue,
                [one] => {
                    self.linked.insert(one.userid.as_str());
                    return Found::One(one);
                }
                _ => return Found::Several(field.clone(), hits),
            }
        }
        Found::Nobody
    }
}

fn value_of(u: &User, field: &str) -> Option<String> {
    match field {
        "userid" => Some(u.userid.clone()),
        f => current_field(u, f),
    }
}

/// Values compare case-insensitively and trimmed; a mainland mobile matches with or without
/// DingTalk's `+86-` prefix.
pub(super) fn normalized(field: &str, value: &str) -> String {
    let v = value.trim().to_lowercase();
    match field {
        "mobile" => v.strip_prefix("+86-").map(str::to_string).unwrap_or(v),
        _ => v,
    }
}
