"""The asyncio server (grpc.aio-shaped): handlers are coroutines (unary
responses) or async generators (streamed responses), run as tasks on the
event loop; stream-request handlers get an async iterator.

Clients connect to its unix socket and may move to any transport this
process speaks (PROTOCOL.md §12). A unix connection is read by the loop; an
upgraded one (shm, shm+sem, fifo, msgq: blocking reads) by one thread per
connection that hands the bytes to the loop. No thread is started per call.
"""

from __future__ import annotations

import array
import asyncio
import collections
import inspect
import os
import socket
import threading
import time
import traceback
from typing import Any, AsyncIterator, Deque, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .. import _access, _fds, _frame, _limits, _pending, _transport, _wirepb
from .._client import incoming_message
from .._frame import FrameType, ProtocolError
from .._server import (AGENT, GenericRpcHandler, PeerCredentials, RpcMethodHandler, ServicerContextBase, _remove_stale_socket, _unlink,
                       parse_call_start, upgrade_connection)
from .._status import AbortError, MetadataType, RpcError, StatusCode, WireMetadata, normalize_metadata

_READ_CHUNK = 256 * 1024


class ServicerContext(ServicerContextBase):
    """grpc.aio.ServicerContext's shape; used on the loop thread."""

    _stream: "_Stream"

    async def send_initial_metadata(self, metadata: Sequence[Tuple[str, Any]]) -> None:
        self._stream.initial = normalize_metadata(metadata)
        await self._stream.send_headers()

    async def abort(self, code: StatusCode, details: str = "") -> None:
        raise self._abort_error(code, details)

    def cancelled(self) -> bool:
        return self._stream.cancelled

    def done(self) -> bool:
        return self._stream.finished


