//! The part of Hessian 2.0 a Dubbo proxy needs (docs/xprotocol-wire.md section 5): read
//! strings in every encoding, skip any value, read a string-to-string map (Dubbo's
//! attachments), and write strings (the proxy's own error messages).
//!
//! Everything is bounds-checked and nothing panics, whatever the input. Untrusted
//! lengths never size an allocation: a reader walks the input, so the work and memory
//! for one value are bounded by the input's length (each value, list element, map
//! entry and field takes at least one byte). Containers nest at most [`MAX_DEPTH`]
//! deep, so the recursion is bounded too.
//!
//! Strings count their length in UTF-16 units (Java `char`s), not bytes. Java,
//! hessian.js and dubbo-go-hessian2 write a character outside the BMP as two
//! surrogates of 3 bytes each (CESU-8); a 4-byte UTF-8 sequence, which other encoders
//! write, is accepted as the 2 units it stands for.

use bytes::BufMut;
use std::ops::Range;

/// How deeply lists, maps and objects may nest inside one value.
pub const MAX_DEPTH: u32 = 64;

/// Why a value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("hessian2 input cut short")]
    Eof,
    #[error("unexpected hessian2 tag 0x{0:02x}")]
    Tag(u8),
    #[error("malformed character in a hessian2 string")]
    BadChar,
    #[error("negative hessian2 length or count")]
    BadLength,
    #[error("hessian2 object of an undefined class")]
    NoClass,
    #[error("hessian2 values nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where a string value sits in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str {
    /// The whole encoding: tags, chunk headers and characters.
    pub span: Range<usize>,
    /// The characters' bytes when the string is a single chunk (the short, medium and
    /// `S` forms), and so contiguous in the input; None for a chunked (`R` ...) string.
    pub bytes: Option<Range<usize>>,
    /// Its length in UTF-16 units.
    pub units: usize,
}

/// Is `tag` the first byte of a string value?
pub fn is_string_tag(tag: u8) -> bool {
    matches!(tag, 0x00..=0x1f | 0x30..=0x33 | b'R' | b'S')
}

