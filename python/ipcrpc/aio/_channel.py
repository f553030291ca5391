"""The asyncio client (grpc.aio-shaped): calls are awaitables and async
iterators driven by the event loop; no thread per call.

Over the unix socket and FIFOs a connection's frames are read by the loop.
Over shm and msgq (a futex, a semaphore or a blocking msgrcv cannot be
awaited) the loop thread reads too, after a bounded spin, and only a call
that is still waiting parks on one thread per *connection*, which hands what
it read to the loop.  Everything else runs on the loop thread, so no locks
guard the call state.  A channel belongs to the loop that first uses it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import select
import socket
import threading
from typing import Any, AsyncIterable, AsyncIterator, Callable, Deque, Dict, Generic, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

from .. import _fds, _frame, _limits, _transport, _wirepb
from .._client import AGENT, MetadataArg, decode_headers, decode_trailers, incoming_message
from .._fifo import FifoTransport as _FifoTransport
from .._msgq import AdaptiveSpin as _AdaptiveSpin, MsgqTransport as _MsgqTransport
from .._shm import _MAX_SPIN as _DEFAULT_SPIN, ShmTransport as _ShmTransport
from .._frame import FrameType, ProtocolError
from .._status import MetadataType, RpcError, StatusCode, WireMetadata, normalize_metadata

Req = TypeVar("Req")
Resp = TypeVar("Resp")
_READ_CHUNK = 256 * 1024
# A unary request up to this size (frames included) is written on the loop
# thread when the call starts, as send() writes small frames; larger ones go
# through send(), which writes them from an executor thread.
_WRITE_NOW_MAX = 64 * 1024
_IDLE_POLL = 0.1  # seconds between the shm doorbell's looks at an idle ring (and the msgq reader's)
_MAX_STREAM_ID = 0xFFFFFFFF


class _EOF:
    def __repr__(self) -> str:
        return "ipcrpc.aio.EOF"


EOF = _EOF()  # returned by read() at the end of a response stream, like grpc.aio.EOF


def _identity(x: Any) -> Any:
    return x


class _Stream:
    """One call's state; touched only on the loop thread."""

    def __init__(self, conn: "_Connection", sid: int, method: str, deadline: Optional[float]) -> None:
        self.conn = conn
        self.id = sid
        self.method = method
        self.deadline = deadline  # loop.time() based
        self.inbox: Deque[_fds.Incoming] = collections.deque()
        self.initial_metadata: Optional[MetadataType] = None
        self.done = False
        self.code = StatusCode.OK
        self.details = ""
        self.trailing: MetadataType = ()
        self.send_window = conn.peer_window
        self.recv_window = conn.our_window
        self.unacked = 0
        self._waiters: List["asyncio.Future[None]"] = []
        self._timer: Optional[asyncio.TimerHandle] = None
        self.callbacks: List[Callable[[], None]] = []
        if deadline is not None:
            self._timer = conn.loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        self.fail_locally(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")

    def wake(self) -> None:
        for f in self._waiters:
            if not f.done():
                f.set_result(None)
        self._waiters.clear()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            conn = self.conn
            if conn._shm is not None and conn.shm_poll():
                continue  # the loop thread read something in its spin: look again
            if conn._msgq is not None and conn.msgq_poll():
                continue
            fut = conn.loop.create_future()
            self._waiters.append(fut)
            if conn._shm is not None:
                conn.shm_park()
            elif conn._msgq is not None:
                conn.msgq_park()
            try:
                await fut
            except asyncio.CancelledError:
                self.fail_locally(StatusCode.CANCELLED, "the awaiting task was cancelled")
                raise

    def finish(self, code: StatusCode, details: str, trailing: MetadataType = ()) -> None:
        if self.done:
            return
        self.done = True
        self.code, self.details, self.trailing = code, details, trailing
        if self.initial_metadata is None:
            self.initial_metadata = ()
        if self._timer is not None:
            self._timer.cancel()
        self.conn.streams.pop(self.id, None)
        self.wake()
        cbs, self.callbacks = self.callbacks, []
        for cb in cbs:
            try:
                cb()
            except Exception:
                pass

    def fail_locally(self, code: StatusCode, details: str) -> None:
        if self.done:
            return
        self.finish(code, details)
        _fds.close_items(self.inbox)  # nobody takes the descriptors of a failed call
        self.conn.send_soon(_frame.encode_frame(FrameType.CANCEL, self.id))

    def error(self) -> RpcError:
        return RpcError(self.code, self.details, self.trailing, self.initial_metadata or (), self.method)

    async def next_message(self) -> Optional[_fds.Incoming]:
        await self.wait(lambda: bool(self.inbox) or self.done)
        if not self.inbox:
            return None
        payload = self.inbox.popleft()
        if not self.done:
            self.unacked += _fds.wire_len(payload)
            if self.unacked >= self.conn.our_window // 2:
                credit, self.unacked = self.unacked, 0
                self.recv_window += credit
                self.conn.send_soon(_frame.encode_frame(FrameType.CREDIT, self.id, _frame.encode_credit(credit)))
        return payload

    async def send_message(self, payload: bytes, out: Optional[_fds.Outgoing] = None) -> bool:
        if len(payload) > self.conn.peer_max_message or len(payload) > self.conn.channel._max_send:
            limit = min(self.conn.peer_max_message, self.conn.channel._max_send)
            self.fail_locally(StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(payload)} bytes exceeds the limit of {limit} bytes")
            return False
        refused = _fds.check_peer(out, self.conn.peer_max_fds, self.conn.target)
        if refused is not None:
            self.fail_locally(*refused)
            return False
        await self.wait(lambda: self.send_window > 0 or self.done)
        if self.done:
            return False
        self.send_window -= len(payload)
        fds = out.fds if out else ()
        await self.conn.send(_frame.encode_frame(FrameType.MESSAGE, self.id, payload, fd_count=len(fds)), fds)
        return True


class _Connection:
    def __init__(self, channel: "Channel", loop: asyncio.AbstractEventLoop, t: _transport.Transport) -> None:
        self.channel = channel
        self.loop = loop
        self.transport = t
        self.unread_fds = _fds.UnreadFds()  # in responses not read yet (at most MAX_UNREAD_FDS)
        self.target: str = channel.target
        self.our_window: int = channel._window
        self.our_max: int = channel._max_receive
        self.peer_max_message: int = _frame.DEFAULT_MAX_MESSAGE
        self.peer_window: int = _frame.DEFAULT_STREAM_WINDOW
        self.peer_max_fds: int = 0  # the server's max_fds_per_message (HELLO field 7)
        self.streams: Dict[int, _Stream] = {}
        self.next_id = 1
        self.usable = True
        self.broken: Optional[str] = None
        self.broken_code = StatusCode.UNAVAILABLE
        self.ready: "asyncio.Future[None]" = loop.create_future()
        self._write_lock = asyncio.Lock()
        self.limits: _limits.MetadataLimits = channel._limits
        self.our_max_fds: int = channel._max_fds
        self._decoder = _frame.FrameDecoder(self.our_max, self.limits.control_frame_limit, t, self.our_max_fds)
        self._got_hello = False
        self._unix = isinstance(t, _transport.UnixTransport)
        self._unix_fd = -1  # the socket, while the loop reads it
        self._reader_thread: Optional[threading.Thread] = None
        self._fifo_fds: Optional[Tuple[int, int]] = None
        # shm and shm+sem: the loop thread reads the ring itself (after a bounded,
        # adaptive spin); the doorbell thread only watches it while calls are parked.
        self._shm: Optional[Any] = t if isinstance(t, _ShmTransport) else None
        self._park = threading.Event()
        self._bell_pending = False
        self._bell_stop = False
        # msgq: the loop thread reads the queue itself (msgq_poll) while it holds
        # the reader role; a waiting call that got nothing hands the role to the
        # reader thread (msgq_park), which gives it back with what it read.
        self._msgq: Optional[_MsgqTransport] = t if isinstance(t, _MsgqTransport) else None
        self._mq_loop_reads = False  # the role: True = the loop thread, False = the reader thread
        self._mq_waits = 0  # msgq_poll calls, so the reader thread can tell an idle loop
        self._mq_idle_pending = False
        max_spin = channel._max_spin
        self._mq_spin = _AdaptiveSpin(_DEFAULT_SPIN if max_spin is None else max_spin)

    async def start(self) -> None:
        hello = _frame.encode_frame(FrameType.HELLO, 0, _wirepb.Hello(1, self.our_max, self.our_window, 0, AGENT, max_fds_per_message=self.our_max_fds).encode())
        if self._unix:
            # The loop reads the socket (recvmsg: descriptors come with the bytes,
            # PROTOCOL.md §10); writes go through send() in order, like the FIFOs'.
            sock = self.transport.sock  # type: ignore[attr-defined]
            try:
                # Written before asyncio owns the socket, so that a refusing server
                # that closed before our HELLO went out is still read (§4).
                sock.sendall(hello)
            except OSError as e:
                refusal = await self.loop.run_in_executor(None, _transport.read_refusal, self.transport, self.target)
                if refusal is not None:
                    self.break_connection(refusal.details(), refusal.code())
                else:
                    self.break_connection(f"connection to {self.target} lost: {e.strerror or e}")
                return
            self._unix_fd = sock.fileno()
            self.loop.add_reader(self._unix_fd, self._on_unix_readable)
        elif isinstance(self.transport, _FifoTransport):
            # FIFOs and the control socket can be polled: the loop reads them, no thread.
            self.transport.send(hello)
            self._fifo_fds = (self.transport.read_fd, self.transport.control_fd)
            self.loop.add_reader(self._fifo_fds[0], self._on_fifo_readable)
            self.loop.add_reader(self._fifo_fds[1], self._on_control_readable)
            assert self.transport.control is not None
            self.transport.control.on_record_taken = self._on_record_taken
        elif self._msgq is not None:
            self.transport.send(hello)
            self._reader_thread = threading.Thread(target=self._msgq_reader, name=f"ipcrpc-aio-msgq-reader {self.target}", daemon=True)
            self._park.set()  # the reader thread holds the role until the server's HELLO
            self._reader_thread.start()
        elif self._shm is not None:
            self.transport.send(hello)
            self._reader_thread = threading.Thread(target=self._doorbell, name=f"ipcrpc-aio-doorbell {self.target}", daemon=True)
            self._reader_thread.start()
            self.shm_park()  # until the server's HELLO
        else:
            self.transport.send(hello)
            self._reader_thread = threading.Thread(target=self._read_thread, name=f"ipcrpc-aio-reader {self.target}", daemon=True)
            self._reader_thread.start()

    def _on_fifo_readable(self) -> None:
        fds = self._fifo_fds
        if fds is None:
            return
        try:
            data = os.read(fds[0], _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            self.break_connection(f"connection to {self.target} lost: {e}")
            return
        if not data:  # the loop saw it readable: the writer came and went
            self.break_connection(f"connection to {self.target} lost: the server closed the connection")
            return
        self._feed(data)

    def _read_once(self, t: Any) -> bool:
        """One read of ``t`` that does not block, fed to the frame decoder:
        False when nothing was there or the connection broke."""
        try:
            data = t.recv_within(_READ_CHUNK, 0.0)
        except (ConnectionError, OSError) as e:
            self.break_connection(f"connection to {self.target} lost: {e}")
            return False
        if data is None:
            return False
        if not data:
            self.break_connection(f"connection to {self.target} lost: the server closed the connection")
            return False
        self._feed(data)
        return True

    def _on_unix_readable(self) -> None:
        if self._unix_fd >= 0:
            self._read_once(self.transport)

    def _on_control_readable(self) -> None:
        # The control socket stays silent, but for fd records (PROTOCOL.md §10):
        # readable otherwise means the server closed, died or misbehaved.
        ctl = self.transport.control
        assert ctl is not None and self._fifo_fds is not None
        if ctl.events(select.POLLIN):
            self.break_connection(f"connection to {self.target} lost: the server closed the connection")
        elif ctl.record_waiting:
            # A record waits for its frame: stop watching until it is taken (the
            # FIFO's end of file still tells a dead server).
            self.loop.remove_reader(self._fifo_fds[1])

    def _on_record_taken(self) -> None:
        if self._fifo_fds is not None and self.broken is None:
            self.loop.add_reader(self._fifo_fds[1], self._on_control_readable)

    def _stop_fifo_readers(self) -> None:
        """Stops the loop's readers (the FIFO and its control socket, or the unix socket)."""
        if self._fifo_fds is not None:
            for fd in self._fifo_fds:
                self.loop.remove_reader(fd)
            self._fifo_fds = None
        if self._unix_fd >= 0:
            self.loop.remove_reader(self._unix_fd)
            self._unix_fd = -1

    # -- writing (ordered: one writer at a time) --

    async def send(self, data: bytes, fds: Sequence[int] = (), at: int = 0) -> None:
        """Writes ``data`` in order; ``fds`` go with the frame at offset ``at``."""
        if self.broken is not None:
            return
        async with self._write_lock:
            try:
                if len(data) <= _WRITE_NOW_MAX:
                    self.transport.send_split(data, fds, at)
                else:
                    await self.loop.run_in_executor(None, self.transport.send_split, data, fds, at)
            except (ConnectionError, OSError) as e:
                self.break_connection(f"connection to {self.target} lost: {e}")

    def send_now(self, data: bytes) -> bool:
        """Writes data at once from the loop thread if nothing is queued before it
        (a small write: the unix socket's buffer or a transport write that does not
        wait long); False if the caller must use send() instead."""
        if self._write_lock.locked() or len(data) > _WRITE_NOW_MAX:
            return False
        try:
            self.transport.send(data)
        except (ConnectionError, OSError) as e:
            self.break_connection(f"connection to {self.target} lost: {e}")
        return True

    def send_soon(self, data: bytes) -> None:
        """Queues a control frame from synchronous code (frames stay in order)."""
        if self.broken is not None:
            return
        self.loop.create_task(self.send(data))

    # -- reading shm on the loop thread --
    #
    # A futex or a semaphore in shared memory cannot be awaited. The loop thread
    # therefore reads the ring itself: a waiting call first spins on the ring
    # (shm_poll: the transport's adaptive budget, at most 50 µs and never while the
    # server last ran on this CPU; the loop runs nothing else meanwhile), and
    # only if nothing came does it park (shm_park): the doorbell thread then
    # sleeps on the ring's futex/semaphore and, once bytes or the end are there,
    # schedules _on_doorbell on the loop, which reads them. While no call waits,
    # the doorbell only looks every _IDLE_POLL seconds (a PING, a GOAWAY, the
    # server's death are noticed then), so it never competes with a spinning loop.

    def shm_poll(self) -> bool:
        """Spins (bounded) until the ring is readable; reads it if so. True if it read."""
        t = self._shm
        if t is None or self.broken is not None:
            return False
        try:
            ready = t.wait_readable(-1.0, 0.0)
        except (ConnectionError, OSError) as e:
            self.break_connection(f"connection to {self.target} lost: {e}")
            return True
        if ready:
            self._drain_shm()
        return ready

    def shm_park(self) -> None:
        if not self._park.is_set():
            self._park.set()

    def _drain_shm(self) -> None:
        t = self._shm
        assert t is not None
        while self.broken is None and self._read_once(t):
            pass

    def _on_doorbell(self) -> None:
        self._bell_pending = False
        self._drain_shm()
        if self.broken is None and (self.streams or not self._got_hello):
            self.shm_park()  # calls still wait

    def _doorbell(self) -> None:
        t = self._shm
        assert t is not None
        try:
            while not self._bell_stop:
                parked = self._park.wait(_IDLE_POLL)
                if self._bell_stop:
                    return
                if parked:
                    self._park.clear()
                    while not self._bell_stop and not t.wait_readable(0.0, 0.1):
                        pass
                elif self._bell_pending or not t.readable():
                    continue
                if not self._bell_pending:
                    self._bell_pending = True
                    self.loop.call_soon_threadsafe(self._on_doorbell)
        except RuntimeError:  # the loop is closed
            pass
        except (ConnectionError, OSError) as e:
            try:
                self.loop.call_soon_threadsafe(self.break_connection, f"connection to {self.target} lost: {e}")
            except RuntimeError:
                pass

    # -- reading msgq on the loop thread --
    #
    # One reader at a time takes messages off the queue, in order; "the role"
    # says who. The loop thread holds it while _mq_loop_reads is True and then
    # reads with msgrcv(IPC_NOWAIT) only: msgq_poll spins (bounded, adaptive,
    # as over shm) until something came. A call that still has nothing parks
    # (msgq_park): the role passes to the reader thread, which blocks in msgrcv
    # for one message and hands it to the loop (_on_msgq_data), and with it
    # the role; the loop feeds those bytes before it reads again itself, so
    # nothing is read twice, lost or reordered. Both hand-overs are one-way
    # and each side acts only after the other let go: the loop sets the flag
    # before the thread's event; the thread posts nothing more until the next
    # event. An idle loop (no msgq_poll for a whole _IDLE_POLL) gives the role
    # to the thread too, so a PING, a GOAWAY or the server's death are seen at
    # once, as they were when the thread read everything.

    def msgq_poll(self) -> bool:
        """Reads what is queued, spinning (bounded) if nothing is; True if it read."""
        t = self._msgq
        if t is None or not self._mq_loop_reads or self.broken is not None:
            return False
        self._mq_waits += 1
        try:
            data = t.recv_nowait(_READ_CHUNK)
            if data is None:
                spin = self._mq_spin.next()
                if spin <= 0:
                    return False
                data = t.recv_nowait(_READ_CHUNK, spin)
                self._mq_spin.result(data is not None)
                if data is None:
                    return False
        except (ConnectionError, OSError) as e:
            self.break_connection(f"connection to {self.target} lost: {e}")
            return True
        self._on_msgq_bytes(data)
        return True

    def msgq_park(self) -> None:
        if self._mq_loop_reads and self.broken is None:
            self._mq_loop_reads = False
            self._park.set()

    def _on_msgq_bytes(self, data: bytes) -> None:
        """Feeds data the role holder read, then whatever else is queued (the loop holds the role)."""
        t = self._msgq
        assert t is not None
        while self.broken is None:
            if not data:
                self.break_connection(f"connection to {self.target} lost: the server closed the connection")
                return
            self._feed(data)
            try:
                got = t.recv_nowait(_READ_CHUNK)
            except (ConnectionError, OSError) as e:
                self.break_connection(f"connection to {self.target} lost: {e}")
                return
            if got is None:
                return
            data = got

    def _on_msgq_data(self, data: bytes) -> None:
        # On the loop: the reader thread read data and gave the role back.
        self._mq_loop_reads = True
        self._on_msgq_bytes(data)
        if self.broken is None and (not self._got_hello or any(s._waiters for s in self.streams.values())):
            self.msgq_park()  # a call still waits and its spin is over: the thread reads for it

    def _on_msgq_idle(self) -> None:
        self._mq_idle_pending = False
        self.msgq_park()

    def _msgq_reader(self) -> None:
        t = self._msgq
        assert t is not None
        seen = -1
        try:
            while not self._bell_stop:
                if not self._park.wait(_IDLE_POLL):
                    # The loop holds the role. Idle for a whole period: ask for the role.
                    waits = self._mq_waits
                    if waits == seen and self._mq_loop_reads and not self._mq_idle_pending:
                        self._mq_idle_pending = True
                        self.loop.call_soon_threadsafe(self._on_msgq_idle)
                    seen = waits
                    continue
                self._park.clear()
                if self._bell_stop:
                    return
                data = t.recv(_READ_CHUNK)  # b"" at the end (the queue removed, or the peer gone)
                self.loop.call_soon_threadsafe(self._on_msgq_data, data)
                if not data:
                    return
        except RuntimeError:  # the loop is closed
            pass
        except (ConnectionError, OSError) as e:
            try:
                self.loop.call_soon_threadsafe(self.break_connection, f"connection to {self.target} lost: {e}")
            except RuntimeError:
                pass

    # -- reading --

    def _read_thread(self) -> None:
        try:
            while True:
                data = self.transport.recv(_READ_CHUNK)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.loop.call_soon_threadsafe(self._feed, data)
        except Exception as e:
            try:
                self.loop.call_soon_threadsafe(self.break_connection, f"connection to {self.target} lost: {e}")
            except RuntimeError:  # the loop is closed
                pass

    def _feed(self, data: bytes) -> None:
        if self.broken is not None:
            return
        decoder = self._decoder
        try:
            if decoder.mid_frame or not self._got_hello or self.transport.has_pending_fds():
                for frame in decoder.feed(data):
                    self._on_frame(frame)
                return
            # Whole frames at the front are split in one call (plain MESSAGE and OK
            # TRAILERS handled here); the decoder keeps the rest.
            frames, used = _frame.split_frames(data, decoder.max_payload, decoder.max_control)
            if any(f[3] for f in frames):  # descriptors: the decoder matches them to frames
                for frame in decoder.feed(data):
                    self._on_frame(frame)
                return
            decoder.advance(used)
            streams = self.streams
            for type_, sid, flags, fd_count, payload in frames:
                s = streams.get(sid)
                if s is not None:
                    if type_ == FrameType.MESSAGE and s.recv_window > 0:
                        s.recv_window -= len(payload)
                        s.inbox.append(payload)
                        if s.initial_metadata is None:
                            s.initial_metadata = ()
                        s.wake()
                        continue
                    if type_ == FrameType.TRAILERS and not payload and not fd_count:
                        s.finish(StatusCode.OK, "")
                        continue
                self._on_frame(_frame.Frame(type_, sid, payload, flags, fd_count, False, len(payload)))
                if self.broken is not None:
                    return
            if used < len(data):
                for frame in decoder.feed(data[used:]):
                    self._on_frame(frame)
        except ProtocolError as e:
            self.break_connection(f"protocol error from {self.target}: {e}")

    def _on_frame(self, frame: _frame.Frame) -> None:
        t = frame.type
        if not self._got_hello:
            if _transport.is_refusal(frame):
                refusal = _transport.refusal_error(frame, self.target)
                self.break_connection(refusal.details(), refusal.code())
                return
            if t != FrameType.HELLO or frame.stream_id != 0 or frame.oversized:
                raise ProtocolError(f"expected HELLO as the server's first frame, got type {t}")
            h = _wirepb.Hello.decode(frame.payload)
            if h.protocol_version != 1:
                raise ProtocolError(f"server speaks protocol version {h.protocol_version}")
            self.peer_max_message = h.max_message_size or _frame.DEFAULT_MAX_MESSAGE
            self.peer_window = h.initial_stream_window or _frame.DEFAULT_STREAM_WINDOW
            self.peer_max_fds = min(h.max_fds_per_message, _fds.MAX_FDS_PER_MESSAGE)
            self._got_hello = True
            if not self.ready.done():
                self.ready.set_result(None)
            return
        if t == FrameType.PING:
            if frame.stream_id != 0 or len(frame.payload) != 8:
                raise ProtocolError("malformed PING")
            if not frame.flags & _frame.FLAG_PING_ACK:
                self.send_soon(_frame.encode_frame(FrameType.PING, 0, frame.payload, _frame.FLAG_PING_ACK))
            return
        if t == FrameType.GOAWAY:
            g = _wirepb.GoAway.decode(frame.payload) if not frame.oversized else _wirepb.GoAway()
            self.usable = False
            for sid, s in list(self.streams.items()):
                if sid > g.last_stream_id:
                    s.finish(StatusCode.UNAVAILABLE, f"server is shutting down: {g.reason}")
            return
        if t in (FrameType.HELLO, FrameType.CALL_START, FrameType.CANCEL):
            raise ProtocolError(f"server sent frame type {t}, which only clients send")
        found = self.streams.get(frame.stream_id)
        if found is None:
            return
        s = found
        if t == FrameType.MESSAGE:
            item, error = incoming_message(frame, "client", self.unread_fds) if not frame.oversized else (None, None)
            if frame.oversized:
                s.fail_locally(StatusCode.RESOURCE_EXHAUSTED, f"response message of {frame.length} bytes exceeds this client's max_receive_message_size of {self.our_max} bytes")
            elif error is not None:
                s.fail_locally(*error)
            elif s.recv_window <= 0:
                s.fail_locally(StatusCode.RESOURCE_EXHAUSTED, "protocol violation: the server ignored the flow-control window")
            else:
                s.recv_window -= frame.length
                s.inbox.append(item)
                if s.initial_metadata is None:
                    s.initial_metadata = ()
                s.wake()
        elif t == FrameType.HEADERS:
            md, error = decode_headers(frame, self.limits)
            if error is not None:
                s.fail_locally(*error)
                return
            s.initial_metadata = md
            s.wake()
        elif t == FrameType.TRAILERS:
            s.finish(*decode_trailers(frame, self.limits))
        elif t == FrameType.CREDIT:
            s.send_window += _frame.decode_credit(frame.payload)
            s.wake()

    # -- lifecycle --

    def open_stream(self, method: str, deadline: Optional[float]) -> Optional[_Stream]:
        if not self.usable or self.broken is not None:
            return None
        sid = self.next_id
        self.next_id += 1
        if sid >= _MAX_STREAM_ID:
            self.usable = False
        s = _Stream(self, sid, method, deadline)
        self.streams[sid] = s
        return s

    def break_connection(self, reason: str, code: StatusCode = StatusCode.UNAVAILABLE) -> None:
        if self.broken is not None:
            return
        self.broken = reason
        self.broken_code = code
        self.usable = False
        if not self.ready.done():
            self.ready.set_result(None)
        for s in list(self.streams.values()):
            s.finish(StatusCode.UNAVAILABLE, reason)
        self._stop_fifo_readers()
        self._bell_stop = True
        self._park.set()
        self.transport.shutdown()

    async def close(self) -> None:
        self.break_connection(f"channel to {self.target} closed")
        if self._reader_thread is not None:
            await self.loop.run_in_executor(None, self._reader_thread.join, 5)
        self.transport.close()


class Channel:
    """An asyncio channel; ``async with ipcrpc.aio.channel(addr) as ch`` or ``await ch.close()``."""

    def __init__(self, address: str, *, transport: Optional[str] = None, max_send_message_bytes: int = _frame.DEFAULT_MAX_MESSAGE,
                 max_receive_message_bytes: int = _frame.DEFAULT_MAX_MESSAGE, stream_window_bytes: int = _frame.DEFAULT_STREAM_WINDOW,
                 connect_timeout: float = 5.0, ring_bytes: int = 0, max_metadata_bytes: Optional[int] = None,
                 max_metadata_entries: Optional[int] = None, max_fds_per_message: int = _fds.MAX_FDS_PER_MESSAGE) -> None:
        from .. import _config

        if not 0 <= max_fds_per_message <= _fds.MAX_FDS_PER_MESSAGE:
            raise ValueError(f"max_fds_per_message must be 0..{_fds.MAX_FDS_PER_MESSAGE}")
        plan = _config.plan_channel(address)
        if plan.max_fds is not None:  # the config file's entry decides, as in C++
            max_fds_per_message = min(plan.max_fds, _fds.MAX_FDS_PER_MESSAGE)
        self._max_fds = max_fds_per_message
        self._address = _transport.parse_address(plan.address)
        self._transport_name = _transport.check_transport_name(plan.transport or transport or self._address.transport)
        self._max_send = plan.max_send or max_send_message_bytes
        self._max_receive = plan.max_receive or max_receive_message_bytes
        self._window = stream_window_bytes
        self._connect_timeout = connect_timeout
        self._ring_bytes = ring_bytes or plan.ring_bytes
        self._max_spin = plan.max_spin
        self._limits = _limits.MetadataLimits.of(max_metadata_bytes, max_metadata_entries, plan)
        self._conn: Optional[_Connection] = None
        self._old: List[_Connection] = []
        self._connecting: Optional["asyncio.Future[_Connection]"] = None
        self._closed = False

    @property
    def target(self) -> str:
        return f"{self._transport_name}:{self._address.display.split(':', 1)[1]}"

    def transport_name(self) -> Optional[str]:
        return self._conn.transport.name if self._conn is not None else None

    async def _connection(self, deadline: Optional[float]) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise RpcError(StatusCode.CANCELLED, "the channel is closed")
            c = self._conn
            if c is not None and c.usable and c.broken is None:
                return c
            if c is not None:
                self._old.append(c)
                self._conn = None
            if self._connecting is None:
                self._connecting = loop.create_future()
                timeout = self._connect_timeout
                if deadline is not None:
                    timeout = max(min(timeout, deadline - loop.time()), 0.001)
                try:
                    t = await loop.run_in_executor(None, _transport.connect, self._address, self._transport_name, timeout, self._ring_bytes, self._max_spin)
                    conn = _Connection(self, loop, t)
                    await conn.start()
                    self._conn = conn
                    self._connecting.set_result(conn)
                except BaseException as e:
                    self._connecting.set_exception(e)
                    self._connecting.exception()  # retrieved: no "never retrieved" warning
                    self._connecting = None
                    raise
                self._connecting = None
                return conn  # even if already broken (a refusal): the caller reports why
            else:
                await asyncio.shield(self._connecting)

    async def _start(self, method: str, timeout: Optional[float], first: Callable[[_Stream], bytes], wait_for_ready: bool = False) -> _Stream:
        loop = asyncio.get_running_loop()
        if timeout is not None and timeout <= 0:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline had passed before the call started", method=method)
        deadline = None if timeout is None else loop.time() + timeout
        backoff = _transport.Backoff()
        attempts = 0
        while attempts < 3:
            try:
                conn = await self._ready_connection(deadline, method)
            except RpcError as e:
                if not wait_for_ready or e.code() is not StatusCode.UNAVAILABLE:
                    raise
                # wait_for_ready: the server is not there (yet); try again until the deadline.
                pause = backoff.next_pause(deadline, loop.time())
                if pause is None:
                    raise _transport.not_ready_error(self.target, e, method) from None
                await asyncio.sleep(pause)
                continue
            attempts += 1
            s = conn.open_stream(method, deadline)
            if s is not None:
                data = first(s)
                if isinstance(data, tuple):
                    await conn.send(*data)
                elif data:
                    await conn.send(data)
                return s
        raise RpcError(StatusCode.UNAVAILABLE, f"could not open a stream to {self.target}", method=method)

    async def _ready_connection(self, deadline: Optional[float], method: str) -> _Connection:
        """A connection whose server answered HELLO; RpcError if there is none."""
        loop = asyncio.get_running_loop()
        try:
            conn = await self._connection(deadline)
        except RpcError as e:
            e._method = method
            raise
        if not conn.ready.done():
            try:
                await asyncio.wait_for(asyncio.shield(conn.ready), None if deadline is None else max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded waiting for the server's HELLO", method=method) from None
        if conn.broken is not None:
            raise RpcError(conn.broken_code, conn.broken, method=method)
        return conn

    def _call_start(self, s: _Stream, md: WireMetadata) -> bytes:
        timeout_us = 0 if s.deadline is None else max(1, int((s.deadline - s.conn.loop.time()) * 1e6))
        return _frame.encode_frame(FrameType.CALL_START, s.id, _wirepb.CallStart(s.method, timeout_us, md).encode())

    def unary_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None) -> "UnaryUnaryMultiCallable":
        return UnaryUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def unary_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None) -> "UnaryStreamMultiCallable":
        return UnaryStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None) -> "StreamUnaryMultiCallable":
        return StreamUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None) -> "StreamStreamMultiCallable":
        return StreamStreamMultiCallable(self, method, request_serializer, response_deserializer)

    async def close(self, grace: Optional[float] = None) -> None:
        self._closed = True
        conns = ([self._conn] if self._conn else []) + self._old
        self._conn, self._old = None, []
        for c in conns:
            await c.close()

    async def __aenter__(self) -> "Channel":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def channel(address: str, **kwargs: Any) -> Channel:
    return Channel(address, **kwargs)


