//! Integration tests of the DingTalk simulator (`src/sim`), driven over HTTP and WebSocket as
//! a DingTalk client would.

#[path = "sim/callback.rs"]
mod callback;
#[path = "sim/common.rs"]
mod common;
#[path = "sim/faults.rs"]
mod faults;
#[path = "sim/oapi.rs"]
mod oapi;
#[path = "sim/stream.rs"]
mod stream;
#[path = "sim/v1.rs"]
mod v1;
