"""Refused connections (PROTOCOL.md §4 "Refusing a connection").

The C++ test_server and the Python servers refuse a peer their access policy
does not admit (by default: another uid than their own, except root) with one
GOAWAY as the first frame.  The client here runs as uid 65534 in a forked
child, so these tests need root.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import ipcrpc
import ipcrpc.aio
import test_service_pb2 as pb
import test_service_ipcrpc as svc
from google.protobuf import text_format  # noqa: F401  (imported before the fork: uid 65534
from ipcrpc import _client, _fifo, _msgq, _shm, _transport  # noqa: F401  may not read the venv)
from ipcrpc._proto import config_pb2  # noqa: F401

from conftest import HERE, SERVERS, SPAWNED, child_env, start_py_server, start_server_with_config as _start_server, stop_server_with_config as _stop

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a client as uid 65534: needs root")


@pytest.fixture(scope="module", params=list(SERVERS))
def default_server(request: pytest.FixtureRequest) -> Iterator[str]:
    proc, name, d = _start_server(request.param, "")
    yield name
    _stop(proc, d)


@pytest.fixture(scope="module", params=[(k, rule) for k in SERVERS for rule in ("allowed_uids", "allowed_gids")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def nobody_allowed_server(request: pytest.FixtureRequest) -> Iterator[str]:
    kind, rule = request.param
    proc, name, d = _start_server(kind, f"server {{ {rule}: {NOBODY} }}\n")
    yield name
    _stop(proc, d)


def _call(address: str, use_aio: bool) -> str:
    """One Echo call; "OK <text>" or "<CODE> <details>"."""
    try:
        if use_aio:
            async def run() -> str:
                async with ipcrpc.aio.channel(address) as ch:
                    return (await svc.TestServiceStub(ch).Echo(pb.Request(text="hi"), timeout=5)).text
            text = asyncio.run(run())
        else:
            with ipcrpc.channel(address) as ch:
                text = svc.TestServiceStub(ch).Echo(pb.Request(text="hi"), timeout=5).text
        return f"OK {text}"
    except ipcrpc.RpcError as e:
        return f"{e.code().name} {e.details()}"


def _call_as(uid: int, address: str, use_aio: bool) -> str:
    """_call() in a forked child running as ``uid``/``uid``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.write(w, _call(address, use_aio).encode())
            status = 0
        except BaseException as e:  # report, then leave
            os.write(w, f"CHILD-ERROR {type(e).__name__}: {e}".encode())
        finally:
            os._exit(status)
    os.close(w)
    try:
        out = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
    finally:
        os.close(r)
        if pid > 0:
            os.waitpid(pid, 0)
    return out.decode()


@needs_root
@pytest.mark.parametrize("use_aio", [False, True], ids=["sync", "aio"])
@pytest.mark.parametrize("transport", ["unix", "shm"])
def test_other_uid_is_refused_permission_denied(default_server: str, transport: str, use_aio: bool) -> None:
    out = _call_as(NOBODY, f"{transport}:@{default_server}", use_aio)
    assert out.startswith("PERMISSION_DENIED "), out
    assert "refused" in out and str(NOBODY) in out, out


@needs_root
@pytest.mark.parametrize("use_aio", [False, True], ids=["sync", "aio"])
@pytest.mark.parametrize("transport", ["unix", "shm"])
def test_allowed_uid_is_served(nobody_allowed_server: str, transport: str, use_aio: bool) -> None:
    assert _call_as(NOBODY, f"{transport}:@{nobody_allowed_server}", use_aio) == "OK hi"


@needs_root
def test_root_is_served_by_default(default_server: str) -> None:
    assert _call(f"unix:@{default_server}", use_aio=False) == "OK hi"


@pytest.mark.parametrize("service", ["test", "aio"])
def test_python_server_socket_file_is_0600_by_default(service: str) -> None:
    s = start_py_server([f"--service={service}"])
    try:
        assert stat.S_IMODE(os.stat(s.sock).st_mode) == 0o600
    finally:
        s.stop()
        shutil.rmtree(s.tmpdir, ignore_errors=True)


def test_python_server_socket_mode_from_the_config_file() -> None:
    d = Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-"))
    try:
        (d / "config.textproto").write_text(f"server {{ socket_mode: {0o660} }}\n")
        env = child_env()
        env["IPCRPC_CONFIG"] = str(d / "config.textproto")
        proc = subprocess.Popen([sys.executable, str(HERE / "serve.py"), f"unix:{d / 's.sock'}"], stdout=subprocess.PIPE, env=env, text=True)
        SPAWNED.add(proc.pid)
        try:
            assert proc.stdout is not None and "READY" in proc.stdout.readline()
            assert stat.S_IMODE(os.stat(d / "s.sock").st_mode) == 0o660
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


_REFUSING_SERVER = textwrap.dedent("""
    import socket, sys
    from ipcrpc import _frame, _wirepb
    code = int(sys.argv[2])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\\0" + sys.argv[1]); s.listen(1)
    print("READY", flush=True)
    c, _ = s.accept()
    c.sendall(_frame.encode_frame(_frame.FrameType.GOAWAY, 0, _wirepb.GoAway(0, code, "not you").encode()))
    c.close(); s.close()
    print("CLOSED", flush=True)
""")


@pytest.mark.parametrize("code,expected", [(7, "PERMISSION_DENIED"), (0, "UNAVAILABLE"), (99, "UNAVAILABLE")])
def test_refusal_read_after_the_first_write_failed(code: int, expected: str) -> None:
    """The server refused and closed before our HELLO went out: the HELLO fails
    with EPIPE, yet the client reports the refusal (§4)."""
    name = f"ipcrpc-pytest-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen([sys.executable, "-c", _REFUSING_SERVER, name, str(code)], stdout=subprocess.PIPE, env=child_env(), text=True)
    SPAWNED.add(proc.pid)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        t = _transport.connect(_transport.Address("unix", "\0" + name), "unix", 5.0)
        assert proc.stdout.readline().strip() == "CLOSED"  # the refusal is sent and the socket closed
        conn = _client._Connection(t, "unix:@test", 1 << 22, 1 << 20)
        with pytest.raises(ipcrpc.RpcError) as e:
            conn.wait_ready(time.monotonic() + 5)
        assert e.value.code().name == expected
        if code == 7:
            assert "not you" in e.value.details()
        conn.close()
    finally:
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
