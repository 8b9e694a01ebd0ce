#![no_main]
//! Arbitrary bytes as hessian2: skipped value by value, read as a string and as a
//! string map, and as the body of a Dubbo two-way hessian2 request (the header map
//! reader: body fields, argument skipping, attachments).

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use mosn_protocol::xprotocol::dubbo::Dubbo;
use mosn_protocol::xprotocol::hessian2::Reader;
use mosn_protocol::xprotocol::Codec;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    while !r.is_at_end() {
        let before = r.pos();
        if r.skip_value().is_err() {
            break;
        }
        assert!(r.pos() > before, "a value takes at least one byte");
    }
    if let Ok(s) = Reader::new(data).read_string() {
        assert!(s.len() <= 2 * data.len());
    }
    let _ = Reader::new(data).string_map(|k, v| {
        assert!(k.span.end <= data.len() && v.span.end <= data.len());
    });

    let mut frame = BytesMut::with_capacity(16 + data.len());
    frame.put_slice(&[0xda, 0xbb, 0xc2, 0]);
    frame.put_u64(1);
    frame.put_u32(data.len() as u32);
    frame.put_slice(data);
    let f = Dubbo
        .decode(&mut frame, usize::MAX)
        .expect("any body makes a frame")
        .expect("whole");
    for (k, v) in f.header_pairs() {
        assert!(std::str::from_utf8(k).is_ok() && std::str::from_utf8(v).is_ok());
    }
    common::exercise(&Dubbo, &f.raw);
});
