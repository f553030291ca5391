"""FdService (tests/e2e/fd_service.proto) in Python, sync and asyncio, with the
behaviour of the C++ FdServiceImpl in tests/e2e/test_server.cc, so the same
fd-passing tests run against every server."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import AsyncIterator, Iterator, List

import ipcrpc
import fd_service_ipcrpc as svc
import fd_service_pb2 as pb


def open_with_content(kind: str, content: bytes) -> int:
    """A new descriptor holding ``content``: "file" (an unlinked temporary file,
    at offset 0), "memfd", or "pipe" (the read end; the write end written and closed)."""
    if kind == "pipe":
        r, w = os.pipe2(os.O_CLOEXEC)
        os.write(w, content)
        os.close(w)
        return r
    if kind == "memfd":
        fd = os.memfd_create("ipcrpc-py-fd-test", os.MFD_CLOEXEC)
    elif kind == "file":
        fd, path = tempfile.mkstemp(prefix="ipcrpc-pytest-fd-")
        os.unlink(path)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def read_all(fd: int) -> bytes:
    out = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return out
        out += chunk


def _fields(req: pb.FdRequest) -> List[object]:
    fields: List[object] = []
    if req.HasField("fd"):
        fields.append(req.fd)
    fields.extend(req.fds)
    if req.nested.HasField("fd"):
        fields.append(req.nested.fd)
    fields.extend(req.named[k] for k in sorted(req.named))
    return fields


def read_into(req: pb.FdRequest) -> bytes:
    """Takes and reads every descriptor ``req`` names, in field order: b"|content" each."""
    out = b""
    for field in _fields(req):
        fd = ipcrpc.take_fd(field)
        try:
            out += b"|" + read_all(fd)
        finally:
            os.close(fd)
    return out


def _open_reply(req: pb.FdRequest, context: ipcrpc.ServicerContext) -> pb.FdReply:
    reply = pb.FdReply()
    for i in range(max(req.count, 1)):
        fd = open_with_content(req.kind, req.content + str(i).encode())
        if i == 0:
            field = reply.fd
        elif req.spread and i == 1:
            field = reply.nested.fd
        elif req.spread and i == 2:
            field = reply.named["a"]
        else:
            field = reply.fds.add()
        context.attach_fd(field, fd)  # closed by the runtime after the call
    return reply


class FdService(svc.FdServiceServicer):
    def Open(self, request: pb.FdRequest, context: ipcrpc.ServicerContext) -> pb.FdReply:
        return _open_reply(request, context)

    def Read(self, request: pb.FdRequest, context: ipcrpc.ServicerContext) -> pb.FdReply:
        return pb.FdReply(content=read_into(request))

    def OpenStream(self, request: pb.FdRequest, context: ipcrpc.ServicerContext) -> Iterator[pb.FdReply]:
        for i in range(request.count):
            fd = open_with_content(request.kind, request.content + str(i).encode())
            try:
                reply = pb.FdReply(index=i)
                ipcrpc.attach_fd(reply.fd, fd)
                yield reply  # sent before the generator resumes
            finally:
                os.close(fd)

    def ReadStream(self, request_iterator: Iterator[pb.FdRequest], context: ipcrpc.ServicerContext) -> pb.FdReply:
        reply = pb.FdReply()
        for req in request_iterator:
            if req.delay_ms > 0:
                time.sleep(req.delay_ms / 1000)
            reply.content += read_into(req)
            reply.index += 1
        return reply

    def Bidi(self, request_iterator: Iterator[pb.FdRequest], context: ipcrpc.ServicerContext) -> Iterator[pb.FdReply]:
        for i, req in enumerate(request_iterator):
            fd = ipcrpc.take_fd(req.fd)
            try:
                content = read_all(fd)
            finally:
                os.close(fd)
            out = open_with_content("memfd", content)
            try:
                reply = pb.FdReply(index=i)
                ipcrpc.attach_fd(reply.fd, out)
                yield reply
            finally:
                os.close(out)

    def Peek(self, request: pb.FdRequest, context: ipcrpc.ServicerContext) -> pb.FdReply:
        return pb.FdReply(content=str(ipcrpc.peek_fd(request.fd)).encode())

    def Hold(self, request: pb.FdRequest, context: ipcrpc.ServicerContext) -> pb.FdReply:
        until = time.monotonic() + request.delay_ms / 1000
        while time.monotonic() < until and context.is_active():
            time.sleep(0.005)
        return pb.FdReply()


class AioFdService(svc.FdServiceServicer):
    async def Open(self, request: pb.FdRequest, context: ipcrpc.aio.ServicerContext) -> pb.FdReply:  # type: ignore[override]
        return _open_reply(request, context)  # type: ignore[arg-type]

    async def Read(self, request: pb.FdRequest, context: ipcrpc.aio.ServicerContext) -> pb.FdReply:  # type: ignore[override]
        return pb.FdReply(content=read_into(request))

    async def OpenStream(self, request: pb.FdRequest, context: ipcrpc.aio.ServicerContext) -> AsyncIterator[pb.FdReply]:  # type: ignore[override]
        for i in range(request.count):
            fd = open_with_content(request.kind, request.content + str(i).encode())
            try:
                reply = pb.FdReply(index=i)
                ipcrpc.attach_fd(reply.fd, fd)
                yield reply
            finally:
                os.close(fd)

    async def ReadStream(self, request_iterator: AsyncIterator[pb.FdRequest], context: ipcrpc.aio.ServicerContext) -> pb.FdReply:  # type: ignore[override]
        reply = pb.FdReply()
        async for req in request_iterator:
            if req.delay_ms > 0:
                await asyncio.sleep(req.delay_ms / 1000)
            reply.content += read_into(req)
            reply.index += 1
        return reply

    async def Bidi(self, request_iterator: AsyncIterator[pb.FdRequest], context: ipcrpc.aio.ServicerContext) -> AsyncIterator[pb.FdReply]:  # type: ignore[override]
        i = 0
        async for req in request_iterator:
            fd = ipcrpc.take_fd(req.fd)
            try:
                content = read_all(fd)
            finally:
                os.close(fd)
            out = open_with_content("memfd", content)
            try:
                reply = pb.FdReply(index=i)
                ipcrpc.attach_fd(reply.fd, out)
                yield reply
            finally:
                os.close(out)
            i += 1

    async def Peek(self, request: pb.FdRequest, context: ipcrpc.aio.ServicerContext) -> pb.FdReply:  # type: ignore[override]
        return pb.FdReply(content=str(ipcrpc.peek_fd(request.fd)).encode())

    async def Hold(self, request: pb.FdRequest, context: ipcrpc.aio.ServicerContext) -> pb.FdReply:  # type: ignore[override]
        until = time.monotonic() + request.delay_ms / 1000
        while time.monotonic() < until and not context.cancelled():
            await asyncio.sleep(0.005)
        return pb.FdReply()
