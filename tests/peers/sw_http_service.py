#!/usr/bin/env python3
"""An HTTP/1.1 upstream traced by the real SkyWalking Python agent (apache-skywalking):
the stdlib http.server (ThreadingHTTPServer + BaseHTTPRequestHandler), which the
agent's default plugin `sw_http_server` instruments. For each request that plugin
reads the `sw8` (and `sw8-correlation`) header, opens an Entry span (operation = the
path, layer Http, component 7000 "General", tags http.method, http.url and
http.status_code) that continues the caller's trace: same trace id and a CrossProcess
ref to the caller's segment and span. An `sw8` the agent finds invalid (not 8 fields,
a field empty, a span id that is no number) makes it trace nothing for that request;
one with a field that is not padded standard base64 makes the plugin raise, and the
connection closes without an answer.

    sw_http_service.py PORT COLLECTOR NAME

Listens on 127.0.0.1:PORT (0: any); the agent reports as service NAME over gRPC to
COLLECTOR (host:port, e.g. sw_collector.py). Every request (any method, any path) is
answered 200 with the JSON body
    {"name": NAME, "method": "GET", "path": "/x?y", "sw8": <sw8 header or null>,
     "traceparent": <traceparent header or null>}
over keep-alive HTTP/1.1. Segments are reported as soon as the request ends (the
agent's segment reporter polls its queue every 20 ms and streams each segment at once).

Prints "READY <port>" on stdout once the agent has started and the server listens;
the agent logs on stderr. Stops when stdin closes, or on SIGTERM or SIGINT
(peer_lifetime.py).
"""

import argparse
import json
import os
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_lifetime  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="mosn-rs test HTTP upstream under the SkyWalking Python agent")
    ap.add_argument("port", type=int)
    ap.add_argument("collector", help="host:port of the SkyWalking collector (gRPC)")
    ap.add_argument("name", help="the service name the agent reports")
    args = ap.parse_args()

    from skywalking import agent, config

    config.init(
        agent_collector_backend_services=args.collector,
        agent_protocol="grpc",
        agent_name=args.name,
        agent_instance_name="%s-%d" % (args.name, os.getpid()),
        agent_logging_level=os.environ.get("SW_TEST_LOG", "WARNING"),
        # A report stream stays open at most ~1 s once its first segment was sent
        # (each segment is streamed at once); then the next one opens.
        agent_queue_timeout=1,
        # Nothing here for the profiler, the meter or the log reporter to do; off, so
        # the collector sees the segments and the heartbeats only.
        agent_profile_active=False,
        agent_meter_reporter_active=False,
        agent_log_reporter_active=False,
        # Only the http.server plugin: the others would only log that their library is
        # missing, or instrument urllib/websockets/grpc calls nobody makes here.
        agent_disable_plugins=[r"(?!sw_http_server$)"],
        # No path is skipped: the default skips .html, .js, .png ... (and "" would
        # skip every path: it becomes the pattern "^.+(?:)$").
        agent_ignore_suffix=".mosn-test-traces-every-path",
    )
    agent.start()

    # Imported after agent.start(), as an application would: the plugin patches the
    # class BaseHTTPRequestHandler, so the order does not matter, but this is the
    # documented way.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    name = args.name

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: no line per request on stderr
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = json.dumps({
                "name": name,
                "method": self.command,
                "path": self.path,
                "sw8": self.headers.get("sw8"),
                "traceparent": self.headers.get("traceparent"),
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        # The plugin wraps these do_* methods (bound methods of the handler) only.
        def do_GET(self):
            self._answer()

        def do_HEAD(self):
            self._answer()

        def do_POST(self):
            self._answer()

        def do_PUT(self):
            self._answer()

        def do_DELETE(self):
            self._answer()

        def do_PATCH(self):
            self._answer()

        def do_OPTIONS(self):
            self._answer()

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    try:
        httpd = Server(("127.0.0.1", args.port), Handler)
    except OSError as e:
        sys.stderr.write("sw_http_service: cannot listen on 127.0.0.1:%d: %s\n" % (args.port, e))
        return 2
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    stop = peer_lifetime.stop_event()
    print("READY %d" % httpd.server_address[1], flush=True)
    while not stop.wait(0.2):
        pass
    # os._exit: see peer_lifetime.stop_event (segments still queued are dropped; a
    # test waits for what it needs at the collector first).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
