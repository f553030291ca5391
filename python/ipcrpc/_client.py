"""The synchronous client: channels, connections and calls (PROTOCOL.md §4-§9).

A :class:`Channel` owns at most one live connection at a time and opens a new
one when the old one broke, received GOAWAY or ran out of stream ids.  There
is no reader thread: a waiting caller that finds the reader role free reads
the connection and demultiplexes frames into per-call :class:`_ClientStream`
objects, then hands the role on; the others wait on their stream's condition
variable, always with the call's deadline.  A unary call that finds the
connection idle takes the single-caller path (``_Connection.unary_call``).
Channels, stubs and multi-callables may be used from any number of threads at once.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any, Callable, Deque, Dict, Generic, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

from . import _fds, _frame, _limits, _transport, _wirepb
from ._frame import FrameType, ProtocolError
from ._status import MetadataType, RpcError, StatusCode, WireMetadata, normalize_metadata, user_metadata

AGENT = "ipcrpc-python/0.1"
_MAX_STREAM_ID = 0xFFFFFFFF
_READ_CHUNK = 256 * 1024
# Larger requests take the general path: a caller holding the reader role
# must not block long in a write (another caller could not read meanwhile).
_SINGLE_CALLER_MAX = 128 * 1024
# A waiter re-checks whether the reader role is free at least this often
# (it is normally woken at once when the role is handed over).
_ROLE_POLL = 0.05

Req = TypeVar("Req")
Resp = TypeVar("Resp")
MetadataArg = Optional[Sequence[Tuple[str, Any]]]
Serializer = Optional[Callable[[Any], bytes]]
Deserializer = Optional[Callable[[bytes], Any]]


def _identity(x: Any) -> Any:
    return x


_COND_CREATION = threading.Lock()


class _ClientStream:
    """State of one call on a connection; guarded by ``lock``."""

    def __init__(self, conn: "_Connection", stream_id: int, method: str, deadline: Optional[float]) -> None:
        self.conn = conn
        self.id = stream_id
        self.method = method
        self.deadline = deadline
        self.lock = threading.Lock()  # guards this state; cond (made when first needed) waits on it
        self._cond: Optional[threading.Condition] = None
        self.sleepers = 0  # threads inside cond.wait(): nobody to notify while 0
        self.inbox: Deque[_fds.Incoming] = collections.deque()
        self.initial_metadata: Optional[MetadataType] = None
        self.send_window = conn.peer_window
        self.recv_window = conn.our_window  # what the server may still send
        self.unacked = 0  # bytes consumed since our last CREDIT
        self.done = False
        self.code = StatusCode.OK
        self.details = ""
        self.trailing_metadata: MetadataType = ()
        self.callbacks: List[Callable[[], None]] = []

    @property
    def cond(self) -> threading.Condition:
        """The condition variable on ``lock``, made on first use: most calls never wait."""
        c = self._cond
        if c is None:
            with _COND_CREATION:
                c = self._cond
                if c is None:
                    c = self._cond = threading.Condition(self.lock)
        return c

    # -- called by the reader thread (and by local failures) --

    def finish(self, code: StatusCode, details: str, trailing: MetadataType = ()) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
            self.code, self.details, self.trailing_metadata = code, details, trailing
            if self.initial_metadata is None:
                self.initial_metadata = ()
            if self.sleepers:
                self.cond.notify_all()
            callbacks, self.callbacks = self.callbacks, []
        self.conn.forget(self.id)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a callback must not break the reader
                pass

    def fail_locally(self, code: StatusCode, details: str) -> None:
        """Ends the call on this side and tells the server (CANCEL)."""
        with self.lock:
            if self.done:
                return
        self.finish(code, details)
        with self.lock:
            _fds.close_items(self.inbox)  # nobody takes the descriptors of a failed call
        self.conn.send_control(FrameType.CANCEL, self.id)

    # -- called by the calling thread --

    def _remaining(self) -> Optional[float]:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        """Waits (holding lock) until predicate() or the deadline; fails the call at the deadline.

        There is no reader thread: a waiting caller that finds the reader role
        free reads the connection itself (for every stream) until its own
        predicate holds, then hands the role to another waiter."""
        conn = self.conn
        while not predicate():
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                self.lock.release()
                try:
                    self.fail_locally(StatusCode.DEADLINE_EXCEEDED, f"deadline exceeded {what}")
                finally:
                    self.lock.acquire()
                continue
            try:
                if conn.take_reader_role():
                    self.lock.release()
                    try:
                        conn.read_until(self._locked_check(predicate), self.deadline, self)
                    finally:
                        conn.release_reader_role()
                        self.lock.acquire()
                    continue
                conn.add_waiter(self)
                self.sleepers += 1
                try:
                    self.cond.wait(_ROLE_POLL if remaining is None else min(remaining, _ROLE_POLL))
                finally:
                    self.sleepers -= 1
                    conn.remove_waiter(self)
            except BaseException:
                # KeyboardInterrupt and friends: abandon the call, then re-raise.
                self.lock.release()
                try:
                    self.fail_locally(StatusCode.CANCELLED, "interrupted")
                finally:
                    self.lock.acquire()
                raise

    def _locked_check(self, predicate: Callable[[], bool]) -> Callable[[], bool]:
        def check() -> bool:
            with self.lock:
                return predicate()

        return check

    def send_message(self, payload: bytes, half_close: bool = False, out: Optional[_fds.Outgoing] = None) -> None:
        limit = self.conn.peer_max_message
        if len(payload) > limit:
            self.fail_locally(StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(payload)} bytes exceeds the server's max_message_size of {limit} bytes")
            return
        refused = _fds.check_peer(out, self.conn.peer_max_fds, self.conn.target)
        if refused is not None:
            self.fail_locally(*refused)
            return
        with self.lock:
            self.wait(lambda: self.send_window > 0 or self.done, "while waiting to send")
            if self.done:
                return
            self.send_window -= len(payload)
        data = _frame.encode_frame(FrameType.MESSAGE, self.id, payload, fd_count=len(out.fds) if out else 0)
        if half_close:
            data += _frame.encode_frame(FrameType.HALF_CLOSE, self.id)
        self.conn.send(data, out.fds if out else ())

    def half_close(self) -> None:
        with self.lock:
            if self.done:
                return
        self.conn.send_control(FrameType.HALF_CLOSE, self.id)

    def next_message(self) -> Optional[_fds.Incoming]:
        """The next response payload (bytes, or an FdPayload), or None once the call ended (check ``code``)."""
        with self.lock:
            self.wait(lambda: bool(self.inbox) or self.done, "waiting for a response")
            if not self.inbox:
                return None
            payload = self.inbox.popleft()
            credit = 0
            if not self.done:
                self.unacked += _fds.wire_len(payload)
                if self.unacked >= self.conn.our_window // 2:
                    credit, self.unacked = self.unacked, 0
                    self.recv_window += credit
        if credit:
            self.conn.send(_frame.encode_frame(FrameType.CREDIT, self.id, _frame.encode_credit(credit)))
        return payload

    def wait_done(self) -> None:
        with self.lock:
            self.wait(lambda: self.done, "waiting for the call to finish")

    def wait_initial_metadata(self) -> MetadataType:
        with self.lock:
            self.wait(lambda: self.initial_metadata is not None or self.done, "waiting for initial metadata")
            return self.initial_metadata or ()

    def error(self) -> RpcError:
        return RpcError(self.code, self.details, self.trailing_metadata, self.initial_metadata or (), self.method)


class _Connection:
    """One connection to a server: a transport, its reader thread and its streams."""

    def __init__(self, transport: _transport.Transport, target: str, max_receive: int, window: int,
                 limits: _limits.MetadataLimits = _limits.MetadataLimits(), max_fds: int = _fds.MAX_FDS_PER_MESSAGE) -> None:
        self.transport = transport
        self.target = target
        self.our_max_message = max_receive
        self.our_window = window
        self.peer_max_message = _frame.DEFAULT_MAX_MESSAGE
        self.peer_window = _frame.DEFAULT_STREAM_WINDOW
        self.peer_max_streams = 0
        self.peer_max_fds = 0  # the server's max_fds_per_message (HELLO field 7)
        self.unread_fds = _fds.UnreadFds()  # in responses not read yet (at most MAX_UNREAD_FDS)
        self.our_max_fds = max_fds
        self._lock = threading.Lock()  # streams, next id, state
        self._write_lock = threading.Lock()
        self._streams: Dict[int, _ClientStream] = {}
        self._next_id = 1
        self._ready = threading.Event()
        self.usable = True  # false after GOAWAY, a failure, or the last stream id
        self._broken: Optional[str] = None
        self.limits = limits
        self._decoder = _frame.FrameDecoder(max_receive, limits.control_frame_limit, transport, max_fds)
        self._got_hello = False
        self._reader_role = threading.Lock()  # held by the caller that reads the connection
        self._waiters: List[_ClientStream] = []  # callers waiting while someone else reads
        self._broken_code = StatusCode.UNAVAILABLE
        try:
            transport.send(_frame.encode_frame(FrameType.HELLO, 0, _wirepb.Hello(1, max_receive, window, 0, AGENT, max_fds_per_message=max_fds).encode()))
        except ConnectionError as e:
            # A refusing server may have closed before our HELLO went out (§4): its GOAWAY comes first.
            refusal = _transport.read_refusal(transport, target)
            if refusal is not None:
                self.break_connection(refusal.details(), refusal.code())
            else:
                self.break_connection(f"connection to {target} lost: {e}")

    # -- writing --

    def send(self, data: bytes, fds: Sequence[int] = (), at: int = 0) -> None:
        """Writes ``data``; ``fds`` go with the frame that starts at offset ``at``."""
        try:
            with self._write_lock:
                self.transport.send_split(data, fds, at)
        except ConnectionError as e:
            self.break_connection(f"connection to {self.target} lost: {e}")

    def send_control(self, type_: FrameType, stream_id: int, payload: bytes = b"") -> None:
        if self._broken is None:
            self.send(_frame.encode_frame(type_, stream_id, payload))

    # -- streams --

    def wait_ready(self, deadline: Optional[float]) -> None:
        """Waits for the server's HELLO (reading it if nobody else is)."""
        give_up = time.monotonic() + 30.0 if deadline is None else deadline
        while not self._ready.is_set():
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                if deadline is not None:
                    raise RpcError(StatusCode.DEADLINE_EXCEEDED, f"deadline exceeded waiting for the server at {self.target} to answer HELLO")
                self.break_connection(f"the server at {self.target} did not answer HELLO within 30 s")
                break
            if self.take_reader_role():
                try:
                    self.read_until(self._ready.is_set, give_up)
                finally:
                    self.release_reader_role()
            else:
                self._ready.wait(min(remaining, _ROLE_POLL))
        if self._broken is not None:
            raise RpcError(self._broken_code, self._broken)

    # -- the reader role (leader/follower: no reader thread) --

    def take_reader_role(self) -> bool:
        return self._reader_role.acquire(blocking=False)

    def release_reader_role(self) -> None:
        self._reader_role.release()
        if not self._waiters:
            return
        with self._lock:
            nxt = self._waiters[0] if self._waiters else None
        if nxt is not None:  # hand the role on: wake one waiting caller
            with nxt.lock:
                nxt.cond.notify_all()

    def add_waiter(self, s: "_ClientStream") -> None:
        with self._lock:
            self._waiters.append(s)

    def remove_waiter(self, s: "_ClientStream") -> None:
        with self._lock:
            try:
                self._waiters.remove(s)
            except ValueError:
                pass

    def read_until(self, check: Callable[[], bool], deadline: Optional[float], mine: Optional[_ClientStream] = None) -> None:
        """Reads and dispatches frames until check() holds, the deadline passes or the
        connection breaks. Only the holder of the reader role calls this; ``mine``
        is the reader's own stream, whose plain MESSAGE and OK TRAILERS frames
        are taken without building Frame objects."""
        try:
            while not check() and self._broken is None:
                timeout = _ROLE_POLL
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout <= 0:
                        return
                data = self.transport.recv_within(_READ_CHUNK, timeout)
                if data is None:
                    continue
                if not data:
                    raise ConnectionError("the server closed the connection")
                if not self._dispatch(data, mine):
                    return
        except ProtocolError as e:
            self.break_connection(f"protocol error from {self.target}: {e}")
        except ConnectionError as e:
            self.break_connection(f"connection to {self.target} lost: {e}")
        except Exception as e:  # never leave callers waiting on a broken reader
            self.break_connection(f"connection to {self.target} failed: {type(e).__name__}: {e}")
        except BaseException:
            # KeyboardInterrupt mid-frame: the decoder state is no longer trustworthy.
            self.break_connection(f"connection to {self.target} abandoned: interrupted while reading")
            raise

    def _dispatch(self, data: bytes, mine: Optional[_ClientStream]) -> bool:
        """Decodes and handles the frames in data; False if a refusal ended the connection."""
        decoder = self._decoder
        if decoder.mid_frame or not self._got_hello or self.transport.has_pending_fds():
            for frame in decoder.feed(data):
                if not self._got_hello:
                    if _transport.is_refusal(frame):
                        refusal = _transport.refusal_error(frame, self.target)
                        self.break_connection(refusal.details(), refusal.code())
                        return False
                    self._on_hello(frame)
                    self._got_hello = True
                else:
                    self._on_frame(frame)
            return True
        # Whole frames at the front are split in one call; the decoder keeps the rest.
        frames, used = _frame.split_frames(data, decoder.max_payload, decoder.max_control)
        if any(f[3] for f in frames):  # descriptors: the decoder matches them to frames
            for frame in decoder.feed(data):
                self._on_frame(frame)
            return True
        decoder.advance(used)
        mine_id = -1 if mine is None else mine.id
        for type_, sid, flags, fd_count, payload in frames:
            if sid == mine_id and mine is not None:
                if type_ == FrameType.MESSAGE:
                    with mine.lock:
                        if mine.done:
                            continue
                        if mine.recv_window > 0:
                            mine.recv_window -= len(payload)
                            mine.inbox.append(payload)
                            if mine.initial_metadata is None:
                                mine.initial_metadata = ()
                            continue
                elif type_ == FrameType.TRAILERS and not payload and not fd_count:
                    mine.finish(StatusCode.OK, "")  # an empty TRAILERS: OK, no details, no metadata
                    continue
            self._on_frame(_frame.Frame(type_, sid, payload, flags, fd_count, False, len(payload)))
        if used < len(data):
            for frame in decoder.feed(data[used:]):
                self._on_frame(frame)
        return True

    def unary_call(self, method: str, call_start: bytes, payload: bytes, deadline: Optional[float]) -> Optional[_ClientStream]:
        """The single-caller path of a unary-unary call: when this thread can take
        the reader role and the request fits every limit, opens the stream, sends
        CALL_START + MESSAGE + HALF_CLOSE in one write and reads until the call
        ends (or its deadline passes), with no hand-off between threads. Returns
        the stream (maybe not done yet: wait on it as usual), or None if the
        general path must be taken instead (nothing was sent)."""
        if not self._reader_role.acquire(False):
            return None
        try:
            # Never wait for the write lock while holding the reader role: its holder
            # may be waiting for ring space that only our reading frees.
            if not self._write_lock.acquire(False):
                return None
            try:
                with self._lock:
                    if (not self.usable or self._broken is not None or not self._got_hello or len(payload) > self.peer_max_message
                            or (self.peer_max_streams and len(self._streams) >= self.peer_max_streams)):
                        return None
                    sid = self._next_id
                    self._next_id += 1
                    if sid >= _MAX_STREAM_ID:
                        self.usable = False
                    s = _ClientStream(self, sid, method, deadline)
                    self._streams[sid] = s
                s.send_window -= len(payload)
                try:
                    self.transport.send(_frame.encode_unary(sid, call_start, payload))
                    lost = None
                except ConnectionError as e:
                    lost = f"connection to {self.target} lost: {e}"
            finally:
                self._write_lock.release()
            if lost is not None:
                self.break_connection(lost)
                return s
            self.read_until(lambda: s.done, deadline, s)
            return s
        finally:
            self.release_reader_role()

    def read_for(self, seconds: float) -> None:
        """Reads whatever arrives for ``seconds`` without consuming messages (tests)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.take_reader_role():
                try:
                    self.read_until(lambda: False, end)
                finally:
                    self.release_reader_role()
            else:
                time.sleep(0.01)

    def open_stream(self, method: str, deadline: Optional[float], first_bytes: Callable[[_ClientStream], Any]) -> Optional[_ClientStream]:
        """A new stream whose first frames (``first_bytes(stream)``: bytes, or
        (bytes, fds, offset of the frame the fds go with)) are sent at once, or
        None if this connection cannot take one (open another).

        Ids are allocated and sent under the write lock: the server requires
        CALL_START ids to increase in the order it reads them."""
        with self._write_lock:
            with self._lock:
                if not self.usable or self._broken is not None:
                    return None
                if self.peer_max_streams and len(self._streams) >= self.peer_max_streams:
                    raise RpcError(StatusCode.RESOURCE_EXHAUSTED, f"server's max_concurrent_streams ({self.peer_max_streams}) reached", method=method)
                sid = self._next_id
                self._next_id += 1
                if sid >= _MAX_STREAM_ID:
                    self.usable = False
                s = _ClientStream(self, sid, method, deadline)
                self._streams[sid] = s
            first = first_bytes(s)
            data, fds, at = first if isinstance(first, tuple) else (first, (), 0)
            try:
                if data:
                    self.transport.send_split(data, fds, at)
                return s
            except ConnectionError as e:
                reason = f"connection to {self.target} lost: {e}"
        self.break_connection(reason)
        return s

    def forget(self, stream_id: int) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)

    def break_connection(self, reason: str, code: StatusCode = StatusCode.UNAVAILABLE) -> None:
        with self._lock:
            if self._broken is not None:
                return
            self._broken = reason
            self._broken_code = code
            self.usable = False
            streams = list(self._streams.values())
            self._streams.clear()
        self._ready.set()
        self.transport.shutdown()
        for s in streams:
            s.finish(code, reason)

    @property
    def broken(self) -> bool:
        return self._broken is not None

    def close(self) -> None:
        self.break_connection(f"channel to {self.target} closed")
        # A caller reading right now sees the shutdown within one poll slice.
        if self._reader_role.acquire(timeout=5):
            self._reader_role.release()
        self.transport.close()

    def _on_hello(self, frame: _frame.Frame) -> None:
        if frame.type != FrameType.HELLO or frame.stream_id != 0 or frame.oversized:
            raise ProtocolError(f"expected HELLO as the server's first frame, got type {frame.type}")
        hello = _wirepb.Hello.decode(frame.payload)
        if hello.protocol_version != 1:
            raise ProtocolError(f"server speaks protocol version {hello.protocol_version}, not 1")
        self.peer_max_message = hello.max_message_size or _frame.DEFAULT_MAX_MESSAGE
        self.peer_window = hello.initial_stream_window or _frame.DEFAULT_STREAM_WINDOW
        self.peer_max_streams = hello.max_concurrent_streams
        self.peer_max_fds = min(hello.max_fds_per_message, _fds.MAX_FDS_PER_MESSAGE)
        self._ready.set()

    def _on_frame(self, frame: _frame.Frame) -> None:
        t = frame.type
        if t == FrameType.PING:
            if frame.stream_id != 0 or len(frame.payload) != 8:
                raise ProtocolError(f"PING on stream {frame.stream_id} with {frame.length} payload bytes (must be stream 0, 8 bytes)")
            if not frame.flags & _frame.FLAG_PING_ACK:
                self.send(_frame.encode_frame(FrameType.PING, 0, frame.payload, _frame.FLAG_PING_ACK))
            return
        if t == FrameType.GOAWAY:
            goaway = _wirepb.GoAway.decode(frame.payload) if not frame.oversized else _wirepb.GoAway()
            with self._lock:
                self.usable = False
                refused = [s for sid, s in self._streams.items() if sid > goaway.last_stream_id]
            for s in refused:
                s.finish(StatusCode.UNAVAILABLE, f"server is shutting down: {goaway.reason}")
            return
        if t in (FrameType.HELLO, FrameType.CALL_START, FrameType.CANCEL):
            raise ProtocolError(f"server sent frame type {t} ({FrameType(t).name}), which only clients send")
        with self._lock:
            found = self._streams.get(frame.stream_id)
        if found is None:
            return  # a stream we already finished locally
        s = found
        if t == FrameType.MESSAGE:
            if frame.oversized:
                s.fail_locally(StatusCode.RESOURCE_EXHAUSTED, f"response message of {frame.length} bytes exceeds this client's max_receive_message_size of {self.our_max_message} bytes")
                return
            item, error = incoming_message(frame, "client", self.unread_fds)
            if error is not None:
                s.fail_locally(*error)
                return
            with s.lock:
                violation = s.recv_window <= 0 or s.done
                if not violation:
                    s.recv_window -= frame.length
                    s.inbox.append(item)
                if s.initial_metadata is None:
                    s.initial_metadata = ()
                if s.sleepers:
                    s.cond.notify_all()
            if violation and not s.done:
                s.fail_locally(StatusCode.RESOURCE_EXHAUSTED, f"protocol violation: the server sent a MESSAGE while the stream's flow-control window ({self.our_window} bytes) was used up")
        elif t == FrameType.HEADERS:
            md, error = decode_headers(frame, self.limits)
            if error is not None:
                s.fail_locally(*error)
                return
            with s.lock:
                s.initial_metadata = md
                if s.sleepers:
                    s.cond.notify_all()
        elif t == FrameType.TRAILERS:
            s.finish(*decode_trailers(frame, self.limits))
        elif t == FrameType.CREDIT:
            credit = _frame.decode_credit(frame.payload)
            with s.lock:
                s.send_window += credit
                if s.sleepers:
                    s.cond.notify_all()
        # other types (unknown, or client-only ones we tolerate) are skipped


def incoming_message(frame: _frame.Frame, side: str, unread: _fds.UnreadFds) -> Tuple[_fds.Incoming, Optional[Tuple[StatusCode, str]]]:
    """What a received MESSAGE puts in its stream's inbox (the payload, or an
    FdPayload owning the descriptors that came with it), or why its stream fails
    (PROTOCOL.md §10; the descriptors are then closed). ``unread`` counts the
    connection's descriptors in messages not read yet: past MAX_UNREAD_FDS the
    stream fails RESOURCE_EXHAUSTED."""
    if frame.fds_lost:
        return None, (StatusCode.RESOURCE_EXHAUSTED, f"a message's {frame.fd_count} file descriptors could not be received by the {side}: out of descriptors")
    batch = frame.fds
    if batch is None:
        return frame.payload, None
    frame.fds = None
    if frame.flags & _fds.COMPRESSION_MASK:
        batch.close()
        return None, (StatusCode.INTERNAL, "a MESSAGE with file descriptors was compressed")
    item = _fds.split_payload(frame.payload, batch)
    if item is None:
        return None, (StatusCode.INTERNAL, f"a MESSAGE's descriptor table ({frame.fd_count} entries) does not fit its {frame.length}-byte payload")
    held = batch.count_in(unread)
    if held > _fds.MAX_UNREAD_FDS:
        batch.close()
        return None, (StatusCode.RESOURCE_EXHAUSTED, f"the connection's unread messages already hold {held - frame.fd_count} file descriptors; at most {_fds.MAX_UNREAD_FDS} are kept")
    return item, None


def decode_headers(frame: _frame.Frame, limits: _limits.MetadataLimits) -> Tuple[MetadataType, Optional[Tuple[StatusCode, str]]]:
    """A HEADERS frame's metadata (as users get it), or why the call fails (the client then cancels it)."""
    if frame.oversized:
        return (), (StatusCode.RESOURCE_EXHAUSTED, limits.oversized(frame, "client"))
    try:
        md = _wirepb.Headers.decode(frame.payload).metadata
    except ProtocolError:
        return (), (StatusCode.INTERNAL, "malformed HEADERS frame from the server")
    err = limits.check(md, "the server's initial metadata")
    return (user_metadata(md), None) if err is None else ((), (StatusCode.RESOURCE_EXHAUSTED, err))


