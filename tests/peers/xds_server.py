#!/usr/bin/env python3
"""A scripted xDS v3 control plane for tests: envoy.service.discovery.v3.
AggregatedDiscoveryService on 127.0.0.1:PORT (plaintext HTTP/2), both
StreamAggregatedResources (state of the world, "sotw") and DeltaAggregatedResources
(incremental, "delta"), for any number of clients at once. Runs on the .venv-xds of
scripts/setup.sh (xds-protos, grpcio).

    xds_server.py PORT

PORT 0 picks a free port. The test drives it over stdin, one JSON command per line:

  {"cmd": "snapshot", "id": 1, "version": "v1", "resources": [<Any JSON>, ...]}
      Replaces the whole snapshot (every type at once). Each resource is Envoy's v3
      proto3 JSON with its type, e.g. {"@type": "type.googleapis.com/envoy.config.
      listener.v3.Listener", "name": "l1", ...}; typed_config Anys inside resolve
      (every module of xds-protos is imported). Parsing is strict (an unknown field
      is an error). A resource's name is its `name` (`cluster_name` for a
      ClusterLoadAssignment). Answers {"event": "snapshot", "id", "version",
      "resources": {type_url: [names]}} or {"event": "error", "id", "message"} (the
      previous snapshot stays).
  {"cmd": "drop", "id": 2}
      Ends every open stream with UNAVAILABLE (clients reconnect). Answers
      {"event": "dropped", "id", "streams": n}.

Once serving it prints "READY <port>", then one JSON line per thing that happens
(every line carries "event"; stream lines carry "stream" (a number), "variant"
("sotw" | "delta") and "node_id"):

  {"event": "connect", "stream", "variant", "node": {"id", "cluster", "user_agent"}}
      on the first message of a stream (it carries the node).
  {"event": "request", "stream", "variant", "node_id", "type_url", "response_nonce",
   "error_detail": {"code", "message"} | null, "ack": true | false | null,
   "response_version": <version of the response the nonce answers> | null,
   "stale": true (only when the nonce is not the stream's latest for the type: the
   request is then ignored, as go-control-plane does),
   sotw: "version_info", "resource_names";
   delta: "subscribe", "unsubscribe", "initial_resource_versions"}
      ack: true = ACK of response_nonce, false = NACK (error_detail set), null = no
      nonce (a first request, e.g. after a reconnect).
  {"event": "response", "stream", "variant", "node_id", "type_url", "version",
   "nonce", "resources": [names], "removed": [names] (delta only; [] for sotw)}
  {"event": "disconnect", "stream", "variant", "node_id"}

How it answers, as Envoy's control planes do:
- Nothing is sent before the first snapshot, and a type only after the client asked
  for it. LDS and CDS are wildcard when the names are empty (the legacy wildcard)
  or include "*"; RDS, EDS, SDS (every other type) by name: an empty list there
  means nothing.
- sotw: a response carries every subscribed resource of the type that exists, with
  the snapshot version as version_info. It is sent on a first request (new stream),
  when the subscribed set of names changes, and when a new snapshot changes what
  the client's subscription covers (a type whose resources did not change is not
  resent, so it keeps the version it had). A named type (RDS, EDS, ...) with none of
  its names in the snapshot is not answered (SotW cannot remove named resources); a
  wildcard type is, empty when it has nothing (that removes all).
- delta: a response carries the subscribed resources whose per-resource version
  (a hash of the resource's canonical JSON) differs from what the client has
  (initial_resource_versions on a new stream; then what was sent), and in
  removed_resources the names the client has that left the snapshot. A newly
  subscribed name is sent again even if it was sent before. The first request of a
  wildcard type is answered even when there is nothing (so the client's
  initialization does not wait for initial_fetch_timeout). system_version_info is
  the snapshot version.
- A NACK is logged and not answered: what was NACKed counts as sent, so only a new
  snapshot that changes the resource sends it again. Order of the types when a
  snapshot changes several: SDS, CDS, EDS, LDS, RDS, then any other.

Stops when stdin closes, or on SIGTERM or SIGINT (peer_lifetime.py).
"""

import argparse
import hashlib
import importlib
import itertools
import json
import os
import queue
import sys
import threading
from concurrent import futures

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
from google.protobuf import any_pb2, json_format, symbol_database  # noqa: E402
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2  # noqa: E402

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SDS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
WILDCARD_TYPES = (LDS, CDS)
TYPE_ORDER = (SDS, CDS, EDS, LDS, RDS)
MAX_MESSAGE = 64 * 1024 * 1024


