//! References: attributes whose values are other people's entries (`refersTo: Person` — a
//! person's manager, a department's heads). Planned in source ids once the rest of the plan
//! is known, since whether the person pointed at will have an enabled entry, and whether this
//! run changes their locator (an LDAP modrdn: a rename, an `OuTree` move, their OU moved),
//! both depend on it. The apply turns the ids into locators when it writes, after every entry
//! of the run exists under its final name, so a manager created in the same run is found.
//!
//! What an entry holds is read back through the node's own locators: a value naming no
//! entry of this target (a stale DN left by a rename without `refint`, a deleted entry)
//! differs from any wanted id, so it is rewritten.

use std::collections::{HashMap, HashSet};

use super::{Draft, Op, Options, Plan, Problem, Step};
use crate::{
    directory::{Attrs, Name, PersonEntry, Snapshot},
    mapping::Mapping,
    model::{Changes, SourceSnapshot},
    sync::ObjectKind,
};

/// What the plan so far says about the people references may point at.
struct Targets<'a> {
    /// Anchored entries by source id.
    entries: HashMap<&'a str, &'a PersonEntry>,
    /// Lowercased locator → source id.
    by_key: HashMap<String, &'a str>,
    /// Source people who get an entry or keep theirs (enabled by this plan if disabled).
    kept: HashSet<&'a str>,
    /// People whose locator this run changes or creates: references to them are rewritten.
    relocated: HashSet<&'a str>,
    /// People the source did not say anything about (not named by an incremental run, or
    /// absent from an incomplete read): their enabled entries count as they are.
    unknown_kept: bool,
    source_ids: HashSet<&'a str>,
    scope: Option<&'a Changes>,
}

impl<'a> Targets<'a> {
    fn new(
        source: &'a SourceSnapshot,
        dir: &'a Snapshot,
        steps: &'a [Step],
        ou_tree: bool,
        name_attr: &Name,
        scope: Option<&'a Changes>,
    ) -> Self {
        let entries: HashMap<&str, &PersonEntry> = (dir.people.iter())
            .filter_map(|p| Some((p.id.as_deref()?, p)))
            .collect();
        let by_key = entries
            .iter()
            .map(|(id, e)| (e.key.to_lowercase(), *id))
            .collect();
        let mut kept = HashSet::new();
        let mut relocated = HashSet::new();
        let mut moved_depts = HashSet::new();
        for s in steps {
            match &s.op {
                Op::CreatePerson { id, .. } | Op::LinkPerson { id, .. } => {
                    kept.insert(id.as_str());
                    relocated.insert(id.as_str());
                }
                Op::MovePerson { id, .. } => {
                    relocated.insert(id.as_str());
                }
                Op::UpdatePerson { id, changes } if changes.get(name_attr.as_str()).is_some() => {
                    relocated.insert(id.as_str());
                }
                Op::MoveDept { id, .. } if ou_tree => {
                    moved_depts.insert(id.as_str());
                }
                _ => {}
            }
        }
        let source_ids: HashSet<&str> = source.people.iter().map(|p| p.id.as_str()).collect();
        for (id, _) in entries.iter().filter(|(id, _)| source_ids.contains(*id)) {
            kept.insert(id);
        }
        if !moved_depts.is_empty() {
            // `OuTree`: people inside a moved or renamed department's OU move with it.
            let parents: HashMap<&'a str, Option<&'a str>> = (dir.departments.iter())
                .map(|d| (d.id.as_str(), d.parent.as_deref()))
                .collect();
            let under_moved = |mut d: Option<&'a str>| {
                while let Some(id) = d {
                    if moved_depts.contains(id) {
                        return true;
                    }
                    d = parents.get(id).copied().flatten();
                }
                false
            };
            for (id, e) in &entries {
                if under_moved(e.container.as_deref()) {
                    relocated.insert(id);
                }
            }
        }
        Targets {
            entries,
            by_key,
            kept,
            relocated,
            unknown_kept: !source.complete,
            source_ids,
            scope,
        }
    }

    /// Whether `id` will have an enabled entry once the plan is applied.
    fn exists(&self, id: &str) -> bool {
        if self.source_ids.contains(id) {
            return self.kept.contains(id);
        }
        let unknown = self.unknown_kept || self.scope.is_some_and(|c| !c.people.contains(id));
        unknown && self.entries.get(id).is_some_and(|e| !e.disabled)
    }

    /// The ids `rendered` names that will have an entry, `own` (no one refers to themself)
    /// left out.
    fn wanted(&self, rendered: Vec<String>, own: Option<&str>) -> Vec<String> {
        (rendered.into_iter())
            .filter(|id| Some(id.as_str()) != own && self.exists(id))
            .collect()
    }

    /// Whether `current` (an attribute's values as read) already points at exactly `wanted`,
    /// under locators this run leaves alone.
    fn settled(&self, current: &Attrs, attr: &Name, wanted: &[String]) -> bool {
        let values: Vec<&str> = current
            .get(&attr.to_ascii_lowercase())
            .map(|v| v.collect())
            .unwrap_or_default();
        if values.len() != wanted.len() {
            return false;
        }
        let mut held: Vec<&str> = Vec::with_capacity(values.len());
        for v in values {
            match self.by_key.get(&v.to_lowercase()) {
                Some(id) => held.push(id),
                None => return false,
            }
        }
        held.sort_unstable();
        let mut wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        held == wanted && !wanted.iter().any(|id| self.relocated.contains(id))
    }
}

