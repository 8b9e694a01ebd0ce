//! Access logs (MOSN's `access_logs[{log_path, log_format}]`): one line per request,
//! formatted from MOSN's variables (`%start_time%`, `%duration%`, ...,
//! `%request_header_NAME%`), or one JSON object per line (`"json": true`, a mosn-rs
//! extension). Lines are formatted on the worker and written by one thread per file
//! through a bounded queue: when it is full the line is dropped and counted, never
//! waited for. SIGUSR1 reopens every file (logrotate).

mod spare;

use mosn_observe::addr_text::TextedAddr;
use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// MOSN's default format (pkg/types/accesslog.go), less its tracing ids.
pub const DEFAULT_FORMAT: &str = "%start_time% %request_received_duration% %response_received_duration% %bytes_sent% %bytes_received% %protocol% %response_code% %duration% %response_flag% %response_code% %upstream_local_address% %downstream_local_address% %downstream_remote_address% %upstream_host%";

/// A variable of MOSN's access log format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    StartTime,
    RequestReceivedDuration,
    ResponseReceivedDuration,
    Duration,
    BytesSent,
    BytesReceived,
    Protocol,
    ResponseCode,
    ResponseFlag,
    ResponseFlags,
    UpstreamLocalAddress,
    DownstreamLocalAddress,
    DownstreamRemoteAddress,
    UpstreamHost,
    UpstreamCluster,
    RequestHeader(String),
    ResponseHeader(String),
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "start_time" => Var::StartTime,
            "request_received_duration" => Var::RequestReceivedDuration,
            "response_received_duration" => Var::ResponseReceivedDuration,
            "duration" => Var::Duration,
            "bytes_sent" => Var::BytesSent,
            "bytes_received" => Var::BytesReceived,
            "protocol" => Var::Protocol,
            "response_code" => Var::ResponseCode,
            "response_flag" => Var::ResponseFlag,
            "response_flags" => Var::ResponseFlags,
            "upstream_local_address" => Var::UpstreamLocalAddress,
            "downstream_local_address" => Var::DownstreamLocalAddress,
            "downstream_remote_address" => Var::DownstreamRemoteAddress,
            "upstream_host" => Var::UpstreamHost,
            "upstream_cluster" => Var::UpstreamCluster,
            other => {
                if let Some(h) = other.strip_prefix("request_header_") {
                    Var::RequestHeader(h.to_ascii_lowercase())
                } else {
                    Var::ResponseHeader(
                        other.strip_prefix("response_header_")?.to_ascii_lowercase(),
                    )
                }
            }
        })
    }

    fn name(&self) -> String {
        match self {
            Var::RequestHeader(h) => format!("request_header_{h}"),
            Var::ResponseHeader(h) => format!("response_header_{h}"),
            other => format!("{other:?}")
                .chars()
                .fold(String::new(), |mut s, c| {
                    if c.is_uppercase() && !s.is_empty() {
                        s.push('_');
                    }
                    s.push(c.to_ascii_lowercase());
                    s
                }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// Why a request was answered as it was (Envoy's/MOSN's response flags).
pub mod flags {
    pub const NO_ROUTE: u16 = 1; // NR
    pub const NO_HEALTHY_UPSTREAM: u16 = 1 << 1; // UH
    pub const CONNECT_FAILURE: u16 = 1 << 2; // UF
    pub const UPSTREAM_TIMEOUT: u16 = 1 << 3; // UT
    pub const UPSTREAM_RESET: u16 = 1 << 4; // UR
    pub const OVERFLOW: u16 = 1 << 5; // UO
    pub const DOWNSTREAM_CLOSED: u16 = 1 << 6; // DC
    pub const BAD_REQUEST: u16 = 1 << 7; // DPE (downstream protocol error)
    pub(super) const NAMES: &[(u16, &str)] = &[
        (NO_ROUTE, "NR"),
        (NO_HEALTHY_UPSTREAM, "UH"),
        (CONNECT_FAILURE, "UF"),
        (UPSTREAM_TIMEOUT, "UT"),
        (UPSTREAM_RESET, "UR"),
        (OVERFLOW, "UO"),
        (DOWNSTREAM_CLOSED, "DC"),
        (BAD_REQUEST, "DPE"),
    ];

    /// The flags' names, comma-separated ("" when none).
    pub fn text(bits: u16) -> String {
        let mut out = String::new();
        // Most requests have none: no walk over the names.
        if bits == 0 {
            return out;
        }
        for (bit, name) in NAMES {
            if bits & bit != 0 {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(name);
            }
        }
        out
    }
}

/// What one request did, filled in as it goes.
#[derive(Debug)]
pub struct Entry {
    /// When the request started: wall clock (printed) and monotonic (durations).
    pub start: SystemTime,
    pub started: Instant,
    /// When it ended and how long it took (set by [`Entry::end`]; until then
    /// durations run to now).
    pub ended: Option<(Instant, Duration)>,
    pub request_received: Option<Duration>,
    pub response_received: Option<Duration>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub protocol: &'static str,
    pub response_code: u16,
    pub flags: u16,
    /// The addresses, with their texts made once per connection or host.
    pub upstream_host: Option<TextedAddr>,
    pub upstream_local: Option<TextedAddr>,
    pub upstream_cluster: Option<Arc<str>>,
    pub downstream_local: TextedAddr,
    pub downstream_remote: TextedAddr,
    /// The response header fields some access log prints (`%response_header_X%`),
    /// kept from the response head: lower-case name, value.
    pub response_headers: Vec<(Arc<str>, Box<[u8]>)>,
    /// The request header fields some access log prints, when the engine logs after
    /// the request is gone (RPC).
    pub request_headers: Vec<(Arc<str>, Box<[u8]>)>,
    /// The request's trace span, when it is traced (HTTP/1: kept here, in the
    /// record's allocation, rather than in one of its own).
    pub span: Option<mosn_trace::Span>,
}

impl Entry {
    pub fn new(protocol: &'static str, local: TextedAddr, remote: TextedAddr) -> Entry {
        let (started, start) = Entry::now();
        Entry::started_at(protocol, local, remote, started, start)
    }

    /// Now, by the monotonic clock and the wall clock derived from it.
    fn now() -> (Instant, SystemTime) {
        let started = Instant::now();
        (started, mosn_observe::clock::wall_at(started))
    }

    /// An entry for a request that started at `started`, which was `start` by the
    /// wall clock (the caller derives it once for the record and the span).
    pub fn started_at(
        protocol: &'static str,
        local: TextedAddr,
        remote: TextedAddr,
        started: Instant,
        start: SystemTime,
    ) -> Entry {
        Entry {
            start,
            started,
            ended: None,
            request_received: None,
            response_received: None,
            bytes_sent: 0,
            bytes_received: 0,
            protocol,
            response_code: 0,
            flags: 0,
            upstream_host: None,
            upstream_local: None,
            upstream_cluster: None,
            downstream_local: local,
            downstream_remote: remote,
            response_headers: Vec::new(),
            request_headers: Vec::new(),
            span: None,
        }
    }

    /// The request goes (or went) to `host` of the cluster named `cluster`.
    pub fn upstream(&mut self, host: &mosn_upstream::Host, cluster: &Arc<str>) {
        self.upstream_host = Some(host.addr_text);
        self.upstream_cluster = Some(cluster.clone());
    }

    /// Marks the request's end (once; later calls keep the first), and returns it.
    pub fn end(&mut self) -> Instant {
        let started = self.started;
        self.ended
            .get_or_insert_with(|| {
                let now = Instant::now();
                (now, now.saturating_duration_since(started))
            })
            .0
    }

    /// From the start to the end, or to now before the end.
    pub fn duration(&self) -> Duration {
        match self.ended {
            Some((_, took)) => took,
            None => self.started.elapsed(),
        }
    }

    /// The response head went to the client.
    pub fn responded(&mut self, status: u16) {
        self.response_code = status;
        if self.response_received.is_none() {
            self.response_received = Some(self.started.elapsed());
        }
        if self.request_received.is_none() {
            self.request_received = self.response_received;
        }
    }

    fn response_header(&self, name: &str) -> Option<&[u8]> {
        find(&self.response_headers, name)
    }
}

/// A listener's access logs, and what they need kept from a request or a response.
/// Cheap to clone (one `Arc`): an RPC request carries it to its answer.
#[derive(Clone, Default)]
pub struct AccessLogs(Option<Arc<LogSet>>);

impl std::fmt::Debug for AccessLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.as_ref().map_or(0, |s| s.logs.len());
        write!(f, "AccessLogs({n})")
    }
}

struct LogSet {
    logs: Vec<Arc<AccessLog>>,
    /// The request header fields some log prints (lower-case), for engines that must
    /// keep them (an RPC frame is gone by the time its answer is logged).
    request_headers: Vec<Arc<str>>,
    /// The response header fields some log prints (lower-case), kept per request.
    response_headers: Vec<Arc<str>>,
}

impl AccessLogs {
    pub fn new(logs: Vec<Arc<AccessLog>>) -> AccessLogs {
        if logs.is_empty() {
            return AccessLogs(None);
        }
        let names = |response: bool| {
            let mut names: Vec<Arc<str>> = Vec::new();
            for name in logs.iter().flat_map(|l| l.header_names(response)) {
                if !names.iter().any(|n| &**n == name) {
                    names.push(name.into());
                }
            }
            names
        };
        AccessLogs(Some(Arc::new(LogSet {
            request_headers: names(false),
            response_headers: names(true),
            logs,
        })))
    }

    /// No log: requests need no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// A new entry, when the listener logs, for the local and remote addresses
    /// `addrs` gives (asked for only then).
    pub fn entry(
        &self,
        protocol: &'static str,
        addrs: impl FnOnce() -> (TextedAddr, TextedAddr),
    ) -> Option<Box<Entry>> {
        self.0.as_ref().map(|_| {
            let (local, remote) = addrs();
            Entry::boxed(protocol, local, remote)
        })
    }

    /// Keeps what the logs print of a request head, for an engine that logs after the
    /// request is gone ([`Self::log_kept`]).
    pub fn keep_request<'h>(&self, e: &mut Entry, header: impl Fn(&str) -> Option<&'h [u8]>) {
        if let Some(set) = &self.0 {
            keep(&mut e.request_headers, &set.request_headers, header);
        }
    }

    /// Keeps what the logs print of a response head.
    pub fn keep_response<'h>(&self, e: &mut Entry, header: impl Fn(&str) -> Option<&'h [u8]>) {
        if let Some(set) = &self.0 {
            keep(&mut e.response_headers, &set.response_headers, header);
        }
    }

    /// Writes a finished request to every log; `header` reads the request's headers.
    pub fn log<'h>(&self, e: &Entry, header: impl Fn(&str) -> Option<&'h [u8]>) {
        if let Some(set) = &self.0 {
            for log in &set.logs {
                log.log(e, &header);
            }
        }
    }

    /// Writes a finished request whose request headers were kept in the entry.
    pub fn log_kept(&self, e: &Entry) {
        self.log(e, |name| find(&e.request_headers, name));
    }
}

