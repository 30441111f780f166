//! Direct members of a department in the order `user/list` pages them, cached per
//! (department, order) until the org changes.

use std::collections::HashMap;
use std::sync::Arc;

use super::AddressBook;
use crate::sim::error::{ApiError, api_err};
use crate::sim::org::Org;

/// Indexes into `org.people`: direct members per department, and each (department, order)
/// as sorted for paging.
#[derive(Default)]
pub(super) struct Listings {
    members: Option<HashMap<i64, Vec<usize>>>,
    sorted: HashMap<(i64, String), Arc<Vec<usize>>>,
}

impl AddressBook {
    /// `dept`'s direct members in `user/list` order, as indexes into `org.people`.
    pub fn listing(&mut self, dept: i64, order: &str) -> Result<Arc<Vec<usize>>, ApiError> {
        let key = (dept, order.to_owned());
        if let Some(l) = self.listings.sorted.get(&key) {
            return Ok(l.clone());
        }
        let org = &self.org;
        let members = self.listings.members.get_or_insert_with(|| {
            let mut m: HashMap<i64, Vec<usize>> = HashMap::new();
            for (i, p) in org.people.iter().enumerate() {
                for d in &p.departments {
                    m.entry(*d).or_default().push(i);
                }
            }
            m
        });
        let mut list = members.get(&dept).cloned().unwrap_or_default();
        sort_members(org, dept, order, &mut list)?;
        let list = Arc::new(list);
        self.listings.sorted.insert(key, list.clone());
        Ok(list)
    }
}

fn pinyin_key(s: &str) -> String {
    use pinyin::ToPinyin;
    s.chars()
        .map(|c| {
            let mut buf = [0u8; 4];
            let cs: &str = c.encode_utf8(&mut buf);
            cs.to_pinyin()
                .next()
                .flatten()
                .map(|p| p.plain().to_owned())
                .unwrap_or_else(|| c.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Direct members of `dept` in the order `order_field` asks for (indexes into `org.people`).
fn sort_members(org: &Org, dept: i64, order: &str, m: &mut [usize]) -> Result<(), ApiError> {
    let p = |i: &usize| &org.people[*i];
    match order {
        "entry_asc" => m.sort_by_key(|i| (p(i).created_ms, p(i).userid.clone())),
        "entry_desc" => {
            m.sort_by_key(|i| (std::cmp::Reverse(p(i).created_ms), p(i).userid.clone()))
        }
        "modify_asc" => m.sort_by_key(|i| (p(i).modified_ms, p(i).userid.clone())),
        "modify_desc" => {
            m.sort_by_key(|i| (std::cmp::Reverse(p(i).modified_ms), p(i).userid.clone()))
        }
        // UNCONFIRMED direction of per-department user order; larger first per the update doc.
        "custom" => m.sort_by_cached_key(|i| {
            (
                std::cmp::Reverse(p(i).dept_order.get(&dept).copied().unwrap_or(0)),
                pinyin_key(&p(i).name),
                p(i).userid.clone(),
            )
        }),
        _ => return Err(api_err(40035, "不合法的参数: order_field")),
    }
    Ok(())
}