def decode_trailers(frame: _frame.Frame, limits: _limits.MetadataLimits) -> Tuple[StatusCode, str, MetadataType]:
    """How a TRAILERS frame ends its call: code, details, trailing metadata (as users get it)."""
    if frame.oversized:
        return StatusCode.RESOURCE_EXHAUSTED, limits.oversized(frame, "client"), ()
    try:
        tr = _wirepb.Trailers.decode(frame.payload)
    except ProtocolError:
        return StatusCode.INTERNAL, "malformed TRAILERS frame from the server", ()
    err = limits.check(tr.metadata, "the server's trailing metadata")
    if err:
        return StatusCode.RESOURCE_EXHAUSTED, err, ()
    code = StatusCode.from_number(tr.code)
    details = tr.message
    if code is StatusCode.UNKNOWN and tr.code != 2:
        details = f"server sent unknown status code {tr.code}: {tr.message}"
    return code, details, user_metadata(tr.metadata)


class Channel:
    """A channel to one server address.  Thread-safe; close() (or ``with``) when done.

    ``address`` is ``TRANSPORT:SOCKET`` as in C++ (``unix:/run/app.sock``,
    ``auto:@name``); ``IPCRPC_TRANSPORT`` in the environment overrides the
    transport.  Connecting is lazy: the first call connects.
    """

    def __init__(
        self,
        address: str,
        *,
        transport: Optional[str] = None,
        max_send_message_bytes: int = _frame.DEFAULT_MAX_MESSAGE,
        max_receive_message_bytes: int = _frame.DEFAULT_MAX_MESSAGE,
        stream_window_bytes: int = _frame.DEFAULT_STREAM_WINDOW,
        connect_timeout: float = 5.0,
        ring_bytes: int = 0,
        max_metadata_bytes: Optional[int] = None,
        max_metadata_entries: Optional[int] = None,
        max_fds_per_message: int = _fds.MAX_FDS_PER_MESSAGE,
    ) -> None:
        from . import _config

        plan = _config.plan_channel(address)
        if not 0 <= max_fds_per_message <= _fds.MAX_FDS_PER_MESSAGE:
            raise ValueError(f"max_fds_per_message must be 0..{_fds.MAX_FDS_PER_MESSAGE}")
        if plan.max_fds is not None:  # the config file's entry decides, as in C++
            max_fds_per_message = min(plan.max_fds, _fds.MAX_FDS_PER_MESSAGE)
        self._max_fds = max_fds_per_message
        self._address = _transport.parse_address(plan.address)
        # IPCRPC_TRANSPORT, then the config entry, then the `transport` argument, then the address.
        self._transport_name = _transport.check_transport_name(plan.transport or transport or self._address.transport)
        self._max_send = plan.max_send or max_send_message_bytes
        self._max_receive = plan.max_receive or max_receive_message_bytes
        self._window = stream_window_bytes
        self._connect_timeout = connect_timeout
        self._ring_bytes = ring_bytes or plan.ring_bytes
        self._max_spin = plan.max_spin
        self._limits = _limits.MetadataLimits.of(max_metadata_bytes, max_metadata_entries, plan)
        self._lock = threading.Lock()
        self._conn: Optional[_Connection] = None
        self._old: List[_Connection] = []
        self._closed = False

    @property
    def target(self) -> str:
        return f"{self._transport_name}:{self._address.display.split(':', 1)[1]}"

    def transport_name(self) -> Optional[str]:
        """The transport the current connection uses (None before the first call)."""
        with self._lock:
            return self._conn.transport.name if self._conn is not None else None

    def _connection(self, deadline: Optional[float]) -> _Connection:
        with self._lock:
            if self._closed:
                raise RpcError(StatusCode.CANCELLED, "the channel is closed")
            conn = self._conn
            if conn is not None and (conn.broken or not conn.usable):
                self._old.append(conn)
                self._old = [c for c in self._old if not c.broken]
                conn = self._conn = None
            if conn is None:
                timeout = self._connect_timeout
                if deadline is not None:
                    timeout = min(timeout, max(deadline - time.monotonic(), 0.001))
                t = _transport.connect(self._address, self._transport_name, timeout, self._ring_bytes, self._max_spin)
                conn = self._conn = _Connection(t, self.target, self._max_receive, self._window, self._limits, self._max_fds)
        return conn

    def _start(self, method: str, timeout: Optional[float], first_bytes: Callable[[_ClientStream], bytes], wait_for_ready: bool = False) -> _ClientStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        if deadline is not None and timeout is not None and timeout <= 0:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline had passed before the call started", method=method)
        backoff = _transport.Backoff()
        attempts = 0
        while attempts < 3:
            try:
                conn = self._connection(deadline)
                conn.wait_ready(deadline)
            except RpcError as e:
                e._method = method
                if not wait_for_ready or e.code() is not StatusCode.UNAVAILABLE:
                    raise
                # wait_for_ready: the server is not there (yet); try again until the deadline.
                pause = backoff.next_pause(deadline, time.monotonic())
                if pause is None:
                    raise _transport.not_ready_error(self.target, e, method) from None
                time.sleep(pause)
                continue
            stream = conn.open_stream(method, deadline, first_bytes)
            if stream is not None:
                return stream
            attempts += 1
        raise RpcError(StatusCode.UNAVAILABLE, f"could not open a stream to {self.target}", method=method)

    def _call_start_frame(self, stream: _ClientStream, md: WireMetadata) -> bytes:
        timeout_us = 0
        if stream.deadline is not None:
            timeout_us = max(1, int((stream.deadline - time.monotonic()) * 1e6))
        return _frame.encode_frame(FrameType.CALL_START, stream.id, _wirepb.CallStart(stream.method, timeout_us, md).encode())

    def _check_send_size(self, stream: _ClientStream, payload: bytes) -> bool:
        if len(payload) > self._max_send:
            stream.fail_locally(StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(payload)} bytes exceeds this channel's max_send_message_bytes of {self._max_send} bytes")
            return False
        return True

    # -- grpcio-shaped factories --

    def unary_unary(self, method: str, request_serializer: Serializer = None, response_deserializer: Deserializer = None) -> "UnaryUnaryMultiCallable":
        return UnaryUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def unary_stream(self, method: str, request_serializer: Serializer = None, response_deserializer: Deserializer = None) -> "UnaryStreamMultiCallable":
        return UnaryStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_unary(self, method: str, request_serializer: Serializer = None, response_deserializer: Deserializer = None) -> "StreamUnaryMultiCallable":
        return StreamUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_stream(self, method: str, request_serializer: Serializer = None, response_deserializer: Deserializer = None) -> "StreamStreamMultiCallable":
        return StreamStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def close(self) -> None:
        """Ends every call in flight (UNAVAILABLE) and closes the connection."""
        with self._lock:
            self._closed = True
            conns = ([self._conn] if self._conn else []) + self._old
            self._conn = None
            self._old = []
        for c in conns:
            c.close()

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def channel(address: str, **kwargs: Any) -> Channel:
    """Creates a :class:`Channel` (see its keyword arguments)."""
    return Channel(address, **kwargs)


