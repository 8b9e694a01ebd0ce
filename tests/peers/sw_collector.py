#!/usr/bin/env python3
"""A SkyWalking test collector: the gRPC side of an OAP server (the v3 data-collect
protocol), on 127.0.0.1:PORT in plaintext HTTP/2, for the real SkyWalking Python agent
(sw_http_service.py) and for mosn-rs's SkyWalking tracer.

    sw_collector.py PORT

PORT 0 picks a free port. Once serving it prints "READY <port>" on stdout; after that
one JSON line per trace segment received (TraceSegmentReportService/collect, a
client stream: printed as each message arrives, not when the stream ends; and
collectInSync), e.g.
    {"trace_id": "...", "segment_id": "...", "service": "up", "instance": "...",
     "spans": [{"span_id": 0, "parent_span_id": -1, "operation": "/hello",
                "peer": "127.0.0.1:5555", "span_type": "Entry", "span_layer": "Http",
                "component_id": 7000, "is_error": false, "start_time": <ms>,
                "end_time": <ms>, "tags": {"http.method": "GET", ...},
                "logs": [{"time": <ms>, "data": {...}}],
                "refs": [{"ref_type": "CrossProcess", "trace_id": "...",
                          "parent_segment_id": "...", "parent_span_id": 0,
                          "parent_service": "...", "parent_instance": "...",
                          "parent_endpoint": "...", "network_address": "..."}]}]}
span_type is Entry, Exit or Local; span_layer Unknown, Database, RPCFramework, Http,
MQ, Cache or FAAS; ref_type CrossProcess or CrossThread (the enum names of
Tracing.proto).

Every other method of every service in the protocol (ManagementService
reportInstanceProperties and keepAlive, ConfigurationDiscoveryService
fetchConfigurations, MeterReportService, LogReportService, ProfileTask, EventService,
JVM/CLR metrics, SpanAttachedEventReportService, ...; with the package skywalking.v3
and the package-less names of the *Compat protos, as the OAP serves them) is a sink
that answers like an OAP with nothing to say: an empty Commands (or the method's empty
answer). Each of those calls is logged on stderr as `CALL <service>/<method> <json>`
(for the management calls: the service and instance it names).

The protocol code is the generated code that ships inside the apache-skywalking
package (skywalking.protocol); the services and their methods are read from its
descriptors. Stops when stdin closes, or on SIGTERM or SIGINT (peer_lifetime.py).
"""

import argparse
import importlib
import json
import os
import pkgutil
import sys
import threading
from concurrent import futures

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
import peer_lifetime  # noqa: E402
import skywalking.protocol  # noqa: E402
from google.protobuf import message_factory  # noqa: E402
from skywalking.protocol.language_agent import Tracing_pb2  # noqa: E402

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


def enum_name(enum, value):
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


def segment_json(seg):
    return {
        "trace_id": seg.traceId,
        "segment_id": seg.traceSegmentId,
        "service": seg.service,
        "instance": seg.serviceInstance,
        "spans": [
            {
                "span_id": s.spanId,
                "parent_span_id": s.parentSpanId,
                "operation": s.operationName,
                "peer": s.peer,
                "span_type": enum_name(Tracing_pb2.SpanType, s.spanType),
                "span_layer": enum_name(Tracing_pb2.SpanLayer, s.spanLayer),
                "component_id": s.componentId,
                "is_error": s.isError,
                "start_time": s.startTime,
                "end_time": s.endTime,
                "tags": {t.key: t.value for t in s.tags},
                "logs": [{"time": lg.time, "data": {d.key: d.value for d in lg.data}} for lg in s.logs],
                "refs": [
                    {
                        "ref_type": enum_name(Tracing_pb2.RefType, r.refType),
                        "trace_id": r.traceId,
                        "parent_segment_id": r.parentTraceSegmentId,
                        "parent_span_id": r.parentSpanId,
                        "parent_service": r.parentService,
                        "parent_instance": r.parentServiceInstance,
                        "parent_endpoint": r.parentEndpoint,
                        "network_address": r.networkAddressUsedAtPeer,
                    }
                    for r in s.refs
                ],
            }
            for s in seg.spans
        ],
    }


def emit_segment(seg):
    emit(json.dumps(segment_json(seg)))


def log_call(service, method, request):
    """One stderr line per sink call; the management calls name their instance."""
    info = {}
    if request is not None:
        for field in ("service", "serviceInstance"):
            if field in request.DESCRIPTOR.fields_by_name:
                info[field] = getattr(request, field)
    emit("CALL %s/%s %s" % (service, method, json.dumps(info)), sys.stderr)


def services():
    """Every service descriptor of the generated modules in skywalking.protocol."""
    found = {}
    pkg = skywalking.protocol
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if not m.name.endswith("_pb2"):
            continue
        mod = importlib.import_module(m.name)
        for svc in mod.DESCRIPTOR.services_by_name.values():
            found[svc.full_name] = svc
    return found


def handler_for(service, method):
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    short = service.name
    trace = short == "TraceSegmentReportService"

    if method.server_streaming:
        # None in the protocol today; answer with an empty stream.
        def stream_out(req_or_iter, ctx):
            if method.client_streaming:
                for _ in req_or_iter:
                    pass
            log_call(service.full_name, method.name, None)
            return iter(())

        if method.client_streaming:
            return grpc.stream_stream_rpc_method_handler(
                stream_out, request_deserializer=req_cls.FromString,
                response_serializer=resp_cls.SerializeToString)
        return grpc.unary_stream_rpc_method_handler(
            stream_out, request_deserializer=req_cls.FromString,
            response_serializer=resp_cls.SerializeToString)

    if method.client_streaming:
        def stream_in(req_iter, ctx):
            n = 0
            for req in req_iter:
                n += 1
                if trace and method.name == "collect":
                    emit_segment(req)
            if not (trace and method.name == "collect"):
                emit("CALL %s/%s %s" % (service.full_name, method.name, json.dumps({"messages": n})),
                     sys.stderr)
            return resp_cls()

        return grpc.stream_unary_rpc_method_handler(
            stream_in, request_deserializer=req_cls.FromString,
            response_serializer=resp_cls.SerializeToString)

    def unary(req, ctx):
        if trace and method.name == "collectInSync":
            for seg in req.segments:
                emit_segment(seg)
        else:
            log_call(service.full_name, method.name, req)
        return resp_cls()

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=req_cls.FromString,
        response_serializer=resp_cls.SerializeToString)


def main():
    ap = argparse.ArgumentParser(description="mosn-rs test SkyWalking collector (OAP gRPC side)")
    ap.add_argument("port", type=int)
    args = ap.parse_args()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    handlers = []
    for name, svc in sorted(services().items()):
        methods = {m.name: handler_for(svc, m) for m in svc.methods}
        handlers.append(grpc.method_handlers_generic_handler(name, methods))
    server.add_generic_rpc_handlers(tuple(handlers))

    try:
        port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    except RuntimeError as e:
        port, err = 0, e
    else:
        err = "port in use"
    if not port:
        sys.stderr.write("sw_collector: cannot listen on 127.0.0.1:%d: %s\n" % (args.port, err))
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
