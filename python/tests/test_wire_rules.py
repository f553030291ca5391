"""Protocol rules checked with hand-made frames, against both servers.

Each test speaks the wire protocol directly over the unix socket, so it pins
down what a server does with what a well-behaved client never sends
(docs/PROTOCOL.md §2, §5, §7, §9). Rules the C++ server does not enforce yet
are checked against the Python server only (``python_only``)."""

from __future__ import annotations

import socket
import time
from typing import List, Optional

import pytest

from ipcrpc import _frame, _wirepb
from ipcrpc._frame import FrameType
import test_service_pb2 as pb

from conftest import ServerProcess

ECHO = "/ipcrpc.test.TestService/Echo"
WAIT = "/ipcrpc.test.TestService/WaitForCancel"
CLIENT_STREAM = "/ipcrpc.test.TestService/ClientStream"


class Raw:
    """A client that writes frames by hand."""

    def __init__(self, server: ServerProcess, hello: Optional[bytes] = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(server.sock))
        self.sock.settimeout(10)
        self.decoder = _frame.FrameDecoder(64 << 20)
        self.pending: List[_frame.Frame] = []
        self.send(FrameType.HELLO, 0, _wirepb.Hello(1, 4 << 20, 1 << 20).encode() if hello is None else hello)

    def send(self, type_: int, sid: int, payload: bytes = b"", flags: int = 0) -> None:
        try:
            self.sock.sendall(_frame.encode_frame(type_, sid, payload, flags))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: read() reports it

    def call(self, sid: int, method: str, *messages: bytes, timeout_us: int = 0, half_close: bool = True, metadata: tuple = ()) -> None:
        self.send(FrameType.CALL_START, sid, _wirepb.CallStart(method, timeout_us, metadata).encode())
        for m in messages:
            self.send(FrameType.MESSAGE, sid, m)
        if half_close:
            self.send(FrameType.HALF_CLOSE, sid)

    def read(self, timeout: float = 10) -> Optional[_frame.Frame]:
        """The next frame, or None if the server closed the connection."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(1 << 20)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    def trailers(self, sid: int) -> _wirepb.Trailers:
        while True:
            f = self.read()
            assert f is not None, "connection closed before TRAILERS"
            if f.type == FrameType.TRAILERS and f.stream_id == sid:
                return _wirepb.Trailers.decode(f.payload)

    def closed(self, allow: tuple = ()) -> bool:
        """True if the server closes the connection; frames before that must be of
        types in ``allow`` (any frame if ``allow`` is empty)."""
        while True:
            try:
                f = self.read(10)
            except socket.timeout:
                return False
            if f is None:
                return True
            if allow and f.type not in allow:
                raise AssertionError(f"unexpected frame {f} before the close")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(any_server: ServerProcess):  # type: ignore[no-untyped-def]
    r = Raw(any_server)
    hello = r.read()
    assert hello is not None and hello.type == FrameType.HELLO
    yield r
    r.close()


python_only = pytest.mark.parametrize("any_server", ["python"], indirect=True)

REQ = pb.Request(text="x").SerializeToString()


def test_ok_trailers_are_empty(raw: Raw) -> None:
    raw.call(1, ECHO, pb.Request(text="ada").SerializeToString())
    msg = raw.read()
    assert msg is not None and msg.type == FrameType.MESSAGE
    t = raw.read()
    assert t is not None and t.type == FrameType.TRAILERS and t.payload == b""


def test_server_ends_the_call_at_its_deadline(raw: Raw) -> None:
    # The client never cancels: the server itself ends the call DEADLINE_EXCEEDED.
    t0 = time.monotonic()
    raw.call(1, WAIT, REQ, timeout_us=100_000)
    tr = raw.trailers(1)
    assert tr.code == 4, tr
    assert time.monotonic() - t0 < 9  # long before WaitForCancel's own 10 s


@pytest.mark.parametrize("messages", [(), (REQ, REQ)], ids=["zero", "two"])
def test_unary_needs_exactly_one_request(raw: Raw, messages: tuple) -> None:
    raw.call(1, ECHO, *messages)
    assert raw.trailers(1).code == 13  # INTERNAL


def test_unparsable_request(raw: Raw) -> None:
    raw.call(1, ECHO, b"\xff\xff")
    assert raw.trailers(1).code == 13


def test_malformed_call_start(raw: Raw) -> None:
    raw.send(FrameType.CALL_START, 1, b"\x0a\x05ab")
    assert raw.trailers(1).code == 13
    raw.call(3, ECHO, REQ)  # the connection stays usable
    assert raw.trailers(3).code == 0


def test_empty_metadata_key_from_the_wire(raw: Raw) -> None:
    raw.call(1, ECHO, REQ, metadata=(("", b"v"),))
    assert raw.trailers(1).code == 13


@pytest.mark.parametrize("key", ["Upper", "sp ace", "ipcrpc-from-a-newer-peer"])
def test_other_keys_are_kept_as_sent(raw: Raw, key: str) -> None:
    # Senders must not send these (clients refuse them before sending), but a
    # receiver keeps them: a newer peer may use reserved "ipcrpc-" keys.
    raw.call(1, ECHO, REQ, metadata=((key, b"v"),))
    assert raw.trailers(1).code == 0


@pytest.mark.parametrize("method", ["nope", "/ipcrpc.test.TestService", "//Echo", "/ipcrpc.test.TestService/Echo/x"])
def test_malformed_method_name_is_unimplemented(raw: Raw, method: str) -> None:
    raw.call(1, method, REQ)
    assert raw.trailers(1).code == 12


def test_stream_ids_must_increase(raw: Raw) -> None:
    raw.call(5, ECHO, REQ)
    assert raw.trailers(5).code == 0
    raw.call(5, ECHO, REQ)
    assert raw.closed()


def test_ping_is_echoed(raw: Raw) -> None:
    raw.send(FrameType.PING, 0, b"12345678")
    f = raw.read()
    assert f is not None and (f.type, f.stream_id, f.payload, f.flags) == (FrameType.PING, 0, b"12345678", 1)


def test_unknown_frame_types_are_skipped(raw: Raw) -> None:
    raw.send(200, 0, b"future")
    raw.send(77, 1, b"")
    raw.call(1, ECHO, REQ)
    assert raw.trailers(1).code == 0


@pytest.mark.parametrize("type_", [FrameType.TRANSPORT_ACK, FrameType.TRANSPORT_OFFER, FrameType.GOAWAY])
def test_ignored_frames_from_the_client(raw: Raw, type_: int) -> None:
    raw.send(type_, 0, b"")
    raw.call(1, ECHO, REQ)
    assert raw.trailers(1).code == 0


@pytest.mark.parametrize("type_", [FrameType.HELLO, FrameType.TRAILERS, FrameType.HEADERS])
def test_server_only_frames_from_the_client_close(raw: Raw, type_: int) -> None:
    raw.send(type_, 0, b"")
    assert raw.closed()


def test_credit_of_wrong_size_closes(raw: Raw) -> None:
    raw.call(1, WAIT, REQ, timeout_us=5_000_000)
    raw.send(FrameType.CREDIT, 1, b"\x01\x00\x00")
    assert raw.closed()


@pytest.mark.parametrize("version", [0, 2])
def test_hello_with_another_version_closes(any_server: ServerProcess, version: int) -> None:
    r = Raw(any_server, hello=_wirepb.Hello(version).encode())
    try:
        assert r.closed()
    finally:
        r.close()


def test_first_frame_must_be_hello(any_server: ServerProcess) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(any_server.sock))
    s.settimeout(10)
    s.sendall(_frame.encode_frame(FrameType.CALL_START, 1, _wirepb.CallStart(ECHO).encode()))
    try:
        data = s.recv(1 << 16)
        while data:
            data = s.recv(1 << 16)
    except ConnectionResetError:
        pass
    s.close()


def test_call_start_size_limit(raw: Raw) -> None:
    # PROTOCOL.md §2 "Frame size limits" and §5 "Limits" (C++ and Python: 8 KiB
    # and 256 entries of metadata, 24 KiB control frames): a CALL_START within
    # the limits is served; beyond them it is refused RESOURCE_EXHAUSTED (an
    # oversized frame is discarded unread), and the connection stays usable.
    raw.call(1, ECHO, REQ, metadata=(("big", b"v" * (4 << 10)),))
    assert raw.trailers(1).code == 0
    raw.call(3, ECHO, REQ, metadata=(("big", b"v" * (12 << 10)),))  # over 8 KiB, under 24 KiB
    assert raw.trailers(3).code == 8  # RESOURCE_EXHAUSTED
    raw.call(5, ECHO, REQ, metadata=tuple((f"k{i}", b"") for i in range(257)))  # 257 entries (~8.7 KiB)
    assert raw.trailers(5).code == 8
    raw.call(7, ECHO, REQ, metadata=(("big", b"v" * (5 << 20)),))  # over the control-frame limit
    t = raw.trailers(7)
    assert t.code == 8 and "control-frame limit" in t.message
    raw.call(9, ECHO, REQ)
    assert raw.trailers(9).code == 0


@python_only
def test_message_after_half_close(raw: Raw) -> None:
    raw.call(1, WAIT, REQ, timeout_us=5_000_000)
    raw.send(FrameType.MESSAGE, 1, REQ)
    assert raw.trailers(1).code == 13


@python_only
def test_client_that_ignores_the_window(raw: Raw) -> None:
    # The server announced a 1 MiB window: 2 MiB without waiting for CREDIT is a violation.
    raw.call(1, CLIENT_STREAM, half_close=False)
    chunk = pb.Request(payload=b"w" * (512 << 10), delay_ms=1000).SerializeToString()
    for _ in range(4):
        raw.send(FrameType.MESSAGE, 1, chunk)
    assert raw.trailers(1).code == 8


@python_only
@pytest.mark.parametrize("sid,payload", [(0, b"1234567"), (0, b"123456789"), (1, b"12345678")])
def test_bad_ping_closes(raw: Raw, sid: int, payload: bytes) -> None:
    raw.send(FrameType.PING, sid, payload)
    assert raw.closed()


@pytest.mark.parametrize("kind", ["cpp", "python"])
def test_goaway_then_drain_deadline(kind: str) -> None:
    # GOAWAY names the last accepted stream (code UNAVAILABLE); a call still
    # running at the drain deadline gets no TRAILERS: the connection closes.
    from conftest import start_cpp_server, start_py_server, _finish

    server = (start_cpp_server if kind == "cpp" else start_py_server)(["--grace_ms=300"])
    try:
        r = Raw(server)
        assert r.read() is not None  # HELLO
        r.call(3, WAIT, REQ)
        time.sleep(0.2)
        server.proc.send_signal(15)
        f = r.read()
        assert f is not None and f.type == FrameType.GOAWAY, f
        g = _wirepb.GoAway.decode(f.payload)
        assert (g.last_stream_id, g.code) == (3, 14)
        assert r.closed(allow=(FrameType.PING,))  # no TRAILERS for stream 3: the drain deadline cancelled it
        r.close()
    finally:
        _finish(server)
