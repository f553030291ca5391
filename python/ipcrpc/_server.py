"""The synchronous server (PROTOCOL.md §4-§9, §12 server side).

Threads: one accept thread per listening socket, one reader thread per
connection, and a pool of ``max_workers`` handler threads.  A call's handler
runs on a pool thread; for single-request methods it starts once the request
and HALF_CLOSE have arrived.  Servicer methods are called grpcio-style:
``method(request_or_iterator, context)``.
"""

from __future__ import annotations

import collections
import errno
import os
import select
import socket
import stat
import threading
import time
import traceback
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from . import _access, _fds, _frame, _limits, _pending, _transport, _wirepb
from ._access import PeerCredentials
from ._frame import FrameType, ProtocolError
from ._client import incoming_message
from ._status import AbortError, MetadataType, RpcError, StatusCode, WireMetadata, normalize_metadata, user_metadata

AGENT = "ipcrpc-python/0.1"
_READ_CHUNK = 256 * 1024
_NEGOTIATION_TIMEOUT = 5.0


# -- method handlers (grpcio-shaped) -----------------------------------------


@dataclass
class RpcMethodHandler:
    request_streaming: bool
    response_streaming: bool
    request_deserializer: Optional[Callable[[bytes], Any]]
    response_serializer: Optional[Callable[[Any], bytes]]
    unary_unary: Optional[Callable[..., Any]] = None
    unary_stream: Optional[Callable[..., Any]] = None
    stream_unary: Optional[Callable[..., Any]] = None
    stream_stream: Optional[Callable[..., Any]] = None

    @property
    def behavior(self) -> Callable[..., Any]:
        fn = self.stream_stream or self.stream_unary or self.unary_stream or self.unary_unary
        assert fn is not None
        return fn


def unary_unary_rpc_method_handler(behavior: Callable[..., Any], request_deserializer: Any = None, response_serializer: Any = None) -> RpcMethodHandler:
    return RpcMethodHandler(False, False, request_deserializer, response_serializer, unary_unary=behavior)


def unary_stream_rpc_method_handler(behavior: Callable[..., Any], request_deserializer: Any = None, response_serializer: Any = None) -> RpcMethodHandler:
    return RpcMethodHandler(False, True, request_deserializer, response_serializer, unary_stream=behavior)


def stream_unary_rpc_method_handler(behavior: Callable[..., Any], request_deserializer: Any = None, response_serializer: Any = None) -> RpcMethodHandler:
    return RpcMethodHandler(True, False, request_deserializer, response_serializer, stream_unary=behavior)


def stream_stream_rpc_method_handler(behavior: Callable[..., Any], request_deserializer: Any = None, response_serializer: Any = None) -> RpcMethodHandler:
    return RpcMethodHandler(True, True, request_deserializer, response_serializer, stream_stream=behavior)


class GenericRpcHandler:
    """The methods of one service, by full path ("/pkg.Service/Method")."""

    def __init__(self, service: str, methods: Dict[str, RpcMethodHandler]) -> None:
        self.service_name = service
        self.methods = {f"/{service}/{name}": h for name, h in methods.items()}

    def service(self, method: str) -> Optional[RpcMethodHandler]:
        return self.methods.get(method)


def method_handlers_generic_handler(service: str, method_handlers: Dict[str, RpcMethodHandler]) -> GenericRpcHandler:
    return GenericRpcHandler(service, method_handlers)


# -- the servicer context ----------------------------------------------------


