"""How a long-running test peer (grpc_server.py, h2_upstream.py, ...) knows when to stop.

The Rust test that starts a peer holds its stdin open; the peer stops when stdin
closes (so it never outlives the test, even one that was killed), or on SIGTERM or
SIGINT.
"""

import signal
import sys
import threading


def stop_event(on_line=None):
    """An Event set when stdin closes or SIGTERM or SIGINT comes.

    Call it from the main thread (it installs the signal handlers there). A peer
    then waits with `while not stop.wait(0.2): pass` and leaves with os._exit: the
    stdin reader thread stays blocked in read(), which makes a normal interpreter
    shutdown abort ("could not acquire lock for <stdin>").

    With `on_line`, stdin is also a command channel: every line read (bytes, with its
    newline) is handed to `on_line` on the reader thread (xds_server.py).
    """
    stop = threading.Event()

    def watch_stdin():
        try:
            if on_line is None:
                while sys.stdin.buffer.read(4096):
                    pass
            else:
                for line in iter(sys.stdin.buffer.readline, b""):
                    on_line(line)
        except (OSError, ValueError):
            pass
        stop.set()

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=watch_stdin, daemon=True).start()
    return stop
