"""File descriptors in calls (PROTOCOL.md §10; ipcrpc.attach_fd / take_fd),
between processes: the Python clients (sync and asyncio) against the C++
test_server's FdService and the Python ones (sync and asyncio servers), on
every transport; limits (HELLO field 7), out of descriptors, cancellation,
and peers that send descriptors they did not declare."""

from __future__ import annotations

import array
import asyncio
import gc
import os
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import ipcrpc
import ipcrpc.aio
from ipcrpc import _fds, _frame, _wirepb
from ipcrpc._frame import FrameType
import fd_service_ipcrpc as svc
import fd_service_pb2 as pb
from py_fd_service import open_with_content, read_all

from conftest import ServerProcess, _finish, child_env, start_cpp_server, start_py_server

TRANSPORTS = list(ipcrpc.available_transports())
SERVER_KINDS = ["cpp", "python", "python-aio"]


def _start(kind: str, extra: List[str] = []) -> ServerProcess:
    if kind == "cpp":
        return start_cpp_server(extra)
    return start_py_server((["--service=aio"] if kind == "python-aio" else []) + extra)


@pytest.fixture(params=SERVER_KINDS, scope="module")
def fd_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    s = _start(request.param)
    s.kind = request.param  # type: ignore[attr-defined]
    yield s
    _finish(s)


def open_fds(pid: str = "self") -> int:
    gc.collect()
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(pid: int, want: int, at_most: bool = True) -> int:
    """The descriptor count of process ``pid`` once it is at most ``want`` (polled up to 10 s; no timing asserted)."""
    n = open_fds(str(pid))
    end = time.monotonic() + 10
    while (n > want if at_most else n != want) and time.monotonic() < end:
        time.sleep(0.02)
        n = open_fds(str(pid))
    return n


def take_and_read(field: object) -> bytes:
    """Takes the descriptor a received field names, reads it from its current offset, closes it."""
    fd = ipcrpc.take_fd(field)
    try:
        return read_all(fd)
    finally:
        os.close(fd)


def _request_with(kinds: List[str], tag: bytes) -> tuple:
    """A FdRequest naming new descriptors (one per kind) spread over fd, fds, nested and named."""
    req = pb.FdRequest()
    fds = []
    for i, kind in enumerate(kinds):
        fd = open_with_content(kind, tag + b"%d" % i)
        fds.append(fd)
        if i == 0:
            field = req.fd
        elif i == 1:
            field = req.nested.fd
        elif i == 2:
            field = req.named["k"]
        else:
            field = req.fds.add()
        ipcrpc.attach_fd(field, fd)
    return req, fds


def _expected_read(kinds: List[str], tag: bytes) -> bytes:
    # The servers read in field order: fd, fds..., nested, named (by key).
    order = [0] + list(range(3, len(kinds))) + ([1] if len(kinds) > 1 else []) + ([2] if len(kinds) > 2 else [])
    return b"".join(b"|" + tag + b"%d" % i for i in order)


