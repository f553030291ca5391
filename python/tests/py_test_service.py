"""TestService (tests/e2e/test_service.proto) in Python, with the same
behaviour as the C++ tests/e2e/test_server.cc, so the same tests run against
either server."""

from __future__ import annotations

import threading
import time
from typing import Iterator, Sequence, Tuple

import ipcrpc
import test_service_pb2 as pb
import test_service_ipcrpc as svc
from google.protobuf import empty_pb2


def _sleep_unless_cancelled(context: ipcrpc.ServicerContext, ms: int) -> bool:
    until = time.monotonic() + ms / 1000
    while time.monotonic() < until:
        if not context.is_active():
            return False
        time.sleep(0.001)
    return context.is_active()


def report_types(metadata: Sequence[Tuple[str, object]]) -> str:
    return ",".join(f"{k}={type(v).__name__}:{v if isinstance(v, str) else repr(v)}" for k, v in metadata)


class TestService(svc.TestServiceServicer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_cancel = "none"

    def Echo(self, request: pb.Request, context: ipcrpc.ServicerContext) -> pb.Response:
        initial, trailing = [], []
        for key, value in context.invocation_metadata():
            if key.startswith("echo-"):
                initial.append(("initial-" + key[5:], value))
                trailing.append(("trailing-" + key[5:], value))
        if initial:
            context.send_initial_metadata(initial)
            context.set_trailing_metadata(trailing)
        if request.delay_ms > 0 and not _sleep_unless_cancelled(context, request.delay_ms):
            context.abort(ipcrpc.StatusCode.CANCELLED, "cancelled while sleeping")
        if request.status_code:
            context.abort(ipcrpc.StatusCode.from_number(request.status_code), request.status_message)
        if request.text == "report-types":  # what invocation_metadata() handed us
            return pb.Response(text=report_types(context.invocation_metadata()))
        return pb.Response(text=request.text, payload=request.payload, peer_pid=context.peer_credentials().pid)

    def ServerStream(self, request: pb.Request, context: ipcrpc.ServicerContext) -> Iterator[pb.Response]:
        for i in range(request.count):
            if request.delay_ms > 0 and not _sleep_unless_cancelled(context, request.delay_ms):
                context.abort(ipcrpc.StatusCode.CANCELLED, "cancelled mid-stream")
            yield pb.Response(index=i, text=request.text, payload=request.payload)
        if request.status_code:
            context.abort(ipcrpc.StatusCode.from_number(request.status_code), request.status_message)

    def ClientStream(self, request_iterator: Iterator[pb.Request], context: ipcrpc.ServicerContext) -> pb.Response:
        n, text = 0, ""
        for r in request_iterator:
            n += 1
            text += r.text
            if r.delay_ms > 0:
                _sleep_unless_cancelled(context, r.delay_ms)
        if not context.is_active():
            context.abort(ipcrpc.StatusCode.CANCELLED, "cancelled")
        return pb.Response(text=text, index=n)

    def Bidi(self, request_iterator: Iterator[pb.Request], context: ipcrpc.ServicerContext) -> Iterator[pb.Response]:
        for n, r in enumerate(request_iterator):
            if r.status_code:
                context.abort(ipcrpc.StatusCode.from_number(r.status_code), r.status_message)
            yield pb.Response(text=r.text, payload=r.payload, index=n)

    def WaitForCancel(self, request: pb.Request, context: ipcrpc.ServicerContext) -> pb.Response:
        with self._lock:
            self._last_cancel = "waiting"
        cancelled = not _sleep_unless_cancelled(context, 10000)
        remaining = context.time_remaining()
        with self._lock:
            if not cancelled:
                self._last_cancel = "not cancelled"
            else:
                self._last_cancel = "deadline" if remaining is not None and remaining <= 0 else "cancelled"
            outcome = self._last_cancel
        context.abort(ipcrpc.StatusCode.CANCELLED, outcome)

    def LastCancel(self, request: empty_pb2.Empty, context: ipcrpc.ServicerContext) -> pb.Response:
        with self._lock:
            return pb.Response(text=self._last_cancel)
