#![no_main]
//! Arbitrary bytes through the Dubbo codec.

use libfuzzer_sys::fuzz_target;
use mosn_protocol::xprotocol::dubbo::Dubbo;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::exercise(&Dubbo, data);
});
