"""Byte-stream transports (PROTOCOL.md §1, §12) and address parsing.

A :class:`Transport` carries one ordered, reliable byte stream in each
direction.  ``recv`` blocks until bytes arrive, the peer closes (``b""``) or
``shutdown()`` is called from another thread (``b""`` too).  ``send`` writes
every byte or raises ``ConnectionError``.  One reader thread and any number
of writers (serialised by the caller) may use a transport at once.
"""

from __future__ import annotations

import array
import collections
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Deque, List, Optional, Sequence, Tuple

from . import _frame, _wirepb
from ._control import ControlSocket, fds_from_ancillary
from ._fds import MAX_FDS_PER_MESSAGE, FdBatch
from ._frame import FrameType, ProtocolError
from ._status import RpcError, StatusCode

_ANCILLARY = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * 4)
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0x40000000)

# In "auto" preference order, as the C++ implementation (docs/TRANSPORTS.md).
KNOWN_TRANSPORTS = ("shm", "shm+sem", "unix", "msgq", "fifo")
_ALL_NAMES = KNOWN_TRANSPORTS + ("auto",)


class Transport:
    """Interface of a byte-stream transport."""

    name = "?"

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def recv(self, max_bytes: int) -> bytes:
        raise NotImplementedError

    def recv_within(self, max_bytes: int, timeout: float) -> Optional[bytes]:
        """Like recv(), but returns None if nothing arrived within ``timeout`` seconds."""
        raise NotImplementedError

    def fileno(self) -> int:
        """A descriptor that becomes readable when recv() would not block, or -1."""
        return -1

    def shutdown(self) -> None:
        """Wakes a blocked recv() (it returns b"") and fails later sends."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- file descriptors (PROTOCOL.md §10) --
    # Upgraded transports (fifo, shm, msgq) carry them as fd records on their
    # control socket (``control``); the unix transport with the frame's bytes.

    control: Optional[ControlSocket] = None

    def send_fds(self, data: bytes, fds: Sequence[int]) -> None:
        """Sends ``data``, whose first byte is the header of the frame that
        declares ``fds``, with those descriptors."""
        if self.control is None:
            raise ConnectionError(f"the {self.name} transport cannot pass file descriptors")
        self.control.send_fds(fds)
        self.send(data)

    def send_split(self, data: bytes, fds: Sequence[int] = (), at: int = 0) -> None:
        """Sends ``data``; ``fds`` go with the frame that starts at offset ``at``."""
        if not fds:
            self.send(data)
            return
        if at:
            self.send(data[:at])
        self.send_fds(data[at:] if at else data, fds)

    def claim_fds(self, header_offset: int, count: int) -> FdBatch:
        """The descriptors of the frame whose header starts at byte ``header_offset``
        of the received stream and declares ``count`` (ProtocolError if none came)."""
        if self.control is None:
            raise ProtocolError(f"a frame declares {count} file descriptors, which the {self.name} transport cannot carry")
        return self.control.take_batch()

    def check_undeclared(self, next_header_offset: int) -> None:
        """Called when the frame decoder is about to read a header at
        ``next_header_offset``: raises ProtocolError (closing them) if descriptors
        came that no earlier header declared."""

    def has_pending_fds(self) -> bool:
        """Whether descriptors came in band that no decoded header has claimed yet."""
        return False


class UnixTransport(Transport):
    """The unix socket itself carries the byte stream (and SCM_RIGHTS descriptors
    with it: a batch arrives with the recvmsg that reads the first byte it was
    sent with, the first byte of the frame that declares it)."""

    name = "unix"

    def __init__(self, sock: socket.socket, rx_offset: int = 0) -> None:
        self.sock = sock
        self._closed = False
        self._poller = select.poll()
        self._poller_ready = False
        # Bytes received so far (the offset of the next byte), and the batches
        # that came in band and wait for their header: (first, end, batch) with
        # [first, end) the bytes of the recvmsg they came with.
        self.rx_offset = rx_offset
        self._batches: Deque[Tuple[int, int, FdBatch]] = collections.deque()
        self.undeclared_fds_closed = 0

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionError(f"unix socket send: {e.strerror or e}") from e

    def send_fds(self, data: bytes, fds: Sequence[int]) -> None:
        try:
            send_with_fds(self.sock, data, fds)
        except OSError as e:
            raise ConnectionError(f"unix socket send: {e.strerror or e}") from e

    def _recvmsg(self, max_bytes: int, flags: int) -> bytes:
        data, anc, mflags, _ = self.sock.recvmsg(max_bytes, _ANCILLARY, flags | _CLOEXEC)
        if anc or mflags & socket.MSG_CTRUNC:
            batch = FdBatch(fds_from_ancillary(anc), bool(mflags & socket.MSG_CTRUNC))
            if not data:
                batch.close()
            else:
                self._batches.append((self.rx_offset, self.rx_offset + len(data), batch))
        self.rx_offset += len(data)
        return data

    def recv(self, max_bytes: int) -> bytes:
        try:
            return self._recvmsg(max_bytes, 0)
        except OSError as e:
            if self._closed:
                return b""
            raise ConnectionError(f"unix socket recv: {e.strerror or e}") from e

    def recv_within(self, max_bytes: int, timeout: float) -> Optional[bytes]:
        if self._closed:
            return b""
        try:
            return self._recvmsg(max_bytes, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        except OSError as e:
            if self._closed:
                return b""
            raise ConnectionError(f"unix socket recv: {e.strerror or e}") from e
        if not self._poller_ready:
            self._poller.register(self.sock.fileno(), select.POLLIN)
            self._poller_ready = True
        if not self._poller.poll(max(0, int(timeout * 1000))):
            return None
        return self.recv(max_bytes)

    def fileno(self) -> int:
        return self.sock.fileno()

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.shutdown()
            self.sock.close()
        self._reject_all()

    def _reject_all(self) -> int:
        n = 0
        while self._batches:
            batch = self._batches.popleft()[2]
            n += len(batch)
            batch.close()
        return n

    def has_pending_fds(self) -> bool:
        return bool(self._batches)

    def check_undeclared(self, next_header_offset: int) -> None:
        # A batch's header starts within the bytes its recvmsg read: once the next
        # header starts at or after their end, no header claimed it.
        if self._batches and self._batches[0][1] <= next_header_offset:
            n = self._reject_all()
            self.undeclared_fds_closed += n
            raise ProtocolError(f"peer sent {n} file descriptors that no frame declared; they were closed")

    def claim_fds(self, header_offset: int, count: int) -> FdBatch:
        self.check_undeclared(header_offset)
        if not self._batches or self._batches[0][0] > header_offset:
            raise ProtocolError(f"a frame declares {count} file descriptors that the peer did not send with it")
        return self._batches.popleft()[2]


# -- addresses ---------------------------------------------------------------


@dataclass
class Address:
    transport: str  # a name from KNOWN_TRANSPORTS or "auto"
    socket_path: str  # filesystem path, or "\0name" for the abstract namespace

    @property
    def display(self) -> str:
        p = "@" + self.socket_path[1:] if self.socket_path.startswith("\0") else self.socket_path
        return f"{self.transport}:{p}"


def parse_address(address: str) -> Address:
    """Parses ``TRANSPORT:SOCKET`` (SOCKET a path or ``@name``); raises RpcError(INVALID_ARGUMENT)."""
    scheme, sep, rest = address.partition(":")
    if not sep:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"address {address!r} has no transport prefix; use one of {', '.join(_ALL_NAMES)} (e.g. unix:/run/app.sock)")
    if scheme == "unix-abstract":
        scheme, rest = "unix", "@" + rest
    if scheme not in _ALL_NAMES:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"unknown transport {scheme!r} in {address!r}; valid: {', '.join(_ALL_NAMES)}")
    if not rest or rest == "@":
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"address {address!r} names no socket")
    path = "\0" + rest[1:] if rest.startswith("@") else rest
    return Address(scheme, path)


def check_transport_name(name: str) -> str:
    if name not in _ALL_NAMES:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"unknown transport {name!r}; valid: {', '.join(_ALL_NAMES)}")
    return name


# -- waiting for a server (wait_for_ready) -------------------------------------


class Backoff:
    """Pauses between connection attempts of a ``wait_for_ready`` call: 50 ms,
    growing by 1.6 up to 1 s, never past the call's deadline."""

    def __init__(self) -> None:
        self._delay = 0.05

    def next_pause(self, deadline: Optional[float], now: float) -> Optional[float]:
        """Seconds to wait before the next attempt, or None once the deadline has passed."""
        pause, self._delay = self._delay, min(self._delay * 1.6, 1.0)
        if deadline is None:
            return pause
        return None if now >= deadline else min(pause, deadline - now)


