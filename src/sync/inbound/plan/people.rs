//! People: every source person rendered (on every core: templates are the diff's main cost
//! and each person's are independent), then matched to an entry (their anchored one, or an
//! unlinked one the match rules find: sequential in userid order, since matching hands out
//! claims), then diffed against it.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{Draft, Op, Options, Plan, Problem, Step, changed_reason, changes, names::UniqueNames};
use crate::{
    directory::{Attrs, Name, PersonEntry, Snapshot},
    mapping::{Mapping, RenderError},
    model::{Person, SourceSnapshot},
};

/// A person matched to their entry (if any), waiting for an account name.
pub(super) struct Wanted<'a> {
    pub person: &'a Person,
    pub entry: Option<&'a PersonEntry>,
    /// The unlinked entry the match rules found: linked by this plan.
    pub link: Option<&'a PersonEntry>,
    /// The account name the template wants.
    pub wanted: String,
    /// The account name they get: the entry's own, or one handed out later.
    pub name: Option<String>,
    /// Rendered attributes only: no person's template context outlives its rendering
    /// (at 100,000 people the contexts would be most of the plan's memory).
    pub attrs: Result<Rendering, RenderError>,
}

/// A person's rendered attributes, as much of them as the diff needs.
pub(super) enum Rendering {
    /// Everything: for a new entry, or one the match rules just found.
    Full(Attrs),
    /// Only what differs from their entry (the naming attribute aside, which the diff checks
    /// once the name is settled): a resync of an unchanged node holds nothing per person.
    Changes(Attrs),
    /// Everything owned, for an entry read lean whose digest differs: which attributes
    /// changed is settled by [`Plan::refine`](super::Plan::refine) from a read of the entry.
    Unverified(Attrs),
}

/// What rendering one person's templates gave.
struct Rendered {
    wanted: Result<String, RenderError>,
    /// Only for people not yet linked: the match rules' values.
    matches: Option<Result<Vec<(String, String)>, RenderError>>,
    attrs: Result<Rendering, RenderError>,
}

/// Render everyone, and find each person's entry, in userid order. People whose templates
/// fail, or whose match is ambiguous, are problems and left out.
pub(super) fn match_people<'a>(
    source: &'a SourceSnapshot,
    dir: &'a Snapshot,
    names: &UniqueNames,
    mapping: &Mapping,
    out: &mut Plan,
) -> Vec<Wanted<'a>> {
    let linked: HashMap<&str, &PersonEntry> = dir
        .people
        .iter()
        .filter_map(|p| p.id.as_deref().map(|id| (id, p)))
        .collect();
    let mut matcher = Matcher::new(dir);
    let digested = super::digested(mapping);
    // Sorted by userid so name suffixes are handed out the same way every run.
    let mut people: Vec<&Person> = source.people.iter().collect();
    people.sort_by(|a, b| a.id.cmp(&b.id));
    let rendered = par_map(&people, |p| {
        render(p, linked.get(p.id.as_str()).copied(), mapping, &digested)
    });
    let mut wants: Vec<Wanted> = Vec::with_capacity(people.len());
    for (p, r) in people.into_iter().zip(rendered.into_iter().flatten()) {
        if !p.has_text("mobile") {
            out.missing_mobile += 1;
        }
        if !p.has_text("email") && !p.has_text("org_email") {
            out.missing_email += 1;
        }
        let wanted = match r.wanted {
            Ok(w) => w,
            Err(e) => {
                out.problems
                    .push(Problem::person(p, "TemplateError", e.to_string()));
                continue;
            }
        };
        let mut entry = linked.get(p.id.as_str()).copied();
        let mut link = None;
        if entry.is_none() {
            // First time: try the match rules in order.
            let found = r
                .matches
                .expect("rendered for every unlinked person")
                .map_err(|e| Problem::person(p, "TemplateError", e.to_string()))
                .and_then(|values| matcher.claim(p, values));
            match found {
                Ok(hit) => (link, entry) = (hit, hit),
                Err(problem) => {
                    out.problems.push(problem);
                    continue;
                }
            }
        }
        let name = entry.and_then(|e| names.current(e));
        // Rendered for a new entry; an existing account just matched gets an update instead.
        let attrs = if let Some(l) = link {
            mapping
                .person_attributes_in(&mapping.context(p), false)
                .map(|mut a| {
                    mapping.keep_person_fills(&l.attrs, &mut a);
                    Rendering::Full(a)
                })
        } else {
            r.attrs
        };
        wants.push(Wanted {
            person: p,
            entry,
            link,
            wanted,
            name,
            attrs,
        });
    }
    wants
}

