//! The deletion threshold both directions pass their removals through: too many at once and
//! the run is held until someone approves exactly that set of removals.

/// Why a plan was held by the deletion gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub removals: usize,
    pub owned: usize,
    pub token: String,
    pub message: String,
}

/// The deletion threshold: `ids` (one per removal, `verb:id`) of `owned` entries. Over
/// `max_count` (0: off) or `max_percent` (100: off), the run is held unless `approval` is the
/// token of exactly this set of removals.
pub(crate) fn deletion_gate(
    mut ids: Vec<String>,
    owned: usize,
    max_count: u32,
    max_percent: u32,
    approval: Option<&str>,
    what: &str,
) -> Option<Held> {
    let n = ids.len();
    if n == 0 {
        return None;
    }
    ids.sort();
    let token = token_of(&ids);
    let over_count = max_count > 0 && n > max_count as usize;
    let over_percent = max_percent < 100 && owned > 0 && n * 100 > max_percent as usize * owned;
    if !(over_count || over_percent) || approval == Some(token.as_str()) {
        return None;
    }
    let limit = if over_count {
        format!("deletion.maxCount {max_count}")
    } else {
        format!("deletion.maxPercent {max_percent}% of {owned}")
    };
    Some(Held {
        removals: n,
        owned,
        message: format!("{n} {what} exceed {limit}; nothing was written"),
        token,
    })
}

fn token_of(ids: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..6])
}