def not_ready_error(target: str, last: RpcError, method: str) -> RpcError:
    return RpcError(StatusCode.DEADLINE_EXCEEDED, f"deadline exceeded waiting for the server at {target} to be ready (last attempt: {last.details()})", method=method)


# -- refusals (§4 "Refusing a connection") -----------------------------------

# How long a client whose first write failed looks for the server's refusal (as C++).
REFUSAL_GRACE = 0.1


def is_refusal(frame: _frame.Frame) -> bool:
    """Whether ``frame``, read where the server's first frame is expected, is a refusal."""
    return frame.type == FrameType.GOAWAY and frame.stream_id == 0


def refusal_error(frame: _frame.Frame, target: str) -> RpcError:
    """The RpcError for a refusing GOAWAY: its code and reason, or UNAVAILABLE
    when the code is 0 or out of range."""
    goaway = _wirepb.GoAway.decode(frame.payload) if not frame.oversized else _wirepb.GoAway()
    if 1 <= goaway.code <= 16:
        return RpcError(StatusCode.from_number(goaway.code), f"the server at {target} refused the connection: {goaway.reason}")
    return RpcError(StatusCode.UNAVAILABLE, f"the server at {target} closed the connection without a reason")


def read_refusal(transport: "Transport", target: str, grace: float = REFUSAL_GRACE) -> Optional[RpcError]:
    """After a failed first write: the server's refusal if it is already readable
    (looked for up to ``grace`` seconds), else None."""
    decoder = _frame.FrameDecoder(64 * 1024)
    end = time.monotonic() + grace
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return None
        try:
            data = transport.recv_within(64 * 1024, remaining)
        except (ConnectionError, OSError):
            return None
        if not data:
            return None  # timed out (None) or closed with nothing more (b"")
        try:
            frames = decoder.feed(data)
        except ProtocolError:
            return None
        for frame in frames:
            return refusal_error(frame, target) if is_refusal(frame) else None