class ServicerContextBase:
    """What the sync and the asyncio servicer contexts share: the call's
    identity, metadata and status, read from the server's per-call stream
    (which has ``conn.peer``, ``metadata``, ``method``, ``trailing``,
    ``deadline`` and ``active()``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._code: Optional[StatusCode] = None
        self._details = ""

    def attach_fd(self, field: Any, fd: int) -> None:
        """Makes the ``ipcrpc.FileDescriptor`` field ``field`` name ``fd`` and gives
        ``fd`` to the call: it stays open until the call has ended (after the
        response naming it was sent), then the runtime closes it.  The simplest
        way for a handler to return a descriptor it opened (compare
        :func:`ipcrpc.attach_fd`, which only borrows)."""
        if not isinstance(fd, int):
            fd = fd.fileno()
        self._stream.kept_fds.append(fd)
        _fds.attach_fd(field, fd)

    def peer(self) -> str:
        c = self._stream.conn.peer
        return f"pid:{c.pid},uid:{c.uid},gid:{c.gid}"

    def peer_credentials(self) -> PeerCredentials:
        return self._stream.conn.peer  # type: ignore[no-any-return]

    def invocation_metadata(self) -> MetadataType:
        """The client's metadata: str values, bytes under keys ending in ``-bin`` (as grpcio)."""
        s = self._stream
        if s.user_metadata is None:
            s.user_metadata = user_metadata(s.metadata)
        return s.user_metadata  # type: ignore[no-any-return]

    def method(self) -> str:
        return self._stream.method  # type: ignore[no-any-return]

    def set_trailing_metadata(self, metadata: Sequence[Tuple[str, Any]]) -> None:
        self._stream.trailing = normalize_metadata(metadata)

    def set_code(self, code: StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> Optional[StatusCode]:
        return self._code

    def details(self) -> str:
        return self._details

    def is_active(self) -> bool:
        return self._stream.active()  # type: ignore[no-any-return]

    def time_remaining(self) -> Optional[float]:
        d = self._stream.deadline
        return None if d is None else max(0.0, d - time.monotonic())

    @staticmethod
    def _abort_error(code: StatusCode, details: str) -> AbortError:
        if code is StatusCode.OK:
            raise ValueError("abort() needs a code other than OK")
        return AbortError(code, details)


class ServicerContext(ServicerContextBase):
    """What a handler knows about its call (grpcio's ``grpc.ServicerContext``).

    Used by the handler's thread; ``is_active()``, ``time_remaining()`` and
    ``add_callback()`` may be called from any thread.
    """

    _stream: "_ServerStream"

    def send_initial_metadata(self, metadata: Sequence[Tuple[str, Any]]) -> None:
        self._stream.send_headers(normalize_metadata(metadata))

    def abort(self, code: StatusCode, details: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        """Ends the call with ``code`` (not OK) and ``details``; raises, never returns."""
        raise self._abort_error(code, details)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Runs ``callback`` when the call ends (cancelled, deadline, or finished)."""
        return self._stream.add_callback(callback)

    def cancel(self) -> None:
        self._stream.finish(StatusCode.CANCELLED, "cancelled by the server")


# -- per-call state ------------------------------------------------------------


class _ServerStream:
    def __init__(self, conn: "_ServerConnection", stream_id: int, method: str, handler: RpcMethodHandler, deadline: Optional[float], metadata: WireMetadata) -> None:
        self.conn = conn
        self.id = stream_id
        self.method = method
        self.handler = handler
        self.deadline = deadline
        self.metadata = metadata
        self.user_metadata: Optional[MetadataType] = None  # made by invocation_metadata()
        self.cond = threading.Condition(threading.Lock())
        self.inbox: Deque[_fds.Incoming] = collections.deque()
        self.kept_fds: List[int] = []  # ServicerContext.attach_fd: closed when the call ends
        self.half_closed = False
        self.cancelled = False
        self.forced: Optional[Tuple[StatusCode, str]] = None
        self.finished = False
        self.headers_sent = False
        self.initial: WireMetadata = ()
        self.trailing: WireMetadata = ()
        self.send_window = conn.peer_window
        self.recv_window = conn.server.stream_window  # what the client may still send
        self.unacked = 0
        self.callbacks: List[Callable[[], None]] = []

    def active(self) -> bool:
        if self.cancelled or self.finished:
            return False
        return self.deadline is None or time.monotonic() < self.deadline

    def add_callback(self, cb: Callable[[], None]) -> bool:
        with self.cond:
            if self.finished or self.cancelled:
                return False
            self.callbacks.append(cb)
            return True

    def _run_callbacks(self) -> None:
        with self.cond:
            cbs, self.callbacks = self.callbacks, []
        for cb in cbs:
            try:
                cb()
            except Exception:
                traceback.print_exc()

    def cancel(self) -> None:
        """The client cancelled, or the connection ended."""
        with self.cond:
            if self.cancelled:
                return
            self.cancelled = True
            self.cond.notify_all()
            _fds.close_items(self.inbox)
        self._run_callbacks()

    def _wait(self, predicate: Callable[[], bool]) -> bool:
        """Waits (holding cond) for predicate; False once cancelled, forced or past the deadline."""
        while not predicate():
            if self.cancelled or self.forced is not None or self.finished:
                return False
            remaining = None
            if self.deadline is not None:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    return False
            self.cond.wait(remaining)
        return True

    def next_request(self) -> Optional[_fds.Incoming]:
        """The next request payload, or None at the end (half-close, cancel, deadline, error)."""
        with self.cond:
            if not self._wait(lambda: bool(self.inbox) or self.half_closed):
                return None
            if not self.inbox or self.cancelled or self.forced is not None:
                return None
            payload = self.inbox.popleft()
            credit = 0
            if not self.half_closed:
                self.unacked += _fds.wire_len(payload)
                if self.unacked >= self.conn.server.stream_window // 2:
                    credit, self.unacked = self.unacked, 0
                    self.recv_window += credit
        if credit:
            self.conn.send(_frame.encode_frame(FrameType.CREDIT, self.id, _frame.encode_credit(credit)))
        return payload

    def at_end_of_requests(self) -> bool:
        with self.cond:
            self._wait(lambda: bool(self.inbox) or self.half_closed)
            return not self.inbox

    def send_headers(self, metadata: WireMetadata) -> None:
        with self.cond:
            if self.headers_sent or self.finished or self.cancelled:
                return
            self.headers_sent = True
            err = self.conn.server.metadata_limits.check(metadata, "initial metadata")
            if err:
                self.forced = self.forced or (StatusCode.RESOURCE_EXHAUSTED, err)
                return
        self.conn.send(_frame.encode_frame(FrameType.HEADERS, self.id, _wirepb.Headers(metadata).encode()))

    def _headers_frame_locked(self) -> bytes:
        if self.headers_sent:
            return b""
        self.headers_sent = True
        if not self.initial:
            return b""
        err = self.conn.server.metadata_limits.check(self.initial, "initial metadata")
        if err:  # the call fails instead (PROTOCOL.md §5 "Limits")
            self.forced = self.forced or (StatusCode.RESOURCE_EXHAUSTED, err)
            return b""
        return _frame.encode_frame(FrameType.HEADERS, self.id, _wirepb.Headers(self.initial).encode())

    def check_send_size(self, n: int) -> Optional[str]:
        limit = min(self.conn.server.max_message_bytes, self.conn.peer_max_message)
        if n <= limit:
            return None
        which = "the server's max_message_bytes" if limit == self.conn.server.max_message_bytes else "the client's max receive size"
        return f"response message of {n} bytes exceeds the limit of {limit} bytes ({which})"

    def write(self, payload: bytes, out: Optional[_fds.Outgoing] = None) -> bool:
        """Sends one response MESSAGE (streaming); False if the call is over."""
        err = self.check_send_size(len(payload))
        refused = (StatusCode.RESOURCE_EXHAUSTED, err) if err else _fds.check_peer(out, self.conn.peer_max_fds, "the client")
        if refused:
            with self.cond:
                self.forced = refused
            return False
        with self.cond:
            if not self._wait(lambda: self.send_window > 0):
                return False
            self.send_window -= len(payload)
            data = self._headers_frame_locked()
            if self.forced is not None:
                return False
        fds = out.fds if out else ()
        self.conn.send(data + _frame.encode_frame(FrameType.MESSAGE, self.id, payload, fd_count=len(fds)), fds, len(data))
        return True

    def finish(self, code: StatusCode, details: str, last: Optional[bytes] = None, out: Optional[_fds.Outgoing] = None) -> None:
        """Sends the optional last message (with ``out``'s descriptors) and TRAILERS once;
        nothing if the client cancelled."""
        with self.cond:
            if self.finished:
                return
            self.finished = True
            send = not self.cancelled
            data = self._headers_frame_locked() if send else b""
            if self.forced is not None:
                code, details = self.forced
            trailing = self.trailing
            err = self.conn.server.metadata_limits.check(trailing, "trailing metadata")
            if err:
                code, details, trailing = StatusCode.RESOURCE_EXHAUSTED, err, ()
            if send and self.deadline is not None and time.monotonic() >= self.deadline:
                code, details = StatusCode.DEADLINE_EXCEEDED, "deadline exceeded on the server"
            if code is not StatusCode.OK:
                last = None
            if last is not None:
                err = self.check_send_size(len(last))
                refused = (StatusCode.RESOURCE_EXHAUSTED, err) if err else _fds.check_peer(out, self.conn.peer_max_fds, "the client")
                if refused:
                    (code, details), last = refused, None
            self.cond.notify_all()
            _fds.close_items(self.inbox)
        fds: Sequence[int] = ()
        at = 0
        if send:
            if last is not None:
                if out is not None:
                    fds, at = out.fds, len(data)
                data += _frame.encode_frame(FrameType.MESSAGE, self.id, last, fd_count=len(fds))
            trailers = b"" if code is StatusCode.OK and not details and not trailing else _wirepb.Trailers(code.number, details, trailing).encode()
            self.conn.send(data + _frame.encode_frame(FrameType.TRAILERS, self.id, trailers), fds, at)
        self.close_kept_fds()
        self.conn.stream_finished(self)
        self._run_callbacks()

    def close_kept_fds(self) -> None:
        kept, self.kept_fds = self.kept_fds, []
        for fd in kept:
            _fds.close_quietly(fd)


class _RequestIterator:
    """The iterator a stream-request handler reads; stops at half-close or cancellation."""

    def __init__(self, stream: _ServerStream, deserialize: Callable[[bytes], Any]) -> None:
        self._stream = stream
        self._deserialize = deserialize

    def __iter__(self) -> "_RequestIterator":
        return self

    def __next__(self) -> Any:
        payload = self._stream.next_request()
        if payload is None:
            raise StopIteration
        try:
            return _fds.deserialize(self._deserialize, payload)
        except Exception as e:
            with self._stream.cond:
                self._stream.forced = (StatusCode.INTERNAL, f"could not parse a request message: {e}")
                self._stream.cond.notify_all()
            raise StopIteration from None


def _identity(x: Any) -> Any:
    return x


def _run_handler(stream: _ServerStream) -> None:
    h = stream.handler
    context = ServicerContext(stream)
    deserialize = h.request_deserializer or _identity
    serialize = h.response_serializer or _identity
    try:
        try:
            if h.request_streaming:
                arg: Any = _RequestIterator(stream, deserialize)
            else:
                payload = stream.next_request()
                if payload is None:
                    if stream.cancelled or not stream.active():
                        stream.finish(StatusCode.CANCELLED, "call cancelled")
                    else:
                        stream.finish(StatusCode.INTERNAL, "client sent no request message for a single-request method")
                    return
                if not stream.at_end_of_requests():
                    stream.finish(StatusCode.INTERNAL, "client sent more than one request message for a single-request method")
                    return
                try:
                    arg = _fds.deserialize(deserialize, payload)
                except Exception as e:
                    stream.finish(StatusCode.INTERNAL, f"could not parse the request message: {e}")
                    return
            result = h.behavior(arg, context)
            out: Optional[_fds.Outgoing] = None
            if h.response_streaming:
                if result is not None:
                    for response in result:
                        if not stream.write(*_fds.serialize(serialize, response)):
                            break
                last = None
            else:
                last, out = _fds.serialize(serialize, result) if result is not None else (None, None)
        except AbortError as e:
            stream.finish(e.code, e.details)
            return
        code = context.code() or StatusCode.OK
        if code is StatusCode.OK and not h.response_streaming and last is None and stream.forced is None:
            stream.finish(StatusCode.INTERNAL, "the handler returned no response")
            return
        stream.finish(code, context.details(), last if code is StatusCode.OK else None, out)
    except _fds.FdError as e:  # a response that cannot go (its descriptors, PROTOCOL.md §10)
        stream.finish(e.code(), e.details())
    except Exception as e:
        set_code = context.code()
        if set_code is None or set_code is StatusCode.OK:
            stream.finish(StatusCode.UNKNOWN, f"Exception calling application: {type(e).__name__}: {e}")
        else:
            stream.finish(set_code, context.details())
    finally:
        if not stream.finished:
            stream.finish(StatusCode.INTERNAL, "handler returned without finishing the call")
        stream.close_kept_fds()


# -- connections ---------------------------------------------------------------


class _ServerConnection:
    def __init__(self, server: "Server", sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.transport: Optional[_transport.Transport] = None
        self.peer = _access.peer_credentials(sock)
        self.peer_max_message = _frame.DEFAULT_MAX_MESSAGE
        self.peer_window = _frame.DEFAULT_STREAM_WINDOW
        self.peer_max_fds = 0  # the client's max_fds_per_message (HELLO field 7)
        self.unread_fds = _fds.UnreadFds()  # in requests not read yet (at most MAX_UNREAD_FDS)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.streams: Dict[int, _ServerStream] = {}
        self.last_stream_id = 0
        self.going_away = False
        self.closed = False
        self.thread = threading.Thread(target=self._run, name=f"ipcrpc-server-conn pid {self.peer.pid}", daemon=True)

    def send(self, data: bytes, fds: Sequence[int] = (), at: int = 0) -> None:
        """Writes ``data``; ``fds`` go with the frame that starts at offset ``at``."""
        t = self.transport
        if t is None:
            return
        try:
            with self._write_lock:
                t.send_split(data, fds, at)
        except ConnectionError:
            self.shutdown()

    def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.shutdown()
        else:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stream_finished(self, s: _ServerStream) -> None:
        with self._lock:
            self.streams.pop(s.id, None)
            idle = self.going_away and not self.streams
        self.server._call_ended()
        if idle:
            self.shutdown()

    def go_away(self, reason: str) -> None:
        with self._lock:
            if self.going_away or self.transport is None:
                self.going_away = True
                return
            self.going_away = True
            last = self.last_stream_id
            idle = not self.streams
        self.send(_frame.encode_frame(FrameType.GOAWAY, 0, _wirepb.GoAway(last, StatusCode.UNAVAILABLE.number, reason).encode()))
        if idle:
            self.shutdown()

    def active_streams(self) -> int:
        with self._lock:
            return len(self.streams)

    def cancel_all(self) -> None:
        with self._lock:
            streams = list(self.streams.values())
        for s in streams:
            s.cancel()

    # -- negotiation --

    def _negotiate(self) -> Optional[bytes]:
        """Reads the first frame; returns bytes already read on the data path (the client's HELLO)."""
        deadline = time.monotonic() + _NEGOTIATION_TIMEOUT
        first = _transport.read_frame_exact(self.sock, deadline, 1 << 20)
        if first.type == FrameType.HELLO:
            early = _frame.encode_header(first.type, first.stream_id, len(first.payload), first.flags, first.fd_count) + first.payload
            self.transport = _transport.UnixTransport(self.sock, rx_offset=len(early))
            return early
        if first.type != FrameType.TRANSPORT_REQUEST or first.stream_id != 0:
            raise ProtocolError(f"first frame of type {first.type} (expected HELLO or TRANSPORT_REQUEST)")
        req = _wirepb.TransportRequest.decode(first.payload)
        allowed = self.server.allowed_transports()
        chosen = next((t for t in req.transports if t in allowed), "")
        if not chosen:
            offer = _wirepb.TransportOffer("", f"none of {req.transports} is allowed; this server allows {', '.join(allowed)}")
            self.sock.sendall(_frame.encode_frame(FrameType.TRANSPORT_OFFER, 0, offer.encode()))
            raise ConnectionError("no acceptable transport")
        if chosen == "unix":
            self.sock.sendall(_frame.encode_frame(FrameType.TRANSPORT_OFFER, 0, _wirepb.TransportOffer("unix").encode()))
            self.transport = _transport.UnixTransport(self.sock)
            return None
        self.transport = upgrade_connection(self.sock, req, chosen, self.server.ring_bytes, deadline, self.server.fifo_parent_dir, self.server.max_spin)
        return None

    def _run(self) -> None:
        try:
            early = self._negotiate()
            assert self.transport is not None
            self.server._register_connection(self)
            hello = _wirepb.Hello(1, self.server.max_message_bytes, self.server.stream_window, self.server.max_concurrent_streams, AGENT,
                                  max_fds_per_message=self.server.max_fds_per_message)
            self.send(_frame.encode_frame(FrameType.HELLO, 0, hello.encode()))
            decoder = _frame.FrameDecoder(self.server.max_message_bytes, self.server.metadata_limits.control_frame_limit,
                                          self.transport, self.server.max_fds_per_message)
            got_hello = False
            data = early or b""
            while True:
                if not data:
                    data = self.transport.recv(_READ_CHUNK)
                    if not data:
                        break
                for frame in decoder.feed(data):
                    if not got_hello:
                        if frame.type != FrameType.HELLO or frame.stream_id != 0 or frame.oversized:
                            raise ProtocolError("the client's first frame is not HELLO")
                        h = _wirepb.Hello.decode(frame.payload)
                        if h.protocol_version != 1:
                            raise ProtocolError(f"client speaks protocol version {h.protocol_version}")
                        self.peer_max_message = h.max_message_size or _frame.DEFAULT_MAX_MESSAGE
                        self.peer_window = h.initial_stream_window or _frame.DEFAULT_STREAM_WINDOW
                        self.peer_max_fds = min(h.max_fds_per_message, _fds.MAX_FDS_PER_MESSAGE)
                        got_hello = True
                    else:
                        self._on_frame(frame)
                data = b""
        except (ProtocolError, ConnectionError, OSError, TimeoutError):
            pass
        except Exception:
            traceback.print_exc()
        finally:
            self.closed = True
            self.cancel_all()
            if self.transport is not None:
                self.transport.close()
            else:
                self.sock.close()
            self.server._unregister_connection(self)

    def _on_frame(self, frame: _frame.Frame) -> None:
        t = frame.type
        if t == FrameType.CALL_START:
            self._start_call(frame)
            return
        if t == FrameType.PING:
            if frame.stream_id != 0 or len(frame.payload) != 8:
                raise ProtocolError(f"PING on stream {frame.stream_id} with {frame.length} payload bytes (must be stream 0, 8 bytes)")
            if not frame.flags & _frame.FLAG_PING_ACK:
                self.send(_frame.encode_frame(FrameType.PING, 0, frame.payload, _frame.FLAG_PING_ACK))
            return
        if t in (FrameType.HELLO, FrameType.TRAILERS, FrameType.HEADERS):
            raise ProtocolError(f"client sent frame type {t}, which only servers send")
        with self._lock:
            s = self.streams.get(frame.stream_id)
        if s is None:
            return
        if t == FrameType.MESSAGE:
            item, error = incoming_message(frame, "server", self.unread_fds)
            with s.cond:
                if error is not None:
                    pass
                elif frame.oversized:
                    error = (StatusCode.RESOURCE_EXHAUSTED, f"request message of {frame.length} bytes exceeds the server's max_message_size of {self.server.max_message_bytes} bytes")
                elif s.half_closed:
                    error = (StatusCode.INTERNAL, "protocol violation: MESSAGE after HALF_CLOSE")
                elif s.recv_window <= 0:
                    error = (StatusCode.RESOURCE_EXHAUSTED, f"protocol violation: MESSAGE while the stream's flow-control window ({self.server.stream_window} bytes) was used up")
                elif s.finished or s.cancelled:
                    pass  # dropped (its descriptors are closed)
                else:
                    s.recv_window -= frame.length
                    s.inbox.append(item)
                s.cond.notify_all()
            if error is not None:
                s.finish(*error)
        elif t == FrameType.HALF_CLOSE:
            with s.cond:
                s.half_closed = True
                s.cond.notify_all()
        elif t == FrameType.CANCEL:
            s.cancel()
        elif t == FrameType.CREDIT:
            credit = _frame.decode_credit(frame.payload)
            with s.cond:
                s.send_window += credit
                s.cond.notify_all()

    def _refuse(self, stream_id: int, code: StatusCode, details: str) -> None:
        self.send(_frame.encode_frame(FrameType.TRAILERS, stream_id, _wirepb.Trailers(code.number, details).encode()))

    def _start_call(self, frame: _frame.Frame) -> None:
        sid = frame.stream_id
        handler: Optional[RpcMethodHandler] = None
        start, refusal = parse_call_start(frame, self.server.metadata_limits)
        if refusal is None:
            handler = self.server._find(start.method)
            if handler is None:
                refusal = self.server._unimplemented(start.method)
        deadline = None if start.timeout_micros == 0 else time.monotonic() + start.timeout_micros / 1e6
        with self._lock:
            if sid <= self.last_stream_id:
                raise ProtocolError(f"stream id {sid} does not increase")
            self.last_stream_id = sid
            if refusal is None and (self.going_away or self.server._stopping):
                refusal = (StatusCode.UNAVAILABLE, "server is shutting down")
            if refusal is None and self.server.max_concurrent_streams and len(self.streams) >= self.server.max_concurrent_streams:
                refusal = (StatusCode.RESOURCE_EXHAUSTED, f"too many concurrent calls on one connection (limit {self.server.max_concurrent_streams})")
            if refusal is None and not self.server._admit_call():
                refusal = (StatusCode.RESOURCE_EXHAUSTED, f"server overloaded: maximum_concurrent_rpcs ({self.server.maximum_concurrent_rpcs}) reached")
            if refusal is None:
                assert handler is not None
                stream = _ServerStream(self, sid, start.method, handler, deadline, start.metadata)
                self.streams[sid] = stream
        if refusal is not None:
            self._refuse(sid, *refusal)
            return
        try:
            self.server._pool.submit(_run_handler, stream)
        except RuntimeError:
            stream.finish(StatusCode.UNAVAILABLE, "server is shutting down")


def parse_call_start(frame: _frame.Frame, limits: _limits.MetadataLimits) -> Tuple[_wirepb.CallStart, Optional[Tuple[StatusCode, str]]]:
    """A CALL_START's contents, and why the call is refused if it is
    (PROTOCOL.md §5 "Refusals and request errors", "Limits")."""
    if frame.oversized:
        return _wirepb.CallStart(), (StatusCode.RESOURCE_EXHAUSTED, limits.oversized(frame, "server"))
    try:
        start = _wirepb.CallStart.decode(frame.payload)
    except (ProtocolError, RpcError):
        return _wirepb.CallStart(), (StatusCode.INTERNAL, "malformed CALL_START frame")
    err = limits.check(start.metadata, "request metadata")
    if err:
        return start, (StatusCode.RESOURCE_EXHAUSTED, err)
    if any(not k for k, _ in start.metadata):  # other keys are kept as sent (PROTOCOL.md §8)
        return start, (StatusCode.INTERNAL, "malformed CALL_START frame")
    return start, None


def upgrade_connection(sock: socket.socket, req: _wirepb.TransportRequest, chosen: str, ring_bytes: int, deadline: float,
                       fifo_parent_dir: str = "", max_spin: Optional[float] = None) -> _transport.Transport:
    """Server side of PROTOCOL.md §12 steps 2-4 for a transport other than unix:
    creates its resources, sends TRANSPORT_OFFER (with fds), waits for
    TRANSPORT_ACK and finishes. Blocking; ``sock`` becomes the transport's
    control socket. Raises on any failure (the resources are removed)."""
    from . import _fifo, _msgq, _shm

    # FIFOs and queues outlive a killed server: they are on record until the
    # negotiation ends (closed last, after the objects are removed).
    record: Optional[_pending.Record] = None
    try:
        if chosen in ("shm", "shm+sem"):
            wake = _shm.WAKE_FUTEX if chosen == "shm" else _shm.WAKE_SEMAPHORE
            pending: Any = _shm.prepare_server(req, ring_bytes, wake, max_spin)
        elif chosen == "msgq":
            record = _pending.Record()
            pending = _msgq.PendingMsgq(record)
        else:
            record = _pending.Record()
            pending = _fifo.PendingFifo(fifo_parent_dir or "/tmp", record)
        return _offer_and_complete(sock, pending, deadline)
    finally:
        if record is not None:
            record.close()


def _offer_and_complete(sock: socket.socket, pending: Any, deadline: float) -> _transport.Transport:
    """Sends TRANSPORT_OFFER, waits for TRANSPORT_ACK, completes ``pending``
    (abandons it on any failure)."""
    ok = False
    try:
        offer_frame = _frame.encode_frame(FrameType.TRANSPORT_OFFER, 0, pending.offer.encode(), fd_count=len(pending.fds))
        _transport.send_with_fds(sock, offer_frame, pending.fds)
        ack_frame = _transport.read_frame_exact(sock, deadline, 1 << 20)
        if ack_frame.type != FrameType.TRANSPORT_ACK:
            raise ProtocolError(f"expected TRANSPORT_ACK, got type {ack_frame.type}")
        ack = _wirepb.TransportAck.decode(ack_frame.payload)
        if not ack.ok:
            raise ConnectionError(f"client could not attach: {ack.error}")
        t: _transport.Transport = pending.complete(sock)
        ok = True
        return t
    finally:
        if not ok:
            pending.abandon()
        pending.close_fds()


# -- the server ----------------------------------------------------------------


class Server:
    """An ipcrpc server (grpcio's ``grpc.Server`` shape).

    ``add_generic_rpc_handlers`` / generated ``add_XServicer_to_server`` before
    ``start()``; ``add_listening_address("unix:/path")`` (alias
    ``add_insecure_port``) for each socket; ``stop(grace)`` to end.
    """

    def __init__(
        self,
        thread_pool: Optional[futures.ThreadPoolExecutor] = None,
        *,
        max_workers: int = 10,
        maximum_concurrent_rpcs: Optional[int] = None,
        max_message_bytes: int = _frame.DEFAULT_MAX_MESSAGE,
        stream_window_bytes: int = _frame.DEFAULT_STREAM_WINDOW,
        max_concurrent_streams: int = 0,
        allowed_transports: Optional[Sequence[str]] = None,
        ring_bytes: int = 0,
        socket_mode: Optional[int] = None,
        allowed_uids: Optional[Iterable[int]] = None,
        allowed_gids: Optional[Iterable[int]] = None,
        allow_any_peer: bool = False,
        max_metadata_bytes: Optional[int] = None,
        max_metadata_entries: Optional[int] = None,
        max_fds_per_message: int = _fds.MAX_FDS_PER_MESSAGE,
    ) -> None:
        from . import _config

        if not 0 <= max_fds_per_message <= _fds.MAX_FDS_PER_MESSAGE:
            raise ValueError(f"max_fds_per_message must be 0..{_fds.MAX_FDS_PER_MESSAGE}")
        section = _config.server_section()  # IPCRPC_CONFIG's `server` fills what the caller left at its default
        if max_fds_per_message == _fds.MAX_FDS_PER_MESSAGE and section.HasField("max_fds_per_message"):
            max_fds_per_message = min(section.max_fds_per_message, _fds.MAX_FDS_PER_MESSAGE)
        self.max_fds_per_message = max_fds_per_message
        self.metadata_limits = _limits.MetadataLimits.of(max_metadata_bytes, max_metadata_entries, section)
        self.socket_mode = _access.socket_mode_from(socket_mode, section)
        self.access_policy = _access.policy_from(allowed_uids, allowed_gids, allow_any_peer, section)
        if allowed_transports is None and section.allowed_transports:
            allowed_transports = list(section.allowed_transports)
        if max_message_bytes == _frame.DEFAULT_MAX_MESSAGE and section.max_message_bytes:
            max_message_bytes = section.max_message_bytes
        if not ring_bytes and section.tuning.shm.ring_bytes:
            ring_bytes = section.tuning.shm.ring_bytes
        self.fifo_parent_dir = section.tuning.fifo.parent_dir  # "" = /tmp
        self.max_spin = _config.shm_max_spin(section.tuning.shm)  # None: the default
        self._pool = thread_pool or futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ipcrpc-handler")
        self._own_pool = thread_pool is None
        self.maximum_concurrent_rpcs = maximum_concurrent_rpcs
        self.max_message_bytes = max_message_bytes
        self.stream_window = stream_window_bytes
        self.max_concurrent_streams = max_concurrent_streams
        self.ring_bytes = ring_bytes
        self._allowed = list(allowed_transports) if allowed_transports is not None else None
        self._handlers: List[GenericRpcHandler] = []
        self._addresses: List[Tuple[_transport.Address, int]] = []
        self._listeners: List[Tuple[socket.socket, str]] = []
        self._lock = threading.Lock()
        self._connections: List[_ServerConnection] = []
        self._active_calls = 0
        self._idle = threading.Condition(self._lock)
        self._started = False
        self._stopping = False
        self._terminated = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._accept_thread: Optional[threading.Thread] = None

    # -- configuration --

    def add_generic_rpc_handlers(self, handlers: Iterable[GenericRpcHandler]) -> None:
        self._handlers.extend(handlers)

    def add_listening_address(self, address: str, socket_mode: Optional[int] = None) -> int:
        """Listens on ``address``'s unix socket when started (``unix:/path``, ``auto:@name``, ...);
        a socket file gets ``socket_mode`` (default: the server's, 0600)."""
        if self._started:
            raise RuntimeError("add_listening_address after start()")
        mode = self.socket_mode if socket_mode is None else _access.socket_mode_from(socket_mode, None)
        self._addresses.append((_transport.parse_address(address), mode))
        return 0

    add_insecure_port = add_listening_address

    def allowed_transports(self) -> List[str]:
        mine = list(_transport.available_transports())
        if self._allowed is None:
            return mine
        return [t for t in mine if t in self._allowed]

    # -- lookups used by connections --

    def _find(self, method: str) -> Optional[RpcMethodHandler]:
        for h in self._handlers:
            m = h.service(method)
            if m is not None:
                return m
        return None

    def _unimplemented(self, method: str) -> Tuple[StatusCode, str]:
        if not method.startswith("/") or method.count("/") != 2:
            return StatusCode.UNIMPLEMENTED, f"malformed method name {method!r} (expected /package.Service/Method)"
        service = method.split("/")[1]
        if any(h.service_name == service for h in self._handlers):
            return StatusCode.UNIMPLEMENTED, f"unknown method {method}"
        return StatusCode.UNIMPLEMENTED, f"unknown service {service}"

    def _admit_call(self) -> bool:
        with self._lock:
            if self.maximum_concurrent_rpcs is not None and self._active_calls >= self.maximum_concurrent_rpcs:
                return False
            self._active_calls += 1
            return True

    def _call_ended(self) -> None:
        with self._lock:
            self._active_calls -= 1
            self._idle.notify_all()

    def _register_connection(self, c: _ServerConnection) -> None:
        with self._lock:
            stopping = self._stopping
        if stopping:
            c.go_away("server is shutting down")

    def _unregister_connection(self, c: _ServerConnection) -> None:
        with self._lock:
            if c in self._connections:
                self._connections.remove(c)
            self._idle.notify_all()

    # -- lifecycle --

    def start(self) -> None:
        if self._started:
            raise RuntimeError("server already started")
        if not self._addresses:
            raise RuntimeError("no listening address: call add_listening_address first")
        _pending.sweep()  # a killed server's half-negotiated FIFOs and queues
        for a, mode in self._addresses:
            try:
                if not a.socket_path.startswith("\0"):
                    _remove_stale_socket(a.socket_path)
                sock = _access.listen(a.socket_path, mode)
            except OSError as e:
                for s, p in self._listeners:
                    s.close()
                    _unlink(p)
                self._listeners = []
                raise RpcError(StatusCode.UNAVAILABLE, f"cannot listen on {a.display}: {e.strerror or e}") from None
            self._listeners.append((sock, a.socket_path))
        self._started = True
        self._accept_thread = threading.Thread(target=self._accept_loop, name="ipcrpc-server-accept", daemon=True)
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        poller = select.poll()
        by_fd = {s.fileno(): s for s, _ in self._listeners}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            for fd, _ev in poller.poll():
                if fd == self._wake_r:
                    return
                try:
                    conn_sock, _ = by_fd[fd].accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    continue
                if _access.admit(conn_sock, self.access_policy) is None:
                    continue  # refused (PROTOCOL.md §4)
                conn_sock.setblocking(True)
                c = _ServerConnection(self, conn_sock)
                with self._lock:
                    if self._stopping:
                        conn_sock.close()
                        continue
                    self._connections.append(c)
                c.thread.start()

    def stop(self, grace: Optional[float]) -> threading.Event:
        """Stops accepting, sends GOAWAY, lets calls finish for ``grace`` seconds
        (None: cancel at once), then cancels the rest and closes every connection.
        Returns an Event set when all is done; this call itself returns at once."""
        with self._lock:
            if self._stopping:
                return self._terminated
            self._stopping = True
        os.write(self._wake_w, b"x")
        threading.Thread(target=self._stop, args=(grace,), name="ipcrpc-server-stop", daemon=True).start()
        return self._terminated

    def _stop(self, grace: Optional[float]) -> None:
        if self._accept_thread is not None:
            self._accept_thread.join()
        for sock, path in self._listeners:
            sock.close()
            _unlink(path)
        self._listeners = []
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            c.go_away("server is shutting down")
        deadline = time.monotonic() + (grace or 0)
        with self._lock:
            while self._active_calls > 0 and grace:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._idle.wait(remaining)
            conns = list(self._connections)
        for c in conns:
            c.cancel_all()
            c.shutdown()
        for c in conns:
            c.thread.join(5)
        if self._own_pool:
            # Handlers that ignore cancellation keep their thread, but do not hold up stop().
            self._pool.shutdown(wait=False, cancel_futures=True)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._terminated.set()

    def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        """Blocks until stop() completed (True) or ``timeout`` passed (False)."""
        return self._terminated.wait(timeout)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(None).wait(10)


def _unlink(path: str) -> None:
    if path and not path.startswith("\0"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _remove_stale_socket(path: str) -> None:
    """Removes a socket file nobody listens on any more (left by a crashed server)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        _unlink(path)
    except OSError:
        pass
    finally:
        probe.close()


def server(thread_pool: Optional[futures.ThreadPoolExecutor] = None, **kwargs: Any) -> Server:
    """Creates a :class:`Server`; ``ipcrpc.server(max_workers=8)`` or grpcio-style with an executor."""
    return Server(thread_pool, **kwargs)
