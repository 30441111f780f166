//! The address book: the org, the people who left it (for rehiring), the listings `user/list`
//! pages, and every write with DingTalk's validation rules. A write reports the
//! [`Change`]s it made; announcing them is the event-delivery part's job.

mod departments;
mod listing;
mod people;
mod person_fields;
mod rules;
mod writes;

use std::collections::BTreeMap;

use serde::Serialize;

use super::event::Change;
use crate::sim::error::ApiError;
use crate::sim::org::{Org, Person};

pub use rules::check_mobile;
pub use writes::{DeptWrite, UserWrite};

/// A write's result and the changes it announces.
pub type Written<T> = Result<(T, Vec<Change>), ApiError>;

/// A departed person, kept so HR can rehire them (same userid and unionid).
#[derive(Clone, Debug, Serialize)]
pub struct Departed {
    pub person: Person,
    pub left_ms: i64,
}

pub struct AddressBook {
    pub org: Org,
    pub departed: BTreeMap<String, Departed>,
    pub next_dept_id: i64,
    pub next_user_seq: u64,
    /// Department depth limit (60002).
    pub max_depth: usize,
    /// Re-adding a mobile removed less than this long ago answers 40103.
    pub rehire_cooldown_ms: i64,
    /// Department listings as `user/list` pages them, built on first use and dropped by
    /// every change to the org (so paging 100,000 people does not rescan them per page).
    listings: listing::Listings,
}

impl AddressBook {
    pub fn new(org: Org, max_depth: usize, rehire_cooldown_ms: i64) -> Self {
        let next_dept_id = org
            .departments
            .iter()
            .map(|d| d.id)
            .max()
            .unwrap_or(1)
            .max(400_000_000)
            + 1;
        Self {
            org,
            departed: BTreeMap::new(),
            next_dept_id,
            next_user_seq: 1,
            max_depth,
            rehire_cooldown_ms,
            listings: listing::Listings::default(),
        }
    }

    /// Something in the org changed: listings are rebuilt when next asked for.
    pub fn org_changed(&mut self) {
        self.listings = listing::Listings::default();
    }

    /// A DingTalk account the simulator knows: a member of the enterprise, or a former one
    /// (still a DingTalk user, now outside it: logs in, but `getbyunionid` no longer finds them).
    pub fn account(&self, userid: &str) -> Option<&Person> {
        self.org
            .person(userid)
            .or_else(|| self.departed.get(userid).map(|d| &d.person))
    }

    fn fresh_userid(&mut self) -> String {
        loop {
            let id = format!(
                "{:016}",
                1_000_000_000_000_000u64 / 100 + self.next_user_seq * 7919
            );
            self.next_user_seq += 1;
            if self.org.person(&id).is_none() && !self.departed.contains_key(&id) {
                return id;
            }
        }
    }
}