# -- negotiation helpers (exact reads on the socket, no read-ahead) ----------


def recv_exact(sock: socket.socket, n: int, deadline: float, fds: Optional[List[int]] = None) -> bytes:
    """Reads exactly n bytes (collecting SCM_RIGHTS fds into ``fds``)."""
    out = bytearray()
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out during transport negotiation")
        sock.settimeout(remaining)
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(n - len(out), socket.CMSG_SPACE(16 * 4))
        except socket.timeout:
            raise TimeoutError("timed out during transport negotiation") from None
        finally:
            sock.settimeout(None)
        for level, type_, cdata in ancdata:
            if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(cdata[: len(cdata) - (len(cdata) % a.itemsize)])
                if fds is None:
                    for fd in a:
                        os.close(fd)
                else:
                    fds.extend(a)
        if not data:
            raise ConnectionError("the server closed the socket during transport negotiation")
        out += data
    return bytes(out)


def read_frame_exact(sock: socket.socket, deadline: float, max_payload: int, fds: Optional[List[int]] = None) -> _frame.Frame:
    frame = _frame.decode_header(recv_exact(sock, _frame.HEADER_SIZE, deadline, fds))
    if frame.length > max_payload:
        raise ProtocolError(f"negotiation frame of {frame.length} bytes is too large")
    frame.payload = recv_exact(sock, frame.length, deadline, fds) if frame.length else b""
    return frame


def send_with_fds(sock: socket.socket, data: bytes, fds: Sequence[int]) -> None:
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    sent = sock.sendmsg([data], anc)
    if sent < len(data):
        sock.sendall(data[sent:])


# -- client side -------------------------------------------------------------