def import_all_protos():
    """Imports every generated module of xds-protos (envoy, xds, udpa, validate: about
    640, about a second), so that any "@type" in a resource's JSON resolves:
    HttpConnectionManager, Router, TcpProxy, Upstream/DownstreamTlsContext,
    HttpProtocolOptions, the listener filters (tls_inspector, original_dst,
    proxy_protocol, http_inspector), access loggers, TypedStruct ..."""
    import envoy

    root = os.path.dirname(os.path.dirname(os.path.abspath(envoy.__file__)))
    for top in ("envoy", "xds", "udpa", "validate"):
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith("_pb2.py"):
                    mod = os.path.relpath(os.path.join(d, f[:-3]), root).replace(os.sep, ".")
                    try:
                        importlib.import_module(mod)
                    except Exception as e:  # one broken module must not stop the rest
                        emit_err("xds_server: cannot import %s: %s" % (mod, e))


_out_lock = threading.Lock()


def emit(obj):
    line = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=False)
    with _out_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


def emit_err(text):
    with _out_lock:
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class Resource:
    __slots__ = ("name", "any", "version")

    def __init__(self, name, any_msg, version):
        self.name, self.any, self.version = name, any_msg, version


class Snapshot:
    def __init__(self, version, by_type):
        self.version = version
        self.by_type = by_type  # type_url -> {name: Resource}

    def of(self, type_url):
        return self.by_type.get(type_url, {})


def parse_resource(obj):
    if not isinstance(obj, dict) or "@type" not in obj:
        raise ValueError("a resource must be a JSON object with \"@type\": %r" % (obj,))
    any_msg = any_pb2.Any()
    json_format.ParseDict(obj, any_msg)
    full_name = any_msg.type_url.rsplit("/", 1)[-1]
    cls = symbol_database.Default().GetSymbol(full_name)
    msg = cls()
    any_msg.Unpack(msg)
    fields = msg.DESCRIPTOR.fields_by_name
    if "name" in fields:
        name = msg.name
    elif "cluster_name" in fields:
        name = msg.cluster_name
    else:
        raise ValueError("%s has no name field" % full_name)
    if not name:
        raise ValueError("a %s without a name" % full_name)
    canonical = json.dumps(
        json_format.MessageToDict(msg, preserving_proto_field_name=True), sort_keys=True
    )
    version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return any_msg.type_url, Resource(name, any_msg, version)


class ControlPlane:
    def __init__(self):
        self.lock = threading.Lock()
        self.snapshot = None
        self.streams = {}
        self.stream_ids = itertools.count(1)
        self.nonces = itertools.count(1)

    def new_nonce(self):
        with self.lock:
            return str(next(self.nonces))

    def open(self, stream):
        with self.lock:
            stream.id = next(self.stream_ids)
            self.streams[stream.id] = stream

    def close(self, stream):
        with self.lock:
            self.streams.pop(stream.id, None)

    def command(self, line):
        try:
            cmd = json.loads(line)
        except ValueError as e:
            emit({"event": "error", "id": None, "message": "bad command JSON: %s" % e})
            return
        cid = cmd.get("id") if isinstance(cmd, dict) else None
        try:
            kind = cmd["cmd"]
            if kind == "snapshot":
                self.set_snapshot(cid, str(cmd["version"]), cmd.get("resources", []))
            elif kind == "drop":
                with self.lock:
                    streams = list(self.streams.values())
                for s in streams:
                    s.inbox.put(("drop", None))
                emit({"event": "dropped", "id": cid, "streams": len(streams)})
            else:
                raise ValueError("unknown cmd %r" % (kind,))
        except Exception as e:
            emit({"event": "error", "id": cid, "message": "%s: %s" % (type(e).__name__, e)})

    def set_snapshot(self, cid, version, resources):
        by_type = {}
        for obj in resources:
            type_url, res = parse_resource(obj)
            named = by_type.setdefault(type_url, {})
            if res.name in named:
                raise ValueError("two %s named %r" % (type_url, res.name))
            named[res.name] = res
        snap = Snapshot(version, by_type)
        with self.lock:
            # The event first, under the lock, so that it precedes every response
            # it causes.
            self.snapshot = snap
            emit({
                "event": "snapshot",
                "id": cid,
                "version": version,
                "resources": {t: sorted(r) for t, r in sorted(by_type.items())},
            })
            streams = list(self.streams.values())
        for s in streams:
            s.inbox.put(("update", None))


PLANE = ControlPlane()