fn keep<'h>(
    into: &mut Vec<(Arc<str>, Box<[u8]>)>,
    wanted: &[Arc<str>],
    header: impl Fn(&str) -> Option<&'h [u8]>,
) {
    for name in wanted {
        if let Some(v) = header(name) {
            into.push((name.clone(), v.into()));
        }
    }
}

fn find<'e>(kept: &'e [(Arc<str>, Box<[u8]>)], name: &str) -> Option<&'e [u8]> {
    kept.iter().find(|(n, _)| &**n == name).map(|(_, v)| &**v)
}

/// One configured access log.
pub struct AccessLog {
    parts: Vec<Part>,
    /// Each part's JSON key (its variable's name; empty for text), made once.
    json_names: Vec<String>,
    json: bool,
    sink: Arc<Sink>,
}

impl AccessLog {
    /// From MOSN's config; Err names an unknown variable.
    pub fn new(path: &str, format: Option<&str>, json: bool) -> Result<AccessLog, String> {
        let format = format.filter(|f| !f.is_empty()).unwrap_or(DEFAULT_FORMAT);
        let parts = parse_format(format)?;
        let json_names = parts
            .iter()
            .map(|p| match p {
                Part::Var(v) => v.name(),
                Part::Text(_) => String::new(),
            })
            .collect();
        Ok(AccessLog {
            parts,
            json_names,
            json,
            sink: Sink::for_path(path),
        })
    }

