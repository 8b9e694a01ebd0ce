//! Socket helpers for the HTTP/1 engine.

use bytes::BytesMut;
use mosn_tls::Stream;
use std::io::{self, IoSlice};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Bytes reserved before each read; enough for a typical head in one read.
pub const READ_CHUNK: usize = 8 * 1024;

/// Reads once into `buf`, growing it by at most `max` bytes.
pub async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(max.max(1024));
    }
    stream.read_buf(buf).await
}

/// Writes all of `bytes`, failing with `TimedOut` when the peer stops reading for `limit`.
/// The common case, a plain socket with room, completes without arming a timer.
pub async fn write_all(stream: &mut Stream, bytes: &[u8], limit: Duration) -> io::Result<()> {
    let Stream::Plain(stream) = stream else {
        return with_limit(limit, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        match stream.try_write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if rest.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(limit, stream.write_all(rest)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Writes every slice, in order, with as few syscalls as the kernel allows; fails
/// with `TimedOut` when the peer stops reading for `limit`. Like [`write_all`], it
/// arms a timer only when the socket is full.
pub async fn write_all_vectored(
    stream: &mut Stream,
    parts: &mut [IoSlice<'_>],
    limit: Duration,
) -> io::Result<()> {
    let Stream::Plain(stream) = stream else {
        return with_limit(limit, async {
            write_vectored_inner(stream, parts).await?;
            stream.flush().await
        })
        .await;
    };
    let mut parts = parts;
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match stream.try_write_vectored(parts) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(limit, write_vectored_inner(stream, parts)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Runs a write, failing with `TimedOut` when it takes longer than `limit`.
async fn with_limit(
    limit: Duration,
    write: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    match tokio::time::timeout(limit, write).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

async fn write_vectored_inner<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    parts: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut parts = parts;
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        let n = stream.write_vectored(parts).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

/// Completes when the downstream peer closes (or errors) while we wait on the
/// upstream. Bytes it sends meanwhile (a pipelined request) are kept in `buf`, up to
/// `limit`; past that it stops reading and only the upstream side can finish the wait.
pub async fn peer_gone(stream: &mut Stream, buf: &mut BytesMut, limit: usize) {
    let Stream::Plain(stream) = stream else {
        // TLS: records must be decrypted to see what they hold; read through rustls.
        loop {
            if buf.len() >= limit {
                std::future::pending::<()>().await;
            }
            match read_some(stream, buf, READ_CHUNK).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    loop {
        if buf.len() >= limit {
            std::future::pending::<()>().await;
        }
        if stream.readable().await.is_err() {
            return;
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK);
        }
        match stream.try_read_buf(buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