def ordered(type_urls):
    first = [t for t in TYPE_ORDER if t in type_urls]
    return first + sorted(t for t in type_urls if t not in TYPE_ORDER)


def is_wildcard_type(type_url):
    return type_url in WILDCARD_TYPES


def status_json(req):
    if not req.HasField("error_detail"):
        return None
    return {"code": req.error_detail.code, "message": req.error_detail.message}


class Stream:
    """One ADS stream: its requests come from a reader thread through `inbox`, as
    do snapshot updates and drops; the handler's generator answers them in order."""

    variant = None

    def __init__(self, context):
        self.id = None
        self.context = context
        self.inbox = queue.Queue()
        self.node = None
        self.node_id = None
        self.types = {}
        self.closed = threading.Event()

    def base(self, event):
        return {"event": event, "stream": self.id, "variant": self.variant, "node_id": self.node_id}

    def run(self, request_iterator):
        PLANE.open(self)

        def on_done():
            if not self.closed.is_set():
                self.closed.set()
                PLANE.close(self)
                self.inbox.put(("eof", None))
                emit(self.base("disconnect"))

        self.context.add_callback(on_done)

        def read():
            try:
                for req in request_iterator:
                    self.inbox.put(("req", req))
            except Exception:
                pass
            self.inbox.put(("eof", None))

        threading.Thread(target=read, daemon=True).start()
        while True:
            kind, req = self.inbox.get()
            if kind == "eof":
                return
            if kind == "drop":
                self.context.abort(grpc.StatusCode.UNAVAILABLE, "dropped by the test")
            if kind == "req":
                if self.node is None and req.HasField("node"):
                    n = req.node
                    ua = n.user_agent_name
                    ver = n.user_agent_version or (
                        "%d.%d.%d" % (
                            n.user_agent_build_version.version.major_number,
                            n.user_agent_build_version.version.minor_number,
                            n.user_agent_build_version.version.patch,
                        )
                        if n.HasField("user_agent_build_version") else ""
                    )
                    self.node = {"id": n.id, "cluster": n.cluster,
                                 "user_agent": "%s/%s" % (ua, ver) if ua else ""}
                    self.node_id = n.id
                    ev = self.base("connect")
                    del ev["node_id"]
                    ev["node"] = self.node
                    emit(ev)
                out = self.on_request(req)
            else:  # update
                out = []
                for t in ordered(list(self.types)):
                    out.extend(self.respond(t, force=False))
            for resp in out:
                yield resp


class SotwType:
    def __init__(self):
        self.subscribed = False
        self.wildcard = False
        self.names = set()
        self.sent = None  # {name: resource version} last sent, None before the first
        self.nonce = None  # the latest nonce sent
        self.nonce_versions = {}


class SotwStream(Stream):
    variant = "sotw"

    def on_request(self, req):
        t = req.type_url
        ts = self.types.setdefault(t, SotwType())
        nonce = req.response_nonce
        err = status_json(req)
        ack, stale = None, False
        if nonce:
            if nonce != ts.nonce:
                stale = True
            else:
                ack = err is None
        ev = self.base("request")
        ev.update({
            "type_url": t,
            "version_info": req.version_info,
            "response_nonce": nonce,
            "resource_names": list(req.resource_names),
            "error_detail": err,
            "ack": ack,
            "response_version": ts.nonce_versions.get(nonce),
        })
        if stale:
            ev["stale"] = True
        emit(ev)
        if stale:
            return []
        names = set(req.resource_names)
        wildcard = "*" in names or (is_wildcard_type(t) and not names)
        names.discard("*")
        changed = not ts.subscribed or names != ts.names or wildcard != ts.wildcard
        ts.subscribed, ts.names, ts.wildcard = True, names, wildcard
        if ack is False and not changed:
            return []
        return self.respond(t, force=not nonce)

    def respond(self, t, force):
        ts = self.types.get(t)
        snap = PLANE.snapshot
        if ts is None or not ts.subscribed or snap is None:
            return []
        view = [r for n, r in sorted(snap.of(t).items()) if ts.wildcard or n in ts.names]
        sig = {r.name: r.version for r in view}
        if not force and sig == ts.sent:
            return []
        if not view and not ts.wildcard:
            return []
        nonce = PLANE.new_nonce()
        resp = discovery_pb2.DiscoveryResponse(
            version_info=snap.version, type_url=t, nonce=nonce,
            resources=[r.any for r in view],
        )
        ts.sent, ts.nonce = sig, nonce
        ts.nonce_versions[nonce] = snap.version
        ev = self.base("response")
        ev.update({"type_url": t, "version": snap.version, "nonce": nonce,
                   "resources": [r.name for r in view], "removed": []})
        emit(ev)
        return [resp]