# -- calls ---------------------------------------------------------------------


class Call:
    """The outcome of a finished or running call (grpcio's ``grpc.Call``)."""

    def __init__(self, stream: _ClientStream, deserializer: Callable[[bytes], Any]) -> None:
        self._stream = stream
        self._deserialize = deserializer

    def code(self) -> Optional[StatusCode]:
        """The status code; waits for the call to end."""
        self._stream.wait_done() if not self._stream.done else None
        return self._stream.code

    def details(self) -> str:
        if not self._stream.done:
            self._stream.wait_done()
        return self._stream.details

    def initial_metadata(self) -> MetadataType:
        return self._stream.wait_initial_metadata()

    def trailing_metadata(self) -> MetadataType:
        if not self._stream.done:
            self._stream.wait_done()
        return self._stream.trailing_metadata

    def is_active(self) -> bool:
        return not self._stream.done

    def time_remaining(self) -> Optional[float]:
        r = self._stream._remaining()
        return None if r is None else max(r, 0.0)

    def cancel(self) -> bool:
        """Abandons the call: sends CANCEL; waiting readers raise RpcError(CANCELLED)."""
        if self._stream.done:
            return False
        self._stream.fail_locally(StatusCode.CANCELLED, "cancelled by the client")
        return True

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._stream.lock:
            if self._stream.done:
                return False
            self._stream.callbacks.append(callback)
            return True

    def _unary_response(self) -> Any:
        """Waits for the end of the call (one wait: the single response and the
        TRAILERS normally arrive in one read) and returns the response."""
        s = self._stream
        if not s.done:
            with s.lock:
                s.wait(lambda: s.done, "waiting for the response")
        if s.code is not StatusCode.OK:
            raise s.error()
        if len(s.inbox) != 1:
            what = "without a response" if not s.inbox else f"with {len(s.inbox)} responses"
            raise RpcError(StatusCode.INTERNAL, f"the server ended a unary-response call OK {what}", s.trailing_metadata, s.initial_metadata or (), s.method)
        try:
            return _fds.deserialize(self._deserialize, s.inbox[0])
        except Exception as e:
            raise RpcError(StatusCode.INTERNAL, f"cannot parse the response: {e}", s.trailing_metadata, s.initial_metadata or (), s.method) from None


