//! A strict, incremental decoder of the chunked transfer coding (RFC 9112 §7.1).
//!
//! It hands out chunk data as `Bytes` split from the read buffer (no copy) and
//! the raw trailer section, and refuses what proxies disagree about: bare LF line
//! ends, oversized or malformed sizes, missing CRLF after data.

use bytes::{Bytes, BytesMut};

/// What the decoder found next.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkedItem {
    /// Body bytes.
    Data(Bytes),
    /// The end of the body, with the trailer fields (each line with its CRLF, without
    /// the final empty line); empty when there are none.
    End(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad chunked body: {0}")]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Longest chunk-size line (size plus extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    max_trailer_bytes: usize,
}

impl ChunkedDecoder {
    pub fn new(max_trailer_bytes: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            max_trailer_bytes,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next item from the front of `buf`; `Ok(None)` means more bytes are needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<ChunkedItem>, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Size => {
                    let Some(line_len) = find_crlf_line(buf, MAX_SIZE_LINE)? else {
                        return Ok(None);
                    };
                    let size = parse_size_line(&buf[..line_len])?;
                    let _ = buf.split_to(line_len + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = remaining.min(buf.len() as u64) as usize;
                    let data = buf.split_to(take).freeze();
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(ChunkedItem::Data(data)));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        if buf.first().is_some_and(|&b| b != b'\r') {
                            return Err(ChunkError("chunk data not followed by CRLF"));
                        }
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    // Trailer lines end at an empty line; each must be a valid field.
                    let mut pos = 0;
                    loop {
                        let Some(line_len) = find_crlf_line(&buf[pos..], self.max_trailer_bytes)?
                        else {
                            if buf.len() > self.max_trailer_bytes {
                                return Err(ChunkError("trailer section too large"));
                            }
                            return Ok(None);
                        };
                        if line_len == 0 {
                            let trailers = buf.split_to(pos).freeze();
                            let _ = buf.split_to(2);
                            self.state = State::Done;
                            return Ok(Some(ChunkedItem::End(trailers)));
                        }
                        check_trailer_line(&buf[pos..pos + line_len])?;
                        pos += line_len + 2;
                        if pos > self.max_trailer_bytes {
                            return Err(ChunkError("trailer section too large"));
                        }
                    }
                }
            }
        }
    }
}

/// Length of the line at the front of `buf` if a CRLF ends it; a bare LF or CR is an error.
fn find_crlf_line(buf: &[u8], max: usize) -> Result<Option<usize>, ChunkError> {
    let window = &buf[..buf.len().min(max + 2)];
    match memchr::memchr2(b'\n', b'\r', window) {
        Some(i) if window[i] == b'\n' => Err(ChunkError("bare LF line ending")),
        Some(i) => match window.get(i + 1) {
            Some(b'\n') => Ok(Some(i)),
            Some(_) => Err(ChunkError("bare CR in chunked framing")),
            None => Ok(None),
        },
        None if window.len() > max => Err(ChunkError("chunk line too long")),
        None => Ok(None),
    }
}

/// `1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`; extensions are
/// checked for visible characters and dropped.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError("missing chunk size"));
    }
    if digits > 15 {
        return Err(ChunkError("chunk size too large"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        size = size * 16 + (b as char).to_digit(16).unwrap_or(0) as u64;
    }
    let rest = &line[digits..];
    let ext = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map(|i| &rest[i..])
        .unwrap_or(b"");
    if !ext.is_empty()
        && (ext[0] != b';'
            || ext
                .iter()
                .any(|&b| b != b'\t' && !(0x20..0x7f).contains(&b)))
    {
        return Err(ChunkError("malformed chunk extension"));
    }
    Ok(size)
}

fn check_trailer_line(line: &[u8]) -> Result<(), ChunkError> {
    let colon = memchr::memchr(b':', line).ok_or(ChunkError("trailer without colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(ChunkError("malformed trailer name"));
    }
    if line[colon + 1..]
        .iter()
        .any(|&b| b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(ChunkError("malformed trailer value"));
    }
    Ok(())
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
