"""The "msgq" transport: the byte stream as fragments in two SysV message
queues (docs/transports/msgq.md); the unix socket stays open, silent, as the
liveness channel.

Pure Python: msgget/msgsnd/msgrcv/msgctl(IPC_RMID) through ctypes (the data
path is kernel ABI: `long mtype` + bytes). The client's checks of an offered
queue read /proc/sysvipc/msg instead of msgctl(IPC_STAT), so no C library's
`struct msqid_ds` layout is assumed.

Waiting: a blocking msgrcv has no timeout, so a watcher thread per transport
ends it with an empty type-2 "wake" message at the reader's deadline, and
removes the send queue when the peer dies (which ends a blocked msgsnd with
EIDRM). Data (type 1) is always taken before a wake (msgtyp = -2).

:meth:`MsgqTransport.recv_nowait` never blocks (an asyncio loop thread reads
the queue with it, after a bounded spin, before it lets a thread block in
``recv``); it uses ``ipcrpc._native.msgq_recv`` when the extension is built,
ctypes otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import struct
import threading
import time
from typing import Dict, List, Optional, Tuple

from . import _pending, _wirepb
from ._control import ControlSocket
from ._transport import Transport

try:
    from . import _native
except ImportError:  # built without the C extension: ctypes does it
    _native = None  # type: ignore[assignment]

IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_NOWAIT = 0o4000
IPC_RMID = 0
DATA, WAKE = 1, 2
_LONG = struct.Struct("l")
_HUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)
_TICK = 0.05  # the watcher looks at armed deadlines at least this often

_libc: Optional[ctypes.CDLL] = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.msgget.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        lib.msgrcv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long, ctypes.c_int]
        lib.msgrcv.restype = ctypes.c_ssize_t
        lib.msgctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        _libc = lib
    return _libc


def available() -> bool:
    try:
        _c()
        return os.path.exists("/proc/sysvipc/msg")
    except (OSError, AttributeError):
        return False


def _sysctl(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/kernel/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def msgmax() -> int:
    return _sysctl("msgmax", 8192)


def _queue_info() -> Dict[int, Dict[str, int]]:
    """/proc/sysvipc/msg by msqid: key, perms (octal digits), uid, cuid, qnum, cbytes."""
    with open("/proc/sysvipc/msg") as f:
        lines = f.read().splitlines()
    names = lines[0].split()
    out = {}
    for line in lines[1:]:
        v = line.split()
        if len(v) != len(names):
            continue
        row = dict(zip(names, v))
        out[int(row["msqid"])] = {
            "key": int(row["key"]), "perms": int(row["perms"], 8), "uid": int(row["uid"]), "cuid": int(row["cuid"]),
            "qnum": int(row["qnum"]), "cbytes": int(row["cbytes"]),
        }
    return out


def _remove(qid: int) -> None:
    _c().msgctl(qid, IPC_RMID, None)  # EINVAL/EIDRM from a second remover are fine


class AdaptiveSpin:
    """The spin budget of one waiting reader, with the rules of the shm ring's
    (docs/transports/shm.md "Spinning", _native.c ``Spin``): starts at ``max``;
    a spin that sees data restores it; one that runs out halves it, a second
    turns spinning off; while off every ``probe_every``-th wait (16, doubling
    to 1024 while probes fail) spins once at the full budget."""

    __slots__ = ("max", "budget", "failures", "waits", "probe_every")

    def __init__(self, max_spin: float) -> None:
        self.max = max(0.0, max_spin)
        self.budget = self.max
        self.failures = 0
        self.waits = 0
        self.probe_every = 16

    def next(self) -> float:
        if self.budget > 0 or self.max <= 0:
            return self.budget
        self.waits += 1
        return self.max if self.waits % self.probe_every == 0 else 0.0

    def result(self, success: bool) -> None:
        if success:
            self.budget, self.failures, self.probe_every = self.max, 0, 16
        elif self.budget > 0:
            self.failures += 1
            self.budget = 0.0 if self.failures >= 2 else self.budget / 2
        elif self.probe_every < 1024:
            self.probe_every *= 2


class MsgqTransport(Transport):
    name = "msgq"

    def __init__(self, recv_q: int, send_q: int, fragment: int, control: socket.socket) -> None:
        self._rq = recv_q
        self._sq = send_q
        self._frag = fragment
        self._control = control
        self.control: ControlSocket = ControlSocket(control)  # liveness, and fd records (PROTOCOL.md §10)
        self._rbuf = ctypes.create_string_buffer(_LONG.size + fragment)
        self._sbuf = ctypes.create_string_buffer(_LONG.size + fragment)
        self._pending = b""  # the rest of a fragment larger than the caller's read
        self._shutdown = False
        self._peer_gone = False
        self._closed = False
        self._lock = threading.Lock()
        self._read_deadline: Optional[float] = None
        self._wake_queued = False
        self._rq_removed = False
        self._sq_removed = False
        self._watcher = threading.Thread(target=self._watch, name="ipcrpc-msgq-watcher", daemon=True)

    def start(self) -> None:
        self._watcher.start()

    # -- the watcher --

    def _send_wake(self) -> None:
        _LONG.pack_into(self._wbuf, 0, WAKE)
        _c().msgsnd(self._rq, self._wbuf, 0, IPC_NOWAIT)

    _wbuf = ctypes.create_string_buffer(_LONG.size)

    def _watch(self) -> None:
        poller = select.poll()
        cfd = self._control.fileno()
        mask = self.control.poll_events()
        poller.register(cfd, mask)
        while not self._closed:
            if self.control.poll_events() != mask:
                mask = self.control.poll_events()
                poller.modify(cfd, mask)
            events = poller.poll(int(_TICK * 1000) if mask & select.POLLIN else 10)
            if events and not self._shutdown and not self.control.events(events[0][1]):
                events = []  # an fd record waits for its frame: not a loss
            if events and not self._shutdown:
                with self._lock:
                    self._peer_gone = True
                    self._remove_send()
                    q = _queue_info().get(self._rq)
                    if q is None or q["qnum"] == 0:
                        self._remove_recv()  # ends a blocked msgrcv with EIDRM
                    elif not self._wake_queued:
                        self._wake_queued = True
                        self._send_wake()
                return
            if events:
                return
            with self._lock:
                d = self._read_deadline
                if d is not None and time.monotonic() >= d and not self._wake_queued:
                    self._wake_queued = True
                    self._send_wake()

    def _remove_send(self) -> None:
        if not self._sq_removed:
            self._sq_removed = True
            _remove(self._sq)

    def _remove_recv(self) -> None:
        if not self._rq_removed:
            self._rq_removed = True
            _remove(self._rq)

    # -- Transport --

    def send(self, data: bytes) -> None:
        c = _c()
        view = memoryview(data)
        while view:
            if self._shutdown or self._peer_gone:
                raise ConnectionError("msgq: the connection is closed")
            n = min(len(view), self._frag)
            _LONG.pack_into(self._sbuf, 0, DATA)
            ctypes.memmove(ctypes.addressof(self._sbuf) + _LONG.size, bytes(view[:n]), n)
            if c.msgsnd(self._sq, self._sbuf, n, IPC_NOWAIT) == 0:
                view = view[n:]
                continue
            err = ctypes.get_errno()
            if err == errno.EAGAIN:  # the queue is full: block until the reader frees room
                if c.msgsnd(self._sq, self._sbuf, n, 0) == 0:
                    view = view[n:]
                    continue
                err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            raise ConnectionError(f"msgq: the peer closed the connection ({os.strerror(err)})")

    def recv(self, max_bytes: int) -> bytes:
        data = self.recv_within(max_bytes, None)
        assert data is not None
        return data

    def recv_within(self, max_bytes: int, timeout: Optional[float]) -> Optional[bytes]:  # type: ignore[override]
        if self._pending:
            out, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return out
        c = _c()
        give_up = None if timeout is None else time.monotonic() + timeout
        blocking = False
        while True:
            if self._rq_removed and (self._shutdown or self._peer_gone):
                return b""
            flags = 0 if blocking else IPC_NOWAIT
            if blocking:
                with self._lock:
                    self._read_deadline = give_up
            n = c.msgrcv(self._rq, self._rbuf, self._frag, -WAKE, flags)
            err = ctypes.get_errno() if n < 0 else 0
            if blocking:
                with self._lock:
                    self._read_deadline = None
            if n >= 0:
                mtype = _LONG.unpack_from(self._rbuf, 0)[0]
                if mtype == DATA and n > 0:
                    data = self._rbuf.raw[_LONG.size : _LONG.size + n]
                    if self._peer_gone and _queue_info().get(self._rq, {"qnum": 0})["qnum"] == 0:
                        with self._lock:
                            self._remove_recv()  # the last byte is read: nobody needs the queue
                    out, self._pending = data[:max_bytes], data[max_bytes:]
                    return out
                with self._lock:
                    self._wake_queued = False  # a wake only means "look again"
                blocking = False
                continue
            if err == errno.ENOMSG:
                if self._shutdown or self._peer_gone:
                    with self._lock:
                        self._remove_recv()
                    return b""
                if give_up is not None and time.monotonic() >= give_up:
                    return None
                blocking = True
                continue
            if err == errno.EINTR:
                continue
            if err == errno.E2BIG:
                raise ConnectionError("msgq: a fragment larger than the agreed size (DATA_LOSS)")
            # EIDRM/EINVAL: the queue was removed (shutdown, or the peer died with nothing unread)
            self._rq_removed = True
            return b""

    def recv_nowait(self, max_bytes: int, spin: float = 0.0) -> Optional[bytes]:
        """Like recv_within, but never blocks: tries IPC_NOWAIT reads for at most
        ``spin`` seconds; None if no data came, b"" at the end. One reader at a
        time: the caller must not read while another thread is inside recv()."""
        if self._pending:
            out, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return out
        while True:
            if self._rq_removed and (self._shutdown or self._peer_gone):
                return b""
            err = 0
            got: Optional[Tuple[int, bytes]] = None
            if _native is not None:
                try:
                    got = _native.msgq_recv(self._rq, self._frag, spin)
                except OSError as e:
                    err = e.errno or errno.EIO
                else:
                    if got is None:
                        err = errno.ENOMSG
            else:
                got, err = self._recv_nowait_ctypes(spin)
            if got is not None:
                mtype, data = got
                if mtype == DATA and data:
                    if self._peer_gone and _queue_info().get(self._rq, {"qnum": 0})["qnum"] == 0:
                        with self._lock:
                            self._remove_recv()
                    out, self._pending = data[:max_bytes], data[max_bytes:]
                    return out
                with self._lock:
                    self._wake_queued = False  # a wake only means "look again"
                spin = 0.0
                continue
            if err == errno.ENOMSG:
                if self._shutdown or self._peer_gone:
                    with self._lock:
                        self._remove_recv()
                    return b""
                return None
            if err == errno.EINTR:
                continue
            if err == errno.E2BIG:
                raise ConnectionError("msgq: a fragment larger than the agreed size (DATA_LOSS)")
            self._rq_removed = True  # EIDRM/EINVAL: removed (shutdown, or the peer died with nothing unread)
            return b""

    def _recv_nowait_ctypes(self, spin: float) -> Tuple[Optional[Tuple[int, bytes]], int]:
        c = _c()
        end = time.monotonic() + spin if spin > 0 else 0.0
        while True:
            n = c.msgrcv(self._rq, self._rbuf, self._frag, -WAKE, IPC_NOWAIT)
            if n >= 0:
                return (_LONG.unpack_from(self._rbuf, 0)[0], self._rbuf.raw[_LONG.size : _LONG.size + n]), 0
            err = ctypes.get_errno()
            if err != errno.ENOMSG or not end or time.monotonic() >= end:
                return None, err

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        with self._lock:
            self._remove_recv()
            q = _queue_info().get(self._sq)
            if self._peer_gone or q is None or q["qnum"] == 0:
                self._remove_send()
        try:
            self._control.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self.shutdown()
        # Linger (at most 1 s) while the live peer still reads what we sent, then remove.
        end = time.monotonic() + 1.0
        while not self._sq_removed and not self._peer_gone and time.monotonic() < end:
            q = _queue_info().get(self._sq)
            if q is None or q["qnum"] == 0:
                break
            time.sleep(0.005)
        with self._lock:
            self._remove_send()
        self._closed = True
        if threading.current_thread() is not self._watcher and self._watcher.is_alive():
            self._watcher.join(1)
        self._control.close()


def attach_client(offer: _wirepb.TransportOffer, fds: List[int], control: socket.socket) -> MsgqTransport:
    """Checks the offered queues (msgq.md "Set-up"); raises ValueError naming the problem."""
    if fds:
        raise ValueError("file descriptors came with a msgq offer")
    p = offer.msgq
    if p is None:
        raise ValueError("the msgq offer has no parameters")
    if p.client_to_server_id == p.server_to_client_id:
        raise ValueError("the two queue ids are the same")
    if not 1 <= p.max_fragment_bytes <= msgmax():
        raise ValueError(f"max_fragment_bytes {p.max_fragment_bytes} is not in 1..{msgmax()}")
    _pid, uid, _gid = struct.unpack("3i", control.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    info = _queue_info()
    for which, qid in (("client-to-server", p.client_to_server_id), ("server-to-client", p.server_to_client_id)):
        q = info.get(qid)
        if q is None:
            raise ValueError(f"{which} queue {qid} does not exist")
        if q["perms"] & 0o777 != 0o600:
            raise ValueError(f"{which} queue {qid} has mode {q['perms'] & 0o777:o}; expected 600")
        if q["uid"] != uid or q["cuid"] != uid:
            raise ValueError(f"{which} queue {qid} is owned by uid {q['uid']} and was created by uid {q['cuid']}; the server runs as uid {uid}")
        if q["key"] != IPC_PRIVATE:
            raise ValueError(f"{which} queue {qid} is not IPC_PRIVATE")
    return MsgqTransport(p.server_to_client_id, p.client_to_server_id, p.max_fragment_bytes, control)


class PendingMsgq:
    """The server's two queues between TRANSPORT_OFFER and TRANSPORT_ACK."""

    def __init__(self, record: Optional[_pending.Record] = None) -> None:
        c = _c()
        self.fds: List[int] = []
        self.ids: List[int] = []
        for _ in range(2):
            qid = c.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
            if qid < 0:
                err = ctypes.get_errno()
                self.abandon()
                raise OSError(err, f"msgget: {os.strerror(err)}")
            if record is not None:
                record.message_queue(qid)  # on record at once (crash clean-up, _pending.py)
            self.ids.append(qid)
        self.fragment = max(1, min(msgmax(), _sysctl("msgmnb", 16384)))
        self.offer = _wirepb.TransportOffer("msgq", msgq=_wirepb.MsgqParams(self.ids[0], self.ids[1], self.fragment))

    def complete(self, control: socket.socket) -> MsgqTransport:
        t = MsgqTransport(self.ids[0], self.ids[1], self.fragment, control)
        self.ids = []
        t.start()
        return t

    def abandon(self) -> None:
        for qid in self.ids:
            _remove(qid)
        self.ids = []

    def close_fds(self) -> None:
        pass
