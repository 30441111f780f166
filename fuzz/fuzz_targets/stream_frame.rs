//! Stream gateway frames come off a WebSocket: any text parses to a frame or an error, and
//! the accessors and the ACK built from a parsed frame never panic.
#![no_main]

use dingsync::dingtalk::stream::{Frame, event_ack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = Frame::parse(text) {
        let _ = frame.topic();
        let ack = event_ack(frame.message_id(), true);
        assert!(serde_json::from_str::<serde_json::Value>(&ack).is_ok());
    }
});
