//! An in-memory directory node for `demo`, tests and benchmarks. It enforces what a real
//! directory enforces: unique account names, existing parents, no deleting a department that
//! still has children or members.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;

use super::{Attrs, DeptEntry, Directory, DirectoryError, PersonEntry, RoleEntry, Snapshot};

#[derive(Debug, Clone)]
struct Person {
    attrs: Attrs,
    departments: BTreeSet<String>,
    container: Option<String>,
    disabled: bool,
    id: Option<String>,
}

#[derive(Debug, Clone)]
struct Dept {
    name: String,
    parent: Option<String>,
    attrs: Attrs,
}

#[derive(Debug, Default)]
struct State {
    /// By key (`<name attribute>=<name>`).
    people: BTreeMap<String, Person>,
    /// Source id → key, so lookups by id stay constant-time at 100,000 people.
    ids: std::collections::HashMap<String, String>,
    depts: BTreeMap<String, Dept>,
    /// Role groups by role id: name and members (source ids).
    roles: BTreeMap<String, (String, BTreeSet<String>)>,
}

/// An in-memory node.
#[derive(Debug)]
pub struct MemoryDirectory {
    name_attr: String,
    state: Mutex<State>,
    writes: AtomicU64,
}

fn lower(attrs: &Attrs) -> Attrs {
    attrs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec()))
        .collect()
}

impl MemoryDirectory {
    /// An empty node whose accounts are named by `name_attr` (e.g. `uid`).
    pub fn new(name_attr: &str) -> Self {
        Self {
            name_attr: name_attr.to_ascii_lowercase(),
            state: Mutex::default(),
            writes: AtomicU64::new(0),
        }
    }

