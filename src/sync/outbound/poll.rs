//! Polling the directory between Outbound runs: a mark of where the node stood, and a cheap
//! check (people modified since, plus the node's shape) of whether anything changed since.

use std::collections::BTreeMap;

use crate::{
    directory::{Directory, SourcePerson, SourceTree},
    sync::SyncError,
};

/// What a poll compares with: the newest `modifyTimestamp` seen, the entries modified at that
/// very second (a `>=` search returns them again), and the node's shape (containers and the
/// set of people), which deletions and container renames change without touching any
/// person's timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollMark {
    pub stamp: Option<String>,
    pub at_stamp: BTreeMap<String, String>,
    pub shape: String,
    /// Where content synchronisation stood (its last cookie): a session resumed from it
    /// reads only what changed since.
    pub cookie: Option<String>,
}

fn modified(p: &SourcePerson) -> Option<&str> {
    p.attrs.first("modifytimestamp")
}

fn shape_of(
    tree: &SourceTree,
    people: &mut dyn Iterator<Item = (String, Option<String>)>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for d in &tree.departments {
        h.update(format!("d\t{}\t{}\t{:?}\n", d.id, d.name, d.parent));
    }
    let mut ids: Vec<(String, Option<String>)> = people.collect();
    ids.sort();
    for (id, dept) in ids {
        h.update(format!("p\t{id}\t{dept:?}\n"));
    }
    hex::encode(h.finalize())
}

/// The mark of a full read.
pub fn mark_of(tree: &SourceTree) -> PollMark {
    let stamp = tree.stamp.clone();
    let at_stamp = tree
        .people
        .iter()
        .filter(|p| stamp.is_some() && modified(p) == stamp.as_deref())
        .map(|p| (p.id.clone(), modified(p).unwrap_or_default().to_string()))
        .collect();
    PollMark {
        shape: shape_of(
            tree,
            &mut tree.people.iter().map(|p| (p.id.clone(), p.dept.clone())),
        ),
        stamp,
        at_stamp,
        cookie: None,
    }
}

/// Asks the directory what changed since `mark` (people modified since its stamp, plus the
/// node's shape) without reading DingTalk at all. Returns whether anything changed.
pub async fn poll(dir: &dyn Directory, mark: &PollMark) -> Result<bool, SyncError> {
    let Some(stamp) = mark.stamp.as_deref() else {
        return Ok(true);
    };
    let tree = dir.read_tree(Some(stamp)).await?;
    let fresh = tree
        .people
        .iter()
        .any(|p| mark.at_stamp.get(&p.id).map(String::as_str) != modified(p).or(Some("")));
    let all = tree.all_people.clone().unwrap_or_default();
    let shape = shape_of(&tree, &mut all.into_iter());
    Ok(fresh || shape != mark.shape)
}
