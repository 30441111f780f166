//! Single use of authorization codes and refresh tokens, shared by every replica.
//!
//! Codes and refresh tokens are sealed, so any replica can open them; what a seal cannot say is
//! whether another replica already redeemed one. A [`Ledger`] records each first use and each
//! grant revoked after a replay. The controller keeps it as small Kubernetes objects whose
//! names are hashes of the ids (`src/controller/login.rs`): the API server's create is atomic,
//! so of two replicas redeeming the same code exactly one wins, without a database. Tests and
//! single-replica setups use [`MemoryLedger`].

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use jiff::Timestamp;

use super::LoginError;

/// Where first uses and revoked grants are recorded.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Records the first use of `id` (a code's or a refresh token's id). `Ok(false)`: it was
    /// used before. The record may be forgotten after `keep_until`, when `id` has expired.
    async fn first_use(&self, id: &str, keep_until: Timestamp) -> Result<bool, LoginError>;
    /// Revokes the grant `grant` (the code every token of one login descends from): tokens
    /// issued from it are refused until `keep_until`, after which none of them is valid anyway.
    async fn revoke(&self, grant: &str, keep_until: Timestamp) -> Result<(), LoginError>;
    /// Whether `grant` was revoked.
    async fn revoked(&self, grant: &str) -> Result<bool, LoginError>;
}

/// A ledger in this process only: single use holds within one replica.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    used: Mutex<HashMap<String, Timestamp>>,
    revoked: Mutex<HashMap<String, Timestamp>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn first_use(&self, id: &str, keep_until: Timestamp) -> Result<bool, LoginError> {
        let now = Timestamp::now();
        let mut used = self.used.lock().expect("ledger lock");
        used.retain(|_, until| *until > now);
        if used.contains_key(id) {
            return Ok(false);
        }
        used.insert(id.to_string(), keep_until);
        Ok(true)
    }

    async fn revoke(&self, grant: &str, keep_until: Timestamp) -> Result<(), LoginError> {
        let now = Timestamp::now();
        let mut revoked = self.revoked.lock().expect("ledger lock");
        revoked.retain(|_, until| *until > now);
        revoked.insert(grant.to_string(), keep_until);
        Ok(())
    }

    async fn revoked(&self, grant: &str) -> Result<bool, LoginError> {
        Ok(self
            .revoked
            .lock()
            .expect("ledger lock")
            .contains_key(grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_use_wins_once_and_revocation_sticks() {
        let l = MemoryLedger::new();
        let later = Timestamp::now() + jiff::SignedDuration::from_mins(1);
        assert!(l.first_use("a", later).await.unwrap());
        assert!(!l.first_use("a", later).await.unwrap());
        assert!(l.first_use("b", later).await.unwrap());
        assert!(!l.revoked("g").await.unwrap());
        l.revoke("g", later).await.unwrap();
        assert!(l.revoked("g").await.unwrap());
    }

    #[tokio::test]
    async fn expired_records_are_forgotten() {
        let l = MemoryLedger::new();
        let past = Timestamp::now() - jiff::SignedDuration::from_secs(1);
        assert!(l.first_use("a", past).await.unwrap());
        assert!(l.first_use("a", past).await.unwrap());
    }
}
