"""TestService for ipcrpc.aio.server(): the behaviour of test_server.cc, with async handlers."""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import ipcrpc
import ipcrpc.aio
import test_service_ipcrpc as svc
import test_service_pb2 as pb
from py_test_service import report_types


async def _sleep_unless_cancelled(context: ipcrpc.aio.ServicerContext, ms: int) -> bool:
    until = time.monotonic() + ms / 1000
    while time.monotonic() < until:
        if not context.is_active():
            return False
        await asyncio.sleep(0.001)
    return context.is_active()


class AioTestService(svc.TestServiceServicer):
    def __init__(self) -> None:
        self._last_cancel = "none"

    async def Echo(self, request: pb.Request, context: ipcrpc.aio.ServicerContext) -> pb.Response:  # type: ignore[override]
        initial = [("initial-" + k[5:], v) for k, v in context.invocation_metadata() if k.startswith("echo-")]
        if initial:
            await context.send_initial_metadata(initial)
            context.set_trailing_metadata([("trailing-" + k[8:], v) for k, v in initial])
        if request.delay_ms > 0 and not await _sleep_unless_cancelled(context, request.delay_ms):
            await context.abort(ipcrpc.StatusCode.CANCELLED, "cancelled while sleeping")
        if request.status_code:
            await context.abort(ipcrpc.StatusCode.from_number(request.status_code), request.status_message)
        if request.text == "report-types":  # what invocation_metadata() handed us
            return pb.Response(text=report_types(context.invocation_metadata()))
        return pb.Response(text=request.text, payload=request.payload, peer_pid=context.peer_credentials().pid)

    async def ServerStream(self, request: pb.Request, context: ipcrpc.aio.ServicerContext) -> AsyncIterator[pb.Response]:  # type: ignore[override]
        for i in range(request.count):
            if request.delay_ms > 0 and not await _sleep_unless_cancelled(context, request.delay_ms):
                await context.abort(ipcrpc.StatusCode.CANCELLED, "cancelled mid-stream")
            yield pb.Response(index=i, text=request.text, payload=request.payload)
        if request.status_code:
            await context.abort(ipcrpc.StatusCode.from_number(request.status_code), request.status_message)

    async def ClientStream(self, request_iterator: AsyncIterator[pb.Request], context: ipcrpc.aio.ServicerContext) -> pb.Response:  # type: ignore[override]
        n, text = 0, ""
        async for r in request_iterator:
            n += 1
            text += r.text
            if r.delay_ms > 0:
                await _sleep_unless_cancelled(context, r.delay_ms)
        return pb.Response(text=text, index=n)

    async def Bidi(self, request_iterator: AsyncIterator[pb.Request], context: ipcrpc.aio.ServicerContext) -> AsyncIterator[pb.Response]:  # type: ignore[override]
        n = 0
        async for r in request_iterator:
            if r.status_code:
                await context.abort(ipcrpc.StatusCode.from_number(r.status_code), r.status_message)
            yield pb.Response(text=r.text, payload=r.payload, index=n)
            n += 1

    async def WaitForCancel(self, request: pb.Request, context: ipcrpc.aio.ServicerContext) -> pb.Response:  # type: ignore[override]
        self._last_cancel = "waiting"
        try:
            cancelled = not await _sleep_unless_cancelled(context, 10000)
        except asyncio.CancelledError:  # CANCEL from the client cancels the handler's task
            self._last_cancel = "cancelled"
            raise
        remaining = context.time_remaining()
        self._last_cancel = ("deadline" if remaining is not None and remaining <= 0 else "cancelled") if cancelled else "not cancelled"
        await context.abort(ipcrpc.StatusCode.CANCELLED, self._last_cancel)
        raise AssertionError("unreachable")

    async def LastCancel(self, request: object, context: ipcrpc.aio.ServicerContext) -> pb.Response:  # type: ignore[override]
        return pb.Response(text=self._last_cancel)
