"""Generates and imports the Python code for echo.proto.

Each peer process runs protoc (bundled in grpcio-tools) into a fresh temporary
directory, imports the two generated modules and deletes the directory again. So the
code always matches echo.proto and the installed grpcio/protobuf, and nothing
generated is ever kept in the repository or in the venv (about 50 ms per start).
"""

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def load():
    """Returns (echo_pb2, echo_pb2_grpc)."""
    import grpc_tools
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="mosn-echo-pb-")
    try:
        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        rc = protoc.main([
            "grpc_tools.protoc",
            "-I" + HERE,
            "-I" + include,
            "--python_out=" + out,
            "--grpc_python_out=" + out,
            os.path.join(HERE, "echo.proto"),
        ])
        if rc != 0:
            raise RuntimeError("protoc failed on echo.proto (exit %d)" % rc)
        sys.path.insert(0, out)
        try:
            import echo_pb2
            import echo_pb2_grpc
        finally:
            sys.path.remove(out)
        return echo_pb2, echo_pb2_grpc
    finally:
        shutil.rmtree(out, ignore_errors=True)


# gRPC status codes by number (grpc.StatusCode values are (number, name) pairs).
def status_codes():
    import grpc
    return {c.value[0]: c for c in grpc.StatusCode}


MAX_MESSAGE = 8 * 1024 * 1024