/// One person's templates rendered, and diffed against `entry` on the rendering thread so
/// only the differences outlive the rendering.
fn render(
    p: &Person,
    entry: Option<&PersonEntry>,
    mapping: &Mapping,
    digested: &crate::directory::Digested,
) -> Rendered {
    let ctx = mapping.context(p);
    let attrs = mapping.person_attributes_in(&ctx, entry.is_none());
    Rendered {
        wanted: mapping.wanted_name_in(p, &ctx),
        matches: entry.is_none().then(|| mapping.match_values_in(&ctx)),
        // Diffed here, on every core, so only the differences outlive the rendering.
        attrs: attrs.map(|mut a| match entry {
            None => Rendering::Full(a),
            Some(e) => {
                // `IfEmpty` attributes are never digested (not folded): the entry's own
                // values say whether they are still to fill.
                mapping.keep_person_fills(&e.attrs, &mut a);
                match e.digest {
                    None => Rendering::Changes(changes(&e.attrs, &a)),
                    Some(d) if d == digested.digest(&a) => {
                        Rendering::Changes(mapping.person_fills(a))
                    }
                    Some(_) => Rendering::Unverified(a),
                }
            }
        }),
    }
}

/// The match rules over the node's unlinked entries.
struct Matcher<'a> {
    /// (attribute, lowercased value) → the entries holding it.
    index: HashMap<(String, String), Vec<&'a PersonEntry>>,
    /// Entry key → the person who matched it in this run.
    claimed: HashMap<String, String>,
}

impl<'a> Matcher<'a> {
    fn new(dir: &'a Snapshot) -> Self {
        let mut index: HashMap<(String, String), Vec<&PersonEntry>> = HashMap::new();
        for e in &dir.unlinked {
            for (k, vals) in &e.attrs {
                for v in vals {
                    index
                        .entry((k.to_string(), v.to_lowercase()))
                        .or_default()
                        .push(e);
                }
            }
        }
        Matcher {
            index,
            claimed: HashMap::new(),
        }
    }

    /// The entry the first rule with a hit finds for `p`, claimed for them. A rule that finds
    /// several entries, or one someone else already claimed, links nobody: guessing would
    /// hand one person's account to another.
    fn claim(
        &mut self,
        p: &Person,
        values: Vec<(String, String)>,
    ) -> Result<Option<&'a PersonEntry>, Problem> {
        for (attr, value) in values {
            let hits = self
                .index
                .get(&(attr.to_ascii_lowercase(), value.clone()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            match hits {
                [] => continue,
                [one] => {
                    if let Some(other) = self.claimed.get(&one.key) {
                        let message = format!(
                            "{attr}={value} matches {} which {other} already matched; not linked",
                            one.key
                        );
                        return Err(Problem::person(p, "AmbiguousMatch", message));
                    }
                    self.claimed.insert(one.key.clone(), p.id.clone());
                    return Ok(Some(*one));
                }
                many => {
                    let keys: Vec<&str> = many.iter().map(|e| e.key.as_str()).collect();
                    let message = format!(
                        "{attr}={value} matches {} entries ({}); none linked",
                        many.len(),
                        keys.join("; ")
                    );
                    return Err(Problem::person(p, "AmbiguousMatch", message));
                }
            }
        }
        Ok(None)
    }
}

/// A person ready to diff: their account name, their attributes, and the departments of
/// theirs that exist.
struct Target<'a> {
    person: &'a Person,
    name: String,
    /// With the naming attribute when `Full`.
    attrs: Rendering,
    depts: BTreeSet<&'a str>,
    main: Option<String>,
}

/// Each person's operations against their entry, and the memberships to add or remove.
/// Consumed: each person's rendered attributes move into their step, never copied.
pub(super) fn diff_people(
    wants: Vec<Wanted<'_>>,
    planned_depts: &HashSet<String>,
    name_attr: &Name,
    opts: &Options,
    draft: &mut Draft,
) {
    draft.out.people = wants.len();
    for w in wants {
        let p = w.person;
        let name = w.name.expect("assigned by UniqueNames::assign");
        let attrs = match w.attrs {
            Ok(Rendering::Full(mut a)) => {
                a.insert(name_attr, vec![name.clone()]);
                Rendering::Full(a)
            }
            Ok(Rendering::Changes(mut diff)) => {
                renamed(w.entry, name_attr, &name, &mut diff);
                Rendering::Changes(diff)
            }
            Ok(Rendering::Unverified(mut owned)) => {
                renamed(w.entry, name_attr, &name, &mut owned);
                Rendering::Unverified(owned)
            }
            Err(e) => {
                let problem = Problem::person(p, "TemplateError", e.to_string());
                draft.out.problems.push(problem);
                continue;
            }
        };
        let target = Target {
            person: p,
            name,
            attrs,
            depts: p
                .departments
                .iter()
                .filter(|d| planned_depts.contains(*d))
                .map(String::as_str)
                .collect(),
            main: p
                .main_department
                .clone()
                .filter(|m| planned_depts.contains(m)),
        };
        match w.entry {
            None => create_person(target, opts, draft),
            Some(e) => {
                if !update_person(target, e, w.link, opts, draft) {
                    draft.out.unchanged_people += 1;
                }
            }
        }
    }
}

