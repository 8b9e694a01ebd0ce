"""A frame-level HTTP/2 client for attack-resistance tests: `h2_frames.py PORT CASE [N]`.

It opens a plain socket to 127.0.0.1:PORT, sends the h2c preface and an empty SETTINGS,
then exactly the frames of CASE (built by hand, HPACK included, so that it can send what
no well-behaved client would), and reads everything the proxy sends back on a second
thread. It prints one JSON line:

    {"case": ..., "frames": [...], "counts": {"PING": 10000, ...}, "closed": bool,
     "settings": {...}, "same_conn": STATUS|null, "after": STATUS|null}

- `frames`: what the proxy sent, in order, except PING, SETTINGS ACK and WINDOW_UPDATE
  frames (they are in `counts`, as are RST_STREAM and GOAWAY by error code, e.g.
  `"RST_STREAM:PROTOCOL_ERROR"`); only the first 400 and any GOAWAY are listed; each `{"type", "stream", "flags"}` plus `error` (name)
  for RST_STREAM and GOAWAY, `last_stream` and `debug` for GOAWAY, `status` and
  `end_stream` for HEADERS, `end_stream` and `len` for DATA.
- `settings`: the proxy's first SETTINGS frame (names as in RFC 9113), and
  `connection_window_increment`: its first WINDOW_UPDATE on stream 0.
- `closed`: the proxy closed the connection (EOF or reset) before the case ended.
- `same_conn`: when the connection survived, the status of a normal `GET /ok` sent on
  it afterwards; `after`: the status of `GET /ok` on a new connection (is the proxy
  still serving?).

Cases (stream 1 unless said otherwise):

- `normal`: GET /ok. `te_trailers`: GET with `te: trailers` (allowed).
- Malformed requests (RFC 9113 §8): `uppercase_name`, `connection`, `keep_alive`,
  `proxy_connection`, `transfer_encoding`, `upgrade`, `te_gzip`, `missing_method`,
  `missing_scheme`, `missing_path`, `missing_path_no_authority`, `relative_path`,
  `empty_path`, `duplicate_method`, `duplicate_path`, `late_pseudo`,
  `status_in_request`, `unknown_pseudo`, `cl_data_longer`, `cl_data_shorter`,
  `cl_end_stream_on_headers`, `cl_data_longer_late` (DATA 300 ms after HEADERS).
- Limits: `headers N` (N header fields, the last 41 of them cookie crumbs when N > 60),
  `header_list_too_large` (17 fields of 4000 bytes over HEADERS + CONTINUATION),
  `hpack_bomb N` (one 4000-byte dynamic table entry, then referenced N times).
- `concurrent N`: waits for the proxy's SETTINGS, then opens N streams to /hold (an
  upstream that never answers) without waiting.
- `rapid_reset N`: N times HEADERS (GET /direct) + RST_STREAM(CANCEL), in one write;
  `rapid_reset_paced N`: the same in writes of 10 streams, 2 ms apart.
- `ping_flood N`, `settings_flood N`: N PINGs / SETTINGS in one write; waits for the
  N acknowledgements (or the end of the connection).
- `continuation_flood N`: HEADERS without END_HEADERS, then N CONTINUATION frames
  without END_HEADERS.
- `empty_data_flood N`: a POST to /hold, then N empty DATA frames on it.
- `empty_headers_flood N`: N streams opened by an empty HEADERS frame each;
  `malformed_flood N`: N streams without `:path`; both in writes of 10 streams.
"""

import json
import socket
import sys
import threading
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
TYPE_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE",
              "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
          "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
          "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
          "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
SETTING_NAMES = {1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
                 4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE",
                 8: "ENABLE_CONNECT_PROTOCOL"}
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
MAX_FRAME = 16384
CASE_LIMIT = 10.0  # seconds a case may wait for what it expects


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream.to_bytes(4, "big") + payload


# ---- HPACK, by hand: literals without indexing, so any name (even an invalid one)
# goes out exactly as given.