# -- every RPC kind, every transport, both directions ---------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_client_all_kinds(fd_server: ServerProcess, transport: str) -> None:
    with ipcrpc.channel(fd_server.address(transport)) as ch:
        stub = svc.FdServiceStub(ch)
        stub.Hold(pb.FdRequest(), timeout=10)  # connected: its descriptors are in the baseline
        before = open_fds()
        # unary, server → client: a file, a memfd and a pipe, in every kind of field
        for kind in ("file", "memfd", "pipe"):
            reply = stub.Open(pb.FdRequest(kind=kind, content=b"o-", count=5, spread=True), timeout=10)
            got = [take_and_read(reply.fd), take_and_read(reply.nested.fd), take_and_read(reply.named["a"])]
            got += [take_and_read(f) for f in reply.fds]
            assert got == [b"o-0", b"o-1", b"o-2", b"o-3", b"o-4"]
        # unary, client → server
        kinds = ["pipe", "memfd", "file", "memfd", "pipe"]
        req, mine = _request_with(kinds, b"r")
        assert stub.Read(req, timeout=10).content == _expected_read(kinds, b"r")
        for fd in mine:
            os.close(fd)
        # server streaming
        got = []
        for reply in stub.OpenStream(pb.FdRequest(kind="memfd", content=b"s", count=4), timeout=10):
            got.append((reply.index, take_and_read(reply.fd)))
        assert got == [(i, b"s%d" % i) for i in range(4)]
        # client streaming

        def requests() -> Iterator[pb.FdRequest]:
            for i in range(3):
                r, fds = _request_with(["pipe", "file"], b"c%d-" % i)
                yield r
                for fd in fds:
                    os.close(fd)

        assert stub.ReadStream(requests(), timeout=10).content == b"".join(b"|c%d-0|c%d-1" % (i, i) for i in range(3))
        # bidi: each request's descriptor comes back as a new memfd with its content

        def bidi_requests() -> Iterator[pb.FdRequest]:
            for i in range(3):
                r, fds = _request_with(["pipe"], b"b%d-" % i)
                yield r
                os.close(fds[0])

        assert [take_and_read(r.fd) for r in stub.Bidi(bidi_requests(), timeout=10)] == [b"b%d-0" % i for i in range(3)]
        assert _fds.held_count() == 0
        assert open_fds() == before, "descriptors leaked in the client"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_aio_client_all_kinds(fd_server: ServerProcess, transport: str) -> None:
    async def run() -> None:
        async with ipcrpc.aio.channel(fd_server.address(transport)) as ch:
            stub = svc.FdServiceStub(ch)
            await stub.Hold(pb.FdRequest(), timeout=10)
            before = open_fds()
            reply = await stub.Open(pb.FdRequest(kind="memfd", content=b"a", count=3, spread=True), timeout=10)
            assert [take_and_read(reply.fd), take_and_read(reply.nested.fd), take_and_read(reply.named["a"])] == [b"a0", b"a1", b"a2"]
            req, mine = _request_with(["file", "pipe"], b"q")
            assert (await stub.Read(req, timeout=10)).content == _expected_read(["file", "pipe"], b"q")
            for fd in mine:
                os.close(fd)
            got = [take_and_read(r.fd) async for r in stub.OpenStream(pb.FdRequest(kind="pipe", content=b"p", count=3), timeout=10)]
            assert got == [b"p0", b"p1", b"p2"]
            call = stub.ReadStream(timeout=10)
            for i in range(2):
                r, fds = _request_with(["memfd"], b"w%d-" % i)
                await call.write(r)
                os.close(fds[0])
            await call.done_writing()
            assert (await call).content == b"|w0-0|w1-0"
            bidi = stub.Bidi(timeout=10)
            for i in range(2):
                r, fds = _request_with(["pipe"], b"x%d-" % i)
                await bidi.write(r)
                os.close(fds[0])
                assert take_and_read((await bidi.read()).fd) == b"x%d-0" % i
            await bidi.done_writing()
            assert await bidi.read() is ipcrpc.aio.EOF
            assert _fds.held_count() == 0
            assert open_fds() == before, "descriptors leaked in the client"

    asyncio.run(run())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_forged_handle_names_no_descriptor_on_either_side(fd_server: ServerProcess, transport: str) -> None:
    """A peer that writes a handle into a FileDescriptor field and sends no
    descriptor: the receiver's field names none, so peek_fd cannot be made to
    name one of the receiver's own descriptors (before: the number stayed)."""
    with ipcrpc.channel(fd_server.address(transport)) as ch:
        peek = ch.unary_unary("/ipcrpc.test.FdService/Peek")
        for handle in (1, 4, 1000):
            forged = pb.ForgedRequest(fd=pb.ForgedHandle(handle=handle)).SerializeToString()
            assert pb.FdReply.FromString(peek(forged, timeout=10)).content == b"-1", handle
    if fd_server.kind != "cpp":  # type: ignore[attr-defined]
        return
    echo_server = start_cpp_server(["--generic_echo"])
    try:
        with ipcrpc.channel(echo_server.address(transport)) as ch:
            stub = svc.FdEchoStub(ch)
            for handle in (1, 4, 1000):
                reply = stub.Echo(pb.ForgedReply(fd=pb.ForgedHandle(handle=handle)), timeout=10)
                assert ipcrpc.peek_fd(reply.fd) == -1, handle
                with pytest.raises(LookupError):
                    ipcrpc.take_fd(reply.fd)
    finally:
        _finish(echo_server)