class _Stream:
    def __init__(self, conn: "_Connection", sid: int, method: str, handler: RpcMethodHandler, deadline: Optional[float], metadata: WireMetadata) -> None:
        self.conn = conn
        self.id = sid
        self.method = method
        self.handler = handler
        self.deadline = deadline
        self.metadata = metadata
        self.user_metadata: Optional[MetadataType] = None  # made by invocation_metadata()
        self.inbox: Deque[_fds.Incoming] = collections.deque()
        self.kept_fds: List[int] = []  # ServicerContext.attach_fd: closed when the call ends
        self.half_closed = False
        self.cancelled = False
        self.finished = False
        self.headers_sent = False
        self.initial: WireMetadata = ()
        self.trailing: WireMetadata = ()
        self.headers_error: Optional[str] = None  # initial metadata beyond the limits: the call fails
        self.send_window = conn.peer_window
        self.recv_window = conn.server.stream_window
        self.unacked = 0
        self.task: Optional["asyncio.Task[None]"] = None
        self._waiters: List["asyncio.Future[None]"] = []
        self._timer = conn.loop.call_later(deadline - time.monotonic(), self.wake) if deadline is not None else None

    def active(self) -> bool:
        return not (self.cancelled or self.finished) and (self.deadline is None or time.monotonic() < self.deadline)

    def wake(self) -> None:
        for f in self._waiters:
            if not f.done():
                f.set_result(None)
        self._waiters.clear()

    async def wait(self, predicate: Any) -> bool:
        while not predicate():
            if not self.active():
                return False
            fut = self.conn.loop.create_future()
            self._waiters.append(fut)
            await fut
        return True

    async def next_request(self) -> Optional[_fds.Incoming]:
        if not await self.wait(lambda: bool(self.inbox) or self.half_closed):
            return None
        if not self.inbox:
            return None
        payload = self.inbox.popleft()
        if not self.half_closed:
            self.unacked += _fds.wire_len(payload)
            if self.unacked >= self.conn.server.stream_window // 2:
                credit, self.unacked = self.unacked, 0
                self.recv_window += credit
                await self.conn.send(_frame.encode_frame(FrameType.CREDIT, self.id, _frame.encode_credit(credit)))
        return payload

    def _headers(self) -> bytes:
        if self.headers_sent:
            return b""
        self.headers_sent = True
        if not self.initial:
            return b""
        self.headers_error = self.conn.server.metadata_limits.check(self.initial, "initial metadata")
        return b"" if self.headers_error else _frame.encode_frame(FrameType.HEADERS, self.id, _wirepb.Headers(self.initial).encode())

    async def send_headers(self) -> None:
        if not self.finished and not self.cancelled:
            data = self._headers()
            if data:
                await self.conn.send(data)

    def _size_error(self, n: int) -> Optional[str]:
        limit = min(self.conn.server.max_message_bytes, self.conn.peer_max_message)
        return None if n <= limit else f"response message of {n} bytes exceeds the limit of {limit} bytes"

    async def write(self, payload: bytes, out: Optional[_fds.Outgoing] = None) -> bool:
        err = self._size_error(len(payload))
        refused = (StatusCode.RESOURCE_EXHAUSTED, err) if err else _fds.check_peer(out, self.conn.peer_max_fds, "the client")
        if refused:
            await self.finish(*refused)
            return False
        if not await self.wait(lambda: self.send_window > 0):
            return False
        self.send_window -= len(payload)
        headers = self._headers()
        if self.headers_error:
            await self.finish(StatusCode.RESOURCE_EXHAUSTED, self.headers_error)
            return False
        fds = out.fds if out else ()
        await self.conn.send(headers + _frame.encode_frame(FrameType.MESSAGE, self.id, payload, fd_count=len(fds)), fds, len(headers))
        return True

    def close_fds(self) -> None:
        """The call's descriptors: unread requests' and those given with attach_fd."""
        _fds.close_items(self.inbox)
        kept, self.kept_fds = self.kept_fds, []
        for fd in kept:
            _fds.close_quietly(fd)

    async def finish(self, code: StatusCode, details: str, last: Optional[bytes] = None, out: Optional[_fds.Outgoing] = None) -> None:
        if self.finished:
            return
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
        self.wake()
        if not self.cancelled:
            data = self._headers()
            trailing = self.trailing
            err = self.headers_error or self.conn.server.metadata_limits.check(trailing, "trailing metadata")
            if err:  # PROTOCOL.md §5 "Limits": the call fails instead
                code, details, last, trailing = StatusCode.RESOURCE_EXHAUSTED, err, None, ()
            if self.deadline is not None and time.monotonic() >= self.deadline:
                code, details, last = StatusCode.DEADLINE_EXCEEDED, "deadline exceeded on the server", None
            if code is not StatusCode.OK:
                last = None
            if last is not None and self._size_error(len(last)):
                code, details, last = StatusCode.RESOURCE_EXHAUSTED, self._size_error(len(last)) or "", None
            refused = _fds.check_peer(out, self.conn.peer_max_fds, "the client") if last is not None else None
            if refused:
                (code, details), last = refused, None
            fds: Sequence[int] = ()
            at = 0
            if last is not None:
                if out is not None:
                    fds, at = out.fds, len(data)
                data += _frame.encode_frame(FrameType.MESSAGE, self.id, last, fd_count=len(fds))
            tr = b"" if code is StatusCode.OK and not details and not trailing else _wirepb.Trailers(code.number, details, trailing).encode()
            await self.conn.send(data + _frame.encode_frame(FrameType.TRAILERS, self.id, tr), fds, at)
        self.close_fds()
        self.conn.streams.pop(self.id, None)
        self.conn.server._call_ended()


class _Requests:
    """The async iterator a stream-request handler reads."""

    def __init__(self, s: _Stream, deserialize: Any) -> None:
        self._s = s
        self._deserialize = deserialize

    def __aiter__(self) -> "_Requests":
        return self

    async def __anext__(self) -> Any:
        payload = await self._s.next_request()
        if payload is None:
            raise StopAsyncIteration
        try:
            return _fds.deserialize(self._deserialize, payload)
        except Exception as e:
            await self._s.finish(StatusCode.INTERNAL, f"could not parse a request message: {e}")
            raise StopAsyncIteration from None


