"""The asyncio client over msgq: the loop thread reads the queue itself
(msgrcv(IPC_NOWAIT) after a bounded spin) and hands the reader role to a
thread only while a call is parked. These tests drive both readers and the
hand-over between them (fast and slow calls mixed, long ordered streams,
fragmented messages, cancellation, deadlines, an idle connection, the
server killed), with the C extension's msgq_recv and with the ctypes
fallback, with spinning on and off; they never assert timings."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import ipcrpc
import ipcrpc.aio
import test_service_ipcrpc as svc
import test_service_pb2 as pb

from conftest import ServerProcess, start_cpp_server, start_py_server, _finish

pytestmark = pytest.mark.skipif("msgq" not in ipcrpc.available_transports(), reason="no SysV message queues here")
Code = ipcrpc.StatusCode


@pytest.fixture(params=["cpp", "python", "aio"], scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    s = {"cpp": start_cpp_server, "python": start_py_server, "aio": lambda: start_py_server(["--service=aio"])}[request.param]()
    yield s
    _finish(s)


@pytest.fixture(params=["native", "ctypes"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    from ipcrpc import _msgq

    if request.param == "ctypes":
        monkeypatch.setattr(_msgq, "_native", None)
    elif _msgq._native is None:
        pytest.skip("ipcrpc._native is not built")
    return str(request.param)


@pytest.fixture(params=["spin", "spin_off"])
def target(request: pytest.FixtureRequest, server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("IPCRPC_TRANSPORT", raising=False)
    if request.param == "spin_off":  # every call that waits parks: the thread reads
        cfg = tmp_path / "config.txtpb"
        cfg.write_text(f'channel {{ target: "off" address: "msgq:{server.sock}" tuning {{ shm {{ spin_off: true }} }} }}\n')
        monkeypatch.setenv("IPCRPC_CONFIG", str(cfg))
        return "off"
    return server.address("msgq")


def _run(body: Any, target: str) -> None:
    async def main() -> None:
        async with ipcrpc.aio.channel(target) as ch:
            await asyncio.wait_for(body(svc.TestServiceStub(ch), ch), 120)
            assert ch.transport_name() == "msgq"

    asyncio.run(main())


async def _stream_in_order(stub: svc.TestServiceStub, count: int, payload: bytes) -> int:
    n = 0
    async for r in stub.ServerStream(pb.Request(count=count, payload=payload, text="s"), timeout=60):
        assert (r.index, len(r.payload)) == (n, len(payload))  # nothing lost, nothing reordered
        n += 1
    return n


def test_mixed_calls_keep_order(target: str, reader: str) -> None:
    async def body(stub: svc.TestServiceStub, ch: ipcrpc.aio.Channel) -> None:
        for i in range(50):  # back to back: the loop thread's own reads
            assert (await stub.Echo(pb.Request(text=str(i)), timeout=10)).text == str(i)
        slow = [asyncio.ensure_future(stub.Echo(pb.Request(text=f"slow{i}", delay_ms=100 + 50 * i), timeout=30)) for i in range(3)]
        streams = [asyncio.ensure_future(_stream_in_order(stub, 300, os.urandom(k))) for k in (10, 1000, 20000)]
        fast: List[pb.Response] = []
        for i in range(100):  # while others are parked: fast calls interleave with the hand-overs
            fast += await asyncio.gather(*(stub.Echo(pb.Request(text=f"{i}.{j}"), timeout=10) for j in range(3)))
        assert [r.text for r in fast] == [f"{i}.{j}" for i in range(100) for j in range(3)]
        big = os.urandom(3 << 20)  # hundreds of fragments through both readers
        assert (await stub.Echo(pb.Request(payload=big), timeout=30)).payload == big
        assert await asyncio.gather(*streams) == [300, 300, 300]
        assert [r.text for r in await asyncio.gather(*slow)] == ["slow0", "slow1", "slow2"]

    _run(body, target)


def test_cancel_deadline_and_idle_hand_over(target: str, reader: str) -> None:
    async def body(stub: svc.TestServiceStub, ch: ipcrpc.aio.Channel) -> None:
        # A deadline passes while the thread holds the role; the late reply is dropped.
        with pytest.raises(ipcrpc.RpcError) as e:
            await stub.Echo(pb.Request(delay_ms=300), timeout=0.05)
        assert e.value.code() is Code.DEADLINE_EXCEEDED
        assert (await stub.Echo(pb.Request(text="after deadline"), timeout=10)).text == "after deadline"
        # Cancelled by the client while parked, then by cancelling the awaiting task.
        call = stub.WaitForCancel(pb.Request(), timeout=30)
        await asyncio.sleep(0.05)
        assert call.cancel()
        with pytest.raises(ipcrpc.RpcError) as e:
            await call
        assert e.value.code() is Code.CANCELLED
        task = asyncio.ensure_future(stub.Echo(pb.Request(delay_ms=2000), timeout=30))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(20):
            assert (await stub.Echo(pb.Request(text="x"), timeout=10)).text == "x"
        # Idle longer than the reader's idle period: the role goes to the thread and comes back.
        await asyncio.sleep(0.35)
        replies = await asyncio.gather(*(stub.Echo(pb.Request(text=str(i)), timeout=10) for i in range(20)))
        assert [r.text for r in replies] == [str(i) for i in range(20)]
        await asyncio.sleep(0.35)
        assert (await stub.Echo(pb.Request(text="last"), timeout=10)).text == "last"

    _run(body, target)


@pytest.mark.parametrize("when", ["parked", "idle", "just_answered"])
def test_server_killed(when: str, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPCRPC_TRANSPORT", raising=False)
    s = start_cpp_server()
    try:
        async def main() -> None:
            async with ipcrpc.aio.channel(s.address("msgq")) as ch:
                stub = svc.TestServiceStub(ch)
                assert (await stub.Echo(pb.Request(text="a"), timeout=10)).text == "a"
                if when == "parked":
                    call = stub.WaitForCancel(pb.Request(), timeout=60)
                    await asyncio.sleep(0.2)
                    s.kill9()
                    with pytest.raises(ipcrpc.RpcError) as e:
                        await asyncio.wait_for(call, 30)
                    assert e.value.code() is Code.UNAVAILABLE
                    return
                if when == "idle":
                    await asyncio.sleep(0.5)  # the reader thread has the role back
                    s.kill9()
                    conn = ch._conn
                    assert conn is not None
                    end = time.monotonic() + 30
                    while conn.broken is None and time.monotonic() < end:  # seen without a call
                        await asyncio.sleep(0.01)
                    assert conn.broken is not None
                else:
                    s.kill9()  # the loop thread holds the role: the next call must not hang
                with pytest.raises(ipcrpc.RpcError) as e:
                    await asyncio.wait_for(stub.Echo(pb.Request(text="b"), timeout=30), 60)
                assert e.value.code() is Code.UNAVAILABLE

        asyncio.run(main())
    finally:
        _finish(s)


def test_slow_server_does_not_spin_forever(server: ServerProcess, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each reply comes long after any spin budget: the spin gives up and the call parks.
    monkeypatch.delenv("IPCRPC_TRANSPORT", raising=False)

    async def main() -> None:
        async with ipcrpc.aio.channel(server.address("msgq")) as ch:
            stub = svc.TestServiceStub(ch)
            for i in range(5):
                assert (await stub.Echo(pb.Request(text=str(i), delay_ms=50), timeout=10)).text == str(i)
            conn = ch._conn
            assert conn is not None
            assert conn._mq_spin.budget < conn._mq_spin.max  # the budget shrank (or went off)
            for i in range(20):  # and fast calls still work
                assert (await stub.Echo(pb.Request(text=str(i)), timeout=10)).text == str(i)

    asyncio.run(main())