    /// Add an entry that dingsync did not create (for matching tests and demos).
    pub fn insert_unlinked(&self, attrs: &Attrs) -> Result<String, DirectoryError> {
        let attrs = lower(attrs);
        let key = self.key_of(&attrs)?;
        let mut st = self.lock();
        if st.people.contains_key(&key) {
            return Err(DirectoryError::Rejected(format!("{key} already exists")));
        }
        st.people.insert(
            key.clone(),
            Person {
                attrs,
                departments: Default::default(),
                container: None,
                disabled: false,
                id: None,
            },
        );
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key_of(&self, attrs: &Attrs) -> Result<String, DirectoryError> {
        match attrs.first(&self.name_attr) {
            Some(n) if !n.is_empty() => Ok(format!("{}={}", self.name_attr, n)),
            _ => Err(DirectoryError::Rejected(format!(
                "attribute {}: an account needs a name",
                self.name_attr
            ))),
        }
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

fn find_person<'a>(
    st: &'a mut State,
    id: &str,
) -> Result<(String, &'a mut Person), DirectoryError> {
    let missing = || DirectoryError::Rejected(format!("person {id} is not in the directory"));
    let key = st.ids.get(id).cloned().ok_or_else(missing)?;
    let p = st.people.get_mut(&key).ok_or_else(missing)?;
    Ok((key, p))
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        let st = self.lock();
        let mut snap = Snapshot::default();
        for (key, p) in &st.people {
            let entry = PersonEntry {
                digest: None,
                key: key.clone(),
                id: p.id.clone(),
                attrs: p.attrs.clone(),
                departments: p.departments.iter().cloned().collect(),
                container: p.container.clone(),
                disabled: p.disabled,
            };
            if p.id.is_some() {
                snap.people.push(entry)
            } else {
                snap.unlinked.push(entry)
            }
        }
        for (id, d) in &st.depts {
            snap.departments.push(DeptEntry {
                key: format!("dept={id}"),
                id: id.clone(),
                name: d.name.clone(),
                parent: d.parent.clone(),
                attrs: d.attrs.clone(),
            });
        }
        Ok(snap)
    }

    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let attrs: Attrs = lower(attrs)
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let key = self.key_of(&attrs)?;
        let mut st = self.lock();
        if st.people.contains_key(&key) {
            return Err(DirectoryError::Rejected(format!("{key} already exists")));
        }
        if st.ids.contains_key(id) {
            return Err(DirectoryError::Rejected(format!(
                "person {id} already exists"
            )));
        }
        st.ids.insert(id.to_string(), key.clone());
        st.people.insert(
            key,
            Person {
                attrs,
                departments: Default::default(),
                container: main_dept.map(Into::into),
                disabled: false,
                id: Some(id.into()),
            },
        );
        self.wrote();
        Ok(())
    }

    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        let p = st
            .people
            .get_mut(key)
            .ok_or_else(|| DirectoryError::Rejected(format!("{key} does not exist")))?;
        if p.id.is_some() {
            return Err(DirectoryError::Rejected(format!("{key} is already linked")));
        }
        p.id = Some(id.into());
        st.ids.insert(id.to_string(), key.to_string());
        self.wrote();
        Ok(())
    }

    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        let changes = lower(changes);
        let mut st = self.lock();
        let (key, person) = find_person(&mut st, id)?;
        let mut updated = person.clone();
        for (k, v) in changes {
            if v.is_empty() {
                updated.attrs.remove(&k)
            } else {
                updated.attrs.insert(k, v)
            };
        }
        let new_key = self.key_of(&updated.attrs)?;
        if new_key != key && st.people.contains_key(&new_key) {
            return Err(DirectoryError::Rejected(format!(
                "cannot rename {key}: {new_key} already exists"
            )));
        }
        st.people.remove(&key);
        st.ids.insert(id.to_string(), new_key.clone());
        st.people.insert(new_key, updated);
        self.wrote();
        Ok(())
    }

    async fn move_person(
        &self,
        id: &str,
        _name: &str,
        main_dept: &str,
    ) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if !st.depts.contains_key(main_dept) {
            return Err(DirectoryError::Rejected(format!(
                "department {main_dept} does not exist"
            )));
        }
        find_person(&mut st, id)?.1.container = Some(main_dept.into());
        self.wrote();
        Ok(())
    }

    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        let (_, p) = find_person(&mut st, id)?;
        p.disabled = true;
        p.departments.clear();
        // Like LDAP and SCIM, a leaver leaves role groups too.
        for (_, members) in st.roles.values_mut() {
            members.remove(id);
        }
        self.wrote();
        Ok(())
    }

    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        find_person(&mut self.lock(), id)?.1.disabled = false;
        self.wrote();
        Ok(())
    }

    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        let (key, _) = find_person(&mut st, id)?;
        st.people.remove(&key);
        st.ids.remove(id);
        for (_, members) in st.roles.values_mut() {
            members.remove(id);
        }
        self.wrote();
        Ok(())
    }

    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if !st.depts.contains_key(dept) {
            return Err(DirectoryError::Rejected(format!(
                "department {dept} does not exist"
            )));
        }
        // All or nothing, as one LDAP modify or SCIM PATCH is.
        if let Some(missing) = people.iter().find(|id| !st.ids.contains_key(id.as_str())) {
            return Err(DirectoryError::Rejected(format!(
                "department {dept}: member {missing} is not in the directory"
            )));
        }
        for id in people {
            find_person(&mut st, id)?.1.departments.insert(dept.into());
        }
        self.wrote();
        Ok(())
    }

    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        for id in people {
            if let Ok((_, p)) = find_person(&mut st, id) {
                p.departments.remove(dept);
            }
        }
        self.wrote();
        Ok(())
    }

    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if st.depts.contains_key(id) {
            return Err(DirectoryError::Rejected(format!(
                "department {id} already exists"
            )));
        }
        if let Some(p) = parent
            && !st.depts.contains_key(p)
        {
            return Err(DirectoryError::Rejected(format!(
                "department {id}: parent {p} does not exist"
            )));
        }
        if st
            .depts
            .values()
            .any(|d| d.parent.as_deref() == parent && d.name == name)
        {
            return Err(DirectoryError::Rejected(format!(
                "department {id}: a sibling is already named {name:?}"
            )));
        }
        st.depts.insert(
            id.into(),
            Dept {
                name: name.into(),
                parent: parent.map(Into::into),
                attrs: lower(attrs),
            },
        );
        self.wrote();
        Ok(())
    }

    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        let d = st
            .depts
            .get_mut(id)
            .ok_or_else(|| DirectoryError::Rejected(format!("department {id} does not exist")))?;
        for (k, v) in lower(changes) {
            if v.is_empty() {
                d.attrs.remove(&k)
            } else {
                d.attrs.insert(k, v)
            };
        }
        self.wrote();
        Ok(())
    }

    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if let Some(p) = parent {
            let mut cur = Some(p.to_string());
            while let Some(c) = cur {
                if c == id {
                    return Err(DirectoryError::Rejected(format!(
                        "department {id}: cannot move under its own subtree"
                    )));
                }
                cur = st.depts.get(&c).and_then(|d| d.parent.clone());
            }
        }
        if st
            .depts
            .iter()
            .any(|(k, d)| k != id && d.parent.as_deref() == parent && d.name == name)
        {
            return Err(DirectoryError::Rejected(format!(
                "department {id}: a sibling is already named {name:?}"
            )));
        }
        let d = st
            .depts
            .get_mut(id)
            .ok_or_else(|| DirectoryError::Rejected(format!("department {id} does not exist")))?;
        d.name = name.into();
        d.parent = parent.map(Into::into);
        self.wrote();
        Ok(())
    }

    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if st.depts.values().any(|d| d.parent.as_deref() == Some(id)) {
            return Err(DirectoryError::Rejected(format!(
                "department {id} still has sub-departments"
            )));
        }
        if st.people.values().any(|p| p.departments.contains(id)) {
            return Err(DirectoryError::Rejected(format!(
                "department {id} still has members"
            )));
        }
        st.depts.remove(id);
        self.wrote();
        Ok(())
    }

    async fn read_roles(&self) -> Result<Vec<RoleEntry>, DirectoryError> {
        Ok(self
            .lock()
            .roles
            .iter()
            .map(|(id, (name, members))| RoleEntry {
                key: format!("role={id}"),
                id: id.clone(),
                name: name.clone(),
                members: members.clone(),
            })
            .collect())
    }

    async fn create_role(
        &self,
        id: &str,
        name: &str,
        members: &[String],
    ) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if st.roles.contains_key(id) || st.roles.values().any(|(n, _)| n == name) {
            return Err(DirectoryError::Rejected(format!(
                "role group {name} exists"
            )));
        }
        if let Some(m) = members.iter().find(|m| !st.ids.contains_key(m.as_str())) {
            return Err(DirectoryError::Rejected(format!(
                "person {m} is not in the directory"
            )));
        }
        let members = members.iter().cloned().collect();
        st.roles.insert(id.to_string(), (name.to_string(), members));
        self.wrote();
        Ok(())
    }

    async fn rename_role(&self, id: &str, name: &str) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if st.roles.iter().any(|(i, (n, _))| n == name && i != id) {
            return Err(DirectoryError::Rejected(format!(
                "role group {name} exists"
            )));
        }
        let role = st.roles.get_mut(id);
        role.ok_or_else(|| {
            DirectoryError::Rejected(format!("role {id} is not in the directory"))
        })?
        .0 = name.to_string();
        self.wrote();
        Ok(())
    }

    async fn role_members(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DirectoryError> {
        let mut st = self.lock();
        if let Some(m) = add.iter().find(|m| !st.ids.contains_key(m.as_str())) {
            return Err(DirectoryError::Rejected(format!(
                "person {m} is not in the directory"
            )));
        }
        let (_, members) = st.roles.get_mut(id).ok_or_else(|| {
            DirectoryError::Rejected(format!("role {id} is not in the directory"))
        })?;
        members.extend(add.iter().cloned());
        for r in remove {
            members.remove(r);
        }
        self.wrote();
        Ok(())
    }

    async fn delete_role(&self, id: &str) -> Result<(), DirectoryError> {
        self.lock().roles.remove(id);
        self.wrote();
        Ok(())
    }

    fn locate_person(&self, id: &str) -> Option<String> {
        self.lock().ids.get(id).cloned()
    }
    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}