def test_received_fd_is_the_same_file(fd_server: ServerProcess) -> None:
    """A file the client opened, read by the server through the passed descriptor,
    and one the server opened, written by the client through its copy."""
    with tempfile.NamedTemporaryFile(prefix="ipcrpc-pytest-") as f:
        f.write(b"on disk")
        f.flush()
        fd = os.open(f.name, os.O_RDONLY)
        with ipcrpc.channel(fd_server.address("unix")) as ch:
            stub = svc.FdServiceStub(ch)
            req = pb.FdRequest()
            ipcrpc.attach_fd(req.fd, fd)
            assert stub.Read(req, timeout=10).content == b"|on disk"
            os.close(fd)
            reply = stub.Open(pb.FdRequest(kind="file", content=b"srv"), timeout=10)
            got = ipcrpc.take_fd(reply.fd)
            try:
                st = os.fstat(got)
                assert st.st_nlink == 0 and st.st_size == 4  # the server's unlinked temporary file
                os.pwrite(got, b"XY", 0)
                assert os.pread(got, 4, 0) == b"XYv0"
            finally:
                os.close(got)


def test_fds_not_taken_are_closed_with_the_message(fd_server: ServerProcess) -> None:
    with ipcrpc.channel(fd_server.address("unix")) as ch:
        stub = svc.FdServiceStub(ch)
        stub.Hold(pb.FdRequest(), timeout=10)
        before = open_fds()
        reply = stub.Open(pb.FdRequest(kind="memfd", content=b"n", count=6), timeout=10)
        assert open_fds() == before + 6 and _fds.held_count() == 6
        kept = ipcrpc.take_fd(reply.fds[0])
        del reply
        assert open_fds() == before + 1 and _fds.held_count() == 0
        os.close(kept)
        # a stream whose messages are never read, then dropped
        call = stub.OpenStream(pb.FdRequest(kind="pipe", content=b"u", count=3), timeout=10)
        assert call.code() is ipcrpc.StatusCode.OK
        del call
        assert open_fds() == before


def test_take_fd_errors() -> None:
    m = pb.FdReply()
    with pytest.raises(LookupError):
        ipcrpc.take_fd(m.fd)  # handle 0
    r, w = os.pipe()
    try:
        ipcrpc.attach_fd(m.fd, r)
        assert ipcrpc.peek_fd(m.fd) == r
        with pytest.raises(LookupError):
            ipcrpc.take_fd(m.fd)  # not received: the caller owns it already
    finally:
        os.close(r)
        os.close(w)


# -- limits --------------------------------------------------------------------


def test_more_than_253_fds_is_refused_before_sending(fd_server: ServerProcess) -> None:
    r, w = os.pipe()
    dups = [os.dup(r) for _ in range(254)]
    try:
        req = pb.FdRequest()
        for fd in dups:
            ipcrpc.attach_fd(req.fds.add(), fd)
        with ipcrpc.channel(fd_server.address("unix")) as ch:
            with pytest.raises(ipcrpc.RpcError) as e:
                svc.FdServiceStub(ch).Read(req, timeout=10)
            assert e.value.code() is ipcrpc.StatusCode.INVALID_ARGUMENT and "253" in e.value.details()
        # a descriptor that is not open
        req = pb.FdRequest()
        ipcrpc.attach_fd(req.fd, 1 << 20)
        with ipcrpc.channel(fd_server.address("unix")) as ch:
            with pytest.raises(ipcrpc.RpcError) as e:
                svc.FdServiceStub(ch).Read(req, timeout=10)
            assert e.value.code() is ipcrpc.StatusCode.INVALID_ARGUMENT and "not open" in e.value.details()
    finally:
        for fd in dups + [r, w]:
            os.close(fd)


