"""Compression between the C++ implementation and this package, which does
not compress and does not offer to (PROTOCOL.md §2, "Compressed messages"):
a C++ peer that would compress must send it plain messages."""

from __future__ import annotations

import subprocess

import pytest

import ipcrpc
import test_service_pb2 as pb
import test_service_ipcrpc as svc

from conftest import ServerProcess, child_env, cpp_binary, start_cpp_server, _finish

TRANSPORTS = ["unix", "fifo"] + [t for t in ("shm", "shm+sem", "msgq") if t in ipcrpc.available_transports()]
PAYLOAD = b"a compressible payload, repeated. " * 8000


@pytest.fixture(scope="module")
def compressing_cpp_server():  # type: ignore[no-untyped-def]
    s = start_cpp_server(["--compress"])  # gzip responses to every client that accepts them
    yield s
    _finish(s)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_python_client_gets_plain_messages_from_a_compressing_cpp_server(
    compressing_cpp_server: ServerProcess, transport: str
) -> None:
    with ipcrpc.channel(compressing_cpp_server.address(transport)) as ch:
        stub = svc.TestServiceStub(ch)
        r = stub.Echo(pb.Request(text="z", payload=PAYLOAD), timeout=10)
        assert (r.text, r.payload) == ("z", PAYLOAD)
        # The handler asks for gzip on this call too: still plain to us.
        r = stub.Echo(pb.Request(payload=PAYLOAD), timeout=10, metadata=[("response-compression", "gzip")])
        assert r.payload == PAYLOAD
        got = [m.payload for m in stub.ServerStream(pb.Request(count=3, payload=PAYLOAD), timeout=10)]
        assert got == [PAYLOAD] * 3
        out = list(stub.Bidi(iter([pb.Request(text=str(i), payload=PAYLOAD) for i in range(3)]), timeout=10))
        assert [m.payload for m in out] == [PAYLOAD] * 3


@pytest.mark.parametrize("transport", ["unix", "shm"])
@pytest.mark.parametrize("case", ["unary", "client_stream", "bidi", "large_messages"])
def test_cpp_client_asking_for_gzip_sends_plain_messages_to_python(
    py_server: ServerProcess, case: str, transport: str
) -> None:
    if transport not in ipcrpc.available_transports() and transport != "unix":
        pytest.skip(f"{transport} not available")
    r = subprocess.run(
        [str(cpp_binary("tests/python_interop/interop_client")), py_server.address(transport), case, str(py_server.pid)],
        capture_output=True, text=True, timeout=60, env={**child_env(), "INTEROP_COMPRESSION": "gzip"},
    )
    assert r.returncode == 0 and f"PASS {case}" in r.stdout, r.stdout + r.stderr