def available_transports() -> Tuple[str, ...]:
    """Transports this Python process can speak, in "auto" order."""
    from . import _shm

    from . import _msgq

    names = []
    for name in KNOWN_TRANSPORTS:
        if (name in ("unix", "fifo") or (name == "shm" and _shm.available()) or (name == "msgq" and _msgq.available())
                or (name == "shm+sem" and _shm.semaphores_available())):
            names.append(name)
    return tuple(names)


def connect(address: Address, transport: str, timeout: float = 5.0, ring_bytes: int = 0, max_spin: Optional[float] = None) -> Transport:
    """Connects to the server's socket and negotiates ``transport`` (§12).

    ``max_spin``: the shm spin budget in seconds (None: the default, 0: none).
    Raises RpcError: UNAVAILABLE if the server cannot be reached,
    FAILED_PRECONDITION if it refuses the transport.
    """
    from . import _shm

    deadline = time.monotonic() + timeout
    if transport not in _ALL_NAMES:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"unknown transport {transport!r}; valid: {', '.join(_ALL_NAMES)}")
    if transport == "auto":
        preference = list(available_transports())
    elif transport in available_transports():
        preference = [transport]
    else:
        raise RpcError(StatusCode.FAILED_PRECONDITION, f"transport {transport!r} is not available in this Python process (available: {', '.join(available_transports())})")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect(address.socket_path)
        sock.settimeout(None)
    except OSError as e:
        sock.close()
        raise RpcError(StatusCode.UNAVAILABLE, f"cannot connect to {address.display}: {e.strerror or e}") from None
    if preference == ["unix"]:
        return UnixTransport(sock)
    fds: List[int] = []
    try:
        req = _wirepb.TransportRequest(preference, ring_bytes)
        try:
            sock.sendall(_frame.encode_frame(FrameType.TRANSPORT_REQUEST, 0, req.encode()))
        except OSError:
            # The server may have refused us and closed before our request went out.
            refusal = read_refusal(UnixTransport(sock), address.display)
            if refusal is not None:
                raise refusal from None
            raise
        frame = read_frame_exact(sock, deadline, 1 << 20, fds)
        if is_refusal(frame):
            raise refusal_error(frame, address.display)
        if frame.type != FrameType.TRANSPORT_OFFER or frame.stream_id != 0:
            raise ProtocolError(f"expected TRANSPORT_OFFER, got frame type {frame.type}")
        offer = _wirepb.TransportOffer.decode(frame.payload)
        if not offer.transport:
            raise RpcError(StatusCode.FAILED_PRECONDITION, f"server at {address.display} refused transports {preference}: {offer.error}")
        if offer.transport not in preference:
            raise ProtocolError(f"server offered {offer.transport!r}, which was not requested")
        if offer.transport == "unix":
            if fds:
                raise ProtocolError("unexpected file descriptors with a unix offer")
            return UnixTransport(sock)
        if offer.transport in ("shm", "shm+sem", "fifo", "msgq"):
            from . import _fifo, _msgq

            try:
                t: Transport
                if offer.transport in ("shm", "shm+sem"):
                    t = _shm.attach_client(offer, fds, sock, max_spin)
                elif offer.transport == "fifo":
                    t = _fifo.attach_client(offer, fds, sock)
                else:
                    t = _msgq.attach_client(offer, fds, sock)
            except Exception as e:
                reason = str(e) or type(e).__name__
                sock.sendall(_frame.encode_frame(FrameType.TRANSPORT_ACK, 0, _wirepb.TransportAck(False, reason).encode()))
                raise RpcError(StatusCode.UNAVAILABLE, f"cannot attach to the {offer.transport} transport of {address.display}: {reason}") from None
            fds = []  # attach owns (and closed) them
            sock.sendall(_frame.encode_frame(FrameType.TRANSPORT_ACK, 0, _wirepb.TransportAck(True).encode()))
            if hasattr(t, "start"):
                t.start()
            return t
        raise ProtocolError(f"offer for unsupported transport {offer.transport!r}")
    except RpcError:
        sock.close()
        raise
    except (ProtocolError, TimeoutError, ConnectionError, OSError) as e:
        sock.close()
        raise RpcError(StatusCode.UNAVAILABLE, f"transport negotiation with {address.display} failed: {e}") from None
    finally:
        for fd in fds:
            os.close(fd)