@pytest.mark.parametrize("aio", [False, True])
@pytest.mark.parametrize("server_max,code", [(0, ipcrpc.StatusCode.FAILED_PRECONDITION), (2, ipcrpc.StatusCode.RESOURCE_EXHAUSTED)])
def test_client_honours_the_servers_max_fds(aio: bool, server_max: int, code: ipcrpc.StatusCode) -> None:
    server = start_py_server([f"--max_fds_per_message={server_max}"] + (["--service=aio"] if aio else []))
    try:
        req, mine = _request_with(["pipe", "pipe", "pipe"], b"m")
        with ipcrpc.channel(server.address("unix")) as ch:
            stub = svc.FdServiceStub(ch)
            with pytest.raises(ipcrpc.RpcError) as e:
                stub.Read(req, timeout=10)
            assert e.value.code() is code
            if server_max:  # as many as it accepts do go
                req2, two = _request_with(["pipe", "pipe"], b"t")
                assert stub.Read(req2, timeout=10).content == _expected_read(["pipe", "pipe"], b"t")
                for fd in two:
                    os.close(fd)
        for fd in mine:
            os.close(fd)
    finally:
        _finish(server)


def test_server_honours_the_clients_max_fds(fd_server: ServerProcess) -> None:
    with ipcrpc.channel(fd_server.address("unix"), max_fds_per_message=2) as ch:
        stub = svc.FdServiceStub(ch)
        with pytest.raises(ipcrpc.RpcError) as e:
            stub.Open(pb.FdRequest(kind="memfd", count=3), timeout=10)
        assert e.value.code() is ipcrpc.StatusCode.RESOURCE_EXHAUSTED
        assert take_and_read(stub.Open(pb.FdRequest(kind="memfd", content=b"k", count=2), timeout=10).fds[0]) == b"k1"
    with ipcrpc.channel(fd_server.address("unix"), max_fds_per_message=0) as ch:
        with pytest.raises(ipcrpc.RpcError) as e:
            svc.FdServiceStub(ch).Open(pb.FdRequest(kind="memfd"), timeout=10)
        assert e.value.code() is ipcrpc.StatusCode.FAILED_PRECONDITION


# -- out of descriptors (EMFILE) -------------------------------------------------

_EMFILE_CLIENT = textwrap.dedent("""
    import os, resource, sys
    import ipcrpc, fd_service_ipcrpc as svc, fd_service_pb2 as pb
    with ipcrpc.channel(sys.argv[1]) as ch:
        stub = svc.FdServiceStub(ch)
        stub.Hold(pb.FdRequest(), timeout=10)
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
        n = len(fds)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(fds) + 2, hard))  # room for a few more
        try:
            stub.Open(pb.FdRequest(kind="memfd", count=32), timeout=10)
            print("NO ERROR")
        except ipcrpc.RpcError as e:
            print(e.code().name, e.details())
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        after = len(os.listdir("/proc/self/fd"))
        reply = stub.Open(pb.FdRequest(kind="memfd", content=b"z", count=1), timeout=10)
        fd = ipcrpc.take_fd(reply.fd)
        print("AGAIN", os.pread(fd, 10, 0).decode(), "LEAKED", after - n)
""")


@pytest.mark.parametrize("transport", ["unix", "fifo"] + [t for t in ("shm", "msgq") if t in TRANSPORTS])
def test_client_out_of_descriptors_fails_only_that_call(fd_server: ServerProcess, transport: str) -> None:
    r = subprocess.run([sys.executable, "-c", _EMFILE_CLIENT, fd_server.address(transport)], capture_output=True, text=True, timeout=60, env=child_env())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("RESOURCE_EXHAUSTED") and "out of descriptors" in lines[0], r.stdout
    assert lines[1] == "AGAIN z0 LEAKED 0", r.stdout