/// Adds the account name to `diff` when it is not the entry's (an entry diffed early: the
/// name was settled after rendering).
fn renamed(entry: Option<&PersonEntry>, name_attr: &Name, name: &str, diff: &mut Attrs) {
    let entry = entry.expect("only people with an entry are diffed early");
    // Read names are lowercase; the mapping may spell it otherwise.
    let current = entry.attrs.get(&name_attr.to_ascii_lowercase());
    if !current.is_some_and(|v| v == [name]) {
        diff.insert(name_attr, vec![name.to_owned()]);
    }
}

/// Someone without an entry gets one, and joins their groups.
fn create_person(t: Target<'_>, opts: &Options, draft: &mut Draft) {
    let p = t.person;
    let (Rendering::Full(attrs) | Rendering::Changes(attrs) | Rendering::Unverified(attrs)) =
        t.attrs;
    draft.steps.push(Step {
        op: Op::CreatePerson {
            id: p.id.clone(),
            attrs,
            main_dept: t.main.filter(|_| opts.ou_tree),
        },
        label: format!("{} ({})", p.name, t.name),
        reason: "new in DingTalk".into(),
    });
    for d in &t.depts {
        draft.members.add(d, &p.id);
    }
}

/// Someone with an entry: linked if just matched, enabled if disabled, their attributes,
/// container (`OuTree`) and memberships brought up to date. False when nothing changes.
fn update_person(
    t: Target<'_>,
    e: &PersonEntry,
    link: Option<&PersonEntry>,
    opts: &Options,
    draft: &mut Draft,
) -> bool {
    let p = t.person;
    // Made only for a step: most people of a resync have none.
    let label = || format!("{} ({})", p.name, t.name);
    let steps = &mut draft.steps;
    let before = steps.len();
    if let Some(l) = link {
        steps.push(Step {
            op: Op::LinkPerson {
                key: l.key.clone(),
                id: p.id.clone(),
            },
            label: label(),
            reason: "an existing account matched the match rules".into(),
        });
    }
    if e.disabled {
        steps.push(Step {
            op: Op::EnablePerson { id: p.id.clone() },
            label: label(),
            reason: "back in DingTalk (rehire)".into(),
        });
    }
    let diff = match t.attrs {
        Rendering::Full(attrs) => changes(&e.attrs, &attrs),
        Rendering::Changes(diff) => diff,
        Rendering::Unverified(owned) => {
            draft.out.unverified.insert(p.id.clone());
            owned
        }
    };
    if !diff.is_empty() {
        steps.push(Step {
            reason: changed_reason(&diff),
            op: Op::UpdatePerson {
                id: p.id.clone(),
                changes: diff,
            },
            label: label(),
        });
    }
    if opts.ou_tree
        && let Some(m) = &t.main
        && e.container.as_ref() != Some(m)
    {
        steps.push(Step {
            op: Op::MovePerson {
                id: p.id.clone(),
                name: t.name.clone(),
                main_dept: m.clone(),
            },
            label: label(),
            reason: "main department changed".into(),
        });
    }
    let mut touched = steps.len() > before;
    // A disabled entry lost its memberships; an enabled one keeps what it has.
    let have: BTreeSet<&str> = if e.disabled {
        BTreeSet::new()
    } else {
        e.departments.iter().map(String::as_str).collect()
    };
    for d in t.depts.difference(&have) {
        draft.members.add(d, &p.id);
        touched = true;
    }
    for d in have.difference(&t.depts) {
        draft.members.remove(d, &p.id);
        touched = true;
    }
    touched
}

/// Results per piece of [`par_map`]'s output: a consumer that flattens it frees each piece as
/// it moves on, so the results and what it makes of them are never both whole in memory.
const PIECE: usize = 1024;

/// `f` over `items` on every available core, in order, as pieces of at most [`PIECE`]
/// results (flatten to read). Small inputs stay on the calling thread.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let pieces = |chunk: &[T]| -> Vec<Vec<R>> {
        (chunk.chunks(PIECE))
            .map(|piece| piece.iter().map(&f).collect())
            .collect()
    };
    if threads < 2 || items.len() < 2048 {
        return pieces(items);
    }
    let pieces = &pieces;
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| s.spawn(move || pieces(chunk)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_order_across_threads_and_propagates_panics() {
        let items: Vec<usize> = (0..10_000).collect();
        let out = par_map(&items, |i| i * 2);
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            assert!(out.len() > 1, "large inputs are split across threads");
        }
        assert!(out.iter().all(|piece| piece.len() <= PIECE));
        let flat: Vec<usize> = out.into_iter().flatten().collect();
        assert_eq!(flat, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let panicked = std::panic::catch_unwind(|| {
            par_map(&items, |i| assert!(*i != 7_777, "bad item"));
        });
        assert!(panicked.is_err());
    }
}
