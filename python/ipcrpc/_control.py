"""The control socket of an upgraded connection (fifo, shm, msgq; PROTOCOL.md §10, §12).

After TRANSPORT_ACK the unix socket the negotiation ran on stays open as the
liveness channel and carries nothing, with one exception: descriptors sent
with a MESSAGE travel on it as **fd records** (``"IRFD"``, count, 3 zero
bytes, the descriptors as SCM_RIGHTS), one per frame, sent before the frame's
first byte enters the data path.  The receiver takes one record when it
decodes a header whose fd_count is not 0.  A check of the socket therefore
peeks: a waiting record is not a stray byte, and while one waits the socket
is polled for hang-ups only (it stays readable until the record is taken).

Thread-safety: check()/events() from any thread; send_fds() by the
transport's writer (under its write lock); take_batch() by its reader.
"""

from __future__ import annotations

import array
import select
import socket
from typing import Callable, Optional, Sequence

from ._fds import MAX_FDS_PER_MESSAGE, FdBatch
from ._frame import ProtocolError

MAGIC = b"IRFD"
RECORD_BYTES = 8
POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)
HANGUP = select.POLLHUP | select.POLLERR | POLLRDHUP | select.POLLNVAL
_ANCILLARY = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * 4)
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0x40000000)


def fds_from_ancillary(ancdata: Sequence[tuple]) -> list:
    fds: list = []
    for level, type_, data in ancdata:
        if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[: len(data) - (len(data) % a.itemsize)])
            fds.extend(a)
    return fds


class ControlSocket:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.record_waiting = False
        self.stray = False  # the peer sent bytes that are not a record
        # Called after a record was taken (a poller that stopped watching input resumes).
        self.on_record_taken: Optional[Callable[[], None]] = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def poll_events(self) -> int:
        """What to poll the socket for now (hang-ups only while a record waits)."""
        return POLLRDHUP if self.record_waiting else select.POLLIN | POLLRDHUP

    def events(self, revents: int) -> bool:
        """Interprets poll's revents for the socket: True if the peer is gone (or
        broke the silence with stray bytes); a waiting fd record is not a loss."""
        if revents & HANGUP:
            return True
        if not revents & select.POLLIN:
            return False
        try:
            head = self.sock.recv(4, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        if not head:
            return True  # end of file
        if MAGIC.startswith(head):
            self.record_waiting = True
            return False
        self.stray = True
        return True

    def check(self) -> bool:
        """A zero-timeout poll of the socket; True if the peer is gone."""
        p = select.poll()
        p.register(self.sock.fileno(), self.poll_events())
        for _fd, ev in p.poll(0):
            return self.events(ev)
        return False

    def send_fds(self, fds: Sequence[int]) -> None:
        """Sends one fd record carrying ``fds`` (1..253); blocks while the socket is full."""
        if not 1 <= len(fds) <= MAX_FDS_PER_MESSAGE:
            raise ValueError(f"{len(fds)} descriptors in one record; 1 to {MAX_FDS_PER_MESSAGE} may go")
        record = MAGIC + bytes([len(fds), 0, 0, 0])
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        try:
            n = self.sock.sendmsg([record], anc, socket.MSG_NOSIGNAL)
        except OSError as e:
            raise ConnectionError(f"control socket: sending descriptors: {e.strerror or e}") from None
        if n != RECORD_BYTES:
            raise ConnectionError("control socket: fd record sent in part")

    def take_batch(self) -> FdBatch:
        """Takes the next fd record without blocking. ProtocolError (descriptors
        closed) if none waits or what waits is not a well-formed record."""
        try:
            data, anc, flags, _ = self.sock.recvmsg(RECORD_BYTES, _ANCILLARY, socket.MSG_DONTWAIT | _CLOEXEC)
        except (BlockingIOError, InterruptedError):
            raise ProtocolError("a frame declares file descriptors that the peer did not send (no fd record on the control socket)") from None
        except OSError as e:
            raise ProtocolError(f"control socket: {e.strerror or e}") from None
        batch = FdBatch(fds_from_ancillary(anc), bool(flags & socket.MSG_CTRUNC))
        if not data:
            raise ProtocolError("a frame declares file descriptors, but the control socket is closed")
        count = data[4] if len(data) == RECORD_BYTES else 0
        ok = (len(data) == RECORD_BYTES and data[:4] == MAGIC and 1 <= count <= MAX_FDS_PER_MESSAGE
              and (len(batch) <= count if batch.truncated else len(batch) == count))
        if not ok:
            self.stray = True
            batch.close()
            raise ProtocolError("malformed fd record on the control socket; its descriptors were closed")
        self.record_waiting = False
        cb = self.on_record_taken
        if cb is not None:
            cb()
        return batch