class _StreamingCall(Call, Generic[Resp]):
    """Iterator over responses that is also the call (grpcio-style)."""

    def __iter__(self) -> "_StreamingCall[Resp]":
        return self

    def __next__(self) -> Resp:
        s = self._stream
        payload = s.next_message()
        if payload is None:
            if s.code is StatusCode.OK:
                raise StopIteration
            raise s.error()
        try:
            return _fds.deserialize(self._deserialize, payload)  # type: ignore[no-any-return]
        except Exception as e:
            s.fail_locally(StatusCode.INTERNAL, f"cannot parse a response: {e}")
            raise s.error() from None

    def read(self) -> Resp:
        return self.__next__()


def _send_requests(channel: Channel, stream: _ClientStream, requests: Iterable[Any], serialize: Callable[[Any], bytes]) -> None:
    """Feeds a request iterator into the stream (on its own thread), then HALF_CLOSE."""
    try:
        for req in requests:
            if stream.done:
                return
            try:
                payload, out = _fds.serialize(serialize, req)
            except RpcError as e:
                stream.fail_locally(e.code(), e.details())
                return
            if not channel._check_send_size(stream, payload):
                return
            stream.send_message(payload, out=out)
        stream.half_close()
    except RpcError:
        pass
    except Exception as e:
        stream.fail_locally(StatusCode.UNKNOWN, f"the request iterator raised {type(e).__name__}: {e}")


