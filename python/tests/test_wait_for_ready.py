"""wait_for_ready=True (grpcio's per-call option): the call waits, retrying
the connection with backoff until its deadline, while the server is not there."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List

import pytest

import ipcrpc
import ipcrpc.aio
import test_service_pb2 as pb
import test_service_ipcrpc as svc

from conftest import HERE, ServerProcess, cpp_binary


def _argv(kind: str, sock: Path) -> List[str]:
    if kind == "cpp":
        return [str(cpp_binary("tests/e2e/test_server")), f"unix:{sock}"]
    return [sys.executable, str(HERE / "serve.py"), f"unix:{sock}"]


@pytest.mark.parametrize("use_aio", [False, True], ids=["sync", "aio"])
@pytest.mark.parametrize("kind", ["cpp", "python"])
def test_call_waits_for_a_server_that_starts_later(kind: str, use_aio: bool) -> None:
    d = Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-"))
    sock = d / "s.sock"
    result: List[object] = []

    def call() -> None:
        try:
            if use_aio:
                async def run() -> str:
                    async with ipcrpc.aio.channel(f"unix:{sock}") as ch:
                        return (await svc.TestServiceStub(ch).Echo(pb.Request(text="late"), timeout=20, wait_for_ready=True)).text
                result.append(asyncio.run(run()))
            else:
                with ipcrpc.channel(f"unix:{sock}") as ch:
                    result.append(svc.TestServiceStub(ch).Echo(pb.Request(text="late"), timeout=20, wait_for_ready=True).text)
        except Exception as e:  # reported below
            result.append(e)

    t = threading.Thread(target=call)
    t.start()
    server = None
    try:
        time.sleep(0.5)
        assert not result, result  # still waiting
        server = ServerProcess(_argv(kind, sock), sock, d)
        t.join(20)
        assert result == ["late"]
    finally:
        t.join(20)
        if server is not None:
            server.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("use_aio", [False, True], ids=["sync", "aio"])
def test_no_server_until_the_deadline(use_aio: bool) -> None:
    d = Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-"))
    address = f"unix:{d / 'nobody.sock'}"
    try:
        def call(**kw: object) -> ipcrpc.RpcError:
            with pytest.raises(ipcrpc.RpcError) as e:
                if use_aio:
                    async def run() -> None:
                        async with ipcrpc.aio.channel(address) as ch:
                            await svc.TestServiceStub(ch).Echo(pb.Request(), timeout=0.6, **kw)
                    asyncio.run(run())
                else:
                    with ipcrpc.channel(address) as ch:
                        svc.TestServiceStub(ch).Echo(pb.Request(), timeout=0.6, **kw)
            return e.value

        start = time.monotonic()
        assert call().code() is ipcrpc.StatusCode.UNAVAILABLE  # without wait_for_ready: at once
        assert time.monotonic() - start < 0.5
        start = time.monotonic()
        err = call(wait_for_ready=True)
        took = time.monotonic() - start
        assert err.code() is ipcrpc.StatusCode.DEADLINE_EXCEEDED and "to be ready" in err.details(), err
        assert 0.55 <= took < 3, took
    finally:
        shutil.rmtree(d, ignore_errors=True)