    /// Formats the line of a finished request into this thread's buffer for its file.
    pub fn log<'h>(&self, e: &Entry, header: impl Fn(&str) -> Option<&'h [u8]>) {
        with_local_buffer(&self.sink, |line| {
            if self.json {
                self.json_line(line, e, &header);
            } else {
                self.text_line(line, e, &header);
            }
            line.push(b'\n');
        });
    }

    fn text_line<'h>(
        &self,
        line: &mut Vec<u8>,
        e: &Entry,
        header: &impl Fn(&str) -> Option<&'h [u8]>,
    ) {
        for p in &self.parts {
            match p {
                Part::Text(t) => match t.as_bytes() {
                    // The separators are mostly one space: a push, not a `memcpy` call.
                    &[byte] => line.push(byte),
                    text => line.extend_from_slice(text),
                },
                Part::Var(v) => render(line, v, e, header),
            }
        }
    }

    fn json_line<'h>(
        &self,
        line: &mut Vec<u8>,
        e: &Entry,
        header: &impl Fn(&str) -> Option<&'h [u8]>,
    ) {
        line.push(b'{');
        let mut first = true;
        for (p, name) in self.parts.iter().zip(&self.json_names) {
            let Part::Var(v) = p else { continue };
            if !first {
                line.push(b',');
            }
            first = false;
            json_string(line, name.as_bytes());
            line.push(b':');
            // Rendered in place, then escaped where it stands.
            let at = line.len();
            render(line, v, e, header);
            let value = line.split_off(at);
            json_string(line, &value);
        }
        line.push(b'}');
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped.load(Ordering::Relaxed)
    }

    /// The request (or response) header fields this log prints (lower-case).
    fn header_names(&self, response: bool) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(move |p| match p {
            Part::Var(Var::RequestHeader(h)) if !response => Some(h.as_str()),
            Part::Var(Var::ResponseHeader(h)) if response => Some(h.as_str()),
            _ => None,
        })
    }
}

/// Lines every access log of the process dropped because its writer fell behind
/// (the admin API's `access_log_dropped_lines`).
pub fn dropped_total() -> u64 {
    let list = sinks().lock().unwrap_or_else(|e| e.into_inner());
    list.iter()
        .map(|(_, s)| s.dropped.load(Ordering::Relaxed))
        .sum()
}

/// Checks a format (unknown variables, an unclosed `%`).
pub fn check_format(format: &str) -> Result<(), String> {
    parse_format(format).map(drop)
}

fn parse_format(format: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = format;
    while let Some(open) = rest.find('%') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('%') else {
            return Err(format!("unclosed variable in {format:?}"));
        };
        let name = &after[..close];
        let var = Var::parse(name).ok_or_else(|| format!("unknown variable %{name}%"))?;
        parts.push(Part::Var(var));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// Appends a variable's text to a line. Lines are bytes, not `String`s: what goes in
/// is UTF-8 (header values pass `push_lossy`), and text made on the stack goes in
/// without the UTF-8 check a `String` would need. Inlined into the two line makers:
/// a line renders every variable of its format, and the calls cost more than the
/// dispatch.
#[inline(always)]
fn render<'h>(out: &mut Vec<u8>, v: &Var, e: &Entry, header: &impl Fn(&str) -> Option<&'h [u8]>) {
    let addr = |out: &mut Vec<u8>, a: Option<&TextedAddr>| match a {
        Some(a) => a.write(out),
        None => out.push(b'-'),
    };
    match v {
        Var::StartTime => start_time(out, e.start),
        Var::RequestReceivedDuration => go_duration(out, e.request_received),
        Var::ResponseReceivedDuration => go_duration(out, e.response_received),
        Var::Duration => go_duration(out, Some(e.duration())),
        Var::BytesSent => number(out, e.bytes_sent),
        Var::BytesReceived => number(out, e.bytes_received),
        Var::Protocol => out.extend_from_slice(e.protocol.as_bytes()),
        Var::ResponseCode => number(out, u64::from(e.response_code)),
        Var::ResponseFlag => out.extend_from_slice(if e.flags != 0 { b"true" } else { b"false" }),
        Var::ResponseFlags => {
            if e.flags == 0 {
                out.push(b'-');
            } else {
                out.extend_from_slice(flags::text(e.flags).as_bytes());
            }
        }
        Var::UpstreamLocalAddress => addr(out, e.upstream_local.as_ref()),
        Var::DownstreamLocalAddress => addr(out, Some(&e.downstream_local)),
        Var::DownstreamRemoteAddress => addr(out, Some(&e.downstream_remote)),
        Var::UpstreamHost => addr(out, e.upstream_host.as_ref()),
        Var::UpstreamCluster => match &e.upstream_cluster {
            Some(c) => out.extend_from_slice(c.as_bytes()),
            None => out.push(b'-'),
        },
        Var::RequestHeader(name) => match header(name) {
            Some(v) => push_lossy(out, v),
            None => out.push(b'-'),
        },
        Var::ResponseHeader(name) => match e.response_header(name) {
            Some(v) => push_lossy(out, v),
            None => out.push(b'-'),
        },
    }
}

