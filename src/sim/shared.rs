//! What every request handler and background task shares: the config, the state behind its
//! mutex, the pumps' wake-ups and the shutdown signal.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::config::SimConfig;
use super::state::State;

pub struct Shared {
    pub config: SimConfig,
    state: Mutex<State>,
    pub addr: SocketAddr,
    pub stream_wake: Notify,
    pub callback_wake: Notify,
    pub shutdown: CancellationToken,
    pub http: reqwest::Client,
}

impl Shared {
    pub fn new(config: SimConfig, state: State, addr: SocketAddr) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            config,
            state: Mutex::new(state),
            addr,
            stream_wake: Notify::new(),
            callback_wake: Notify::new(),
            shutdown: CancellationToken::new(),
            http,
        }
    }

    /// Locks the state (poisoning is survived: a panicked handler must not take the sim down).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the event pumps: something may have been queued.
    pub fn wake_pumps(&self) {
        self.stream_wake.notify_one();
        self.callback_wake.notify_one();
    }

    /// Runs a mutation and wakes the event pumps afterwards.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.wake_pumps();
        r
    }

    pub fn base_url(&self) -> String {
        self.config
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }
}
