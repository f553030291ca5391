"""The C++ client (tests/python_interop/interop_client.cc) against the Python
server, each in its own process."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import ServerProcess, cpp_binary, start_py_server, _finish

CASES = [
    "unary",
    "metadata",
    "every_error_code",
    "server_stream",
    "server_stream_error",
    "client_stream",
    "bidi",
    "bidi_flow_control",
    "unimplemented",
    "client_deadline",
    "cancel",
    "large_messages",
    "fd_open",
    "fd_read",
]


def _run(address: str, case: str, server: ServerProcess) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(cpp_binary("tests/python_interop/interop_client")), address, case, str(server.pid)],
        capture_output=True, text=True, timeout=60,
    )


import ipcrpc

TRANSPORTS = ["unix", "auto", "fifo"] + [t for t in ("shm", "shm+sem", "msgq") if t in ipcrpc.available_transports()]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", CASES)
def test_cpp_client_against_python_server(py_server: ServerProcess, case: str, transport: str) -> None:
    r = _run(py_server.address(transport), case, py_server)
    assert r.returncode == 0 and f"PASS {case}" in r.stdout, r.stdout + r.stderr


def _start_case(server: ServerProcess, case: str, transport: str = "unix") -> subprocess.Popen:
    p = subprocess.Popen(
        [str(cpp_binary("tests/python_interop/interop_client")), server.address(transport), case, str(server.pid)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "CALLING"
    return p


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_python_server_killed_gives_cpp_client_unavailable(transport: str) -> None:
    server = start_py_server()
    try:
        client = _start_case(server, "server_killed", transport)
        time.sleep(0.3)
        server.kill9()
        out, err = client.communicate(timeout=30)
        assert client.returncode == 0 and "PASS" in out, out + err
    finally:
        _finish(server)


def test_python_server_graceful_stop_finishes_calls_in_flight() -> None:
    server = start_py_server(["--grace_ms=5000"])
    try:
        client = _start_case(server, "graceful_stop")
        time.sleep(0.2)  # the call (500 ms in the handler) is in flight
        assert server.stop() == 0
        out, err = client.communicate(timeout=30)
        assert client.returncode == 0 and "PASS" in out, out + err
        assert not server.sock.exists()  # the socket file is removed
    finally:
        _finish(server)