/// A count's digits. (Made in place like a duration's, they cost more: `itoa` is
/// quick, and the `memcpy` of its text the lesser part.)
fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Bytes as text (invalid UTF-8 replaced), without a copy when they are UTF-8 (they
/// nearly always are).
fn push_lossy(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(String::from_utf8_lossy(v).as_bytes());
}

/// MOSN's `%start_time%`: `2006/01/02 15:04:05.000` (UTC here; MOSN uses local time).
/// The date and time of day are made once per second per thread; a line copies them
/// with the milliseconds written in.
fn start_time(out: &mut Vec<u8>, t: SystemTime) {
    thread_local! {
        // A `Cell`: a copy out and no borrow flag to set and reset.
        static SECOND: Cell<Second> = const { Cell::new(Second::NONE) };
    }
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut second = SECOND.get();
    if second.secs != d.as_secs() {
        second = Second::of(d.as_secs());
        SECOND.set(second);
    }
    second.put(out, d.subsec_millis());
}

/// The longest text made on the stack: a duration (`18446744073.709551615s`, 22
/// bytes) or a start time (23 bytes while years have four digits, 31 for the
/// furthest `SystemTime`, whose seconds are an `i64`).
const TEXT: usize = 32;

/// One second's `2006/01/02 15:04:05.000`, the milliseconds to be written in.
#[derive(Clone, Copy)]
struct Second {
    secs: u64,
    text: [u8; TEXT],
    /// With the milliseconds.
    len: usize,
}

impl Second {
    const NONE: Second = Second {
        secs: u64::MAX,
        text: [0; TEXT],
        len: 0,
    };

    #[cold]
    fn of(secs: u64) -> Second {
        let mut text = [0; TEXT];
        let mut rest = &mut text[..];
        date_time(&mut rest, secs);
        let _ = rest.write_all(b".000");
        let len = TEXT - rest.len();
        Second { secs, text, len }
    }

    /// Appends the text with `millis` (below 1000) as its last three digits.
    fn put(mut self, out: &mut Vec<u8>, millis: u32) {
        let dot_millis = u32::from(b'.') | three_digits(millis) << 8;
        if let Some(slot) = self.text.get_mut(self.len.saturating_sub(4)..self.len) {
            slot.copy_from_slice(&dot_millis.to_le_bytes());
        }
        // A copy of a fixed size, then the rest cut (see `put_made`).
        let end = out.len() + self.len;
        out.extend_from_slice(&self.text);
        out.truncate(end);
    }
}

/// `2006/01/02 15:04:05` of `secs` since the epoch (UTC).
fn date_time(out: &mut impl Write, secs: u64) {
    let secs = secs as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Appends text made on the stack: `write` writes it at the start of a zeroed
/// buffer and returns its length. The whole buffer is appended, then the rest cut:
/// one capacity check, and a copy of a fixed size (a few moves, where a copy of a
/// varying size is a `memcpy` call).
fn put_made(out: &mut Vec<u8>, write: impl FnOnce(&mut [u8; TEXT]) -> usize) {
    let mut text = [0; TEXT];
    let len = write(&mut text);
    let end = out.len() + len.min(TEXT);
    out.extend_from_slice(&text);
    out.truncate(end);
}

/// "00" to "99" as little-endian `u16`s: digits two at a time.
static PAIRS: [u16; 100] = pairs();

const fn pairs() -> [u16; 100] {
    let mut table = [0; 100];
    let mut n = 0;
    while n < 100 {
        table[n] = u16::from_le_bytes([b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        n += 1;
    }
    table
}

/// The three digits of `n` (below 1000, zero-padded), the first in the lowest byte.
fn three_digits(n: u32) -> u32 {
    let hundreds = (n / 100) as u8;
    u32::from(b'0'.wrapping_add(hundreds)) | u32::from(PAIRS[(n % 100) as usize]) << 8
}

/// The six digits of `n` (below 10^6, zero-padded), the first in the lowest byte.
fn six_digits(n: u32) -> u64 {
    let pair = |n: u32| u64::from(PAIRS[(n % 100) as usize]);
    pair(n / 10_000) | pair(n / 100) << 16 | pair(n) << 32
}

/// A duration as Go's `Duration.String()` writes it below a minute (`1.5ms`,
/// `250µs`, `2.000123s`), in seconds from there on (`3723.5s`, where Go writes
/// `1h2m3.5s`); `-` when unknown. Nanoseconds past `u64::MAX` print as it.
fn go_duration(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        Some(d) => put_made(out, |text| duration_text(text, d)),
        None => out.push(b'-'),
    }
}

/// A unit's text, in 4 bytes to be written whole, and its length.
type Unit = ([u8; 4], usize);
const NANOS: Unit = (*b"ns\0\0", 2);
const MICROS: Unit = ([0xc2, 0xb5, b's', 0], 3); // µs
const MILLIS: Unit = (*b"ms\0\0", 2);
const SECS: Unit = (*b"s\0\0\0", 1);

/// Writes [`go_duration`]'s text at the start of `text`; returns its length. Each
/// unit's divisor is a constant (a multiplication), and the digits are made in a
/// register and written whole.
fn duration_text(text: &mut [u8; TEXT], d: Duration) -> usize {
    match (d.as_secs(), d.subsec_nanos()) {
        (0, 0) => {
            let at = put_below_1000(text, 0);
            put_unit(text, at, SECS)
        }
        (0, n @ ..1_000) => {
            let at = put_below_1000(text, n);
            put_unit(text, at, NANOS)
        }
        (0, n @ ..1_000_000) => {
            let at = put_below_1000(text, n / 1_000);
            let at = put_fraction::<3>(text, at, u64::from(three_digits(n % 1_000)));
            put_unit(text, at, MICROS)
        }
        (0, n) => {
            let at = put_below_1000(text, n / 1_000_000);
            let at = put_fraction::<6>(text, at, six_digits(n % 1_000_000));
            put_unit(text, at, MILLIS)
        }
        (secs, nanos) => put_seconds(text, secs, nanos),
    }
}

/// `secs.nanos` and `s`, for a second and more: rare, so plainer, and out of line
/// (inlined, its registers would make every call save more).
#[inline(never)]
fn put_seconds(text: &mut [u8; TEXT], secs: u64, nanos: u32) -> usize {
    /// `u64::MAX` nanoseconds, where the text stops growing.
    const MAX: (u64, u32) = (u64::MAX / 1_000_000_000, (u64::MAX % 1_000_000_000) as u32);
    let (secs, nanos) = (secs, nanos).min(MAX);
    let mut digits = itoa::Buffer::new();
    let whole = digits.format(secs).as_bytes();
    text[..whole.len()].copy_from_slice(whole);
    let mut at = whole.len();
    if nanos > 0 {
        // `.`, the first three digits, the six after them; then the trailing zeros
        // go (not all of them: nanos > 0).
        text[at] = b'.';
        text[at + 1..at + 5].copy_from_slice(&three_digits(nanos / 1_000_000).to_le_bytes());
        text[at + 4..at + 12].copy_from_slice(&six_digits(nanos % 1_000_000).to_le_bytes());
        at += 10;
        while text[at - 1] == b'0' {
            at -= 1;
        }
    }
    put_unit(text, at, SECS)
}

/// Writes `n` (below 1000) at the start of `text`; returns its length.
fn put_below_1000(text: &mut [u8; TEXT], n: u32) -> usize {
    let digits = three_digits(n);
    // Leading zeros are the lowest bytes that are '0'; a set bit in the last
    // digit's byte keeps that digit (0).
    let zeros = ((digits ^ 0x30_3030) | 1 << 16).trailing_zeros() / 8;
    text[..4].copy_from_slice(&(digits >> (8 * zeros)).to_le_bytes());
    3 - zeros as usize
}

/// Writes `.` and the `WIDTH` (1 to 7) digits in `digits` (the first in the lowest
/// byte) at `at`, less their trailing zeros, and nothing when they are all zeros;
/// returns where they end.
fn put_fraction<const WIDTH: usize>(text: &mut [u8; TEXT], at: usize, digits: u64) -> usize {
    let zeros = u64::from_le_bytes(*b"00000000") >> (64 - 8 * WIDTH);
    let nonzero = digits ^ zeros;
    if nonzero == 0 {
        return at;
    }
    // Trailing zeros are the highest of the `WIDTH` bytes that are '0'.
    let cut = (nonzero << (64 - 8 * WIDTH)).leading_zeros() as usize / 8;
    let dot_digits = u64::from(b'.') | digits << 8;
    text[at..at + 8].copy_from_slice(&dot_digits.to_le_bytes());
    at + 1 + WIDTH - cut
}

fn put_unit(text: &mut [u8; TEXT], at: usize, (unit, len): Unit) -> usize {
    text[at..at + 4].copy_from_slice(&unit);
    at + len
}

/// `s` as a JSON string. By bytes: those of a UTF-8 sequence of several are all
/// 0x80 or more, copied as they are.
fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b if b < 0x20 => {
                let _ = write!(out, "\\u{b:04x}");
            }
            b => out.push(b),
        }
    }
    out.push(b'"');
}