class DeltaType:
    def __init__(self):
        self.wildcard = False
        self.names = set()
        self.client = {}  # name -> the version the client has (as far as we know)
        self.nonce_versions = {}
        self.answered = False


class DeltaStream(Stream):
    variant = "delta"

    def on_request(self, req):
        t = req.type_url
        first = t not in self.types
        ts = self.types.setdefault(t, DeltaType())
        nonce = req.response_nonce
        err = status_json(req)
        ack, stale = None, False
        if nonce:
            if nonce in ts.nonce_versions:
                ack = err is None
            else:
                stale = True
        ev = self.base("request")
        ev.update({
            "type_url": t,
            "response_nonce": nonce,
            "subscribe": list(req.resource_names_subscribe),
            "unsubscribe": list(req.resource_names_unsubscribe),
            "initial_resource_versions": dict(req.initial_resource_versions),
            "error_detail": err,
            "ack": ack,
            "response_version": ts.nonce_versions.get(nonce),
        })
        if stale:
            ev["stale"] = True
        emit(ev)
        if stale:
            return []
        subscribe = list(req.resource_names_subscribe)
        if first:
            ts.client = dict(req.initial_resource_versions)
            if not subscribe and is_wildcard_type(t):
                ts.wildcard = True
        for n in subscribe:
            if n == "*":
                ts.wildcard = True
            else:
                if not first:
                    ts.client.pop(n, None)  # a resubscription is answered again
                ts.names.add(n)
        for n in req.resource_names_unsubscribe:
            if n == "*":
                ts.wildcard = False
            else:
                ts.names.discard(n)
                if not ts.wildcard:
                    ts.client.pop(n, None)
        if not ts.wildcard:
            for n in [n for n in ts.client if n not in ts.names]:
                del ts.client[n]
        return self.respond(t, force=first)

    def respond(self, t, force):
        ts = self.types.get(t)
        snap = PLANE.snapshot
        if ts is None or snap is None:
            return []
        have = snap.of(t)
        add = [r for n, r in sorted(have.items())
               if (ts.wildcard or n in ts.names) and ts.client.get(n) != r.version]
        removed = sorted(n for n in ts.client if n not in have)
        if not add and not removed and not (ts.wildcard and not ts.answered):
            return []
        for r in add:
            ts.client[r.name] = r.version
        for n in removed:
            del ts.client[n]
        ts.answered = True
        nonce = PLANE.new_nonce()
        resp = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=snap.version, type_url=t, nonce=nonce,
            resources=[discovery_pb2.Resource(name=r.name, version=r.version, resource=r.any)
                       for r in add],
            removed_resources=removed,
        )
        ts.nonce_versions[nonce] = snap.version
        ev = self.base("response")
        ev.update({"type_url": t, "version": snap.version, "nonce": nonce,
                   "resources": [r.name for r in add], "removed": removed})
        emit(ev)
        return [resp]


class Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def StreamAggregatedResources(self, request_iterator, context):
        return SotwStream(context).run(request_iterator)

    def DeltaAggregatedResources(self, request_iterator, context):
        return DeltaStream(context).run(request_iterator)


def main():
    ap = argparse.ArgumentParser(description="mosn-rs test xDS control plane (ADS)")
    ap.add_argument("port", type=int)
    ap.add_argument("--uds", help="also listen on this unix socket path (as pilot-agent's XDS)")
    args = ap.parse_args()

    import peer_lifetime

    import_all_protos()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=128),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Ads(), server)
    try:
        port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    except RuntimeError as e:
        port, err = 0, e
    else:
        err = "port in use"
    if not port:
        emit_err("xds_server: cannot listen on 127.0.0.1:%d: %s" % (args.port, err))
        return 2
    if args.uds and not server.add_insecure_port("unix:%s" % args.uds):
        emit_err("xds_server: cannot listen on unix:%s" % args.uds)
        return 2
    server.start()

    def on_line(line):
        line = line.strip()
        if line:
            try:
                PLANE.command(line)
            except Exception as e:  # keep reading commands whatever happens
                emit({"event": "error", "id": None, "message": repr(e)})

    emit("READY %d" % port)
    stop = peer_lifetime.stop_event(on_line)
    while not stop.wait(0.2):
        pass
    server.stop(grace=0.3).wait(2)
    # os._exit: see peer_lifetime.stop_event.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