# -- calls -----------------------------------------------------------------------


class Call:
    """A running call (grpc.aio.Call): cancel(), done(), and awaitable outcome getters."""

    def __init__(self, channel: Channel, method: str, deserialize: Callable[[bytes], Any]) -> None:
        self._channel = channel
        self._method = method
        self._deserialize = deserialize
        self._stream: Optional[_Stream] = None
        self._ready: Optional["asyncio.Future[None]"] = None  # made when someone waits for the start
        self._start_error: Optional[BaseException] = None

    async def _s(self) -> _Stream:
        if self._stream is None and self._start_error is None:
            if self._ready is None:
                self._ready = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._ready)
        if self._stream is None:
            assert self._start_error is not None
            raise self._start_error
        return self._stream

    def _started(self, s: Optional[_Stream], error: Optional[BaseException] = None) -> None:
        self._stream, self._start_error = s, error
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def cancel(self) -> bool:
        s = self._stream
        if s is None or s.done:
            return False
        s.fail_locally(StatusCode.CANCELLED, "cancelled by the client")
        return True

    def cancelled(self) -> bool:
        return self._stream is not None and self._stream.done and self._stream.code is StatusCode.CANCELLED

    def done(self) -> bool:
        return self._stream is not None and self._stream.done

    def time_remaining(self) -> Optional[float]:
        s = self._stream
        if s is None or s.deadline is None:
            return None
        return max(0.0, s.deadline - s.conn.loop.time())

    async def code(self) -> StatusCode:
        s = await self._s()
        await s.wait(lambda: s.done)
        return s.code

    async def details(self) -> str:
        s = await self._s()
        await s.wait(lambda: s.done)
        return s.details

    async def initial_metadata(self) -> MetadataType:
        s = await self._s()
        await s.wait(lambda: s.initial_metadata is not None or s.done)
        return s.initial_metadata or ()

    async def trailing_metadata(self) -> MetadataType:
        s = await self._s()
        await s.wait(lambda: s.done)
        return s.trailing

    def add_done_callback(self, callback: Callable[["Call"], None]) -> None:
        s = self._stream
        if s is not None and s.done:
            callback(self)
        elif s is not None:
            s.callbacks.append(lambda: callback(self))

    async def _unary_response(self) -> Any:
        s = self._stream if self._stream is not None else await self._s()
        if not s.done:
            await s.wait(lambda: s.done)
        if s.code is not StatusCode.OK:
            raise s.error()
        if len(s.inbox) != 1:
            what = "without a response" if not s.inbox else f"with {len(s.inbox)} responses"
            raise RpcError(StatusCode.INTERNAL, f"the server ended a unary-response call OK {what}", s.trailing, s.initial_metadata or (), s.method)
        try:
            return _fds.deserialize(self._deserialize, s.inbox[0])
        except Exception as e:
            raise RpcError(StatusCode.INTERNAL, f"cannot parse the response: {e}", s.trailing, s.initial_metadata or (), s.method) from None

    async def read(self) -> Any:
        """The next response, or ipcrpc.aio.EOF at the end; raises RpcError on failure."""
        s = await self._s()
        payload = await s.next_message()
        if payload is None:
            if s.code is StatusCode.OK:
                return EOF
            raise s.error()
        try:
            return _fds.deserialize(self._deserialize, payload)
        except Exception as e:
            s.fail_locally(StatusCode.INTERNAL, f"cannot parse a response: {e}")
            raise s.error() from None

    async def _aiter(self) -> AsyncIterator[Any]:
        while True:
            r = await self.read()
            if r is EOF:
                return
            yield r

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._aiter()


