//! DingTalk callback pushes that reach a replica which does not hold the binding's feed.
//!
//! With several replicas behind one Service, DingTalk's push lands on any of them, but only
//! the leader runs event pipelines. The replica that got it checks it first (signature, the
//! app key inside the ciphertext, freshness) so nothing forged travels further, then hands it
//! to the leader over HTTP and answers DingTalk with the leader's own answer. DingTalk is
//! therefore acknowledged only once the leader's pipeline took the event; if the leader cannot
//! be reached the push is refused with 503 and DingTalk pushes it again. The leader
//! remembers the signatures it handled, so a push retried through another replica is
//! acknowledged without being applied twice.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use axum::{
    body::Bytes,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
use kube::{Api, Client};

use crate::{
    dingtalk::{ReceiveError, callback::CallbackCrypto, events::verify_push},
    resolve::{self, ObjectSource, SourceError},
};

/// Set on a push one replica hands to another; a replica never hands such a push on again.
pub const RELAYED_BY: &str = "x-dingsync-relayed-by";

/// How long a binding's callback keys (or their absence) are reused before being read again.
const KEYS_TTL: Duration = Duration::from_secs(30);

/// How long the leader has to take a handed-on push. DingTalk waits about as long for an
/// answer before it retries (UNCONFIRMED: its timeout is not documented; a shorter wait only
/// means one more retry).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the leading replica's HTTP server is.
#[async_trait]
pub trait LeaderLocator: Send + Sync {
    /// Base URL (`http://host:port`) of the leader; `None` while no other replica leads.
    async fn leader(&self) -> Result<Option<String>, RelayError>;
}

/// Why a push could not be handed to the leader.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no callback subscription for binding {0}")]
    Unknown(String),
    #[error(transparent)]
    Refused(#[from] ReceiveError),
    #[error("reading the binding's callback keys")]
    Objects(#[source] SourceError),
    #[error("finding the leading replica")]
    Leader(#[source] kube::Error),
    #[error("no replica is leading")]
    NoLeader,
    #[error("the leading replica did not take the push")]
    Forward(#[source] reqwest::Error),
}

impl RelayError {
    /// Forged or malformed pushes get DingTalk's 4xx; everything that may pass on a retry
    /// gets 503 so DingTalk pushes again.
    pub fn status(&self) -> StatusCode {
        match self {
            RelayError::Unknown(_) => StatusCode::NOT_FOUND,
            RelayError::Refused(e) => {
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A binding's callback crypto (or its absence) and when it was read.
type CachedKeys = (Instant, Option<Arc<CallbackCrypto>>);

/// Hands checked pushes to the leader.
pub struct CallbackRelay {
    objects: Arc<dyn ObjectSource>,
    leader: Arc<dyn LeaderLocator>,
    instance: String,
    http: reqwest::Client,
    keys: Mutex<HashMap<String, CachedKeys>>,
}

impl CallbackRelay {
    /// `instance` names this replica in the header of what it hands on.
    pub fn new(
        objects: Arc<dyn ObjectSource>,
        leader: Arc<dyn LeaderLocator>,
        instance: impl Into<String>,
    ) -> Self {
        Self {
            objects,
            leader,
            instance: instance.into(),
            http: reqwest::Client::new(),
            keys: Mutex::default(),
        }
    }

    /// Checks the push to binding `ns/binding` and hands it to the leader; the leader's
    /// answer is returned as it came.
    pub async fn relay(
        &self,
        (ns, binding): (&str, &str),
        query: &HashMap<String, String>,
        raw_query: &str,
        body: Bytes,
    ) -> Result<Response, RelayError> {
        let crypto = self
            .crypto(ns, binding)
            .await?
            .ok_or_else(|| RelayError::Unknown(format!("{ns}/{binding}")))?;
        verify_push(&crypto, query, &body)?;
        let base = self.leader.leader().await?.ok_or(RelayError::NoLeader)?;
        let answer = self
            .http
            .post(format!(
                "{base}/dingtalk/callback/{ns}/{binding}?{raw_query}"
            ))
            .header(RELAYED_BY, &self.instance)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(FORWARD_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(RelayError::Forward)?;
        let status = StatusCode::from_u16(answer.status().as_u16())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let content_type = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        let bytes = answer.bytes().await.map_err(RelayError::Forward)?;
        Ok((
            status,
            [(axum::http::header::CONTENT_TYPE, content_type)],
            bytes,
        )
            .into_response())
    }

    /// The binding's callback crypto, read at most every [`KEYS_TTL`].
    async fn crypto(
        &self,
        ns: &str,
        binding: &str,
    ) -> Result<Option<Arc<CallbackCrypto>>, RelayError> {
        let key = format!("{ns}/{binding}");
        if let Some((at, c)) = self.keys.lock().expect("keys").get(&key)
            && at.elapsed() < KEYS_TTL
        {
            return Ok(c.clone());
        }
        let crypto = resolve::callback_crypto(self.objects.as_ref(), ns, binding)
            .await
            .map_err(RelayError::Objects)?
            .map(Arc::new);
        let mut keys = self.keys.lock().expect("keys");
        keys.retain(|_, (at, _)| at.elapsed() < KEYS_TTL);
        keys.insert(key, (Instant::now(), crypto.clone()));
        Ok(crypto)
    }
}

/// The leader as the leader-election Lease names it: its holder is a pod of this
/// Deployment, reached at its pod IP on the port every replica listens on.
pub struct LeasePod {
    pub client: Client,
    pub namespace: String,
    pub lease: String,
    /// This replica's identity in the Lease: a push is never handed to oneself.
    pub instance: String,
    pub port: u16,
}

#[async_trait]
impl LeaderLocator for LeasePod {
    async fn leader(&self) -> Result<Option<String>, RelayError> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let lease = leases
            .get_opt(&self.lease)
            .await
            .map_err(RelayError::Leader)?;
        let holder = lease
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty() && *h != self.instance);
        let Some(holder) = holder else {
            return Ok(None);
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let pod = pods.get_opt(&holder).await.map_err(RelayError::Leader)?;
        let ip = pod.and_then(|p| p.status?.pod_ip);
        Ok(ip.map(|ip| match ip.contains(':') {
            true => format!("http://[{ip}]:{}", self.port),
            false => format!("http://{ip}:{}", self.port),
        }))
    }
}