class _MultiCallable(Generic[Req, Resp]):
    def __init__(self, channel: Channel, method: str, serializer: Serializer, deserializer: Deserializer) -> None:
        self._channel = channel
        self._method = method
        self._serialize: Callable[[Any], bytes] = serializer or _identity
        self._deserialize: Callable[[bytes], Any] = deserializer or _identity

    def _metadata(self, metadata: MetadataArg) -> WireMetadata:
        md = normalize_metadata(metadata)
        err = self._channel._limits.check(md, "request metadata")
        if err:  # PROTOCOL.md §5 "Limits": failed before anything is sent
            raise RpcError(StatusCode.RESOURCE_EXHAUSTED, err, method=self._method)
        return md

    def _begin_unary_request(self, request: Any, timeout: Optional[float], metadata: MetadataArg, wait_for_ready: Optional[bool] = None) -> _ClientStream:
        md = self._metadata(metadata)
        try:
            payload, out = _fds.serialize(self._serialize, request)
        except RpcError as e:
            e._method = self._method
            raise
        return self._begin_unary_payload(payload, timeout, md, wait_for_ready, out)

    def _begin_unary_payload(self, payload: bytes, timeout: Optional[float], md: WireMetadata, wait_for_ready: Optional[bool] = None,
                             out: Optional[_fds.Outgoing] = None) -> _ClientStream:
        ch = self._channel
        if len(payload) > ch._max_send:
            raise RpcError(StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(payload)} bytes exceeds this channel's max_send_message_bytes of {ch._max_send} bytes", method=self._method)
        refused: List[Tuple[StatusCode, str]] = []

        def first_bytes(stream: _ClientStream) -> Any:
            if len(payload) > stream.conn.peer_max_message:
                refused.append((StatusCode.RESOURCE_EXHAUSTED, f"request message of {len(payload)} bytes exceeds the server's max_message_size of {stream.conn.peer_max_message} bytes"))
                return b""  # nothing is sent (stream ids may have gaps)
            why = _fds.check_peer(out, stream.conn.peer_max_fds, stream.conn.target)
            if why is not None:
                refused.append(why)
                return b""
            start = ch._call_start_frame(stream, md)
            stream.send_window -= len(payload)
            message = _frame.encode_frame(FrameType.MESSAGE, stream.id, payload, fd_count=len(out.fds) if out else 0) + _frame.encode_frame(FrameType.HALF_CLOSE, stream.id)
            if out is None:
                return start + message
            return start + message, out.fds, len(start)

        stream = ch._start(self._method, timeout, first_bytes, bool(wait_for_ready))
        if refused:
            stream.finish(*refused[0])
            raise stream.error()
        return stream

    def _begin_stream_request(self, requests: Iterable[Any], timeout: Optional[float], metadata: MetadataArg, wait_for_ready: Optional[bool] = None) -> _ClientStream:
        md = self._metadata(metadata)
        ch = self._channel
        stream = ch._start(self._method, timeout, lambda s: ch._call_start_frame(s, md), bool(wait_for_ready))
        threading.Thread(target=_send_requests, args=(ch, stream, requests, self._serialize), name=f"ipcrpc-requests {self._method}", daemon=True).start()
        return stream