class _RequestWriter:
    """write()/done_writing() for stream-request calls, and request-iterator pumping."""

    _call: Call
    _serialize: Callable[[Any], bytes]

    async def write(self, request: Any) -> None:
        s = await self._call._s()
        if s.done:
            raise s.error() if s.code is not StatusCode.OK else RpcError(StatusCode.INTERNAL, "write after the call ended")
        if not await s.send_message(*_fds.serialize(self._serialize, request)):
            raise s.error()

    async def done_writing(self) -> None:
        s = await self._call._s()
        if not s.done:
            await s.conn.send(_frame.encode_frame(FrameType.HALF_CLOSE, s.id))


async def _pump(call: Call, requests: Union[Iterable[Any], AsyncIterable[Any]], serialize: Callable[[Any], bytes]) -> None:
    try:
        s = await call._s()
    except RpcError:
        return
    try:
        if hasattr(requests, "__aiter__"):
            async for r in requests:  # type: ignore[union-attr]
                if s.done or not await s.send_message(*_fds.serialize(serialize, r)):
                    return
        else:
            for r in requests:  # type: ignore[union-attr]
                if s.done or not await s.send_message(*_fds.serialize(serialize, r)):
                    return
        if not s.done:
            await s.conn.send(_frame.encode_frame(FrameType.HALF_CLOSE, s.id))
    except asyncio.CancelledError:
        s.fail_locally(StatusCode.CANCELLED, "request iterator cancelled")
    except Exception as e:
        s.fail_locally(StatusCode.UNKNOWN, f"the request iterator raised {type(e).__name__}: {e}")