def test_cpp_server_out_of_descriptors_fails_only_that_call() -> None:
    """The C++ server (its RLIMIT_NOFILE cut to 64) receives more than it can hold:
    RESOURCE_EXHAUSTED in TRAILERS; the connection still serves."""
    server = start_cpp_server(["--max_fds=64"])
    try:
        r, w = os.pipe()
        dups = [os.dup(r) for _ in range(100)]
        with ipcrpc.channel(server.address("unix")) as ch:
            stub = svc.FdServiceStub(ch)
            req = pb.FdRequest()
            for fd in dups:
                ipcrpc.attach_fd(req.fds.add(), fd)
            with pytest.raises(ipcrpc.RpcError) as e:
                stub.Read(req, timeout=10)
            assert e.value.code() is ipcrpc.StatusCode.RESOURCE_EXHAUSTED
            small, mine = _request_with(["pipe"], b"ok")
            assert stub.Read(small, timeout=10).content == b"|ok0"
            os.close(mine[0])
        for fd in dups + [r, w]:
            os.close(fd)
    finally:
        _finish(server)


# -- cancellation with descriptors in flight ---------------------------------------


@pytest.mark.parametrize("transport", ["unix", "fifo"])
def test_cancelled_call_closes_its_fds_on_both_sides(fd_server: ServerProcess, transport: str) -> None:
    with ipcrpc.channel(fd_server.address(transport)) as ch:
        stub = svc.FdServiceStub(ch)
        stub.Hold(pb.FdRequest(), timeout=10)
        server_before = open_fds(str(fd_server.pid))
        before = open_fds()
        # The server holds the request (and its descriptors, not taken) until cancelled.
        req, mine = _request_with(["pipe", "memfd", "file"], b"h")
        req.delay_ms = 30000
        fut = stub.Hold.future(req, timeout=30)
        for fd in mine:
            os.close(fd)
        # Cancelled with unread responses (and their descriptors) queued at the client.
        stream = stub.OpenStream(pb.FdRequest(kind="pipe", content=b"c", count=5), timeout=10)
        first = next(stream)
        stream.cancel()
        assert take_and_read(first.fd) == b"c0"
        del first, stream
        assert fut.cancel()
        del fut
        # Responses the server sent before it saw the cancel may still be arriving (over fifo their
        # descriptors come on the control socket first); the reader closes them as it drops them.
        assert settle(os.getpid(), before) == before, "the client leaked descriptors of a cancelled call"
        stub.Hold(pb.FdRequest(), timeout=10)  # the connection still serves
        # The server closed the held request's descriptors (the connection is still open).
        assert settle(fd_server.pid, server_before) == server_before


# -- the bound on unread descriptors ---------------------------------------------------


@pytest.mark.parametrize("transport", ["unix", "shm"])
def test_a_server_holds_at_most_1024_unread_descriptors_per_connection(fd_server: ServerProcess, transport: str) -> None:
    """A client stream of one-descriptor requests to a handler that stops
    reading: past 1024 waiting descriptors the call fails RESOURCE_EXHAUSTED,
    the descriptors are closed and the connection still serves (before, a
    Python server kept every one: a client could exhaust its descriptors)."""
    with ipcrpc.channel(fd_server.address(transport)) as ch:
        stub = svc.FdServiceStub(ch)
        stub.Hold(pb.FdRequest(), timeout=10)
        server_before = open_fds(str(fd_server.pid))
        fd = open_with_content("memfd", b"q")
        try:
            def requests() -> Iterator[pb.FdRequest]:
                first = pb.FdRequest(delay_ms=3000)  # the handler stops reading for 3 s
                ipcrpc.attach_fd(first.fd, fd)
                yield first
                for _ in range(1500):
                    req = pb.FdRequest()
                    ipcrpc.attach_fd(req.fd, fd)
                    yield req
            with pytest.raises(ipcrpc.RpcError) as e:
                stub.ReadStream(requests(), timeout=30)
            assert e.value.code() is ipcrpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
            assert "at most 1024" in (e.value.details() or ""), e.value.details()
        finally:
            os.close(fd)
        stub.Hold(pb.FdRequest(), timeout=10)  # the connection still serves
        assert settle(fd_server.pid, server_before) <= server_before


# -- hostile peers: descriptors nobody declared ---------------------------------------


def _sendmsg_fds(sock: socket.socket, data: bytes, fds: List[int]) -> None:
    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])


