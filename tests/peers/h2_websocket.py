"""A WebSocket client over HTTP/2 (RFC 8441 extended CONNECT) for the proxy's tests,
on the `h2` package; WebSocket frames (RFC 6455) are built and read here.

    h2_websocket.py PORT PATH COUNT

Connects to 127.0.0.1:PORT with h2c prior knowledge, waits for the server's
SETTINGS_ENABLE_CONNECT_PROTOCOL, opens `CONNECT :protocol websocket PATH`, then sends
COUNT text and binary messages, each masked, and checks every echo. Prints one JSON
line: {"status", "connect_enabled", "ok", "sent"}; exit 0 when all came back intact.
"""

import json
import os
import socket
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings


def ws_frame(opcode, payload):
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def ws_parse(buf):
    """One unmasked frame from the front of buf: (opcode, payload, rest) or None."""
    if len(buf) < 2:
        return None
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    i = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, i = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, i = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < i + n:
        return None
    return opcode, buf[i:i + n], buf[i + n:]


def main():
    port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    result = {"status": None, "connect_enabled": False, "ok": False, "sent": 0}
    stream_id = None
    pending = b""
    ok = True
    sent = 0
    expected = []

    def send_next():
        nonlocal sent
        i = sent
        message = (0x1, f"message {i}".encode()) if i % 2 == 0 else (0x2, bytes([i % 256]) * (i * 100 + 1))
        expected.append(message)
        conn.send_data(stream_id, ws_frame(*message))
        sent += 1

    while True:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged) and stream_id is None:
                enabled = conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 1
                result["connect_enabled"] = enabled
                if not enabled:
                    print(json.dumps(result))
                    return 1
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, [
                    (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                    (":path", path), (":authority", "ws.test"), ("sec-websocket-version", "13"),
                ])
            elif isinstance(event, h2.events.ResponseReceived):
                result["status"] = int(dict(event.headers)[b":status"])
                if result["status"] != 200:
                    print(json.dumps(result))
                    return 1
                send_next()
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                pending += event.data
                while True:
                    frame = ws_parse(pending)
                    if frame is None:
                        break
                    opcode, payload, pending = frame
                    want = expected.pop(0)
                    ok = ok and (opcode, payload) == want
                    if sent < count:
                        send_next()
                    else:
                        result.update(ok=ok, sent=sent)
                        print(json.dumps(result))
                        conn.close_connection()
                        sock.sendall(conn.data_to_send())
                        return 0 if ok else 1
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                print(json.dumps(result))
                return 1
        sock.sendall(conn.data_to_send())
    print(json.dumps(result))
    return 1


if __name__ == "__main__":
    sys.exit(main())
