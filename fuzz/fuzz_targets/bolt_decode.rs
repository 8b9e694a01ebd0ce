#![no_main]
//! Arbitrary bytes through the Bolt v1 and v2 codecs.

use libfuzzer_sys::fuzz_target;
use mosn_protocol::xprotocol::bolt::{BoltV1, BoltV2};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::exercise(&BoltV1, data);
    common::exercise(&BoltV2, data);
});
