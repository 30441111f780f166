//! Integration tests of the DingTalk simulator (`src/sim`), driven over HTTP and WebSocket as
//! a DingTalk client would.

mod callback;
mod common;
mod faults;
mod oapi;
mod stream;
mod v1;
