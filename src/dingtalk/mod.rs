//! DingTalk server API client for one app: one cached token (a single refresh in flight), a
//! per-API rate limiter shared by everything that uses the app, retries for what DingTalk says
//! is transient and typed errors for what is not; the address-book reads a sync needs with the
//! fewest calls the API allows, validated writes, Stream-mode events, the HTTP callback
//! receiver, and the OAuth login exchange. Tokens and secrets never reach logs or errors.

pub mod callback;
pub mod client;
pub mod config;
pub mod contacts;
pub mod error;
pub mod events;
pub mod oauth;
pub mod roles;
pub mod scope;
pub mod stream;
pub mod suite;
mod wire;
pub mod write;

pub use client::{CallStats, ClientPool, DingTalkClient};
pub use config::{
    ClientConfig, DEFAULT_API, DEFAULT_LOGIN, DEFAULT_OAPI, INTL_API, INTL_OAPI, Secret, TokenApi,
};
pub use contacts::{
    Department, DeptLeader, DeptOrder, DeptPosition, MobileLookup, Role, UnionIdLookup, User,
    UserPage,
};
pub use error::{DingTalkError, permission_for};
pub use events::{CallbackReceiver, Event, EventHandler, ReceiveError, callback_endpoint};
pub use oauth::{LoginIdentity, UserProfile, UserToken};
pub use scope::{AppScope, Pruning, ScopeFailure, ScopeRead, ScopeSnapshot};
pub use stream::{StreamConfig, StreamError, StreamHandle, StreamState, StreamStats, Subscription};
pub use suite::{SuiteAuth, SuiteError, TicketCell};

pub use write::{
    CreatedUser, DeptCreate, DeptOrderWrite, DeptTitleWrite, DeptUpdate, UserCreate, UserUpdate,
};