def _closed_everywhere(read_end: int) -> bool:
    """True once every copy of the pipe's write end is closed (read() sees end of file)."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            if os.read(read_end, 1) == b"":
                return True
        except BlockingIOError:
            time.sleep(0.02)
    return False


def _hostile_client(server: ServerProcess, frames: Callable[[socket.socket, int], None]) -> bool:
    """Connects, sends HELLO and then ``frames(sock, fd)`` carrying a pipe's write
    end; True if the server closed both the descriptor and the connection."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(server.sock))
        sock.sendall(_frame.encode_frame(FrameType.HELLO, 0, _wirepb.Hello(1, 4 << 20, 1 << 20, max_fds_per_message=253).encode()))
        frames(sock, w)
        os.close(w)
        w = -1
        fd_closed = _closed_everywhere(r)
        sock.settimeout(10)
        conn_closed = False
        try:
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    conn_closed = True
                    break
        except (ConnectionResetError, socket.timeout):
            conn_closed = True
        return fd_closed and conn_closed
    finally:
        sock.close()
        os.close(r)
        if w >= 0:
            os.close(w)


def test_server_closes_undeclared_fds(fd_server: ServerProcess) -> None:
    # With a PING that declares none.
    assert _hostile_client(fd_server, lambda s, fd: _sendmsg_fds(s, _frame.encode_frame(FrameType.PING, 0, b"12345678"), [fd]))


def test_server_closes_fds_on_a_frame_that_is_not_a_message(fd_server: ServerProcess) -> None:
    assert _hostile_client(fd_server, lambda s, fd: _sendmsg_fds(s, _frame.encode_frame(FrameType.PING, 0, b"12345678", fd_count=1), [fd]))


def test_server_closes_fds_sent_with_payload_bytes(fd_server: ServerProcess) -> None:
    """A batch that arrives in the middle of a payload (no header starts there)."""
    def send(s: socket.socket, fd: int) -> None:
        start = _frame.encode_frame(FrameType.CALL_START, 1, _wirepb.CallStart("/ipcrpc.test.FdService/Read").encode())
        message = _frame.encode_frame(FrameType.MESSAGE, 1, b"\x00" * 64)
        s.sendall(start + message[:40])
        _sendmsg_fds(s, message[40:], [fd])
    assert _hostile_client(fd_server, send)


def test_server_rejects_declared_fds_that_never_came(fd_server: ServerProcess) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(fd_server.sock))
        sock.settimeout(10)
        sock.sendall(_frame.encode_frame(FrameType.HELLO, 0, _wirepb.Hello(1, 4 << 20, 1 << 20, max_fds_per_message=253).encode()))
        sock.sendall(_frame.encode_frame(FrameType.CALL_START, 1, _wirepb.CallStart("/ipcrpc.test.FdService/Read").encode())
                     + _frame.encode_frame(FrameType.MESSAGE, 1, b"\x2a\x02\x08\x01" + struct.pack("<I", 1), fd_count=1))
        data = b"x"
        while data:
            data = sock.recv(1 << 16)  # frames until the server closes (a timeout fails the test)
    finally:
        sock.close()


def _hostile_server(respond: Callable[[socket.socket, int], None]) -> tuple:
    """A server that answers HELLO, reads one call, and sends ``respond(sock, fd)``
    with a pipe's write end. Returns (its address, the pipe's read end, the thread)."""
    d = Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-"))
    path = d / "hostile.sock"
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(str(path))
    lsock.listen(1)
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def serve() -> None:
        conn, _ = lsock.accept()
        lsock.close()
        try:
            conn.sendall(_frame.encode_frame(FrameType.HELLO, 0, _wirepb.Hello(1, 4 << 20, 1 << 20, max_fds_per_message=253).encode()))
            dec = _frame.FrameDecoder(1 << 20)
            got: list = []
            while not any(f.type == FrameType.HALF_CLOSE for f in got):
                data = conn.recv(1 << 16)
                if not data:
                    return
                got += dec.feed(data)
            respond(conn, w)
            os.close(w)
            conn.settimeout(10)
            while conn.recv(1 << 16):
                pass
        except OSError:
            pass
        finally:
            conn.close()
            path.unlink()
            d.rmdir()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return f"unix:{path}", r, t


