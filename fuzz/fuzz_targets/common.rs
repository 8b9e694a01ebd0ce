//! What every decode target does with one input.

use bytes::BytesMut;
use mosn_protocol::xprotocol::{Codec, Hijack};

/// A limit small enough that the fuzzer reaches it.
const MAX_FRAME: usize = 1 << 16;

const WHYS: [Hijack; 6] = [
    Hijack::NoRoute,
    Hijack::NoHealthyUpstream,
    Hijack::Overflow,
    Hijack::Timeout,
    Hijack::UpstreamClosed,
    Hijack::BadRequest,
];

/// Decodes frames off `data` until there are no more (or an error), and for each
/// frame reads every header, rewrites its id and builds every reply, checking that the
/// replies decode as frames again.
pub fn exercise(codec: &dyn Codec, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match codec.decode(&mut buf, MAX_FRAME) {
            Ok(Some(mut frame)) => {
                assert!(buf.len() < before, "a frame consumes bytes");
                for (k, v) in frame.header_pairs() {
                    std::hint::black_box((k, v));
                }
                std::hint::black_box(frame.header(b"service"));
                let id = frame.id.wrapping_add(1) & codec.max_id();
                codec.set_id(&mut frame, id);
                let mut again = frame.raw.clone();
                let redecoded = codec
                    .decode(&mut again, MAX_FRAME)
                    .expect("a frame with a new id still decodes")
                    .expect("whole");
                assert_eq!(redecoded.id, id);
                assert_eq!(redecoded.headers.len(), frame.headers.len());
                for why in WHYS {
                    if let Some(mut reply) = codec.hijack(&frame, why) {
                        let r = codec.decode(&mut reply, MAX_FRAME).unwrap().unwrap();
                        assert!(reply.is_empty());
                        assert_eq!(r.id, frame.id);
                    }
                }
                let mut ack = codec.heartbeat_ack(&frame);
                assert!(codec.decode(&mut ack, MAX_FRAME).unwrap().is_some());
                if let Some(mut hb) = codec.heartbeat(id) {
                    assert!(codec.decode(&mut hb, MAX_FRAME).unwrap().is_some());
                }
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "nothing consumed while waiting");
                break;
            }
            Err(_) => break,
        }
    }
}
