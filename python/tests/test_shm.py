"""The shm transport's own rules: fallback without the C extension, and a
corrupted region breaks only the connection (never reads outside it)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import ipcrpc
from ipcrpc import _shm
import test_service_pb2 as pb
import test_service_ipcrpc as svc

from conftest import ServerProcess, child_env

needs_shm = pytest.mark.skipif(not _shm.available(), reason="ipcrpc._native is not built")


def test_without_the_extension_auto_falls_back_to_unix(cpp_server: ServerProcess) -> None:
    code = f"""
import sys
sys.modules["ipcrpc._native"] = None  # as if the C extension had not been built
import ipcrpc
assert ipcrpc.available_transports() == ("unix", "msgq", "fifo"), ipcrpc.available_transports()  # no shm, no shm+sem
with ipcrpc.channel("auto:{cpp_server.sock}") as ch:
    reply = ch.unary_unary("/ipcrpc.test.TestService/Echo")(b"\\x0a\\x01x", timeout=5)
    assert reply.startswith(b"\\x0a\\x01x"), reply  # Response.text == "x"
    assert ch.transport_name() == "unix", ch.transport_name()
try:
    ipcrpc.channel("shm:{cpp_server.sock}").unary_unary("/a.B/C")(b"", timeout=5)
    raise SystemExit("shm without the extension should fail")
except ipcrpc.RpcError as e:
    assert e.code() is ipcrpc.StatusCode.FAILED_PRECONDITION, e
print("OK")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=child_env())
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


@needs_shm
@pytest.mark.parametrize("field", ["head", "magic"])
def test_corrupted_region_is_a_connection_error(any_server: ServerProcess, field: str) -> None:
    with ipcrpc.channel(any_server.address("shm")) as ch:
        stub = svc.TestServiceStub(ch)
        assert stub.Echo(pb.Request(text="a"), timeout=5).text == "a"
        t = ch._conn.transport  # type: ignore[union-attr]
        assert isinstance(t, _shm.ShmTransport)
        result: list = []

        def call() -> None:
            try:
                stub.Echo(pb.Request(delay_ms=200), timeout=10)
                result.append(None)
            except ipcrpc.RpcError as e:
                result.append(e)

        th = threading.Thread(target=call)
        th.start()
        time.sleep(0.05)
        # Corrupt what this side reads: the incoming ring's head, or the magic.
        if field == "head":
            _shm._native.store64(t._mm, t._c + _shm._RING_HEAD, 1 << 62)
        else:
            _shm._native.store64(t._mm, 0, 0)
        th.join(15)
        assert not th.is_alive()
        assert isinstance(result[0], ipcrpc.RpcError) and result[0].code() is ipcrpc.StatusCode.UNAVAILABLE
        assert "shm" in result[0].details()


@needs_shm
def test_ring_size_request_is_honoured(py_server: ServerProcess) -> None:
    with ipcrpc.channel(py_server.address("shm"), ring_bytes=64 * 1024) as ch:
        stub = svc.TestServiceStub(ch)
        # 1 MiB through a 64 KiB ring: the writer waits for space many times.
        r = stub.Echo(pb.Request(payload=b"r" * (1 << 20)), timeout=10)
        assert len(r.payload) == 1 << 20
        assert ch._conn.transport._ring == 64 * 1024  # type: ignore[union-attr]


def test_ring_bytes_validation() -> None:
    assert _shm.valid_ring_bytes(4096) and _shm.valid_ring_bytes(1 << 30)
    for bad in (0, 4095, 6000, 1 << 31, 3 << 12):
        assert not _shm.valid_ring_bytes(bad)


@pytest.mark.skipif(not _shm.semaphores_available(), reason="needs ipcrpc._native and glibc")
def test_overwritten_semaphore_is_a_connection_error(any_server: ServerProcess) -> None:
    # glibc would abort the process on a corrupted sem_t; the check before each
    # wait/post turns it into a broken connection instead.
    with ipcrpc.channel(any_server.address("shm+sem")) as ch:
        stub = svc.TestServiceStub(ch)
        assert stub.Echo(pb.Request(text="a"), timeout=5).text == "a"
        t = ch._conn.transport  # type: ignore[union-attr]
        assert isinstance(t, _shm.ShmTransport) and t.name == "shm+sem"
        sem_off = t._c + 128  # this side's data_ready
        t._mm[sem_off + 8 : sem_off + 12] = b"\xff\xff\xff\xff"
        with pytest.raises(ipcrpc.RpcError) as e:
            stub.Echo(pb.Request(delay_ms=300), timeout=10)  # the reader must sleep: checks the semaphore
        assert e.value.code() is ipcrpc.StatusCode.UNAVAILABLE and "semaphore" in e.value.details()