class UnaryUnaryCall(Call, Generic[Resp]):
    def __await__(self) -> Any:
        return self._unary_response().__await__()


class UnaryStreamCall(Call, Generic[Resp]):
    pass


class StreamUnaryCall(Call, _RequestWriter, Generic[Req, Resp]):
    def __await__(self) -> Any:
        return self._unary_response().__await__()


class StreamStreamCall(Call, _RequestWriter, Generic[Req, Resp]):
    pass


class _MultiCallable(Generic[Req, Resp]):
    def __init__(self, channel: Channel, method: str, serializer: Any, deserializer: Any) -> None:
        self._channel = channel
        self._method = method
        self._serialize: Callable[[Any], bytes] = serializer or _identity
        self._deserialize: Callable[[bytes], Any] = deserializer or _identity

    def _begin(self, call: Call, timeout: Optional[float], metadata: MetadataArg, payload: Optional[bytes], wait_for_ready: Optional[bool] = None,
               out: Optional[_fds.Outgoing] = None) -> None:
        md = normalize_metadata(metadata)
        ch = self._channel
        refused: List[Tuple[StatusCode, str]] = []

        def first(s: _Stream) -> Any:
            if payload is not None:
                if len(payload) > s.conn.peer_max_message:
                    refused.append((StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(payload)} bytes exceeds the server's max_message_size of {s.conn.peer_max_message} bytes"))
                    return b""  # nothing is sent (stream ids may have gaps)
                why = _fds.check_peer(out, s.conn.peer_max_fds, s.conn.target)
                if why is not None:
                    refused.append(why)
                    return b""
            data = ch._call_start(s, md)
            if payload is not None:
                s.send_window -= len(payload)
                at = len(data)
                data += _frame.encode_frame(FrameType.MESSAGE, s.id, payload, fd_count=len(out.fds) if out else 0) + _frame.encode_frame(FrameType.HALF_CLOSE, s.id)
                if out is not None:
                    return data, out.fds, at
            return data

        async def go() -> None:
            try:
                err = ch._limits.check(md, "request metadata")
                if err:  # PROTOCOL.md §5 "Limits": failed before anything is sent
                    raise RpcError(StatusCode.RESOURCE_EXHAUSTED, err, method=self._method)
                if payload is not None and len(payload) > ch._max_send:
                    raise RpcError(StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(payload)} bytes exceeds this channel's max_send_message_bytes of {ch._max_send} bytes", method=self._method)
                s = await ch._start(self._method, timeout, first, bool(wait_for_ready))
                if refused:
                    s.finish(*refused[0])
                call._started(s)
            except BaseException as e:
                call._started(None, e)

        asyncio.get_running_loop().create_task(go())


class UnaryUnaryMultiCallable(_MultiCallable[Req, Resp]):
    def __init__(self, channel: Channel, method: str, serializer: Any, deserializer: Any) -> None:
        super().__init__(channel, method, serializer, deserializer)
        self._call_start_method = _wirepb.CallStart(method).encode()  # CALL_START without deadline or metadata

    def __call__(self, request: Req, *, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> UnaryUnaryCall[Resp]:
        call: UnaryUnaryCall[Resp] = UnaryUnaryCall(self._channel, self._method, self._deserialize)
        payload, out = _fds.serialize(self._serialize, request)
        s = None if metadata or out is not None else self._start_now(payload, timeout)
        if s is not None:
            call._stream = s
        else:
            self._begin(call, timeout, metadata, payload, wait_for_ready, out)
        return call

    def _start_now(self, payload: bytes, timeout: Optional[float]) -> Optional[_Stream]:
        """Opens the stream and writes CALL_START + MESSAGE + HALF_CLOSE right here
        when the connection is ready and nothing is queued (no task, no lock);
        None if the general path (_begin) must run."""
        ch = self._channel
        conn = ch._conn
        if (conn is None or ch._closed or not conn.usable or conn.broken is not None or not conn._got_hello
                or len(payload) > ch._max_send or len(payload) > conn.peer_max_message or asyncio.get_running_loop() is not conn.loop):
            return None
        call_start = self._call_start_method
        deadline = None
        if timeout is not None:
            if timeout <= 0:
                return None
            deadline = conn.loop.time() + timeout
            call_start += _wirepb.timeout_field(max(1, int(timeout * 1e6)))
        data_len = len(call_start) + len(payload) + 3 * _frame.HEADER_SIZE
        if conn._write_lock.locked() or data_len > _WRITE_NOW_MAX:
            return None
        s = conn.open_stream(self._method, deadline)
        if s is None:
            return None
        s.send_window -= len(payload)
        conn.send_now(_frame.encode_unary(s.id, call_start, payload))
        return s


class UnaryStreamMultiCallable(_MultiCallable[Req, Resp]):
    def __call__(self, request: Req, *, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> UnaryStreamCall[Resp]:
        call: UnaryStreamCall[Resp] = UnaryStreamCall(self._channel, self._method, self._deserialize)
        payload, out = _fds.serialize(self._serialize, request)
        self._begin(call, timeout, metadata, payload, wait_for_ready, out)
        return call


class StreamUnaryMultiCallable(_MultiCallable[Req, Resp]):
    def __call__(self, request_iterator: Optional[Union[Iterable[Req], AsyncIterable[Req]]] = None, *, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> StreamUnaryCall[Req, Resp]:
        call: StreamUnaryCall[Req, Resp] = StreamUnaryCall(self._channel, self._method, self._deserialize)
        call._call, call._serialize = call, self._serialize
        self._begin(call, timeout, metadata, None, wait_for_ready)
        if request_iterator is not None:
            asyncio.get_running_loop().create_task(_pump(call, request_iterator, self._serialize))
        return call


class StreamStreamMultiCallable(_MultiCallable[Req, Resp]):
    def __call__(self, request_iterator: Optional[Union[Iterable[Req], AsyncIterable[Req]]] = None, *, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> StreamStreamCall[Req, Resp]:
        call: StreamStreamCall[Req, Resp] = StreamStreamCall(self._channel, self._method, self._deserialize)
        call._call, call._serialize = call, self._serialize
        self._begin(call, timeout, metadata, None, wait_for_ready)
        if request_iterator is not None:
            asyncio.get_running_loop().create_task(_pump(call, request_iterator, self._serialize))
        return call
