//! Protobuf written field by field into one reusable buffer, with prost's encoding
//! primitives: no message structs, no String per attribute. Writes what prost's
//! derived encoders write for the same values (proto3: a scalar or string field at
//! its default is left out, a oneof member or a set message field never is, fields
//! in tag order — the callers keep that order), so collectors see the same bytes.
//!
//! A nested message's length is known only after its body: `begin` reserves the
//! number of length bytes the body will most likely need and `end` writes the length
//! there, moving the body when the guess was wrong (rare; minimal varints keep the
//! bytes identical to prost's).

use bytes::Bytes;
use prost::encoding::{encode_key, encoded_len_varint, WireType};

/// The messages of `all` that start at `starts` (all of it when `starts` is empty),
/// sharing its buffer.
pub(crate) fn split_messages(all: &Bytes, starts: &[usize]) -> Vec<Bytes> {
    if starts.is_empty() {
        return vec![all.clone()];
    }
    let ends = starts.iter().skip(1).copied().chain([all.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| all.slice(start..end))
        .collect()
}

/// How many length bytes to reserve for a nested message: under 128 bytes, under
/// 16 KiB (a larger body is moved once its length is known).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    Small = 1,
    Medium = 2,
}

/// An open nested message or piecewise string: where its body starts.
#[must_use = "a nested field must be ended"]
pub(crate) struct Nested {
    /// Where the field's key starts (an empty string field is removed, key and all).
    key_at: usize,
    /// Where the reserved length bytes start.
    len_at: usize,
    reserved: usize,
}

/// The buffer messages are encoded into, reused from batch to batch. A `Vec`, not a
/// `BytesMut`: most writes are a byte or two, and a Vec's push is the cheaper.
///
/// The buffer never leaves its thread: [`Wire::take_all`] hands out a copy. Spans
/// are written a few bytes at a time, and into memory another core last held (the
/// exporter's, which read and freed the previous chunk) each of those first writes
/// to a cache line waits for the line to come over. The copy writes whole lines at
/// once into fresh memory, and the encoding stays in lines this core holds.
/// Measured (bench/README.md, "Observability"): ~0.8 us less per traced request on
/// the worker, for a copy of ~400 bytes per span.
#[derive(Default)]
pub(crate) struct Wire {
    buf: Vec<u8>,
    /// Where each message taken with `take_messages` starts.
    starts: Vec<usize>,
}

impl Wire {
    /// Starts a batch: the buffer is empty (and keeps its allocation).
    #[cfg(test)]
    pub fn begin_batch(&mut self) {
        self.begin_batch_with_room(0);
    }

    /// [`Wire::begin_batch`] with room for at least `room` bytes (allocated once:
    /// the buffer keeps it from batch to batch).
    pub fn begin_batch_with_room(&mut self, room: usize) {
        self.buf.clear();
        self.buf.reserve(room);
        self.starts.clear();
    }

    /// Marks the start of a top-level message (one gRPC message of a stream).
    pub fn begin_message(&mut self) {
        self.starts.push(self.buf.len());
    }

    /// Bytes written since `begin_batch`.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// A copy of the batch's bytes (exactly their size, so that what waits for the
    /// exporter is bounded by bytes), and where each message marked with
    /// `begin_message` starts (empty when none was marked). The buffer is emptied,
    /// and kept for the next batch.
    pub fn take_all(&mut self) -> (Bytes, Vec<usize>) {
        let all = Bytes::copy_from_slice(&self.buf);
        self.buf.clear();
        let starts = self.starts.clone();
        self.starts.clear();
        (all, starts)
    }

    /// The batch's messages, as marked with `begin_message` (the whole batch as one
    /// message when none was marked), sharing one copy of the batch.
    #[cfg(test)]
    pub fn take_messages(&mut self) -> Vec<Bytes> {
        let (all, starts) = self.take_all();
        split_messages(&all, &starts)
    }

    /// The bytes written since `begin_batch` (for tests).
    #[cfg(test)]
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    // Always inlined (a push, for nearly every field written): the call and the
    // rare longer key, which the compiler kept in it, cost more than the push.
    #[inline(always)]
    fn key(&mut self, tag: u32, wire_type: WireType) {
        // Every tag written here but one is under 16: a one-byte key.
        if tag < 16 {
            self.buf.push((tag << 3) as u8 | wire_type as u8);
        } else {
            self.long_key(tag, wire_type);
        }
    }

    #[cold]
    #[inline(never)]
    fn long_key(&mut self, tag: u32, wire_type: WireType) {
        encode_key(tag, wire_type, &mut self.buf);
    }