/// One step per reference attribute that does not hold what it should: for every source
/// person with (or about to get) an entry, and every source department.
pub(super) fn plan_references(
    source: &SourceSnapshot,
    dir: &Snapshot,
    mapping: &Mapping,
    opts: &Options,
    scope: Option<&Changes>,
    name_attr: &Name,
    draft: &mut Draft,
) {
    if !mapping.has_references() {
        return;
    }
    let t = Targets::new(source, dir, &draft.steps, opts.ou_tree, name_attr, scope);
    // Who has a step already (the diff did not count them unchanged), by kind.
    let mut people: HashSet<&str> = HashSet::new();
    let mut depts: HashSet<&str> = HashSet::new();
    for s in &draft.steps {
        match s.op.subject() {
            (ObjectKind::Department, id) => depts.insert(id),
            (_, id) => people.insert(id),
        };
    }
    for ids in (draft.members.add.values()).chain(draft.members.remove.values()) {
        people.extend(ids.iter().map(String::as_str));
    }
    let mut steps = Vec::new();
    refer_people(source, mapping, &t, &mut people, &mut draft.out, &mut steps);
    let created: HashSet<&str> = (draft.steps.iter())
        .filter_map(|s| match &s.op {
            Op::CreateDept { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let current: HashMap<&str, &Attrs> = (dir.departments.iter())
        .map(|d| (d.id.as_str(), &d.attrs))
        .collect();
    let depts = Known {
        current,
        created,
        stepped: depts,
    };
    refer_departments(source, mapping, &t, depts, &mut draft.out, &mut steps);
    draft.steps.extend(steps);
}

/// The people's reference steps; `stepped`: who has a step already.
fn refer_people<'a>(
    source: &'a SourceSnapshot,
    mapping: &Mapping,
    t: &Targets<'_>,
    stepped: &mut HashSet<&'a str>,
    out: &mut Plan,
    steps: &mut Vec<Step>,
) {
    let empty = Attrs::new();
    for p in &source.people {
        let current = match t.entries.get(p.id.as_str()) {
            Some(e) => &e.attrs,
            None if t.kept.contains(p.id.as_str()) => &empty,
            None => continue,
        };
        let refs = match mapping.person_references(p) {
            Ok(r) => r,
            Err(e) => {
                let problem = Problem::person(p, "TemplateError", e.to_string());
                out.problems.push(problem);
                continue;
            }
        };
        for (attr, ids) in refs {
            let to = t.wanted(ids, Some(&p.id));
            if t.settled(current, &attr, &to) {
                continue;
            }
            if t.entries.contains_key(p.id.as_str()) && stepped.insert(&p.id) {
                // Counted unchanged by the diff; it changes after all.
                out.unchanged_people = out.unchanged_people.saturating_sub(1);
            }
            steps.push(Step {
                reason: format!("{attr} points at {to:?}").into(),
                label: format!("{} ({})", p.name, p.id),
                op: Op::ReferPerson {
                    id: p.id.clone(),
                    attr,
                    to,
                },
            });
        }
    }
}

/// What the plan knows of the node's departments.
struct Known<'a> {
    /// Attributes of those in the node, by id.
    current: HashMap<&'a str, &'a Attrs>,
    /// Those this plan creates.
    created: HashSet<&'a str>,
    /// Those with a step already.
    stepped: HashSet<&'a str>,
}

/// The departments' reference steps.
fn refer_departments<'a>(
    source: &'a SourceSnapshot,
    mapping: &Mapping,
    t: &Targets<'_>,
    mut known: Known<'a>,
    out: &mut Plan,
    steps: &mut Vec<Step>,
) {
    let empty = Attrs::new();
    for d in &source.departments {
        let current = match known.current.get(d.id.as_str()) {
            Some(a) => *a,
            None if known.created.contains(d.id.as_str()) => &empty,
            None => continue,
        };
        let refs = match mapping.department_references(d) {
            Ok(r) => r,
            Err(e) => {
                let problem = Problem::department(d, "TemplateError", e.to_string());
                out.problems.push(problem);
                continue;
            }
        };
        for (attr, ids) in refs {
            let to = t.wanted(ids, None);
            if t.settled(current, &attr, &to) {
                continue;
            }
            if known.current.contains_key(d.id.as_str()) && known.stepped.insert(&d.id) {
                out.unchanged_departments = out.unchanged_departments.saturating_sub(1);
            }
            steps.push(Step {
                reason: format!("{attr} points at {to:?}").into(),
                label: format!("{} ({})", d.name, d.id),
                op: Op::ReferDept {
                    id: d.id.clone(),
                    attr,
                    to,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Op, Options, plan};
    use crate::{
        api::FieldMappingSpec,
        directory::{Attrs, DeptEntry, PersonEntry, Snapshot},
        mapping::Mapping,
        model::{Department, Person, SourceSnapshot},
    };

    fn mapping() -> Mapping {
        let spec: FieldMappingSpec = serde_yaml::from_str(
            r#"
user:
  uniqueName: {attribute: uid, template: "{{ name }}"}
  attributes:
    - {target: cn, template: "{{ name }}"}
    - {target: manager, template: "{{ manager_userid }}", refersTo: Person}
"#,
        )
        .unwrap();
        Mapping::compile(&spec).unwrap()
    }

    fn person(id: &str, name: &str, manager: Option<&str>) -> Person {
        let fields = serde_json::json!({"userid": id, "name": name, "manager_userid": manager});
        Person {
            id: id.into(),
            name: name.into(),
            departments: vec![],
            main_department: None,
            fields: serde_json::from_value(fields).unwrap(),
        }
    }

    fn entry(id: &str, name: &str, manager: Option<&str>) -> PersonEntry {
        let mut attrs = Attrs::from([("cn", vec![name.to_string()]), ("uid", vec![name.into()])]);
        if let Some(m) = manager {
            attrs.insert("manager", vec![format!("uid={m},ou=people,dc=x")]);
        }
        PersonEntry {
            key: format!("uid={name},ou=people,dc=x"),
            id: Some(id.into()),
            attrs,
            digest: None,
            departments: vec![],
            container: None,
            disabled: false,
        }
    }

    fn source(people: Vec<Person>) -> SourceSnapshot {
        SourceSnapshot {
            people,
            complete: true,
            ..Default::default()
        }
    }

    fn refers(p: &super::super::Plan) -> Vec<(String, Vec<String>)> {
        (p.steps.iter())
            .filter_map(|s| match &s.op {
                Op::ReferPerson { id, to, .. } => Some((id.clone(), to.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_manager_created_in_the_same_run_is_pointed_at_after_every_create() {
        let src = source(vec![
            person("ann", "ann", Some("boss")),
            person("boss", "boss", None),
        ]);
        let p = plan(&src, &Snapshot::default(), &mapping(), &Options::default());
        assert_eq!(refers(&p), [("ann".to_string(), vec!["boss".to_string()])]);
        let at = |f: fn(&Op) -> bool| p.steps.iter().position(|s| f(&s.op)).unwrap();
        assert!(
            at(|o| matches!(o, Op::ReferPerson { .. }))
                > at(|o| matches!(o, Op::CreatePerson { .. }))
        );
        assert!(p.steps.iter().all(|s| match &s.op {
            Op::CreatePerson { attrs, .. } => !attrs.contains_key("manager"),
            _ => true,
        }));
    }

    fn dept(id: &str, name: &str) -> (Department, DeptEntry) {
        let d = Department {
            id: id.into(),
            name: name.into(),
            parent: None,
            fields: serde_json::from_value(serde_json::json!({"id": id, "name": name})).unwrap(),
        };
        let e = DeptEntry {
            key: format!("cn={id},ou=groups,dc=x"),
            id: id.into(),
            name: id.into(),
            parent: None,
            attrs: Attrs::new(),
        };
        (d, e)
    }

    #[test]
    fn a_settled_reference_is_left_alone_and_a_relocated_manager_is_pointed_at_again() {
        let ou_tree = Options {
            ou_tree: true,
            ..Default::default()
        };
        let (d2, e2) = dept("2", "2");
        let (d3, e3) = dept("3", "3");
        let mut boss = entry("boss", "boss", None);
        boss.container = Some("2".into());
        let dir = Snapshot {
            people: vec![entry("ann", "ann", Some("boss")), boss],
            departments: vec![e2, e3],
            ..Default::default()
        };
        let mut src = source(vec![
            person("ann", "ann", Some("boss")),
            person("boss", "boss", None),
        ]);
        src.departments = vec![d2.clone(), d3];
        src.people[1].main_department = Some("2".into());
        let p = plan(&src, &dir, &mapping(), &ou_tree);
        assert!(p.steps.is_empty(), "{:#?}", p.steps);
        assert_eq!(p.unchanged_people, 2);

        // The manager moves to another OU: a new DN.
        src.people[1].main_department = Some("3".into());
        let p = plan(&src, &dir, &mapping(), &ou_tree);
        assert!(p.problems.is_empty(), "{:#?}", p.problems);
        assert_eq!(
            refers(&p),
            [("ann".to_string(), vec!["boss".to_string()])],
            "{:#?}",
            p.steps
        );
        assert_eq!(p.unchanged_people, 0);

        // Their OU is renamed: a new DN as well.
        src.people[1].main_department = Some("2".into());
        src.departments[0] = dept("2", "two").0;
        let p = plan(&src, &dir, &mapping(), &ou_tree);
        assert_eq!(
            refers(&p),
            [("ann".to_string(), vec!["boss".to_string()])],
            "{:#?}",
            p.steps
        );
    }

    #[test]
    fn a_manager_out_of_scope_is_dropped_unless_the_read_was_incomplete() {
        let dir = Snapshot {
            people: vec![
                entry("ann", "ann", Some("boss")),
                entry("boss", "boss", None),
            ],
            ..Default::default()
        };
        let mut gone = source(vec![person("ann", "ann", Some("boss"))]);
        let opts = Options {
            max_percent: 100,
            ..Default::default()
        };
        let p = plan(&gone, &dir, &mapping(), &opts);
        assert_eq!(refers(&p), [("ann".to_string(), vec![])]);
        gone.complete = false;
        let p = plan(&gone, &dir, &mapping(), &opts);
        assert!(refers(&p).is_empty(), "{:#?}", p.steps);
    }
}