/// The sinks open so far, by path.
type SinksByPath = Vec<(String, Arc<Sink>)>;

/// Every sink of the process (a path is opened once, however many logs write it).
fn sinks() -> &'static Mutex<SinksByPath> {
    static SINKS: OnceLock<Mutex<SinksByPath>> = OnceLock::new();
    SINKS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Lines of one worker for one file, handed to the writer as one piece.
struct Chunk {
    text: Vec<u8>,
    lines: u64,
}

/// One log file and the thread that writes it.
struct Sink {
    tx: SyncSender<Chunk>,
    dropped: AtomicU64,
    /// Chunks sent and not yet written (for the flush at exit).
    in_flight: AtomicU64,
}

impl Sink {
    /// The sink of `path`, shared by every access log writing there.
    fn for_path(path: &str) -> Arc<Sink> {
        let mut list = sinks().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = list.iter().find(|(p, _)| p == path) {
            return s.clone();
        }
        let (tx, rx) = sync_channel(QUEUE_CHUNKS);
        let sink = Arc::new(Sink {
            tx,
            dropped: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        });
        let owned = path.to_string();
        let writer = sink.clone();
        let _ = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_chunks(&owned, rx, &writer));
        list.push((path.to_string(), sink.clone()));
        sink
    }

    fn push(&self, chunk: Chunk) {
        let lines = chunk.lines;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(chunk).is_err() {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

/// Chunks waiting for their writer before new ones are dropped (each up to
/// `CHUNK_BYTES`, so at most 16 MiB per file).
const QUEUE_CHUNKS: usize = 512;
/// A worker's lines for one file go to the writer when they reach this size, or at
/// the worker's next flush tick ([`flush_local`]), whichever comes first.
const CHUNK_BYTES: usize = 32 * 1024;
/// How often workers hand their buffered lines over (and so the longest a line waits
/// before it is written; Envoy's default file flush interval is 1 s).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

thread_local! {
    /// This thread's unwritten lines, per file: formatting appends here, so a request
    /// costs no allocation, no lock and no wake-up of the writer.
    static LOCAL: RefCell<Vec<(Arc<Sink>, Chunk)>> = const { RefCell::new(Vec::new()) };
}

/// Appends a line to this thread's buffer for `sink` with `write`, handing the
/// buffer over once it is big enough.
fn with_local_buffer(sink: &Arc<Sink>, write: impl FnOnce(&mut Vec<u8>)) {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let index = match local.iter().position(|(s, _)| Arc::ptr_eq(s, sink)) {
            Some(i) => i,
            None => {
                local.push((
                    sink.clone(),
                    Chunk {
                        text: Vec::with_capacity(CHUNK_BYTES + 1024),
                        lines: 0,
                    },
                ));
                local.len() - 1
            }
        };
        let (sink, chunk) = &mut local[index];
        write(&mut chunk.text);
        chunk.lines += 1;
        if chunk.text.len() >= CHUNK_BYTES {
            let full = std::mem::replace(
                chunk,
                Chunk {
                    text: Vec::with_capacity(CHUNK_BYTES + 1024),
                    lines: 0,
                },
            );
            sink.push(full);
        }
    });
}