    #[inline(always)]
    fn len_or_varint(&mut self, value: u64) {
        if value < 0x80 {
            self.buf.push(value as u8);
        } else {
            self.long_varint(value);
        }
    }

    /// A varint of two bytes or more (times in ms, ports, lengths), made on the
    /// stack and appended at once (prost's writes byte by byte into the Vec).
    #[inline(never)]
    fn long_varint(&mut self, mut value: u64) {
        let mut made = [0u8; 10];
        let mut len = 0;
        for byte in &mut made {
            len += 1;
            if value < 0x80 {
                *byte = value as u8;
                break;
            }
            *byte = value as u8 | 0x80;
            value >>= 7;
        }
        self.append_made(&made, len);
    }

    /// A length-delimited field whose body is `parts` (a string or bytes), left out
    /// when empty.
    pub fn string(&mut self, tag: u32, parts: &[&str]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > 0 {
            self.string_always(tag, parts, len);
        }
    }

    /// A length-delimited field even when empty (a oneof member).
    fn string_always(&mut self, tag: u32, parts: &[&str], len: usize) {
        self.key(tag, WireType::LengthDelimited);
        self.len_or_varint(len as u64);
        for p in parts {
            self.buf.extend_from_slice(p.as_bytes());
        }
    }

    /// A bytes field, left out when empty.
    pub fn bytes_field(&mut self, tag: u32, value: &[u8]) {
        if !value.is_empty() {
            self.key(tag, WireType::LengthDelimited);
            self.len_or_varint(value.len() as u64);
            self.buf.extend_from_slice(value);
        }
    }

