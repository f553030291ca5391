"""The "fifo" transport: the byte stream over two named pipes
(docs/transports/fifo.md); the unix socket stays open, silent, as the liveness channel.

Pure Python. Python ignores SIGPIPE by default, so a write to a FIFO whose
reader has gone fails with EPIPE (BrokenPipeError) instead of killing the
process; the transport never changes the signal disposition.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import select
import shutil
import socket
import stat
import struct
import time
from typing import List, Optional

from . import _pending, _wirepb
from ._control import ControlSocket
from ._transport import Transport

_OPEN = os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
_POLL_SLICE = 0.1
_HUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)


def _peer_uid(control: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack("3i", control.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def _check_path(path: str, uid: int) -> os.stat_result:
    """The checks of fifo.md "What the client checks" for one path; raises ValueError."""
    if not os.path.isabs(path):
        raise ValueError(f"FIFO path {path!r} is not absolute")
    d = os.path.dirname(path)
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{d} is not a directory")
    if st.st_uid != uid:
        raise ValueError(f"{d} is owned by uid {st.st_uid}, not the server's uid {uid}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(f"{d} is writable by others")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    if not stat.S_ISFIFO(st.st_mode):
        raise ValueError(f"{path} is not a FIFO (mode {st.st_mode:o})")
    if st.st_uid != uid:
        raise ValueError(f"{path} is owned by uid {st.st_uid}, not the server's uid {uid}")
    return st


def _open_checked(path: str, flags: int, want: os.stat_result) -> int:
    fd = os.open(path, flags | _OPEN)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (want.st_dev, want.st_ino) or not stat.S_ISFIFO(st.st_mode):
        os.close(fd)
        raise ValueError(f"{path} was replaced between the check and the open")
    return fd


class FifoTransport(Transport):
    name = "fifo"

    def __init__(self, read_fd: int, write_fd: int, control: socket.socket) -> None:
        self._r = read_fd
        self._w = write_fd
        self._control = control
        self.control: ControlSocket = ControlSocket(control)  # liveness, and fd records (PROTOCOL.md §10)
        self._shutdown = False
        self._gone = False  # sticky: the peer closed
        self._closed = False
        self._had_data = False

    @property
    def read_fd(self) -> int:
        return self._r

    @property
    def control_fd(self) -> int:
        return self._control.fileno()

    def _control_events(self, revents: int) -> None:
        if self.control.events(revents):
            self._gone = True  # hang-up, error, or bytes (not an fd record) on a socket that must stay silent

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._shutdown or self._gone:
                raise ConnectionError("fifo: the connection is closed")
            try:
                n = os.write(self._w, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                self._gone = True
                raise ConnectionError("fifo: the peer closed the connection") from None
            p = select.poll()
            p.register(self._w, select.POLLOUT)
            p.register(self._control.fileno(), self.control.poll_events())
            for fd, ev in p.poll(int(_POLL_SLICE * 1000)):
                if fd == self._control.fileno():
                    self._control_events(ev)

    def recv(self, max_bytes: int) -> bytes:
        while True:
            data = self.recv_within(max_bytes, _POLL_SLICE * 10)
            if data is not None:
                return data

    def recv_within(self, max_bytes: int, timeout: Optional[float]) -> Optional[bytes]:
        give_up = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._shutdown:
                return b""
            try:
                data = os.read(self._r, max_bytes)
                if data:
                    return data
                # 0: end of file, or no writer has opened the FIFO yet: poll decides.
            except BlockingIOError:
                pass
            if self._gone:
                return b""
            p = select.poll()
            p.register(self._r, select.POLLIN)
            p.register(self._control.fileno(), self.control.poll_events())
            wait = _POLL_SLICE if give_up is None else min(_POLL_SLICE, give_up - time.monotonic())
            if wait <= 0:
                return None
            events = p.poll(int(wait * 1000) + 1)
            for fd, ev in events:
                if fd == self._control.fileno():
                    self._control_events(ev)
                elif ev & select.POLLHUP and not ev & select.POLLIN:
                    self._gone = True  # a writer came and went: end of file
            if not events and give_up is not None and time.monotonic() >= give_up:
                return None

    def shutdown(self) -> None:
        self._shutdown = True
        try:
            self._control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.shutdown()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._control.close()


def attach_client(offer: _wirepb.TransportOffer, fds: List[int], control: socket.socket) -> FifoTransport:
    """Checks the offered FIFOs and opens them (step 5); raises ValueError naming the problem."""
    if fds:
        raise ValueError("file descriptors came with a fifo offer")
    p = offer.fifo
    if p is None or not p.client_to_server_path or not p.server_to_client_path:
        raise ValueError("the fifo offer has no paths")
    if p.client_to_server_path == p.server_to_client_path:
        raise ValueError("the two FIFO paths are the same")
    uid = _peer_uid(control)
    c2s = _check_path(p.client_to_server_path, uid)
    s2c = _check_path(p.server_to_client_path, uid)
    try:
        w = _open_checked(p.client_to_server_path, os.O_WRONLY, c2s)
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise ValueError("the server has no reader on its FIFO") from None
        raise
    try:
        r = _open_checked(p.server_to_client_path, os.O_RDONLY, s2c)
    except BaseException:
        os.close(w)
        raise
    return FifoTransport(r, w, control)


class PendingFifo:
    """The server's FIFOs between TRANSPORT_OFFER and TRANSPORT_ACK (steps 1-3, 7)."""

    def __init__(self, parent_dir: str = "/tmp", record: Optional[_pending.Record] = None) -> None:
        # Not mkdtemp: the name goes on record (crash clean-up, _pending.py)
        # before the directory exists, so it is on record whenever it exists.
        for attempt in itertools.count():
            path = os.path.join(parent_dir, _pending.FIFO_DIR_PREFIX + secrets.token_urlsafe(9))
            if record is not None:
                record.fifo_directory(path)
            try:
                os.mkdir(path, 0o700)
                break
            except FileExistsError:
                if attempt == 3:
                    raise
        self.dir = path
        self.fds: List[int] = []
        try:
            os.chmod(self.dir, 0o700)  # whatever the umask
            self.c2s = os.path.join(self.dir, "c2s")
            self.s2c = os.path.join(self.dir, "s2c")
            for path in (self.c2s, self.s2c):
                os.mkfifo(path, 0o600)
                os.chmod(path, 0o600)
            self.read_fd = os.open(self.c2s, os.O_RDONLY | _OPEN)
        except BaseException:
            self.abandon()
            raise
        self.offer = _wirepb.TransportOffer("fifo", fifo=_wirepb.FifoParams(self.c2s, self.s2c))

    def complete(self, control: socket.socket) -> FifoTransport:
        try:
            try:
                w = os.open(self.s2c, os.O_WRONLY | _OPEN)
            except OSError as e:
                raise ConnectionError(f"fifo: the client has no reader on {self.s2c}: {e.strerror}") from None
        finally:
            self._remove()
        return FifoTransport(self.read_fd, w, control)

    def _remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def abandon(self) -> None:
        if hasattr(self, "read_fd"):
            os.close(self.read_fd)
            del self.read_fd
        self._remove()

    def close_fds(self) -> None:
        pass