def hp_int(value, prefix_bits, first_byte):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = [first_byte | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hp_str(s):
    b = s.encode() if isinstance(s, str) else s
    return hp_int(len(b), 7, 0) + b


def literal(name, value):
    """Literal header field without indexing, new name."""
    return b"\x00" + hp_str(name) + hp_str(value)


def literal_indexed(name, value):
    """Literal header field with incremental indexing (adds a dynamic table entry)."""
    return b"\x40" + hp_str(name) + hp_str(value)


def indexed(index):
    return hp_int(index, 7, 0x80)


def block(fields):
    return b"".join(literal(n, v) for n, v in fields)


BASE = [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test"), (":path", "/ok")]


def request(path="/ok", method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "h2.test"),
            (":path", path)] + list(extra)


def headers_frames(stream, header_block, end_stream=True):
    """HEADERS (+ CONTINUATION) frames carrying `header_block`."""
    chunks = [header_block[i:i + MAX_FRAME] for i in range(0, len(header_block), MAX_FRAME)]
    chunks = chunks or [b""]
    out = b""
    for i, chunk in enumerate(chunks):
        flags = END_HEADERS if i == len(chunks) - 1 else 0
        if i == 0:
            out += frame(HEADERS, flags | (END_STREAM if end_stream else 0), stream, chunk)
        else:
            out += frame(CONTINUATION, flags, stream, chunk)
    return out


class Conn:
    """One client connection; a thread reads and records every frame."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CASE_LIMIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.frames = []
        self.counts = {}
        self.settings = None
        self.conn_window_increment = None
        self.closed = False
        self.decoder = hpack.Decoder()
        self.partial = None  # (stream, flags, block) of a HEADERS awaiting CONTINUATION
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def send(self, data):
        try:
            with self.lock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cond:
                    self.closed = True
                    self.cond.notify_all()
                return
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags = buf[3], buf[4]
                stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload = buf[9:9 + length]
                buf = buf[9 + length:]
                self._frame(kind, flags, stream, payload)

    def _frame(self, kind, flags, stream, payload):
        name = TYPE_NAMES[kind] if kind < len(TYPE_NAMES) else "UNKNOWN"
        f = {"type": name, "stream": stream, "flags": flags}
        listed = True
        if kind == SETTINGS:
            if flags & ACK:
                listed = False
            else:
                values = {}
                for i in range(0, len(payload) - 5, 6):
                    ident = int.from_bytes(payload[i:i + 2], "big")
                    values[SETTING_NAMES.get(ident, str(ident))] = \
                        int.from_bytes(payload[i + 2:i + 6], "big")
                f["settings"] = values
                if self.settings is None:
                    self.settings = values
                self.send(frame(SETTINGS, ACK, 0))
        elif kind == PING:
            listed = False
        elif kind == WINDOW_UPDATE:
            listed = False
            if stream == 0 and self.conn_window_increment is None:
                self.conn_window_increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        elif kind == RST_STREAM:
            f["error"] = error_name(int.from_bytes(payload[:4], "big"))
        elif kind == GOAWAY:
            f["last_stream"] = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            f["error"] = error_name(int.from_bytes(payload[4:8], "big"))
            f["debug"] = payload[8:].decode("latin-1")
        elif kind == DATA:
            f["len"] = len(payload)
            f["end_stream"] = bool(flags & END_STREAM)
        elif kind in (HEADERS, CONTINUATION):
            if kind == HEADERS:
                self.partial = (stream, flags, self._header_block(flags, payload))
            elif self.partial:
                s, fl, b = self.partial
                self.partial = (s, fl, b + payload)
            if not flags & END_HEADERS:
                return
            s, fl, b = self.partial
            self.partial = None
            f = {"type": "HEADERS", "stream": s, "flags": fl, "end_stream": bool(fl & END_STREAM)}
            try:
                for k, v in self.decoder.decode(b):
                    if k == ":status":
                        f["status"] = int(v)
            except Exception as e:  # noqa: BLE001 - reported, not fatal
                f["hpack_error"] = repr(e)
        with self.cond:
            self.counts[name] = self.counts.get(name, 0) + 1
            if "error" in f:
                key = name + ":" + f["error"]
                self.counts[key] = self.counts.get(key, 0) + 1
            if listed:
                self.frames.append(f)
            self.cond.notify_all()

    @staticmethod
    def _header_block(flags, payload):
        start, end = 0, len(payload)
        if flags & 0x8:  # PADDED
            end -= payload[0]
            start = 1
        if flags & 0x20:  # PRIORITY
            start += 5
        return payload[start:end]

    def wait(self, pred, limit=CASE_LIMIT):
        """Waits until pred(self) holds or the connection closed; returns pred(self)."""
        deadline = time.monotonic() + limit
        with self.cond:
            while not pred(self) and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return pred(self)

    def settle(self, quiet=0.15):
        """Waits until no frame arrived for `quiet` seconds."""
        while True:
            with self.cond:
                n = sum(self.counts.values())
            time.sleep(quiet)
            with self.cond:
                if sum(self.counts.values()) == n or self.closed:
                    return

    def stream_done(self, stream):
        """The stream ended: RST_STREAM, END_STREAM, or a GOAWAY."""
        for f in self.frames:
            if f["type"] == "GOAWAY":
                return True
            if f["stream"] == stream and (f["type"] == "RST_STREAM" or f.get("end_stream")):
                return True
        return False

    def status_of(self, stream):
        for f in self.frames:
            if f["stream"] == stream and f["type"] == "HEADERS" and "status" in f:
                return f["status"]
        return None

    def get_ok(self, stream):
        """A normal GET /ok on `stream`; its status, or None."""
        if not self.send(headers_frames(stream, block(request()))):
            return None
        self.wait(lambda c: c.stream_done(stream))
        return self.status_of(stream)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def error_name(code):
    return ERRORS[code] if code < len(ERRORS) else str(code)


MALFORMED = {
    "uppercase_name": BASE + [("X-Upper", "1")],
    "connection": BASE + [("connection", "keep-alive")],
    "keep_alive": BASE + [("keep-alive", "timeout=5")],
    "proxy_connection": BASE + [("proxy-connection", "keep-alive")],
    "transfer_encoding": BASE + [("transfer-encoding", "chunked")],
    "upgrade": BASE + [("upgrade", "websocket")],
    "te_gzip": BASE + [("te", "gzip")],
    "te_trailers": BASE + [("te", "trailers")],
    "missing_method": [(":scheme", "http"), (":authority", "h2.test"), (":path", "/ok")],
    "missing_scheme": [(":method", "GET"), (":authority", "h2.test"), (":path", "/ok")],
    "missing_path": [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test")],
    "missing_path_no_authority": [(":method", "GET"), (":scheme", "http")],
    "relative_path": request(path="ok"),
    "empty_path": request(path=""),
    "duplicate_method": BASE + [(":method", "GET")],
    "duplicate_path": [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test"),
                       (":path", "/ok"), (":path", "/other")],
    "late_pseudo": [(":method", "GET"), (":scheme", "http"), (":authority", "h2.test"),
                    ("x-before", "1"), (":path", "/ok")],
    "status_in_request": BASE + [(":status", "200")],
    "unknown_pseudo": BASE + [(":foo", "bar")],
    "normal": BASE,
}


def send_paced(c, n, stream_frames, pause):
    """Sends `stream_frames(id)` for streams 1, 3, ... 2n-1, 10 streams a write and
    `pause` seconds apart, until the connection fails or a GOAWAY has come."""
    for start in range(0, n, 10):
        data = b"".join(stream_frames(2 * i + 1) for i in range(start, min(start + 10, n)))
        if not c.send(data) or c.counts.get("GOAWAY"):
            break
        time.sleep(pause)


def run(port, case, n):
    c = Conn(port)
    s = 1
    if case in MALFORMED:
        c.send(headers_frames(s, block(MALFORMED[case])))
        c.wait(lambda c: c.stream_done(s))
    elif case == "cl_data_longer":
        c.send(headers_frames(s, block(request(method="POST", extra=[("content-length", "3")])),
                              end_stream=False) + frame(DATA, END_STREAM, s, b"hello"))
        c.wait(lambda c: c.stream_done(s))
    elif case == "cl_data_shorter":
        c.send(headers_frames(s, block(request(method="POST", extra=[("content-length", "10")])),
                              end_stream=False) + frame(DATA, END_STREAM, s, b"hello"))
        c.wait(lambda c: c.stream_done(s))
    elif case == "cl_end_stream_on_headers":
        c.send(headers_frames(s, block(request(method="POST", extra=[("content-length", "5")]))))
        c.wait(lambda c: c.stream_done(s))
    elif case == "cl_data_longer_late":
        c.send(headers_frames(s, block(request(method="POST", extra=[("content-length", "3")])),
                              end_stream=False))
        time.sleep(0.3)
        c.send(frame(DATA, END_STREAM, s, b"hello"))
        c.wait(lambda c: c.stream_done(s))
    elif case == "headers":
        regular = max(n - 41, 0) if n > 60 else n
        extra = [("x-h%d" % i, "v") for i in range(regular)]
        extra += [("cookie", "c%d=v" % i) for i in range(n - regular)]
        c.send(headers_frames(s, block(request(extra=extra))))
        c.wait(lambda c: c.stream_done(s))
    elif case == "header_list_too_large":
        extra = [("x-big-%d" % i, "v" * 4000) for i in range(17)]
        c.send(headers_frames(s, block(request(extra=extra))))
        c.wait(lambda c: c.stream_done(s))
    elif case == "hpack_bomb":
        # One 4000-byte entry in the dynamic table (index 62), referenced n times:
        # a few bytes on the wire, n * 4038 bytes of header list when decoded.
        bomb = block(request()) + literal_indexed("x-bomb", "b" * 4000) + indexed(62) * n
        c.send(headers_frames(s, bomb))
        c.wait(lambda c: c.stream_done(s))
    elif case == "concurrent":
        c.wait(lambda c: c.settings is not None)
        data = b"".join(headers_frames(2 * i + 1, block(request(path="/hold")))
                        for i in range(n))
        c.send(data)
        last = 2 * n - 1
        c.wait(lambda c: c.stream_done(last), limit=5)
        c.settle(0.3)
        s = last
    elif case == "rapid_reset":
        one = block(request(path="/direct"))
        data = b"".join(headers_frames(2 * i + 1, one) +
                        frame(RST_STREAM, 0, 2 * i + 1, (8).to_bytes(4, "big"))
                        for i in range(n))
        c.send(data)
        c.wait(lambda c: c.counts.get("GOAWAY", 0) > 0, limit=3)
        s = 2 * n - 1
    elif case == "rapid_reset_paced":
        # The same, 10 streams per write, 2 ms apart: the proxy accepts each stream
        # before its reset arrives, so h2's pending-accept guard never fills up.
        one = block(request(path="/direct"))
        send_paced(c, n, lambda sid: headers_frames(sid, one) +
                   frame(RST_STREAM, 0, sid, (8).to_bytes(4, "big")), pause=0.002)
        c.wait(lambda c: c.counts.get("GOAWAY", 0) > 0, limit=3)
        s = 2 * n - 1
    elif case in ("empty_headers_flood", "malformed_flood"):
        # N streams, each one HEADERS frame: empty (no pseudo-headers at all), or
        # without :path (a rule mosn-rs checks, not h2).
        one = b"" if case == "empty_headers_flood" else \
            block(MALFORMED["missing_path_no_authority"])
        # Paced (10 streams per write) so that the streams are accepted as they come
        # rather than refused for exceeding MAX_CONCURRENT_STREAMS.
        send_paced(c, n, lambda sid: frame(HEADERS, END_STREAM | END_HEADERS, sid, one),
                   pause=0.001)
        c.wait(lambda c: c.counts.get("GOAWAY", 0) > 0, limit=5)
        s = 2 * n - 1
    elif case == "ping_flood":
        data = b"".join(frame(PING, 0, 0, i.to_bytes(8, "big")) for i in range(n))
        c.send(data)
        c.wait(lambda c: c.counts.get("PING", 0) >= n or c.counts.get("GOAWAY", 0) > 0)
    elif case == "settings_flood":
        c.wait(lambda c: c.settings is not None)
        base = c.counts.get("SETTINGS", 0)
        # Every SETTINGS sets INITIAL_WINDOW_SIZE (a change the proxy must apply).
        data = b"".join(frame(SETTINGS, 0, 0, (4).to_bytes(2, "big") +
                              (65535 + i % 2).to_bytes(4, "big")) for i in range(n))
        c.send(data)
        # Acks are counted with the proxy's own SETTINGS frames; ours are acked.
        c.wait(lambda c: c.counts.get("SETTINGS", 0) - base >= n or
               c.counts.get("GOAWAY", 0) > 0)
    elif case == "continuation_flood":
        data = frame(HEADERS, END_STREAM, s, block(request()))
        data += b"".join(frame(CONTINUATION, 0, s, literal("x-c%d" % i, "v"))
                         for i in range(n))
        c.send(data)
        c.wait(lambda c: c.counts.get("GOAWAY", 0) > 0)
    elif case == "empty_data_flood":
        c.send(headers_frames(s, block(request(path="/hold", method="POST")), end_stream=False))
        c.send(b"".join(frame(DATA, 0, s, b"") for _ in range(n)))
        c.wait(lambda c: c.counts.get("GOAWAY", 0) > 0, limit=3)
    else:
        raise SystemExit("unknown case %r" % case)
    c.settle()
    out = {
        "case": case,
        "frames": c.frames[:400] + [f for f in c.frames[400:] if f["type"] == "GOAWAY"],
        "counts": c.counts,
        "closed": c.closed,
        "settings": dict(c.settings or {}, connection_window_increment=c.conn_window_increment),
    }
    # The connection after the case: still serving a normal request?
    out["same_conn"] = None
    if not c.closed and not c.counts.get("GOAWAY"):
        out["same_conn"] = c.get_ok(s + 2)
    c.close()
    after = Conn(port)
    out["after"] = after.get_ok(1)
    after.close()
    return out


def main():
    port = int(sys.argv[1])
    case = sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    print(json.dumps(run(port, case, n)), flush=True)


if __name__ == "__main__":
    main()
