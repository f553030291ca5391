"""ipcrpc.aio: the asyncio client against the C++, Python and asyncio
servers, and the asyncio server against the C++ client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

import ipcrpc
import ipcrpc.aio
import test_service_ipcrpc as svc
import test_service_pb2 as pb
from google.protobuf import empty_pb2

from conftest import ServerProcess, cpp_binary, start_cpp_server, start_py_server, _finish
from test_cpp_client import CASES

Code = ipcrpc.StatusCode


@pytest.fixture(params=["cpp", "python", "aio"], scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    s = {"cpp": start_cpp_server, "python": start_py_server, "aio": lambda: start_py_server(["--service=aio"])}[request.param]()
    s.kind = request.param  # type: ignore[attr-defined]
    yield s
    _finish(s)


@pytest.fixture(params=["unix", "fifo"] + [t for t in ("shm", "shm+sem", "msgq") if t in ipcrpc.available_transports()])
def address(server: ServerProcess, request: pytest.FixtureRequest) -> str:
    return server.address(request.param)


def run(fn: Callable[[svc.TestServiceStub], Awaitable[Any]], address: str) -> Any:
    async def main() -> Any:
        async with ipcrpc.aio.channel(address) as ch:
            return await asyncio.wait_for(fn(svc.TestServiceStub(ch)), 60)

    return asyncio.run(main())


def test_unary_and_metadata(address: str) -> None:
    async def body(stub: svc.TestServiceStub) -> None:
        r = await stub.Echo(pb.Request(text="hi"), timeout=5)
        assert (r.text, r.peer_pid) == ("hi", os.getpid())
        call = stub.Echo(pb.Request(text="m"), timeout=5, metadata=[("echo-a", "1")])
        assert (await call).text == "m"
        assert await call.initial_metadata() == (("initial-a", "1"),)
        assert await call.trailing_metadata() == (("trailing-a", "1"),)
        assert await call.code() is Code.OK
        call = stub.Echo(pb.Request(text="m"), timeout=5, metadata=[("echo-b", b"ascii"), ("echo-c-bin", b"\xff")])
        await call
        assert sorted(await call.initial_metadata()) == [("initial-b", "ascii"), ("initial-c-bin", b"\xff")]
        assert sorted(await call.trailing_metadata()) == [("trailing-b", "ascii"), ("trailing-c-bin", b"\xff")]
        with pytest.raises(ipcrpc.RpcError) as e:
            await stub.Echo(pb.Request(status_code=Code.ABORTED.number), timeout=5, metadata=[("echo-a", "1")])
        assert e.value.trailing_metadata() == (("trailing-a", "1"),)
        with pytest.raises(ipcrpc.RpcError) as e:
            await stub.Echo(pb.Request(), timeout=5, metadata=[("k", "caf\u00e9")])
        assert e.value.code() is Code.INVALID_ARGUMENT

    run(body, address)


def test_python_servers_see_str_and_bin_bytes(server: ServerProcess) -> None:
    if server.kind == "cpp":  # type: ignore[attr-defined]
        pytest.skip("the C++ test server does not report metadata types")

    async def body(stub: svc.TestServiceStub) -> None:
        r = await stub.Echo(pb.Request(text="report-types"), timeout=5, metadata=[("a", "x"), ("c-bin", b"\x00")])
        assert r.text == "a=str:x,c-bin=bytes:b'\\x00'"

    run(body, server.address())


def test_streams(address: str) -> None:
    async def body(stub: svc.TestServiceStub) -> None:
        assert [r.index async for r in stub.ServerStream(pb.Request(count=5), timeout=5)] == list(range(5))
        r = await stub.ClientStream(iter([pb.Request(text=t) for t in "abc"]), timeout=5)
        assert (r.text, r.index) == ("abc", 3)

        async def gen() -> AsyncIterator[pb.Request]:
            for t in "xy":
                yield pb.Request(text=t)

        assert (await stub.ClientStream(gen(), timeout=5)).text == "xy"
        # bidi with write/read, interleaved
        call = stub.Bidi(timeout=5)
        for i in range(5):
            await call.write(pb.Request(text=f"m{i}"))
            r = await call.read()
            assert (r.text, r.index) == (f"m{i}", i)
        await call.done_writing()
        assert await call.read() is ipcrpc.aio.EOF
        assert await call.code() is Code.OK

    run(body, address)


def test_errors(address: str) -> None:
    async def body(stub: svc.TestServiceStub) -> None:
        with pytest.raises(ipcrpc.RpcError) as e:
            await stub.Echo(pb.Request(status_code=5, status_message="nope"), timeout=5)
        assert (e.value.code(), e.value.details()) == (Code.NOT_FOUND, "nope")
        with pytest.raises(ipcrpc.RpcError) as e:
            async for _ in stub.ServerStream(pb.Request(count=2, status_code=10, status_message="x"), timeout=5):
                pass
        assert e.value.code() is Code.ABORTED
        with pytest.raises(ipcrpc.RpcError) as e:
            await stub.Echo(pb.Request(), timeout=5, metadata=[("Bad", "x")])
        assert e.value.code() is Code.INVALID_ARGUMENT
        with pytest.raises(ipcrpc.RpcError) as e:
            await stub.Echo(pb.Request(payload=b"x" * (4 * 1024 * 1024 + 1)), timeout=5)
        assert e.value.code() is Code.RESOURCE_EXHAUSTED
        assert (await stub.Echo(pb.Request(text="still fine"), timeout=5)).text == "still fine"

    run(body, address)


def test_deadline_and_cancel(address: str) -> None:
    async def body(stub: svc.TestServiceStub) -> None:
        t0 = time.monotonic()
        with pytest.raises(ipcrpc.RpcError) as e:
            await stub.WaitForCancel(pb.Request(), timeout=0.2)
        assert e.value.code() is Code.DEADLINE_EXCEEDED and time.monotonic() - t0 < 9
        for _ in range(500):  # let that handler finish before the next WaitForCancel
            if (await stub.LastCancel(empty_pb2.Empty(), timeout=5)).text != "waiting":
                break
            await asyncio.sleep(0.01)
        call = stub.WaitForCancel(pb.Request(), timeout=30)
        for _ in range(500):
            if (await stub.LastCancel(empty_pb2.Empty(), timeout=5)).text == "waiting":
                break
            await asyncio.sleep(0.01)
        assert call.cancel()
        with pytest.raises(ipcrpc.RpcError) as e:
            await call
        assert e.value.code() is Code.CANCELLED
        for _ in range(500):
            text = (await stub.LastCancel(empty_pb2.Empty(), timeout=5)).text
            if text != "waiting":
                break
            await asyncio.sleep(0.01)
        assert text == "cancelled"
        # cancelling the awaiting task cancels the call
        async def slow() -> pb.Response:
            return await stub.Echo(pb.Request(delay_ms=5000), timeout=30)

        task = asyncio.get_running_loop().create_task(slow())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(body, address)


def test_many_concurrent_calls_on_one_loop(address: str) -> None:
    async def body(stub: svc.TestServiceStub) -> None:
        replies = await asyncio.gather(*(stub.Echo(pb.Request(text=str(i)), timeout=10) for i in range(200)))
        assert [r.text for r in replies] == [str(i) for i in range(200)]
        big = await stub.Echo(pb.Request(payload=b"b" * (3 << 20)), timeout=10)
        assert len(big.payload) == 3 << 20
        n = 0
        async for r in stub.ServerStream(pb.Request(count=64, payload=b"f" * 65536), timeout=30):
            n += 1
        assert n == 64

    run(body, address)


def test_no_thread_per_call(server: ServerProcess) -> None:
    import threading

    async def main() -> int:
        async with ipcrpc.aio.channel(server.address("unix")) as ch:
            stub = svc.TestServiceStub(ch)
            await stub.Echo(pb.Request(), timeout=5)
            before = threading.active_count()
            calls = [stub.ServerStream(pb.Request(count=3, delay_ms=50), timeout=10) for _ in range(50)]
            await asyncio.sleep(0.05)
            during = threading.active_count()
            for c in calls:
                assert len([r async for r in c]) == 3
            return during - before

    assert asyncio.run(main()) <= 1


def test_server_killed_is_unavailable() -> None:
    s = start_py_server(["--service=aio"])
    try:
        async def main() -> None:
            async with ipcrpc.aio.channel(s.address()) as ch:
                stub = svc.TestServiceStub(ch)
                call = stub.WaitForCancel(pb.Request(), timeout=60)
                await asyncio.sleep(0.2)
                s.kill9()
                with pytest.raises(ipcrpc.RpcError) as e:
                    await asyncio.wait_for(call, 10)
                assert e.value.code() is Code.UNAVAILABLE

        asyncio.run(main())
    finally:
        _finish(s)


@pytest.mark.parametrize("transport", ["unix", "auto"])  # auto: the first of shm, shm+sem, unix, ... both speak
@pytest.mark.parametrize("case", CASES)
def test_cpp_client_against_aio_server(aio_server: ServerProcess, case: str, transport: str) -> None:
    r = subprocess.run([str(cpp_binary("tests/python_interop/interop_client")), aio_server.address(transport), case, str(aio_server.pid)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"PASS {case}" in r.stdout, r.stdout + r.stderr
