"""A WebSocket peer for the proxy's Upgrade tests, built on the `websockets` package.

    ws_echo.py server PORT        echo server on 127.0.0.1:PORT; prints "READY" when up
    ws_echo.py client URL COUNT   sends COUNT text and binary messages, checks each echo,
                                  prints one JSON line, exit 0 when all came back intact
"""

import asyncio
import json
import sys

import websockets


async def serve(port):
    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", port, max_size=2**22):
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def client(url, count):
    sent = 0
    ok = True
    async with websockets.connect(url, open_timeout=5, max_size=2**22) as ws:
        for i in range(count):
            message = f"message {i}" if i % 2 == 0 else bytes([i % 256]) * (i * 100 + 1)
            await ws.send(message)
            back = await asyncio.wait_for(ws.recv(), 5)
            ok = ok and back == message
            sent += 1
    return {"ok": ok, "sent": sent}


def main():
    if sys.argv[1] == "server":
        asyncio.run(serve(int(sys.argv[2])))
        return 0
    try:
        result = asyncio.run(client(sys.argv[2], int(sys.argv[3])))
    except Exception as e:  # the JSON line says what failed
        result = {"ok": False, "error": repr(e)}
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
