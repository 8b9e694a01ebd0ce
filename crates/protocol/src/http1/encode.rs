//! Writing HTTP/1.1 heads into a reusable buffer.

/// Appends a head line by line into a byte buffer.
pub struct HeadWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> HeadWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        HeadWriter { out }
    }

    pub fn request_line(&mut self, method: &[u8], target: &[u8]) {
        self.out.extend_from_slice(method);
        self.out.push(b' ');
        self.out.extend_from_slice(target);
        self.out.extend_from_slice(b" HTTP/1.1\r\n");
    }

    pub fn status_line(&mut self, status: u16, reason: &[u8]) {
        self.out.extend_from_slice(b"HTTP/1.1 ");
        let mut num = itoa::Buffer::new();
        self.out.extend_from_slice(num.format(status).as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(reason);
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn content_length(&mut self, len: u64) {
        let mut num = itoa::Buffer::new();
        self.header(b"Content-Length", num.format(len).as_bytes());
    }

    pub fn finish(self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Writes `{len:x}\r\n` into `out` (at most 18 bytes) and returns how many bytes it used.
pub fn write_chunk_prefix(len: usize, out: &mut [u8; 20]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let count = digits.len() - i;
    out[..count].copy_from_slice(&digits[i..]);
    out[count] = b'\r';
    out[count + 1] = b'\n';
    count + 2
}

/// One chunk of the chunked coding (`{len:x}\r\n{data}\r\n`) in a new buffer, for
/// callers that write it in one piece.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut prefix = [0u8; 20];
    let n = write_chunk_prefix(data.len(), &mut prefix);
    let mut framed = Vec::with_capacity(n + data.len() + 2);
    framed.extend_from_slice(&prefix[..n]);
    framed.extend_from_slice(data);
    framed.extend_from_slice(b"\r\n");
    framed
}

/// The last chunk with trailer fields: `0\r\n{name: value\r\n}*\r\n`.
pub fn last_chunk<'a>(trailers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut end = b"0\r\n".to_vec();
    for (name, value) in trailers {
        end.extend_from_slice(name);
        end.extend_from_slice(b": ");
        end.extend_from_slice(value);
        end.extend_from_slice(b"\r\n");
    }
    end.extend_from_slice(b"\r\n");
    end
}