/// Reads hessian2 values from a byte slice, front to back. One reader per message:
/// it keeps the class definitions (`C`) seen so far, which later objects refer to.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The field count of each class definition, by definition index. Each one took
    /// at least three bytes of input (so the table is at most 4/3 of the input).
    classes: Vec<u32>,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self::new_at(buf, 0)
    }

    /// A reader starting at offset `pos` of `buf` (ranges it returns are offsets in
    /// `buf`).
    pub fn new_at(buf: &'a [u8], pos: usize) -> Self {
        Reader {
            buf,
            pos: pos.min(buf.len()),
            classes: Vec::new(),
        }
    }

    /// The offset of the next byte to read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn is_at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next byte, not consumed.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn byte(&mut self) -> Result<u8> {
        let b = self.peek().ok_or(Error::Eof)?;
        self.pos += 1;
        Ok(b)
    }

    /// Consumes `n` bytes and returns their range.
    fn take(&mut self, n: usize) -> Result<Range<usize>> {
        if self.buf.len() - self.pos < n {
            return Err(Error::Eof);
        }
        let start = self.pos;
        self.pos += n;
        Ok(start..self.pos)
    }

    fn u16(&mut self) -> Result<u16> {
        let r = self.take(2)?;
        Ok(u16::from_be_bytes([
            self.buf[r.start],
            self.buf[r.start + 1],
        ]))
    }

    fn u32(&mut self) -> Result<u32> {
        let r = self.take(4)?;
        let b = &self.buf[r];
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An int value, in any of its forms.
    pub fn int(&mut self) -> Result<i32> {
        let tag = self.byte()?;
        let t = i32::from(tag);
        Ok(match tag {
            0x80..=0xbf => t - 0x90,
            0xc0..=0xcf => ((t - 0xc8) << 8) + i32::from(self.byte()?),
            0xd0..=0xd7 => {
                let hi = i32::from(self.byte()?);
                let lo = i32::from(self.byte()?);
                ((t - 0xd4) << 16) + (hi << 8) + lo
            }
            b'I' => self.u32()? as i32,
            _ => return Err(Error::Tag(tag)),
        })
    }

    /// A long value in any of its forms (an int value is accepted as well).
    pub fn long(&mut self) -> Result<i64> {
        let Some(tag) = self.peek() else {
            return Err(Error::Eof);
        };
        let t = i64::from(tag);
        Ok(match tag {
            0xd8..=0xef => {
                self.pos += 1;
                t - 0xe0
            }
            0xf0..=0xff => {
                self.pos += 1;
                ((t - 0xf8) << 8) + i64::from(self.byte()?)
            }
            0x38..=0x3f => {
                self.pos += 1;
                let hi = i64::from(self.byte()?);
                let lo = i64::from(self.byte()?);
                ((t - 0x3c) << 16) + (hi << 8) + lo
            }
            b'Y' => {
                self.pos += 1;
                i64::from(self.u32()? as i32)
            }
            b'L' => {
                self.pos += 1;
                let hi = u64::from(self.u32()?);
                let lo = u64::from(self.u32()?);
                ((hi << 32) | lo) as i64
            }
            _ => i64::from(self.int()?),
        })
    }

    /// A count or length (an int that must not be negative).
    fn count(&mut self) -> Result<usize> {
        usize::try_from(self.int()?).map_err(|_| Error::BadLength)
    }

    /// Walks `units` UTF-16 units of characters; returns their bytes' range.
    fn chars(&mut self, units: usize) -> Result<Range<usize>> {
        let start = self.pos;
        let mut left = units;
        while left > 0 {
            let lead = self.peek().ok_or(Error::Eof)?;
            let (len, n) = match lead {
                0x00..=0x7f => (1, 1),
                0xc0..=0xdf => (2, 1),
                0xe0..=0xef => (3, 1),
                // A 4-byte UTF-8 sequence is one character outside the BMP: 2 units.
                0xf0..=0xf7 => (4, 2),
                _ => return Err(Error::BadChar),
            };
            if n > left {
                return Err(Error::BadChar);
            }
            self.take(len)?;
            left -= n;
        }
        Ok(start..self.pos)
    }

    /// A string value, in any of its forms (single or chunked); not materialised.
    pub fn string(&mut self) -> Result<Str> {
        let start = self.pos;
        let mut tag = self.byte()?;
        let mut units = 0usize;
        let mut first = None;
        loop {
            let (n, last) = match tag {
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => (
                    (usize::from(tag - 0x30) << 8) | usize::from(self.byte()?),
                    true,
                ),
                b'S' => (usize::from(self.u16()?), true),
                b'R' => (usize::from(self.u16()?), false),
                _ => return Err(Error::Tag(tag)),
            };
            let r = self.chars(n)?;
            units += n;
            first = match first {
                None => Some(Some(r)),
                Some(_) => Some(None),
            };
            if last {
                break;
            }
            // A non-final chunk: the next chunk follows (any string form).
            tag = self.byte()?;
        }
        Ok(Str {
            span: start..self.pos,
            bytes: first.flatten(),
            units,
        })
    }

    /// A string, or None for a null (`N`).
    pub fn string_or_null(&mut self) -> Result<Option<Str>> {
        if self.peek() == Some(b'N') {
            self.pos += 1;
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// A string value, decoded (chunks joined, surrogate pairs combined; malformed
    /// characters become U+FFFD). Allocates at most twice its encoded size.
    pub fn read_string(&mut self) -> Result<String> {
        let s = self.string()?;
        let mut chunks = Reader::new_at(self.buf, s.span.start);
        let mut bytes = Vec::new();
        loop {
            let tag = chunks.byte()?;
            let (n, last) = match tag {
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => (
                    (usize::from(tag - 0x30) << 8) | usize::from(chunks.byte()?),
                    true,
                ),
                b'S' => (usize::from(chunks.u16()?), true),
                _ => (usize::from(chunks.u16()?), false),
            };
            let r = chunks.chars(n)?;
            bytes.extend_from_slice(&self.buf[r]);
            if last {
                break;
            }
        }
        Ok(decode_chars(&bytes))
    }

    /// A type (of a typed list or map): a type name string, or an int index into the
    /// type names seen before.
    fn skip_type(&mut self) -> Result<()> {
        match self.peek() {
            Some(t) if is_string_tag(t) => self.string().map(drop),
            Some(_) => self.int().map(drop),
            None => Err(Error::Eof),
        }
    }

    /// A class definition (after its `C`): name, field count, field names.
    fn class_def(&mut self) -> Result<()> {
        self.string()?;
        let fields = self.count()?;
        for _ in 0..fields {
            self.string()?;
        }
        self.classes
            .push(u32::try_from(fields).map_err(|_| Error::BadLength)?);
        Ok(())
    }

    fn fields_of(&self, class: usize) -> Result<usize> {
        let fields = self.classes.get(class).ok_or(Error::NoClass)?;
        Ok(*fields as usize)
    }

    /// Skips one value of any kind. A class definition (`C`) is not a value by itself:
    /// it is skipped together with the value after it, as one.
    pub fn skip_value(&mut self) -> Result<()> {
        self.skip(0)
    }

    fn skip(&mut self, depth: u32) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let mut tag = self.byte()?;
        while tag == b'C' {
            self.class_def()?;
            tag = self.byte()?;
        }
        let inner = depth + 1;
        match tag {
            // Strings.
            0x00..=0x1f | 0x30..=0x33 | b'R' | b'S' => {
                self.pos -= 1;
                self.string()?;
            }
            // Binary: short, medium, chunked.
            0x20..=0x2f => {
                self.take(usize::from(tag - 0x20))?;
            }
            0x34..=0x37 => {
                let n = (usize::from(tag - 0x34) << 8) | usize::from(self.byte()?);
                self.take(n)?;
            }
            b'A' | b'B' => {
                let mut tag = tag;
                loop {
                    match tag {
                        b'A' | b'B' => {
                            let n = usize::from(self.u16()?);
                            self.take(n)?;
                        }
                        0x20..=0x2f => {
                            self.take(usize::from(tag - 0x20))?;
                        }
                        0x34..=0x37 => {
                            let n = (usize::from(tag - 0x34) << 8) | usize::from(self.byte()?);
                            self.take(n)?;
                        }
                        _ => return Err(Error::Tag(tag)),
                    }
                    if tag != b'A' {
                        break;
                    }
                    tag = self.byte()?;
                }
            }
            // Null, booleans, one-byte ints, longs and doubles.
            b'N' | b'T' | b'F' | 0x80..=0xbf | 0xd8..=0xef | 0x5b | 0x5c => {}
            // Fixed-size scalars.
            0xc0..=0xcf | 0xf0..=0xff | 0x5d => {
                self.take(1)?;
            }
            0xd0..=0xd7 | 0x38..=0x3f | 0x5e => {
                self.take(2)?;
            }
            b'I' | b'Y' | b'K' | 0x5f => {
                self.take(4)?;
            }
            b'L' | b'D' | b'J' => {
                self.take(8)?;
            }
            // Maps: untyped, typed.
            b'H' => self.pairs(inner)?,
            b'M' => {
                self.skip_type()?;
                self.pairs(inner)?;
            }
            // Lists: variable length (typed, untyped), fixed length (typed, untyped,
            // compact typed, compact untyped).
            b'U' => {
                self.skip_type()?;
                self.until_end(inner)?;
            }
            b'W' => self.until_end(inner)?,
            b'V' => {
                self.skip_type()?;
                let n = self.count()?;
                self.values(n, inner)?;
            }
            b'X' => {
                let n = self.count()?;
                self.values(n, inner)?;
            }
            0x70..=0x77 => {
                self.skip_type()?;
                self.values(usize::from(tag - 0x70), inner)?;
            }
            0x78..=0x7f => self.values(usize::from(tag - 0x78), inner)?,
            // Objects: by class index, compact.
            b'O' => {
                let class = self.count()?;
                let n = self.fields_of(class)?;
                self.values(n, inner)?;
            }
            0x60..=0x6f => {
                let n = self.fields_of(usize::from(tag - 0x60))?;
                self.values(n, inner)?;
            }
            // A reference to an earlier map, list or object: its index.
            b'Q' => {
                self.int()?;
            }
            // `Z` where a value is expected, reserved tags (`@`, `E`, `G`, `P`), and
            // `C` (consumed above; unreachable).
            0x40 | b'C' | b'E' | b'G' | b'P' | b'Z' => return Err(Error::Tag(tag)),
        }
        Ok(())
    }

    /// Key/value pairs up to and including `Z`.
    fn pairs(&mut self, depth: u32) -> Result<()> {
        while !self.end_marker()? {
            self.skip(depth)?;
            self.skip(depth)?;
        }
        Ok(())
    }

    /// Values up to and including `Z`.
    fn until_end(&mut self, depth: u32) -> Result<()> {
        while !self.end_marker()? {
            self.skip(depth)?;
        }
        Ok(())
    }

    /// Consumes a `Z` if it is next.
    fn end_marker(&mut self) -> Result<bool> {
        match self.peek() {
            None => Err(Error::Eof),
            Some(b'Z') => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    /// `n` values. Each takes at least one byte, so a huge `n` ends at the input's end.
    fn values(&mut self, n: usize, depth: u32) -> Result<()> {
        for _ in 0..n {
            self.skip(depth)?;
        }
        Ok(())
    }

    /// A string, or None after skipping a value of another kind.
    fn string_or_skip(&mut self) -> Result<Option<Str>> {
        match self.peek() {
            Some(t) if is_string_tag(t) => self.string().map(Some),
            _ => self.skip(1).map(|()| None),
        }
    }

    /// A map (`H`, or `M` with its type; null reads as empty), calling `f` for each
    /// entry whose key and value are both strings, in wire order. Other entries are
    /// skipped. On an error, entries before it have been passed to `f` already.
    pub fn string_map(&mut self, mut f: impl FnMut(Str, Str)) -> Result<()> {
        let tag = self.byte()?;
        match tag {
            b'N' => return Ok(()),
            b'H' => {}
            b'M' => self.skip_type()?,
            _ => return Err(Error::Tag(tag)),
        }
        while !self.end_marker()? {
            let key = self.string_or_skip()?;
            let value = self.string_or_skip()?;
            if let (Some(k), Some(v)) = (key, value) {
                f(k, v);
            }
        }
        Ok(())
    }
}

/// Decodes hessian2 string characters (CESU-8 or UTF-8) to a `String`; malformed or
/// unpaired characters become U+FFFD.
pub fn decode_chars(bytes: &[u8]) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let cont = |i: usize| u32::from(bytes.get(i).copied().unwrap_or(0) & 0x3f);
    let mut i = 0;
    while i < bytes.len() {
        let b = u32::from(bytes[i]);
        let (c, len) = match b {
            0x00..=0x7f => (b, 1),
            0xc0..=0xdf => (((b & 0x1f) << 6) | cont(i + 1), 2),
            0xe0..=0xef => (((b & 0x0f) << 12) | (cont(i + 1) << 6) | cont(i + 2), 3),
            0xf0..=0xf7 => (
                ((b & 0x07) << 18) | (cont(i + 1) << 12) | (cont(i + 2) << 6) | cont(i + 3),
                4,
            ),
            _ => (0xfffd, 1),
        };
        if c > 0xffff {
            match char::from_u32(c) {
                Some(ch) => units.extend_from_slice(ch.encode_utf16(&mut [0; 2])),
                None => units.push(0xfffd),
            }
        } else {
            units.push(c as u16);
        }
        i += len;
    }
    String::from_utf16_lossy(&units)
}

/// The longest non-final chunk Java's Hessian2Output writes, in UTF-16 units.
const CHUNK: usize = 0x8000;

/// Writes `s` as a hessian2 string the way Java's Hessian2Output does: the short form
/// up to 31 units, the medium form up to 1023, `S` above; strings longer than 32768
/// units as `R` chunks of 32768 (never splitting a surrogate pair) and a final chunk.
/// Characters outside the BMP are written as two 3-byte surrogates.
pub fn write_string(out: &mut impl BufMut, s: &str) {
    let mut left: usize = s.chars().map(char::len_utf16).sum();
    let mut rest = s;
    while left > CHUNK {
        let (mut units, mut end) = (0, 0);
        for c in rest.chars() {
            if units + c.len_utf16() > CHUNK {
                break;
            }
            units += c.len_utf16();
            end += c.len_utf8();
        }
        out.put_u8(b'R');
        out.put_u16(units as u16);
        put_chars(out, &rest[..end]);
        rest = &rest[end..];
        left -= units;
    }
    match left {
        0..=31 => out.put_u8(left as u8),
        32..=1023 => {
            out.put_u8(0x30 + (left >> 8) as u8);
            out.put_u8(left as u8);
        }
        _ => {
            out.put_u8(b'S');
            out.put_u16(left as u16);
        }
    }
    put_chars(out, rest);
}

fn put_chars(out: &mut impl BufMut, s: &str) {
    for c in s.chars() {
        if c.len_utf16() == 1 {
            let mut b = [0; 4];
            out.put_slice(c.encode_utf8(&mut b).as_bytes());
        } else {
            for u in c.encode_utf16(&mut [0; 2]) {
                let u = *u;
                out.put_u8(0xe0 | (u >> 12) as u8);
                out.put_u8(0x80 | ((u >> 6) & 0x3f) as u8);
                out.put_u8(0x80 | (u & 0x3f) as u8);
            }
        }
    }
}

/// Writes a null.
pub fn write_null(out: &mut impl BufMut) {
    out.put_u8(b'N');
}

/// Writes an int in its most compact form.
pub fn write_int(out: &mut impl BufMut, v: i32) {
    match v {
        -16..=47 => out.put_u8((v + 0x90) as u8),
        -2048..=2047 => {
            out.put_u8((0xc8 + (v >> 8)) as u8);
            out.put_u8(v as u8);
        }
        -262144..=262143 => {
            out.put_u8((0xd4 + (v >> 16)) as u8);
            out.put_u8((v >> 8) as u8);
            out.put_u8(v as u8);
        }
        _ => {
            out.put_u8(b'I');
            out.put_i32(v);
        }
    }
}

#[cfg(test)]
mod tests;
