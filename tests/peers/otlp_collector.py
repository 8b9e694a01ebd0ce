#!/usr/bin/env python3
"""An OTLP/gRPC test collector on the generated code of the opentelemetry-proto
package: serves opentelemetry.proto.collector.trace.v1.TraceService/Export on
127.0.0.1:PORT in plaintext HTTP/2 (gzip-compressed requests too).

    otlp_collector.py PORT
    otlp_collector.py --selftest-client HOST:PORT

PORT 0 picks a free port. Once serving it prints "READY <port>" on stdout; after that
one JSON line per span received:
    {"service": <resource attribute service.name or "">, "trace_id": <32 hex>,
     "span_id": <16 hex>, "parent_span_id": <16 hex or "">, "trace_state": "...",
     "name": "...", "kind": <int, SpanKind: 1 internal, 2 server, 3 client ...>,
     "start_ns": <int>, "end_ns": <int>, "attributes": {k: plain value},
     "status_code": <int: 0 unset, 1 ok, 2 error>, "status_message": "...",
     "scope": <instrumentation scope name>, "flags": <int>,
     "events": [{"name", "time_ns", "attributes"}]}
Attribute values are plain JSON: string, bool, int, float, a list for an array
value, an object for a kvlist, base64 for bytes (as in OTLP/JSON), null when unset.
Every Export is answered with an empty ExportTraceServiceResponse. The metrics and
logs services' Export are sinks (logged on stderr as `CALL <service>/Export`).
Stops when stdin closes, or on SIGTERM or SIGINT (peer_lifetime.py).

--selftest-client sends one ExportTraceServiceRequest to HOST:PORT with a fixed span
(service "selftest", trace id 0102..10, span id a1..a8, parent b1..b8, trace state
"k=v", name "selftest-span", kind 2, start 1000000000, end 1500000000, attributes
{"http.method": "GET", "n": 7, "ok": true, "ratio": 0.5, "list": ["a", 1]}, status 2
"boom") and prints {"ok": true} or {"ok": false, "error": ...}; exit 0 when it held.
"""

import argparse
import base64
import json
import os
import sys
import threading
from concurrent import futures

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.resource.v1 import resource_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402

MAX_MESSAGE = 16 * 1024 * 1024
_out_lock = threading.Lock()


def emit(line, stream=None):
    with _out_lock:
        try:
            out = stream or sys.stdout
            out.write(line + "\n")
            out.flush()
        except (OSError, ValueError):
            pass


def plain(v):
    """An AnyValue as a plain JSON value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: plain(kv.value) for kv in kvs}


def span_json(service, scope, s):
    return {
        "service": service,
        "trace_id": s.trace_id.hex(),
        "span_id": s.span_id.hex(),
        "parent_span_id": s.parent_span_id.hex(),
        "trace_state": s.trace_state,
        "name": s.name,
        "kind": s.kind,
        "start_ns": s.start_time_unix_nano,
        "end_ns": s.end_time_unix_nano,
        "attributes": attrs(s.attributes),
        "status_code": s.status.code,
        "status_message": s.status.message,
        "scope": scope,
        "flags": s.flags,
        "events": [
            {"name": e.name, "time_ns": e.time_unix_nano, "attributes": attrs(e.attributes)}
            for e in s.events
        ],
    }


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, req, ctx):
        for rs in req.resource_spans:
            service = attrs(rs.resource.attributes).get("service.name") or ""
            for ss in rs.scope_spans:
                for s in ss.spans:
                    emit(json.dumps(span_json(service, ss.scope.name, s)))
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, req, ctx):
        emit("CALL opentelemetry.proto.collector.metrics.v1.MetricsService/Export", sys.stderr)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, req, ctx):
        emit("CALL opentelemetry.proto.collector.logs.v1.LogsService/Export", sys.stderr)
        return logs_service_pb2.ExportLogsServiceResponse()


def any_value(x):
    if isinstance(x, bool):
        return common_pb2.AnyValue(bool_value=x)
    if isinstance(x, int):
        return common_pb2.AnyValue(int_value=x)
    if isinstance(x, float):
        return common_pb2.AnyValue(double_value=x)
    if isinstance(x, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(i) for i in x]))
    return common_pb2.AnyValue(string_value=str(x))


def kvs(d):
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in d.items()]


def selftest_client(target):
    span = trace_pb2.Span(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(0xA1, 0xA9)),
        parent_span_id=bytes(range(0xB1, 0xB9)),
        trace_state="k=v",
        name="selftest-span",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1000000000,
        end_time_unix_nano=1500000000,
        attributes=kvs({"http.method": "GET", "n": 7, "ok": True, "ratio": 0.5, "list": ["a", 1]}),
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
    )
    req = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
        trace_pb2.ResourceSpans(
            resource=resource_pb2.Resource(attributes=kvs({"service.name": "selftest"})),
            scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="selftest-scope"),
                                              spans=[span])],
        )
    ])
    try:
        with grpc.insecure_channel(target) as ch:
            trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=10)
    except grpc.RpcError as e:
        print(json.dumps({"ok": False, "error": "%s: %s" % (e.code(), e.details())}), flush=True)
        return 1
    print(json.dumps({"ok": True}), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description="mosn-rs test OTLP/gRPC trace collector")
    ap.add_argument("port", nargs="?", type=int)
    ap.add_argument("--selftest-client", metavar="HOST:PORT")
    args = ap.parse_args()
    if args.selftest_client:
        return selftest_client(args.selftest_client)
    if args.port is None:
        ap.error("PORT is required")

    import peer_lifetime

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)

    try:
        port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    except RuntimeError as e:
        port, err = 0, e
    else:
        err = "port in use"
    if not port:
        sys.stderr.write("otlp_collector: cannot listen on 127.0.0.1:%d: %s\n" % (args.port, err))
        return 2
    server.start()

    stop = peer_lifetime.stop_event()
    emit("READY %d" % port)
    while not stop.wait(0.2):
        pass
    server.stop(grace=0.3).wait(2)
    # os._exit: see peer_lifetime.stop_event.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
