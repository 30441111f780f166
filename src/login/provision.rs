//! Provision on first login (opt-in): a member of the enterprise whose account does not exist
//! yet (their hire not synced yet) gets one at their first login, by a sync of that one person
//! through the normal engine — the same scope, mapping, plan and gates as any sync — and then
//! logs in if the sync created an enabled account.

use std::sync::Arc;

use async_trait::async_trait;

use super::LoginError;
use crate::{
    directory::Directory,
    mapping::Mapping,
    model::Changes,
    sync::{self, Options, Source, SyncError},
};

/// Why a person could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("targeted sync of one person: {0}")]
    Sync(#[from] SyncError),
}

impl From<ProvisionError> for LoginError {
    fn from(e: ProvisionError) -> Self {
        LoginError::Provision(Box::new(e))
    }
}

/// Creates a person's account on demand.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// Syncs `userid` alone; whether they then have an account is for the caller to look up.
    async fn provision(&self, userid: &str) -> Result<(), ProvisionError>;
}

/// The sync engine, restricted to one person ([`sync::run_changed`]).
pub struct EngineProvisioner {
    source: Arc<dyn Source>,
    dir: Arc<dyn Directory>,
    mapping: Arc<Mapping>,
    opts: Options,
}

impl EngineProvisioner {
    pub fn new(
        source: Arc<dyn Source>,
        dir: Arc<dyn Directory>,
        mapping: Arc<Mapping>,
        opts: Options,
    ) -> Self {
        EngineProvisioner {
            source,
            dir,
            mapping,
            opts,
        }
    }
}

#[async_trait]
impl Provisioner for EngineProvisioner {
    async fn provision(&self, userid: &str) -> Result<(), ProvisionError> {
        let report = sync::run_changed(
            self.source.as_ref(),
            self.dir.as_ref(),
            &self.mapping,
            &self.opts,
            &Changes::people([userid]),
            false,
            &|_, _, _| {},
        )
        .await?;
        for f in &report.failures {
            tracing::warn!(reason = %f.reason, message = %f.message, "provision on login: the sync refused a change");
        }
        Ok(())
    }
}