class CallFuture(Call, Generic[Resp]):
    """A unary-response call running in the background (grpcio's ``.future()``):
    ``result(timeout)``, ``exception()``, ``done()``, ``cancel()``, ``add_done_callback(fn)``.

    One helper thread per future waits for the response (the sync client has
    no reader thread of its own)."""

    def __init__(self, stream: _ClientStream, deserializer: Callable[[bytes], Any]) -> None:
        super().__init__(stream, deserializer)
        self._finished = threading.Event()
        self._result: Any = None
        self._error: Optional[RpcError] = None
        self._done_callbacks: List[Callable[["CallFuture[Resp]"], None]] = []
        self._cb_lock = threading.Lock()
        threading.Thread(target=self._run, name=f"ipcrpc-future {stream.method}", daemon=True).start()

    def _run(self) -> None:
        try:
            self._result = self._unary_response()
        except RpcError as e:
            self._error = e
        except Exception as e:  # pragma: no cover - defensive
            self._error = RpcError(StatusCode.UNKNOWN, f"{type(e).__name__}: {e}")
        with self._cb_lock:
            self._finished.set()
            callbacks, self._done_callbacks = self._done_callbacks, []
        for cb in callbacks:
            cb(self)

    def done(self) -> bool:
        return self._finished.is_set()

    def running(self) -> bool:
        return not self._finished.is_set()

    def cancelled(self) -> bool:
        return self._finished.is_set() and self._error is not None and self._error.code() is StatusCode.CANCELLED

    def result(self, timeout: Optional[float] = None) -> Resp:
        """The response; raises RpcError if the call failed, TimeoutError if ``timeout`` passed first."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"{self._stream.method} did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[no-any-return]

    def exception(self, timeout: Optional[float] = None) -> Optional[RpcError]:
        if not self._finished.wait(timeout):
            raise TimeoutError(f"{self._stream.method} did not finish within {timeout} s")
        return self._error

    def add_done_callback(self, fn: Callable[["CallFuture[Resp]"], None]) -> None:  # type: ignore[override]
        with self._cb_lock:
            if not self._finished.is_set():
                self._done_callbacks.append(fn)
                return
        fn(self)


class UnaryUnaryMultiCallable(_MultiCallable[Req, Resp]):
    def __init__(self, channel: Channel, method: str, serializer: Serializer, deserializer: Deserializer) -> None:
        super().__init__(channel, method, serializer, deserializer)
        self._call_start_method = _wirepb.CallStart(method).encode()  # CALL_START without deadline or metadata

    def __call__(self, request: Req, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> Resp:
        return self.with_call(request, timeout, metadata, wait_for_ready)[0]

    def with_call(self, request: Req, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> Tuple[Resp, Call]:
        if metadata:
            stream = self._begin_unary_request(request, timeout, metadata, wait_for_ready)
        else:
            try:
                payload, out = _fds.serialize(self._serialize, request)
            except RpcError as e:
                e._method = self._method
                raise
            stream = (out is None and self._single_caller(payload, timeout)) or self._begin_unary_payload(payload, timeout, (), wait_for_ready, out)
        call = Call(stream, self._deserialize)
        return call._unary_response(), call

    def _single_caller(self, payload: bytes, timeout: Optional[float]) -> Optional[_ClientStream]:
        """The call on the connection's single-caller path (_Connection.unary_call),
        or None when the general path must run (no ready connection, another call
        reading, a limit to report, a deadline already passed)."""
        ch = self._channel
        conn = ch._conn
        if conn is None or ch._closed or len(payload) > _SINGLE_CALLER_MAX or len(payload) > ch._max_send:
            return None
        call_start = self._call_start_method
        deadline = None
        if timeout is not None:
            if timeout <= 0:
                return None
            deadline = time.monotonic() + timeout
            call_start += _wirepb.timeout_field(max(1, int(timeout * 1e6)))
        return conn.unary_call(self._method, call_start, payload, deadline)

    def future(self, request: Req, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> CallFuture[Resp]:
        """Starts the call and returns at once; ``.cancel()`` abandons it from any thread."""
        return CallFuture(self._begin_unary_request(request, timeout, metadata, wait_for_ready), self._deserialize)


class UnaryStreamMultiCallable(_MultiCallable[Req, Resp]):
    def __call__(self, request: Req, timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> _StreamingCall[Resp]:
        return _StreamingCall(self._begin_unary_request(request, timeout, metadata, wait_for_ready), self._deserialize)


class StreamUnaryMultiCallable(_MultiCallable[Req, Resp]):
    def __call__(self, request_iterator: Iterable[Req], timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> Resp:
        return self.with_call(request_iterator, timeout, metadata, wait_for_ready)[0]

    def with_call(self, request_iterator: Iterable[Req], timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> Tuple[Resp, Call]:
        call = Call(self._begin_stream_request(request_iterator, timeout, metadata, wait_for_ready), self._deserialize)
        return call._unary_response(), call

    def future(self, request_iterator: Iterable[Req], timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> CallFuture[Resp]:
        return CallFuture(self._begin_stream_request(request_iterator, timeout, metadata, wait_for_ready), self._deserialize)


class StreamStreamMultiCallable(_MultiCallable[Req, Resp]):
    def __call__(self, request_iterator: Iterable[Req], timeout: Optional[float] = None, metadata: MetadataArg = None, wait_for_ready: Optional[bool] = None) -> _StreamingCall[Resp]:
        return _StreamingCall(self._begin_stream_request(request_iterator, timeout, metadata, wait_for_ready), self._deserialize)