    /// Bytes encoded already (a field prepared once), copied as they are.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
    }

    /// A uint64, or a non-negative int64/int32/enum, left out when 0.
    pub fn varint(&mut self, tag: u32, value: u64) {
        if value != 0 {
            self.key(tag, WireType::Varint);
            self.len_or_varint(value);
        }
    }

    /// An int32 (negative ones take ten bytes, sign-extended as protobuf says), left
    /// out when 0.
    pub fn int32(&mut self, tag: u32, value: i32) {
        self.varint(tag, i64::from(value) as u64);
    }

    pub fn bool(&mut self, tag: u32, value: bool) {
        self.varint(tag, u64::from(value));
    }

    pub fn fixed64(&mut self, tag: u32, value: u64) {
        if value != 0 {
            self.key(tag, WireType::SixtyFourBit);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    pub fn fixed32(&mut self, tag: u32, value: u32) {
        if value != 0 {
            self.key(tag, WireType::ThirtyTwoBit);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// Opens a nested message field (or a string written piecewise).
    pub fn begin(&mut self, tag: u32, size: Size) -> Nested {
        let key_at = self.buf.len();
        self.key(tag, WireType::LengthDelimited);
        let len_at = self.buf.len();
        let reserved = size as usize;
        self.buf.resize(len_at + reserved, 0);
        Nested {
            key_at,
            len_at,
            reserved,
        }
    }

    /// Closes a message field: it stays even when empty (a set message field).
    pub fn end(&mut self, nested: Nested) {
        let body_at = nested.len_at + nested.reserved;
        let len = self.buf.len() - body_at;
        let needed = encoded_len_varint(len as u64);
        if needed != nested.reserved {
            // The guess was wrong: move the body to fit the length exactly.
            let new_body_at = nested.len_at + needed;
            if needed > nested.reserved {
                self.buf.resize(new_body_at + len, 0);
                self.buf.copy_within(body_at..body_at + len, new_body_at);
            } else {
                self.buf.copy_within(body_at..body_at + len, new_body_at);
                self.buf.truncate(new_body_at + len);
            }
        }
        // The length's varint, in the `needed` bytes kept for it.
        let mut rest = len;
        if let Some(at) = self.buf.get_mut(nested.len_at..nested.len_at + needed) {
            for (i, b) in at.iter_mut().enumerate() {
                let more = if i + 1 < needed { 0x80 } else { 0 };
                *b = (rest & 0x7f) as u8 | more;
                rest >>= 7;
            }
        }
    }

    /// Closes a string written piecewise: left out, key and all, when empty.
    pub fn end_string(&mut self, nested: Nested) {
        if self.buf.len() == nested.len_at + nested.reserved {
            self.buf.truncate(nested.key_at);
        } else {
            self.end(nested);
        }
    }

    /// A SkyWalking `KeyStringValuePair` (key 1, value 2; an empty value is left
    /// out) whose key was encoded at compile time ([`attr_key!`]: the key field,
    /// then the value's tag).
    #[inline]
    pub fn key_value<const N: usize>(&mut self, tag: u32, key: &[u8; N], value: &[u8]) {
        let body = N + 1 + value.len();
        // The usual pair (a short value): one-byte lengths, made on the stack.
        if !value.is_empty() && tag < 16 && 2 + body <= SHORT_ATTR {
            let mut made = [0u8; SHORT_ATTR];
            made[0] = (tag << 3) as u8 | WireType::LengthDelimited as u8;
            made[1] = body as u8;
            made[2..2 + N].copy_from_slice(key);
            made[2 + N] = value.len() as u8;
            made[3 + N..3 + N + value.len()].copy_from_slice(value);
            self.append_made(&made, 2 + body);
            return;
        }
        // The key field alone is the prepared bytes but the value's tag.
        let key_field = key.get(..N - 1).unwrap_or_default();
        let value_field = if value.is_empty() {
            0
        } else {
            field_len(value.len())
        };
        self.key(tag, WireType::LengthDelimited);
        self.len_or_varint((key_field.len() + value_field) as u64);
        self.buf.extend_from_slice(key_field);
        self.bytes_field(2, value);
    }

    /// An OTLP `KeyValue` with a string `AnyValue` whose key was encoded at compile
    /// time ([`attr_key!`]): written even when the value is empty (a oneof).
    #[inline]
    pub fn attr_str<const N: usize>(&mut self, tag: u32, key: &[u8; N], value: &[u8]) {
        // The usual attribute (a short value): one-byte lengths, made on the stack.
        let body = N + 3 + value.len();
        if tag < 16 && 2 + body <= SHORT_ATTR {
            let mut made = [0u8; SHORT_ATTR];
            made[0] = (tag << 3) as u8 | WireType::LengthDelimited as u8;
            made[1] = body as u8;
            made[2..2 + N].copy_from_slice(key);
            made[2 + N] = (2 + value.len()) as u8; // the AnyValue's length
            made[3 + N] = 1 << 3 | WireType::LengthDelimited as u8; // string_value
            made[4 + N] = value.len() as u8;
            made[5 + N..5 + N + value.len()].copy_from_slice(value);
            self.append_made(&made, 2 + body);
            return;
        }
        let any_value = field_len(value.len());
        let body = N + encoded_len_varint(any_value as u64) + any_value;
        self.buf.reserve(1 + encoded_len_varint(body as u64) + body);
        self.key(tag, WireType::LengthDelimited);
        self.len_or_varint(body as u64);
        self.buf.extend_from_slice(key);
        self.len_or_varint(any_value as u64);
        self.key(1, WireType::LengthDelimited);
        self.len_or_varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    /// An OTLP `KeyValue` with an int `AnyValue` (a oneof: written even when 0),
    /// its key encoded at compile time ([`attr_key!`]).
    #[inline]
    pub fn attr_int<const N: usize>(&mut self, tag: u32, key: &[u8; N], value: i64) {
        // A key of up to 48 bytes, and at most 13 more: one-byte lengths throughout.
        const { assert!(N + 13 <= SHORT_ATTR) };
        if tag >= 16 {
            let any_value = 1 + encoded_len_varint(value as u64);
            self.key(tag, WireType::LengthDelimited);
            self.len_or_varint((N + 1 + any_value) as u64);
            self.buf.extend_from_slice(key);
            self.buf.push(any_value as u8);
            self.key(3, WireType::Varint);
            self.len_or_varint(value as u64);
            return;
        }
        let mut made = [0u8; SHORT_ATTR];
        made[0] = (tag << 3) as u8 | WireType::LengthDelimited as u8;
        made[2..2 + N].copy_from_slice(key);
        made[3 + N] = 3 << 3 | WireType::Varint as u8; // int_value
        let mut at = 4 + N;
        let mut rest = value as u64;
        while rest >= 0x80 {
            made[at] = rest as u8 | 0x80;
            rest >>= 7;
            at += 1;
        }
        made[at] = rest as u8;
        at += 1;
        made[2 + N] = (at - 3 - N) as u8; // the AnyValue's length
        made[1] = (at - 2) as u8;
        self.append_made(&made, at);
    }

    /// Appends the first `len` bytes of `made`: the whole array is copied (a copy of
    /// a fixed size is a few moves; one of a varying size, a `memcpy` call), then
    /// what is past `len` is cut.
    #[inline]
    fn append_made<const M: usize>(&mut self, made: &[u8; M], len: usize) {
        let end = self.buf.len() + len.min(M);
        self.buf.extend_from_slice(made);
        self.buf.truncate(end);
    }

    /// A socket address's text, as `Display` writes it.
    pub fn texted_addr(&mut self, addr: &mosn_observe::addr_text::TextedAddr) {
        addr.write(&mut self.buf);
    }
}

/// The most bytes an attribute made on the stack takes (see [`Wire::attr_str`]).
const SHORT_ATTR: usize = 64;

/// What every OTLP `KeyValue` (and SkyWalking `KeyStringValuePair`) with this key
/// starts with: its key (field 1: tag, length, text) and the tag of its value (field
/// 2), for [`Wire::attr_str`], [`Wire::attr_int`] and [`Wire::key_value`]. `N` is the key's length + 3; keys are under 128 bytes.
pub(crate) const fn attr_key_bytes<const N: usize>(key: &str) -> [u8; N] {
    let text = key.as_bytes();
    assert!(text.len() < 128 && N == text.len() + 3);
    let mut out = [0u8; N];
    out[0] = 0x0a; // field 1, length-delimited
    out[1] = text.len() as u8;
    let mut i = 0;
    while i < text.len() {
        out[2 + i] = text[i];
        i += 1;
    }
    out[N - 1] = 0x12; // field 2, length-delimited
    out
}

/// An attribute key's bytes for [`Wire::attr_str`]/[`Wire::attr_int`], made at
/// compile time.
macro_rules! attr_key {
    ($key:literal) => {{
        const BYTES: [u8; $key.len() + 3] = $crate::export::wire::attr_key_bytes($key);
        &BYTES
    }};
}
pub(crate) use attr_key;

/// The bytes of a length-delimited field with a one-byte key (tags under 16) and a
/// `len`-byte body.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_length_guesses_are_fixed() {
        for (len, size) in [
            (0, Size::Medium),
            (5, Size::Medium),
            (127, Size::Small),
            (128, Size::Small),
            (20_000, Size::Medium),
        ] {
            let mut w = Wire::default();
            w.begin_batch();
            let n = w.begin(2, size);
            w.raw(&vec![7u8; len]);
            w.end(n);
            let mut want = Vec::new();
            prost::encoding::bytes::encode(2, &vec![7u8; len], &mut want);
            if len == 0 {
                // A message field is written even empty; a bytes field would not be.
                want = vec![0x12, 0];
            }
            assert_eq!(w.bytes(), want.as_slice(), "{len}");
        }
    }

    #[test]
    fn prepared_pairs_match_prost() {
        use crate::skywalking::proto::KeyStringValuePair;
        for value in [
            String::new(),
            "v".to_string(),
            "x".repeat(40),
            "y".repeat(200),
        ] {
            let mut w = Wire::default();
            w.begin_batch();
            w.key_value(12, attr_key!("mosn.listener"), value.as_bytes());
            let pair = KeyStringValuePair {
                key: "mosn.listener".to_string(),
                value: value.clone(),
            };
            let mut want = Vec::new();
            prost::encoding::message::encode(12, &pair, &mut want);
            assert_eq!(w.bytes(), want.as_slice(), "{}", value.len());
        }
    }

    #[test]
    fn varints_match_prost() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            1 << 35,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut w = Wire::default();
            w.begin_batch();
            w.varint(3, value);
            let mut want = Vec::new();
            if value != 0 {
                prost::encoding::uint64::encode(3, &value, &mut want);
            }
            assert_eq!(w.bytes(), want.as_slice(), "{value}");
        }
    }

    #[test]
    fn empty_piecewise_strings_are_left_out() {
        let mut w = Wire::default();
        w.begin_batch();
        let s = w.begin(3, Size::Small);
        w.end_string(s);
        assert!(w.bytes().is_empty());
        w.int32(1, -1);
        assert_eq!(w.bytes().len(), 11);
    }

    #[test]
    fn batches_are_copies_and_the_buffer_is_reused() {
        let mut w = Wire::default();
        w.begin_batch_with_room(64);
        for i in 1..=3 {
            w.begin_message();
            w.varint(1, i);
        }
        let first = w.buf.as_ptr();
        let messages = w.take_messages();
        assert_eq!(messages, [&[8u8, 1][..], &[8, 2], &[8, 3]]);
        // The messages share one copy, not the buffer.
        assert_ne!(messages[0].as_ptr(), first);
        assert_eq!(messages[1].as_ptr(), messages[0].as_ptr().wrapping_add(2));
        // A batch still held (a call not done with it) does not keep the buffer.
        w.begin_batch();
        assert!(w.bytes().is_empty());
        w.varint(1, 4);
        assert_eq!(w.buf.as_ptr(), first, "the same allocation");
        assert_eq!(w.bytes(), [8, 4]);
        assert_eq!(messages, [&[8u8, 1][..], &[8, 2], &[8, 3]]);
        // Without marks, one message: the whole batch.
        assert_eq!(w.take_messages(), [&[8u8, 4][..]]);
        assert!(w.bytes().is_empty());
    }
}
