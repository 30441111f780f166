//! Department data derived from the tree: each department's `path` (names from the scope's
//! root, joined by `/`) and each person's `dept_names` (their departments' names, in the order
//! of their `dept_id_list`).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::SourceSnapshot;

/// Parent chains longer than this are cut (DingTalk allows far fewer levels).
const MAX_DEPTH: usize = 64;

/// Department names and parents by id, as a full read saw them: what an incremental read,
/// which holds only the records events named, uses for the departments it did not re-read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeptTree {
    by_id: HashMap<String, (String, Option<String>)>,
}

impl DeptTree {
    /// Learn (or refresh) the departments of `snapshot`.
    pub fn learn(&mut self, snapshot: &SourceSnapshot) {
        for d in &snapshot.departments {
            self.by_id
                .insert(d.id.clone(), (d.name.clone(), d.parent.clone()));
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// `snapshot`'s departments over `known`: the snapshot's own records win.
struct Lookup<'a> {
    own: HashMap<&'a str, (&'a str, Option<&'a str>)>,
    known: &'a DeptTree,
}

impl<'a> Lookup<'a> {
    fn get(&self, id: &str) -> Option<(&str, Option<&str>)> {
        self.own.get(id).copied().or_else(|| {
            let (name, parent) = self.known.by_id.get(id)?;
            Some((name.as_str(), parent.as_deref()))
        })
    }

    /// Names from the root down to `id`, joined by `/`; `None` when a department of the
    /// chain is unknown (a partial path would read as another department's).
    fn path(&self, id: &str) -> Option<String> {
        let mut names = vec![];
        let mut at = Some(id);
        while let Some(d) = at {
            let (name, parent) = self.get(d)?;
            names.push(name);
            // A cycle or an absurd depth: the path so far is all there is.
            if names.len() >= MAX_DEPTH || parent == Some(id) {
                break;
            }
            at = parent;
        }
        names.reverse();
        Some(names.join("/"))
    }
}

impl SourceSnapshot {
    /// Set each department's `path`, and with `people` each person's `dept_names`, from the
    /// snapshot's departments and, for departments it lacks, `known`. A value that needs a
    /// department neither has is left as it was: filling it twice, once from a whole read and
    /// once from part of it, never loses what the first knew.
    pub fn fill_department_data(&mut self, known: &DeptTree, people: bool) {
        let lookup = Lookup {
            own: (self.departments.iter())
                .map(|d| (d.id.as_str(), (d.name.as_str(), d.parent.as_deref())))
                .collect(),
            known,
        };
        let paths: Vec<Option<String>> = (self.departments.iter())
            .map(|d| lookup.path(&d.id))
            .collect();
        let names: Vec<Option<Value>> = match people {
            true => self
                .people
                .iter()
                .map(|p| {
                    let ids = ordered_departments(p);
                    let names: Option<Vec<&str>> = ids
                        .iter()
                        .map(|id| lookup.get(id).map(|(name, _)| name))
                        .collect();
                    names.map(|n| json!(n))
                })
                .collect(),
            false => vec![],
        };
        drop(lookup);
        for (d, path) in self.departments.iter_mut().zip(paths) {
            if let Some(path) = path {
                d.fields.insert("path", json!(path));
            }
        }
        for (p, names) in self.people.iter_mut().zip(names) {
            if let Some(names) = names {
                p.fields.insert("dept_names", names);
            }
        }
    }
}

/// A person's in-scope departments in the order of their `dept_id_list` (DingTalk's order),
/// those the list does not name after, as the person lists them.
fn ordered_departments(p: &super::Person) -> Vec<String> {
    let listed: Vec<String> = match p.fields.get("dept_id_list") {
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => vec![],
    };
    let mut out: Vec<String> = listed
        .into_iter()
        .filter(|id| p.departments.contains(id))
        .collect();
    for d in &p.departments {
        if !out.contains(d) {
            out.push(d.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Department, Person};

    fn dept(id: &str, name: &str, parent: Option<&str>) -> Department {
        Department {
            id: id.into(),
            name: name.into(),
            parent: parent.map(Into::into),
            fields: Default::default(),
        }
    }

    fn person(departments: &[&str], dept_id_list: Value) -> Person {
        Person {
            id: "u1".into(),
            name: "王芳".into(),
            departments: departments.iter().map(|d| d.to_string()).collect(),
            main_department: None,
            fields: [("dept_id_list", dept_id_list)].into_iter().collect(),
        }
    }

    fn snapshot() -> SourceSnapshot {
        SourceSnapshot {
            departments: vec![
                dept("1", "总部", None),
                dept("2", "研发部", Some("1")),
                dept("3", "平台组", Some("2")),
            ],
            people: vec![person(&["2", "3"], json!([3, 9, 2]))],
            complete: true,
            ..Default::default()
        }
    }

    #[test]
    fn paths_and_names_follow_the_tree_and_dept_id_list_order() {
        let mut s = snapshot();
        s.fill_department_data(&DeptTree::default(), true);
        let paths: Vec<Value> = (s.departments.iter())
            .map(|d| d.fields.get("path").unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                json!("总部"),
                json!("总部/研发部"),
                json!("总部/研发部/平台组")
            ]
        );
        assert_eq!(
            s.people[0].fields.get("dept_names"),
            Some(json!(["平台组", "研发部"])),
            "out-of-scope 9 left out; dept_id_list order kept"
        );
        let before = s.clone();
        let mut part = s.clone().restrict(&crate::model::Changes {
            people: ["u1".to_owned()].into(),
            departments: ["3".to_owned()].into(),
            roles: false,
        });
        part.fill_department_data(&DeptTree::default(), true);
        assert_eq!(
            (
                part.people[0].fields.get("dept_names"),
                part.departments[0].fields.get("path")
            ),
            (
                before.people[0].fields.get("dept_names"),
                before.departments[2].fields.get("path")
            ),
            "a part lacking departments keeps what the whole gave"
        );
    }

    #[test]
    fn a_partial_snapshot_borrows_names_from_what_a_full_read_learnt() {
        let mut known = DeptTree::default();
        known.learn(&snapshot());
        let mut partial = SourceSnapshot {
            departments: vec![dept("3", "基础平台组", Some("2"))],
            people: vec![person(&["3", "2"], json!(null))],
            ..Default::default()
        };
        partial.fill_department_data(&known, true);
        assert_eq!(
            partial.departments[0].fields.get("path"),
            Some(json!("总部/研发部/基础平台组")),
            "the re-read name wins"
        );
        assert_eq!(
            partial.people[0].fields.get("dept_names"),
            Some(json!(["基础平台组", "研发部"]))
        );
        let mut lean = snapshot();
        lean.fill_department_data(&DeptTree::default(), false);
        assert_eq!(
            lean.people[0].fields.get("dept_names"),
            None,
            "not asked for"
        );
    }

    #[test]
    fn cycles_end_the_path() {
        let mut s = SourceSnapshot {
            departments: vec![dept("8", "甲", Some("9")), dept("9", "乙", Some("8"))],
            ..Default::default()
        };
        s.fill_department_data(&DeptTree::default(), false);
        assert_eq!(s.departments[0].fields.get("path"), Some(json!("乙/甲")));
    }
}