/// Hands this thread's buffered lines to their writers. Workers call it every
/// [`FLUSH_INTERVAL`].
pub fn flush_local() {
    LOCAL.with(|local| {
        for (sink, chunk) in local.borrow_mut().iter_mut() {
            if chunk.lines > 0 {
                // Under load, room for a whole chunk again: growing to it would copy
                // the lines at each doubling. A quiet thread keeps a small buffer.
                let busy = chunk.text.len() >= CHUNK_BYTES / 8;
                let room = if busy { CHUNK_BYTES + 1024 } else { 1024 };
                let text = std::mem::replace(&mut chunk.text, Vec::with_capacity(room));
                let lines = std::mem::take(&mut chunk.lines);
                sink.push(Chunk { text, lines });
            }
        }
    });
}

/// At exit: gives the workers a flush tick, then waits (up to `limit`) until every
/// writer wrote what it was given.
pub fn flush_for_exit(limit: Duration) {
    let deadline = Instant::now() + limit;
    let open = sinks().lock().map(|l| !l.is_empty()).unwrap_or(false);
    if !open {
        return;
    }
    std::thread::sleep(FLUSH_INTERVAL + Duration::from_millis(10));
    flush_local();
    loop {
        let pending: u64 = sinks()
            .lock()
            .map(|l| {
                l.iter()
                    .map(|(_, s)| s.in_flight.load(Ordering::Relaxed))
                    .sum()
            })
            .unwrap_or(0);
        if pending == 0 || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Bumped by SIGUSR1: a writer that sees a new value reopens its file before its next
/// line.
static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Asks every access log writer to reopen its file (SIGUSR1, for logrotate).
pub fn reopen_all() {
    REOPEN_GENERATION.fetch_add(1, Ordering::Relaxed);
}

enum Out {
    Stdout,
    Stderr,
    File(BufWriter<File>),
    Broken,
}

fn open(path: &str) -> Out {
    match path {
        "stdout" | "/dev/stdout" => Out::Stdout,
        "stderr" | "/dev/stderr" => Out::Stderr,
        _ => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Out::File(BufWriter::with_capacity(64 * 1024, f)),
            Err(e) => {
                tracing::error!(path, error = %e, "cannot open access log");
                Out::Broken
            }
        },
    }
}

/// While lines keep coming, how often the writer looks for more rather than
/// waiting to be woken: a worker that hands over a chunk then makes no system
/// call (the writer is not waiting on the queue), and under load the writer wakes
/// some 50 times a second instead of once per chunk. Idle, it waits on the queue.
const WRITER_POLL: Duration = Duration::from_millis(20);

fn write_chunks(path: &str, rx: Receiver<Chunk>, sink: &Sink) {
    let mut out = open(path);
    let mut generation = REOPEN_GENERATION.load(Ordering::Relaxed);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(chunk) = next {
            let now = REOPEN_GENERATION.load(Ordering::Relaxed);
            if now != generation {
                generation = now;
                out = open(path);
            }
            let mut write = |s: &[u8]| match &mut out {
                Out::Stdout => {
                    let _ = std::io::stdout().write_all(s);
                }
                Out::Stderr => {
                    let _ = std::io::stderr().write_all(s);
                }
                Out::File(f) => {
                    let _ = f.write_all(s);
                }
                Out::Broken => {}
            };
            write(&chunk.text);
            let mut written = 1;
            // Drain what is queued, then flush once.
            while let Ok(more) = rx.try_recv() {
                write(&more.text);
                written += 1;
            }
            if let Out::File(f) = &mut out {
                let _ = f.flush();
            }
            sink.in_flight.fetch_sub(written, Ordering::Relaxed);
            // Busy: look again after a while; nothing then (or every sender
            // gone) goes back to waiting.
            std::thread::sleep(WRITER_POLL);
            next = rx.try_recv().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    fn duration(d: Duration) -> String {
        text(|out| go_duration(out, Some(d)))
    }

    #[test]
    fn go_durations_and_start_time() {
        let f = duration;
        assert_eq!(f(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(f(Duration::from_micros(250)), "250µs");
        assert_eq!(f(Duration::from_nanos(2_000_123_000)), "2.000123s");
        assert_eq!(f(Duration::ZERO), "0s");
        assert_eq!(f(Duration::from_nanos(1_050_000)), "1.05ms");
        assert_eq!(f(Duration::from_nanos(999)), "999ns");
        assert_eq!(f(Duration::from_nanos(3_000_000_007)), "3.000000007s");
        let addr = |a: &str| {
            let a: SocketAddr = a.parse().unwrap();
            text(|out| TextedAddr::from(a).write(out))
        };
        assert_eq!(addr("10.0.255.7:8080"), "10.0.255.7:8080");
        assert_eq!(addr("[::1]:443"), "[::1]:443");
        let s = text(|out| start_time(out, UNIX_EPOCH + Duration::from_millis(1_764_077_045_123)));
        assert_eq!(s, "2025/11/25 13:24:05.123");
    }

    #[test]
    fn duration_edges() {
        let cases: [(Duration, &str); 18] = [
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(10), "10ns"),
            (Duration::from_nanos(1_000), "1µs"),
            (Duration::from_nanos(1_001), "1.001µs"),
            (Duration::from_nanos(999_999), "999.999µs"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_nanos(1_000_001), "1.000001ms"),
            (Duration::from_nanos(1_100_000), "1.1ms"),
            (Duration::from_nanos(999_999_999), "999.999999ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(59), "59s"),
            (Duration::from_nanos(59_999_999_999), "59.999999999s"),
            // From a minute on, seconds (Go writes 1m0s, 1h2m3.5s).
            (Duration::from_secs(60), "60s"),
            (Duration::from_millis(3_723_500), "3723.5s"),
            (Duration::from_secs(100_000), "100000s"),
            (Duration::from_nanos(u64::MAX), "18446744073.709551615s"),
            // Past u64::MAX nanoseconds, as if u64::MAX.
            (
                Duration::new(18_446_744_073, 709_551_616),
                "18446744073.709551615s",
            ),
            (Duration::MAX, "18446744073.709551615s"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d), want, "{d:?}");
        }
        assert_eq!(text(|out| go_duration(out, None)), "-");
    }

    /// The formatting this module had before it made text on the stack.
    mod before {
        use std::time::Duration;

        pub fn go_duration(out: &mut String, d: Duration) {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            let (unit, scale) = match ns {
                0 => {
                    out.push_str("0s");
                    return;
                }
                n if n < 1_000 => ("ns", 1),
                n if n < 1_000_000 => ("µs", 1_000),
                n if n < 1_000_000_000 => ("ms", 1_000_000),
                _ => ("s", 1_000_000_000),
            };
            let mut digits = itoa::Buffer::new();
            out.push_str(digits.format(ns / scale));
            let mut frac = ns % scale;
            if frac > 0 {
                let mut width = scale.ilog10();
                while frac % 10 == 0 {
                    frac /= 10;
                    width -= 1;
                }
                out.push('.');
                for _ in frac.ilog10() + 1..width {
                    out.push('0');
                }
                out.push_str(digits.format(frac));
            }
            out.push_str(unit);
        }

        pub fn json_string(out: &mut String, s: &str) {
            use std::fmt::Write as _;
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
    }

    /// Every magnitude and digit pattern, as the code before wrote them.
    #[test]
    fn durations_as_before() {
        let mut ns = 1u64;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut cases = vec![0, u64::MAX];
        while let Some(next) = ns.checked_mul(10) {
            for n in [ns - 1, ns, ns + 1, ns * 5, ns + ns / 2] {
                cases.push(n);
            }
            for _ in 0..50 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                cases.push(seed % next);
            }
            ns = next;
        }
        for n in cases {
            let d = Duration::from_nanos(n);
            let mut want = String::new();
            before::go_duration(&mut want, d);
            assert_eq!(duration(d), want, "{n}");
        }
    }

    #[test]
    fn start_times_as_before() {
        let day = 86_400_000;
        for ms in [
            0,
            1,
            999,
            1_000,
            59_999,
            day - 1,
            day,
            951_782_400_123,
            4_102_444_800_000,
        ]
        .into_iter()
        .chain((0..2_000).map(|i| 1_764_077_045_000 + i * 37_003))
        {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            // The date as `date_time` writes it (unchanged), the milliseconds after.
            let mut want = text(|out| date_time(out, ms / 1000));
            want.push_str(&format!(".{:03}", ms % 1000));
            assert_eq!(text(|out| start_time(out, t)), want, "{ms}");
        }
        // The same second again (cached), then another millisecond of it.
        let t = UNIX_EPOCH + Duration::from_millis(1_764_077_045_009);
        assert_eq!(text(|out| start_time(out, t)), "2025/11/25 13:24:05.009");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_077_045_010);
        assert_eq!(text(|out| start_time(out, t)), "2025/11/25 13:24:05.010");
    }

    #[test]
    fn numbers() {
        for n in [
            0, 1, 9, 10, 99, 100, 200, 999, 1_000, 65_535, 99_999, 100_000, 999_999,
        ]
        .into_iter()
        .chain([1_000_000, 4_294_967_295, 4_294_967_296, u64::MAX])
        {
            assert_eq!(text(|out| number(out, n)), n.to_string());
        }
    }

    #[test]
    fn json_lines_escape() {
        let value = "a\"b\\c\u{1}\ty é€\u{7f}\n";
        let mut out = Vec::new();
        json_string(&mut out, value.as_bytes());
        let mut want = String::new();
        before::json_string(&mut want, value);
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(want, "\"a\\\"b\\\\c\\u0001\\u0009y é€\u{7f}\\u000a\"");
        let mut out = Vec::new();
        push_lossy(&mut out, b"ok \xff");
        assert_eq!(String::from_utf8(out).unwrap(), "ok \u{fffd}");
    }

    #[test]
    fn formats_parse_and_render() {
        assert!(parse_format("%nope%").is_err());
        assert!(parse_format("%start_time").is_err());
        let parts = parse_format("a %response_code% %request_header_X-Id% b").unwrap();
        assert_eq!(parts.len(), 5);
        let log = AccessLog {
            parts,
            json_names: Vec::new(),
            json: false,
            sink: Sink::for_path("/dev/null"),
        };
        let addr = |a: &str| a.parse::<SocketAddr>().unwrap().into();
        let mut e = Entry::new("HTTP1", addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        e.responded(404);
        let mut line = Vec::new();
        for p in &log.parts {
            match p {
                Part::Text(t) => line.extend_from_slice(t.as_bytes()),
                Part::Var(v) => render(&mut line, v, &e, &|n| (n == "x-id").then_some(&b"42"[..])),
            }
        }
        assert_eq!(line, b"a 404 42 b");
        assert_eq!(Var::ResponseFlags.name(), "response_flags");
    }

    /// Calls per run of the benches below (`BENCH_N`, default 1M): instructions per
    /// call are the difference of two callgrind runs' totals (`BENCH_N=0` and not)
    /// over N (over 3N for the durations: a line has three).
    fn bench_n() -> u32 {
        std::env::var("BENCH_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000)
    }

    /// A line's three durations, as a local HTTP/1 request has them.
    #[test]
    #[ignore]
    fn bench_go_duration() {
        let ds = [
            Some(Duration::from_nanos(41_873)),
            Some(Duration::from_nanos(312_406)),
            Some(Duration::from_nanos(1_234_567)),
        ];
        let mut out = Vec::with_capacity(64);
        for _ in 0..bench_n() {
            out.clear();
            for d in ds {
                go_duration(&mut out, std::hint::black_box(d));
            }
            std::hint::black_box(&out);
        }
    }

    /// The cached second's path (many requests per second).
    #[test]
    #[ignore]
    fn bench_start_time() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_077_045_123);
        let mut out = Vec::with_capacity(64);
        for _ in 0..bench_n() {
            out.clear();
            start_time(&mut out, std::hint::black_box(t));
            std::hint::black_box(&out);
        }
    }

    /// A whole line of the default format (four IPv4 addresses, three durations).
    #[test]
    #[ignore]
    fn bench_default_line() {
        let log = AccessLog::new("/dev/null", None, false).unwrap();
        let addr = |a: &str| TextedAddr::from(a.parse::<SocketAddr>().unwrap());
        let mut e = Entry::new("HTTP1", addr("127.0.0.1:2045"), addr("127.0.0.1:51234"));
        e.start = UNIX_EPOCH + Duration::from_millis(1_764_077_045_123);
        e.request_received = Some(Duration::from_nanos(41_873));
        e.response_received = Some(Duration::from_nanos(312_406));
        e.ended = Some((
            e.started + Duration::from_nanos(1_234_567),
            Duration::from_nanos(1_234_567),
        ));
        e.upstream_host = Some(addr("127.0.0.1:18080"));
        e.upstream_local = Some(addr("127.0.0.1:40312"));
        e.response_code = 200;
        e.bytes_sent = 240;
        e.bytes_received = 78;
        let mut line = Vec::with_capacity(256);
        log.text_line(&mut line, &e, &|_| None);
        let want = "2025/11/25 13:24:05.123 41.873µs 312.406µs 240 78 HTTP1 200 1.234567ms \
            false 200 127.0.0.1:40312 127.0.0.1:2045 127.0.0.1:51234 127.0.0.1:18080";
        assert_eq!(String::from_utf8_lossy(&line), want);
        for _ in 0..bench_n() {
            line.clear();
            log.text_line(&mut line, std::hint::black_box(&e), &|_| None);
            std::hint::black_box(&line);
        }
    }
}