@pytest.mark.parametrize("aio", [False, True])
@pytest.mark.parametrize("how", ["undeclared", "not-a-message", "above-announced"])
def test_client_closes_fds_a_server_did_not_declare(aio: bool, how: str) -> None:
    def respond(conn: socket.socket, fd: int) -> None:
        reply = pb.FdReply()
        reply.fd.handle = 7
        body = reply.SerializeToString()
        if how == "undeclared":
            _sendmsg_fds(conn, _frame.encode_frame(FrameType.MESSAGE, 1, body), [fd])
        elif how == "not-a-message":
            _sendmsg_fds(conn, _frame.encode_frame(FrameType.HEADERS, 1, b"", fd_count=1), [fd])
        else:  # two descriptors to a client that announced one
            _sendmsg_fds(conn, _frame.encode_frame(FrameType.MESSAGE, 1, body + struct.pack("<II", 7, 8), fd_count=2), [fd, fd])

    address, r, t = _hostile_server(respond)
    try:
        if aio:
            async def call() -> ipcrpc.StatusCode:
                async with ipcrpc.aio.channel(address, max_fds_per_message=1) as ch:
                    try:
                        await svc.FdServiceStub(ch).Open(pb.FdRequest(), timeout=10)
                    except ipcrpc.RpcError as e:
                        return e.code()
                    return ipcrpc.StatusCode.OK

            code = asyncio.run(call())
        else:
            with ipcrpc.channel(address, max_fds_per_message=1) as ch:
                with pytest.raises(ipcrpc.RpcError) as e:
                    svc.FdServiceStub(ch).Open(pb.FdRequest(), timeout=10)
                code = e.value.code()
        assert code is ipcrpc.StatusCode.UNAVAILABLE  # a protocol error ends the connection
        assert _closed_everywhere(r), "the client kept a descriptor nobody declared"
    finally:
        os.close(r)
        t.join(10)


UPGRADED = [t for t in ("fifo", "shm", "msgq") if t in TRANSPORTS]


@pytest.mark.parametrize("transport", UPGRADED)
@pytest.mark.parametrize("how", ["record-no-frame-declared", "stray-bytes-with-fds"])
def test_server_closes_fds_of_bad_control_records(fd_server: ServerProcess, transport: str, how: str) -> None:
    """Upgraded transports: an fd record that no frame declared (the next frame that
    declares some finds a record of the wrong size), or bytes that are not a record
    with descriptors on them: the server closes the descriptors and the connection."""
    from ipcrpc import _transport

    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    t = _transport.connect(_transport.parse_address(fd_server.address(transport)), transport, 10)
    try:
        assert t.control is not None
        t.send(_frame.encode_frame(FrameType.HELLO, 0, _wirepb.Hello(1, 4 << 20, 1 << 20, max_fds_per_message=253).encode()))
        if how == "record-no-frame-declared":
            t.control.send_fds([w])  # declared by no frame
            body = b"\x2a\x02\x08\x01\x32\x02\x08\x02"  # FdRequest{fd: {handle 1}, fds: [{handle 2}]}
            t.control.send_fds([w, w])
            t.send(_frame.encode_frame(FrameType.CALL_START, 1, _wirepb.CallStart("/ipcrpc.test.FdService/Read").encode())
                   + _frame.encode_frame(FrameType.MESSAGE, 1, body + struct.pack("<II", 1, 2), fd_count=2)
                   + _frame.encode_frame(FrameType.HALF_CLOSE, 1))
        else:
            _sendmsg_fds(t.control.sock, b"NOPE", [w])
        os.close(w)
        w = -1
        end = time.monotonic() + 10
        closed = False
        while time.monotonic() < end and not closed:
            data = t.recv_within(1 << 16, 0.1)
            closed = data == b""  # frames (its HELLO) are read and dropped
        assert closed, "the server kept the connection"
        assert _closed_everywhere(r), "the server kept descriptors nobody declared"
    finally:
        t.close()
        os.close(r)
        if w >= 0:
            os.close(w)