async def _run(s: _Stream) -> None:
    h = s.handler
    ctx = ServicerContext(s)
    deserialize = h.request_deserializer or (lambda b: b)
    serialize = h.response_serializer or (lambda m: m)
    try:
        if h.request_streaming:
            arg: Any = _Requests(s, deserialize)
        else:
            payload = await s.next_request()
            if payload is None:
                if s.active():
                    await s.finish(StatusCode.INTERNAL, "client sent no request message for a single-request method")
                else:
                    await s.finish(StatusCode.CANCELLED, "call cancelled")
                return
            if s.inbox or not await s.wait(lambda: s.half_closed or bool(s.inbox)) or s.inbox:
                if s.inbox:
                    await s.finish(StatusCode.INTERNAL, "client sent more than one request message for a single-request method")
                    return
            try:
                arg = _fds.deserialize(deserialize, payload)
            except Exception as e:
                await s.finish(StatusCode.INTERNAL, f"could not parse the request message: {e}")
                return
        result = h.behavior(arg, ctx)
        last = None
        out: Optional[_fds.Outgoing] = None
        if h.response_streaming:
            if inspect.isasyncgen(result):
                async for r in result:
                    if not await s.write(*_fds.serialize(serialize, r)):
                        break
            else:
                for r in (await result) if inspect.isawaitable(result) else (result or ()):
                    if not await s.write(*_fds.serialize(serialize, r)):
                        break
        else:
            value = await result if inspect.isawaitable(result) else result
            last, out = _fds.serialize(serialize, value) if value is not None else (None, None)
        code = ctx._code or StatusCode.OK
        if code is StatusCode.OK and not h.response_streaming and last is None:
            await s.finish(StatusCode.INTERNAL, "the handler returned no response")
        else:
            await s.finish(code, ctx._details, last, out)
    except _fds.FdError as e:  # a response that cannot go (its descriptors, PROTOCOL.md §10)
        await s.finish(e.code(), e.details())
    except AbortError as e:
        await s.finish(e.code, e.details)
    except asyncio.CancelledError:
        await s.finish(StatusCode.CANCELLED, "the handler was cancelled")
    except Exception as e:
        set_code = ctx._code
        if set_code is None or set_code is StatusCode.OK:
            await s.finish(StatusCode.UNKNOWN, f"Exception calling application: {type(e).__name__}: {e}")
        else:
            await s.finish(set_code, ctx._details)


