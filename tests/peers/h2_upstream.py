#!/usr/bin/env python3
"""A scripted h2c upstream (HTTP/2 with prior knowledge, Python `h2`) for the proxy's
retry and GOAWAY tests.

    h2_upstream.py PORT [--goaway-after N [--goaway-skip K]] [--refuse-first]
                   [--reset-first] [--stall-first] [--status-sequence 503,200]
                   [--log FILE]

It listens on 127.0.0.1:PORT (0: any free port), prints "READY <port>" on stdout, then
one JSON line per event (on stdout, or appended to FILE with --log):

    {"event": "request", "seq": 3, "conn": 1, "stream": 5, "method": "GET",
     "path": "/x", "authority": "a", "content_length": null, "body": 0,
     "sha256": "e3b0...", "answer": 200}
    {"event": "goaway", "conn": 1, "last_stream": 3, "answered": [3], "dropped": [5, 7, 9]}

`seq` counts complete requests over the server's life (1, 2, ...), `conn` numbers
connections in accept order (1, 2, ...), `content_length` is the request's header
(or null), `body` the length of the request body received and `sha256` its digest
(hex). A request is logged once its stream has ended (headers and the whole body
received); `answer` is the status it got, or "refused" (RST_STREAM REFUSED_STREAM),
"reset" (RST_STREAM INTERNAL_ERROR), "stalled" (never answered) or "held" (kept for
--goaway-after; the goaway line tells its fate).

Every answer has the body `conn=<c> stream=<id> method=<m> path=<p> body=<len>`
(len: request body bytes received) and the headers `x-conn: <c>`, `content-length`.

- `--status-sequence 503,503,200`: the i-th answered request gets the i-th status; the
  last one repeats. Default: 200 for all.
- `--refuse-first`: the very first request the server sees is refused (RST_STREAM
  REFUSED_STREAM: "not processed, send it again") once it is complete, body included;
  later ones are answered.
- `--reset-first`: the first request is reset with INTERNAL_ERROR (a failure after
  the upstream may have processed it); later ones are answered.
- `--stall-first`: the first request is never answered (for per-try timeouts).
- `--goaway-after N`: on the first connection only, after the first K requests
  (`--goaway-skip K`, default 0, answered normally, e.g. a warm-up), requests are held
  until N have arrived; then the server sends GOAWAY (NO_ERROR) whose last stream id
  is the first held stream, answers the held streams up to it, leaves the others
  unanswered (the client must send them again elsewhere), and closes the connection
  once that is flushed. Later connections behave normally.

The server exits on SIGTERM or SIGINT, and when its stdin reaches EOF (run it with
stdin open, so that a test that dies never leaves it behind).
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from hyperframe.frame import GoAwayFrame

import peer_lifetime


class Server:
    def __init__(self, args):
        self.args = args
        self.statuses = [int(s) for s in args.status_sequence.split(",") if s.strip()] or [200]
        self.lock = threading.Lock()
        self.conns = 0
        self.seq = 0
        self.answered = 0
        self.first_seen = False
        self.out = open(args.log, "a", buffering=1) if args.log else sys.stdout

    def emit(self, record):
        line = json.dumps(record, sort_keys=True)
        with self.lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass

    def next_conn(self):
        with self.lock:
            self.conns += 1
            return self.conns

    def next_request(self):
        """(seq, first request ever?)"""
        with self.lock:
            self.seq += 1
            first = not self.first_seen
            self.first_seen = True
            return self.seq, first

    def next_status(self):
        with self.lock:
            i = min(self.answered, len(self.statuses) - 1)
            self.answered += 1
            return self.statuses[i]


class Connection:
    def __init__(self, server, sock, number):
        self.server = server
        self.sock = sock
        self.number = number
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.requests = {}  # stream id -> {"method", "path", "authority", "body"}
        self.done_requests = 0  # complete requests on this connection
        self.held = []  # (stream id, record) kept for --goaway-after
        self.goaway = server.args.goaway_after if number == 1 else 0
        self.closing = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self):
        try:
            self.serve()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def serve(self):
        self.h2.initiate_connection()
        self.flush()
        while not self.closing:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                try:
                    self.flush()
                except OSError:
                    pass
                break
            for event in events:
                self.on_event(event)
                if self.closing:
                    break
            if not self.closing:
                try:
                    self.flush()
                except OSError:
                    break
        if self.closing:
            self.linger()

    def on_event(self, event):
        if isinstance(event, h2.events.RequestReceived):
            h = dict(event.headers)
            self.requests[event.stream_id] = {
                "method": h.get(":method", ""),
                "path": h.get(":path", ""),
                "authority": h.get(":authority", h.get("host", "")),
                "content_length": h.get("content-length"),
                "body": 0,
                "digest": hashlib.sha256(),
            }
        elif isinstance(event, h2.events.DataReceived):
            req = self.requests.get(event.stream_id)
            if req is not None:
                req["body"] += len(event.data)
                req["digest"].update(event.data)
            if event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.complete(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.requests.pop(event.stream_id, None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closing = True

    def complete(self, stream_id):
        req = self.requests.pop(stream_id, None)
        if req is None:
            return
        args = self.server.args
        seq, first = self.server.next_request()
        self.done_requests += 1
        req["sha256"] = req.pop("digest").hexdigest()
        record = {"event": "request", "seq": seq, "conn": self.number, "stream": stream_id}
        record.update(req)
        if first and args.refuse_first:
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            record["answer"] = "refused"
        elif first and args.reset_first:
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            record["answer"] = "reset"
        elif first and args.stall_first:
            record["answer"] = "stalled"
        elif self.goaway and self.done_requests > args.goaway_skip:
            record["answer"] = "held"
            self.held.append((stream_id, req))
            self.server.emit(record)
            if len(self.held) >= self.goaway:
                self.send_goaway()
            return
        else:
            record["answer"] = self.answer(stream_id, req)
        self.server.emit(record)

    def answer(self, stream_id, req):
        status = self.server.next_status()
        body = ("conn=%d stream=%d method=%s path=%s body=%d" % (
            self.number, stream_id, req["method"], req["path"], req["body"])).encode()
        self.h2.send_headers(stream_id, [
            (":status", str(status)),
            ("content-type", "text/plain"),
            ("content-length", str(len(body))),
            ("x-conn", str(self.number)),
        ])
        self.h2.send_data(stream_id, body, end_stream=True)
        return status

    def send_goaway(self):
        last = self.held[0][0]
        answered, dropped = [], []
        for stream_id, req in self.held:
            if stream_id <= last:
                self.answer(stream_id, req)
                answered.append(stream_id)
            else:
                dropped.append(stream_id)
        # GOAWAY first (as nginx does), then the answers of the streams it keeps; the
        # h2 state machine allows no frames after its own GOAWAY, so this one is built
        # by hand and written ahead of what h2 has queued.
        goaway = GoAwayFrame(0, last_stream_id=last, error_code=0).serialize()
        self.sock.sendall(goaway + self.h2.data_to_send())
        self.server.emit({"event": "goaway", "conn": self.number, "last_stream": last,
                          "answered": answered, "dropped": dropped})
        self.closing = True

    def linger(self):
        """Closes after the peer has read everything: shut down the sending side, then
        read and drop until the peer closes (1 s at most), so no unread bytes turn the
        close into a TCP reset that could destroy the GOAWAY."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(1.0)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description="mosn-rs test h2c upstream")
    ap.add_argument("port", type=int)
    ap.add_argument("--goaway-after", type=int, default=0)
    ap.add_argument("--goaway-skip", type=int, default=0)
    ap.add_argument("--refuse-first", action="store_true")
    ap.add_argument("--reset-first", action="store_true")
    ap.add_argument("--stall-first", action="store_true")
    ap.add_argument("--status-sequence", default="200")
    ap.add_argument("--log")
    args = ap.parse_args()

    server = Server(args)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", args.port))
    except OSError as e:
        sys.stderr.write("h2_upstream: cannot listen on 127.0.0.1:%d: %s\n" % (args.port, e))
        return 2
    listener.listen(128)
    port = listener.getsockname()[1]

    def accept_loop():
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(server, sock, server.next_conn())
            threading.Thread(target=conn.run, daemon=True).start()

    stop = peer_lifetime.stop_event()
    threading.Thread(target=accept_loop, daemon=True).start()

    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    while not stop.wait(0.2):
        pass
    # os._exit: see peer_lifetime.stop_event.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
