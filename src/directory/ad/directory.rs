//! The AD node as a [`Directory`]; counts the write operations it is asked for.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{AdError, AdStore};
use crate::directory::{Attrs, Directory, DirectoryError, Snapshot, SourceTree};

pub struct AdDirectory {
    store: AdStore,
    writes: AtomicU64,
}

impl AdDirectory {
    pub fn new(store: AdStore) -> Self {
        Self {
            store,
            writes: AtomicU64::default(),
        }
    }

    /// The underlying node store.
    pub fn store(&self) -> &AdStore {
        &self.store
    }

    fn wrote(&self, r: Result<(), AdError>) -> Result<(), DirectoryError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        r.map_err(Into::into)
    }
}

#[async_trait]
impl Directory for AdDirectory {
    async fn read(&self) -> Result<Snapshot, DirectoryError> {
        Ok(self.store.read().await?)
    }
    async fn create_person(
        &self,
        id: &str,
        attrs: &Attrs,
        main_dept: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.wrote(self.store.create_person(id, attrs, main_dept).await)
    }
    async fn link_person(&self, key: &str, id: &str) -> Result<(), DirectoryError> {
        self.wrote(self.store.link_person(key, id).await)
    }
    async fn update_person(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.wrote(self.store.update_person(id, changes).await)
    }
    async fn move_person(
        &self,
        id: &str,
        _name: &str,
        main_dept: &str,
    ) -> Result<(), DirectoryError> {
        self.wrote(self.store.move_person(id, main_dept).await)
    }
    async fn disable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.wrote(self.store.disable_person(id).await)
    }
    async fn enable_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.wrote(self.store.enable_person(id).await)
    }
    async fn delete_person(&self, id: &str) -> Result<(), DirectoryError> {
        self.wrote(self.store.delete_person(id).await)
    }
    async fn add_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.wrote(self.store.add_members(dept, people).await)
    }
    async fn remove_members(&self, dept: &str, people: &[String]) -> Result<(), DirectoryError> {
        self.wrote(self.store.remove_members(dept, people).await)
    }
    async fn create_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        attrs: &Attrs,
    ) -> Result<(), DirectoryError> {
        self.wrote(self.store.create_dept(id, name, parent, attrs).await)
    }
    async fn update_dept(&self, id: &str, changes: &Attrs) -> Result<(), DirectoryError> {
        self.wrote(self.store.update_dept(id, changes).await)
    }
    async fn move_dept(
        &self,
        id: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.wrote(self.store.move_dept(id, name, parent).await)
    }
    async fn delete_dept(&self, id: &str) -> Result<(), DirectoryError> {
        self.wrote(self.store.delete_dept(id).await)
    }
    async fn read_tree(&self, since: Option<&str>) -> Result<SourceTree, DirectoryError> {
        Ok(self.store.read_tree(since).await?)
    }
    fn locate_person(&self, id: &str) -> Option<String> {
        self.store.dn_of_person(id)
    }
    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}