class _Connection:
    def __init__(self, server: "Server", sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.unread_fds = _fds.UnreadFds()  # in requests not read yet (at most MAX_UNREAD_FDS)
        self.peer = _access.peer_credentials(sock)
        self.peer_max_message = _frame.DEFAULT_MAX_MESSAGE
        self.peer_window = _frame.DEFAULT_STREAM_WINDOW
        self.peer_max_fds = 0  # the client's max_fds_per_message (HELLO field 7)
        self.streams: Dict[int, _Stream] = {}
        self.last_id = 0
        self.going_away = False
        self._lock = asyncio.Lock()
        self._closed = False
        # Upgraded connections (shm, shm+sem, fifo, msgq): a blocking transport
        # read by one thread per connection, which hands bytes to the loop.
        self.transport: Optional[_transport.Transport] = None
        # A unix connection: the socket read with recvmsg (descriptors come with
        # the bytes) by the loop; this object matches them to frames.
        self.unix: Optional[_transport.UnixTransport] = None
        self._inq: "asyncio.Queue[bytes]" = asyncio.Queue()
        self._reader: Optional[threading.Thread] = None

    async def send(self, data: bytes, fds: Sequence[int] = (), at: int = 0) -> None:
        """Writes ``data`` in order; ``fds`` go with the frame at offset ``at``."""
        if self._closed:
            return
        async with self._lock:
            try:
                if self.transport is None:
                    if fds:
                        if at:
                            await self.loop.sock_sendall(self.sock, data[:at])
                        await self._sock_sendmsg(data[at:], fds)
                    else:
                        await self.loop.sock_sendall(self.sock, data)
                elif len(data) <= 64 * 1024:
                    self.transport.send_split(data, fds, at)
                else:
                    await self.loop.run_in_executor(None, self.transport.send_split, data, fds, at)
            except OSError:
                self.shutdown()

    async def _wait_fd(self, writable: bool) -> None:
        fut = self.loop.create_future()
        fd = self.sock.fileno()
        add, remove = (self.loop.add_writer, self.loop.remove_writer) if writable else (self.loop.add_reader, self.loop.remove_reader)
        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        add(fd, ready)
        try:
            await fut
        finally:
            remove(fd)

    async def _sock_sendmsg(self, data: bytes, fds: Sequence[int]) -> None:
        """sendmsg of data with fds as SCM_RIGHTS on the (non-blocking) socket; the rest as plain bytes."""
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        while True:
            try:
                sent = self.sock.sendmsg([data], anc)
                break
            except (BlockingIOError, InterruptedError):
                await self._wait_fd(True)
        if sent < len(data):
            await self.loop.sock_sendall(self.sock, data[sent:])

    def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.shutdown()
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_thread(self) -> None:
        assert self.transport is not None
        data = b""
        try:
            while True:
                data = self.transport.recv(_READ_CHUNK)
                self.loop.call_soon_threadsafe(self._inq.put_nowait, data)
                if not data:
                    return
        except Exception:
            try:
                self.loop.call_soon_threadsafe(self._inq.put_nowait, b"")
            except RuntimeError:  # the loop has closed
                pass

    async def _recv(self) -> bytes:
        if self.transport is None:
            assert self.unix is not None
            while True:
                data = self.unix.recv_within(_READ_CHUNK, 0.0)
                if data is not None:
                    return data
                await self._wait_fd(False)
        return await self._inq.get()

    async def _negotiate(self, req: _wirepb.TransportRequest) -> bool:
        """Answers a TRANSPORT_REQUEST; False if the connection is refused."""
        allowed = self.server.allowed_transports()
        chosen = next((t for t in req.transports if t in allowed), "")
        if not chosen:
            offer = _wirepb.TransportOffer("", f"none of {req.transports} is allowed; this server allows {', '.join(allowed)}")
            await self.loop.sock_sendall(self.sock, _frame.encode_frame(FrameType.TRANSPORT_OFFER, 0, offer.encode()))
            return False
        if chosen == "unix":
            await self.loop.sock_sendall(self.sock, _frame.encode_frame(FrameType.TRANSPORT_OFFER, 0, _wirepb.TransportOffer("unix").encode()))
            return True
        self.sock.setblocking(True)
        deadline = time.monotonic() + 5
        self.transport = await self.loop.run_in_executor(None, upgrade_connection, self.sock, req, chosen, self.server.ring_bytes, deadline,
                                                         self.server.fifo_parent_dir, self.server.max_spin)
        self._reader = threading.Thread(target=self._read_thread, name=f"ipcrpc-aio-server-reader pid {self.peer.pid}", daemon=True)
        self._reader.start()
        return True

    async def go_away(self, reason: str) -> None:
        if self.going_away:
            return
        self.going_away = True
        await self.send(_frame.encode_frame(FrameType.GOAWAY, 0, _wirepb.GoAway(self.last_id, StatusCode.UNAVAILABLE.number, reason).encode()))
        if not self.streams:
            self.shutdown()

    async def run(self) -> None:
        decoder = _frame.FrameDecoder(self.server.max_message_bytes, self.server.metadata_limits.control_frame_limit)
        state = "first"
        try:
            first = await asyncio.wait_for(_first_frame(self.loop, self.sock), 5)
            if isinstance(first, _wirepb.TransportRequest):
                if not await self._negotiate(first):
                    return
                first = b""
            if self.transport is None:
                self.unix = _transport.UnixTransport(self.sock, rx_offset=len(first))
            decoder.fd_source = self.transport or self.unix
            decoder.max_fds = self.server.max_fds_per_message
            await self.send(_frame.encode_frame(FrameType.HELLO, 0, _wirepb.Hello(1, self.server.max_message_bytes, self.server.stream_window, 0, AGENT,
                                                                                   max_fds_per_message=self.server.max_fds_per_message).encode()))
            data = first
            while True:
                if not data:
                    data = await self._recv()
                    if not data:
                        break
                for f in decoder.feed(data):
                    if state != "open":
                        if f.type != FrameType.HELLO or f.stream_id != 0 or f.oversized:
                            raise ProtocolError("the client's first frame is not HELLO")
                        h = _wirepb.Hello.decode(f.payload)
                        if h.protocol_version != 1:
                            raise ProtocolError(f"client speaks protocol version {h.protocol_version}")
                        self.peer_max_message = h.max_message_size or _frame.DEFAULT_MAX_MESSAGE
                        self.peer_window = h.initial_stream_window or _frame.DEFAULT_STREAM_WINDOW
                        self.peer_max_fds = min(h.max_fds_per_message, _fds.MAX_FDS_PER_MESSAGE)
                        state = "open"
                        continue
                    await self._on_frame(f)
                data = b""
        except (ProtocolError, ConnectionError, OSError, asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._closed = True
            for s in list(self.streams.values()):
                s.cancelled = True
                _fds.close_items(s.inbox)
                s.wake()
            if self.transport is not None:
                self.transport.close()  # also closes the control socket
            elif self.unix is not None:
                self.unix.close()  # also closes descriptors that wait for their frame
            else:
                self.sock.close()

    async def _on_frame(self, f: _frame.Frame) -> None:
        t = f.type
        if t == FrameType.CALL_START:
            await self._start(f)
            return
        if t == FrameType.PING:
            if f.stream_id != 0 or len(f.payload) != 8:
                raise ProtocolError("malformed PING")
            if not f.flags & _frame.FLAG_PING_ACK:
                await self.send(_frame.encode_frame(FrameType.PING, 0, f.payload, _frame.FLAG_PING_ACK))
            return
        if t in (FrameType.HELLO, FrameType.TRAILERS, FrameType.HEADERS):
            raise ProtocolError(f"client sent frame type {t}, which only servers send")
        s = self.streams.get(f.stream_id)
        if s is None:
            return
        if t == FrameType.MESSAGE:
            item, error = incoming_message(f, "server", self.unread_fds) if not f.oversized else (None, None)
            if error is not None:
                await s.finish(*error)
            elif f.oversized:
                await s.finish(StatusCode.RESOURCE_EXHAUSTED, f"request message of {f.length} bytes exceeds the server's max_message_size of {self.server.max_message_bytes} bytes")
            elif s.half_closed:
                await s.finish(StatusCode.INTERNAL, "protocol violation: MESSAGE after HALF_CLOSE")
            elif s.recv_window <= 0:
                await s.finish(StatusCode.RESOURCE_EXHAUSTED, "protocol violation: MESSAGE while the stream's flow-control window was used up")
            elif s.finished or s.cancelled:
                pass  # dropped (its descriptors are closed)
            else:
                s.recv_window -= f.length
                s.inbox.append(item)
                s.wake()
        elif t == FrameType.HALF_CLOSE:
            s.half_closed = True
            s.wake()
        elif t == FrameType.CANCEL:
            s.cancelled = True
            _fds.close_items(s.inbox)
            s.wake()
            if s.task is not None:
                s.task.cancel()
        elif t == FrameType.CREDIT:
            s.send_window += _frame.decode_credit(f.payload)
            s.wake()

    async def _start(self, f: _frame.Frame) -> None:
        sid = f.stream_id
        if sid <= self.last_id:
            raise ProtocolError(f"stream id {sid} does not increase")
        self.last_id = sid
        handler = None
        start, refusal = parse_call_start(f, self.server.metadata_limits)
        if refusal is None:
            handler = self.server._find(start.method)
            if handler is None:
                refusal = (StatusCode.UNIMPLEMENTED, f"unknown method {start.method}")
        if refusal is None and (self.going_away or self.server._stopping):
            refusal = (StatusCode.UNAVAILABLE, "server is shutting down")
        if refusal is None and self.server.maximum_concurrent_rpcs is not None and self.server._active >= self.server.maximum_concurrent_rpcs:
            refusal = (StatusCode.RESOURCE_EXHAUSTED, "server overloaded: maximum_concurrent_rpcs reached")
        if refusal is not None:
            await self.send(_frame.encode_frame(FrameType.TRAILERS, sid, _wirepb.Trailers(refusal[0].number, refusal[1]).encode()))
            return
        assert handler is not None
        deadline = None if start.timeout_micros == 0 else time.monotonic() + start.timeout_micros / 1e6
        s = _Stream(self, sid, start.method, handler, deadline, start.metadata)
        self.streams[sid] = s
        self.server._active += 1
        s.task = self.loop.create_task(_run(s))


class Server:
    """``ipcrpc.aio.server()``: ``add_..._to_server``, ``add_listening_address``,
    ``await start()``, ``await stop(grace)``, ``await wait_for_termination()``."""

    def __init__(self, *, maximum_concurrent_rpcs: Optional[int] = None, max_message_bytes: int = _frame.DEFAULT_MAX_MESSAGE,
                 stream_window_bytes: int = _frame.DEFAULT_STREAM_WINDOW, allowed_transports: Optional[Sequence[str]] = None,
                 ring_bytes: int = 0, socket_mode: Optional[int] = None, allowed_uids: Optional[Iterable[int]] = None,
                 allowed_gids: Optional[Iterable[int]] = None, allow_any_peer: bool = False,
                 max_metadata_bytes: Optional[int] = None, max_metadata_entries: Optional[int] = None,
                 max_fds_per_message: int = _fds.MAX_FDS_PER_MESSAGE) -> None:
        from .. import _config

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
        self.ring_bytes = ring_bytes or section.tuning.shm.ring_bytes
        self.fifo_parent_dir = section.tuning.fifo.parent_dir  # "" = /tmp
        self.max_spin = _config.shm_max_spin(section.tuning.shm)  # None: the default
        self._allowed = list(allowed_transports) if allowed_transports is not None else None
        self.maximum_concurrent_rpcs = maximum_concurrent_rpcs
        self.max_message_bytes = max_message_bytes
        self.stream_window = stream_window_bytes
        self._handlers: List[GenericRpcHandler] = []
        self._addresses: List[Tuple[_transport.Address, int]] = []
        self._listeners: List[Tuple[socket.socket, str]] = []
        self._accept_tasks: List["asyncio.Task[None]"] = []
        self._conns: Dict[_Connection, "asyncio.Task[None]"] = {}
        self._active = 0
        self._idle: Optional[asyncio.Event] = None
        self._stopping = False
        self._terminated: Optional[asyncio.Event] = None

    def add_generic_rpc_handlers(self, handlers: Iterable[GenericRpcHandler]) -> None:
        self._handlers.extend(handlers)

    def add_listening_address(self, address: str, socket_mode: Optional[int] = None) -> int:
        """As the sync server's: a socket file gets ``socket_mode`` (default: the server's, 0600)."""
        mode = self.socket_mode if socket_mode is None else _access.socket_mode_from(socket_mode, None)
        self._addresses.append((_transport.parse_address(address), mode))
        return 0

    add_insecure_port = add_listening_address

    def allowed_transports(self) -> List[str]:
        mine = list(_transport.available_transports())
        return mine if self._allowed is None else [t for t in mine if t in self._allowed]

    def _find(self, method: str) -> Optional[RpcMethodHandler]:
        for h in self._handlers:
            m = h.service(method)
            if m is not None:
                return m
        return None

    def _call_ended(self) -> None:
        self._active -= 1
        if self._active == 0 and self._idle is not None:
            self._idle.set()

    async def start(self) -> None:
        self._terminated = asyncio.Event()
        _pending.sweep()  # a killed server's half-negotiated FIFOs and queues
        for a, mode in self._addresses:
            try:
                if not a.socket_path.startswith("\0"):
                    _remove_stale_socket(a.socket_path)
                sock = _access.listen(a.socket_path, mode)
            except OSError as e:
                raise RpcError(StatusCode.UNAVAILABLE, f"cannot listen on {a.display}: {e.strerror or e}") from None
            self._listeners.append((sock, a.socket_path))
            self._accept_tasks.append(asyncio.get_running_loop().create_task(self._accept(sock)))

    async def _accept(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(lsock)
            except asyncio.CancelledError:
                return
            except OSError:
                continue
            if _access.admit(sock, self.access_policy) is None:
                continue  # refused (PROTOCOL.md §4)
            sock.setblocking(False)
            c = _Connection(self, sock)
            task = loop.create_task(c.run())
            self._conns[c] = task
            task.add_done_callback(self._forget(c))

    def _forget(self, c: _Connection) -> Any:
        def done(_task: "asyncio.Task[None]") -> None:
            self._conns.pop(c, None)

        return done

    async def stop(self, grace: Optional[float]) -> None:
        if self._stopping:
            if self._terminated is not None:
                await self._terminated.wait()
            return
        self._stopping = True
        for t in self._accept_tasks:
            t.cancel()
        for sock, path in self._listeners:
            sock.close()
            _unlink(path)
        for c in list(self._conns):
            await c.go_away("server is shutting down")
        if grace and self._active > 0:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except asyncio.TimeoutError:
                pass
        for c, task in list(self._conns.items()):
            for s in list(c.streams.values()):
                if s.task is not None:
                    s.task.cancel()
            c.shutdown()
        if self._conns:
            await asyncio.wait(list(self._conns.values()), timeout=5)
        if self._terminated is not None:
            self._terminated.set()

    async def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        assert self._terminated is not None, "start() first"
        try:
            await asyncio.wait_for(self._terminated.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


async def _recv_exact(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await loop.sock_recv(sock, n - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection during set-up")
        data += chunk
    return data


async def _first_frame(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> Union[bytes, _wirepb.TransportRequest]:
    """Reads the client's first frame: its bytes (a HELLO, for the connection to
    decode) or, when the client negotiates, the TransportRequest."""
    header = await _recv_exact(loop, sock, _frame.HEADER_SIZE)
    f = _frame.decode_header(header)
    if f.length > 1 << 20:
        raise ProtocolError("first frame too large")
    payload = await _recv_exact(loop, sock, f.length) if f.length else b""
    if f.type != FrameType.TRANSPORT_REQUEST:
        return header + payload
    return _wirepb.TransportRequest.decode(payload)


def server(**kwargs: Any) -> Server:
    return Server(**kwargs)
