"""The "shm" and "shm+sem" transports: two single-producer/single-consumer
byte rings in a memfd shared with the peer, woken by futexes or by the POSIX
semaphores in the region (docs/transports/shm.md, PROTOCOL.md §12).

Needs the optional C extension ``ipcrpc._native``: its ``Ring`` does each send
and receive in one call (copy, release stores, fences, waking a sleeping
peer, the adaptive spin of shm.md "Spinning", the futex or semaphore sleep);
:func:`available` says whether it was built.  "shm+sem" also needs glibc (its
private ``sem_t`` layout, checked before every use).

Threads: one reader (``recv``), writers serialised by the caller, any thread
may call ``shutdown``.  A watcher thread polls the unix socket the connection
started on (the liveness channel) and wakes both directions when the peer dies.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import select
import socket
import stat
import threading
import time
from typing import Any, List, Optional

from . import _wirepb
from ._control import ControlSocket
from ._transport import Transport

try:
    from . import _native
except ImportError:  # built without the C extension
    _native = None  # type: ignore[assignment]

MAGIC = 0x4D53435052435049  # "IPCRPCSM" little-endian
VERSION = 1
HEADER_BYTES = 4096
WAKE_FUTEX = 1
WAKE_SEMAPHORE = 2
NAME_FOR_WAKE = {WAKE_FUTEX: "shm", WAKE_SEMAPHORE: "shm+sem"}
MIN_RING, MAX_RING = 4096, 1 << 30
DEFAULT_RING = 1 << 20
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL

# Header offsets (docs/transports/shm.md).
_OFF_MAGIC, _OFF_VERSION, _OFF_HEADER_BYTES, _OFF_RING_BYTES, _OFF_WAKE = 0, 8, 12, 16, 24
SERVER_SIDE, CLIENT_SIDE = 0, 1


def _side(i: int) -> int:
    return 64 + 128 * i


_SIDE_CLOSED, _SIDE_ATTACHED, _SIDE_CPU = 0, 4, 64


def _ring(r: int) -> int:
    return 320 + 192 * r


_RING_HEAD, _RING_READER_SLEEPING, _RING_TAIL, _RING_WRITER_SLEEPING = 0, 8, 64, 72
# SEMAPHORE mode: the sem_t each sleeping word goes with.
_SEM_FOR_WORD = {_RING_READER_SLEEPING: 128, _RING_WRITER_SLEEPING: 160}


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Glibc:
    """POSIX semaphores through ctypes, for "shm+sem" (glibc's sem_t layout only)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.gnu_get_libc_version  # AttributeError if this is not glibc
        for name in ("sem_post", "sem_trywait"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.sem_clockwait.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Timespec)]
        lib.sem_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint]
        self.lib = lib
        probe = ctypes.create_string_buffer(32)
        lib.sem_init(ctypes.addressof(probe), 1, 0)
        # glibc keeps the semaphore's flags in the int after its 64-bit counter;
        # anything else there makes glibc abort on the next sem_post/wait.
        self.intact_flags = int.from_bytes(probe.raw[8:12], "little")

    def intact(self, mm: mmap.mmap, off: int) -> bool:
        return int.from_bytes(mm[off + 8 : off + 12], "little") == self.intact_flags


_glibc: Optional[_Glibc] = None


def _sem() -> Optional[_Glibc]:
    global _glibc
    if _glibc is None:
        try:
            _glibc = _Glibc()
        except (OSError, AttributeError):
            return None
    return _glibc


def semaphores_available() -> bool:
    return _native is not None and _sem() is not None
_MAX_SPIN = 50e-6


def available() -> bool:
    return _native is not None


def valid_ring_bytes(n: int) -> bool:
    return MIN_RING <= n <= MAX_RING and n & (n - 1) == 0


class DataLoss(ConnectionError):
    """The shared region violated the ring's invariants (the peer is broken or hostile)."""


class ShmTransport(Transport):
    name = "shm"

    def __init__(self, mm: mmap.mmap, ring_bytes: int, is_server: bool, control: socket.socket, max_spin: float = _MAX_SPIN, wake: int = WAKE_FUTEX) -> None:
        assert _native is not None
        self._mm = mm
        self.name = NAME_FOR_WAKE[wake]
        self._sem = _sem() if wake == WAKE_SEMAPHORE else None
        self._anchor: Any = None
        self._base = 0
        if wake == WAKE_SEMAPHORE:
            assert self._sem is not None
            self._anchor = ctypes.c_char.from_buffer(mm)  # pins the mapping while semaphores are in use
            self._base = ctypes.addressof(self._anchor)
        self._ring = ring_bytes
        self._control = control
        self.control: ControlSocket = ControlSocket(control)  # liveness, and fd records (PROTOCOL.md §10)
        own = SERVER_SIDE if is_server else CLIENT_SIDE
        self._own_side = _side(own)
        self._peer_side = _side(1 - own)
        prod, cons = (1, 0) if is_server else (0, 1)
        self._p = _ring(prod)
        self._c = _ring(cons)
        self._p_data = HEADER_BYTES + prod * ring_bytes
        self._c_data = HEADER_BYTES + cons * ring_bytes
        self._shutdown = False
        self._peer_gone = False
        self._broken: Optional[str] = None
        self._closed = False
        self._cring = _native.Ring(mm, ring_bytes, self._p, self._p_data, self._c, self._c_data, self._own_side, self._peer_side, wake == WAKE_SEMAPHORE, max_spin)
        self._watcher = threading.Thread(target=self._watch, name="ipcrpc-shm-watcher", daemon=True)

    def start(self) -> None:
        self._watcher.start()

    # -- helpers --

    def _fail(self, why: str) -> None:
        self._broken = why
        raise DataLoss(f"shm: {why}")

    def _post(self, word_off: int) -> None:
        """SEMAPHORE mode: posts the sem_t that goes with a sleeping word."""
        assert self._sem is not None
        ring = self._c if word_off in (self._c + _RING_READER_SLEEPING, self._c + _RING_WRITER_SLEEPING) else self._p
        sem_off = ring + _SEM_FOR_WORD[word_off - ring]
        if not self._sem.intact(self._mm, sem_off):
            self._broken = "a semaphore in the shared memory was overwritten"
            return
        self._sem.lib.sem_post(self._base + sem_off)

    def _wake_all(self) -> None:
        for off in (self._c + _RING_READER_SLEEPING, self._c + _RING_WRITER_SLEEPING, self._p + _RING_READER_SLEEPING, self._p + _RING_WRITER_SLEEPING):
            was = _native.exchange32(self._mm, off, 0)  # type: ignore[union-attr]
            if self._sem is None:
                _native.futex_wake(self._mm, off, 2)  # type: ignore[union-attr]
            elif was == 1:
                self._post(off)

    # -- Transport --
    # The copy, the wake-up, the adaptive spin and the sleep happen in one call
    # into ipcrpc._native.Ring; this class keeps the flags and the messages.

    def recv(self, max_bytes: int) -> bytes:
        data = self.recv_within(max_bytes, None)
        assert data is not None
        return data

    def recv_within(self, max_bytes: int, timeout: Optional[float]) -> Optional[bytes]:  # type: ignore[override]
        if self._broken is not None:
            raise DataLoss(f"shm: {self._broken}")
        try:
            return self._cring.read(max_bytes, timeout)  # type: ignore[no-any-return]
        except ValueError as e:
            self._fail(str(e))
            raise  # not reached

    def readable(self) -> bool:
        """Whether recv() would return at once (bytes, or the end of the stream)."""
        return self._cring.readable()  # type: ignore[no-any-return]

    def wait_readable(self, spin: float, sleep: float) -> bool:
        """Spins at most ``spin`` s, then sleeps at most ``sleep`` s until readable();
        consumes nothing (for a thread that watches while another reads)."""
        try:
            return self._cring.wait_readable(spin, sleep)  # type: ignore[no-any-return]
        except ValueError as e:
            self._fail(str(e))
            raise  # not reached

    def send(self, data: bytes) -> None:
        if self._broken is not None:
            raise DataLoss(f"shm: {self._broken}")
        try:
            if self._cring.write(data):
                return
        except ValueError as e:
            self._fail(str(e))
        if self._shutdown:
            raise ConnectionError("shm: the transport was shut down")
        raise ConnectionError("shm: the peer closed the connection")

    def fileno(self) -> int:
        return -1

    def _watch(self) -> None:
        # The control socket: a hang-up, end of file or stray bytes end the
        # connection; an fd record waiting for its frame does not (it is polled
        # for hang-ups only until the reader takes the record).
        poller = select.poll()
        fd = self._control.fileno()
        mask = self.control.poll_events()
        poller.register(fd, mask)
        while not self._shutdown:
            if self.control.poll_events() != mask:
                mask = self.control.poll_events()
                poller.modify(fd, mask)
            events = poller.poll(100 if mask & select.POLLIN else 10)
            if not events or not self.control.events(events[0][1]):
                continue
            self._peer_gone = True
            self._cring.stop()
            self._wake_all()
            return

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        self._cring.stop()
        try:
            _native.store32(self._mm, self._own_side + _SIDE_CLOSED, 1)  # type: ignore[union-attr]
            _native.fence()  # type: ignore[union-attr]
            self._wake_all()
        except ValueError:  # already unmapped
            pass
        try:
            self._control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.shutdown()
        if threading.current_thread() is not self._watcher and self._watcher.is_alive():
            self._watcher.join(1)
        self._control.close()
        self._anchor = None
        self._cring.release()  # False while another thread is inside a wait: the mapping then goes with the Ring
        try:
            self._mm.close()
        except BufferError:
            pass  # another thread is inside a wait; the mapping goes with the last reference


# -- set-up (PROTOCOL.md §12) --------------------------------------------------


def _region_bytes(ring: int) -> int:
    return HEADER_BYTES + 2 * ring


def attach_client(offer: _wirepb.TransportOffer, fds: List[int], control: socket.socket, max_spin: Optional[float] = None) -> ShmTransport:
    """Checks the offer and the memfd, maps it and marks the client attached.

    Closes every fd in ``fds``; raises ValueError naming what is wrong."""
    try:
        if _native is None:
            raise ValueError("the ipcrpc._native extension is not built")
        p = offer.shm
        if p is None or NAME_FOR_WAKE.get(p.wake) != offer.transport:
            raise ValueError(f"the offer is not shm with futex or shm+sem with semaphore wake-up ({offer.transport!r}, wake {p.wake if p else None})")
        if p.wake == WAKE_SEMAPHORE and _sem() is None:
            raise ValueError("shm+sem needs glibc's POSIX semaphores")
        if not valid_ring_bytes(p.ring_bytes):
            raise ValueError(f"ring_bytes {p.ring_bytes} is not a power of two in [{MIN_RING}, {MAX_RING}]")
        if len(fds) != 1:
            raise ValueError(f"{len(fds)} file descriptors came with the offer (expected 1)")
        fd = fds[0]
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("the descriptor is not a memfd (not a regular file)")
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            raise ValueError("the descriptor is not a memfd (it cannot carry seals)") from None
        if seals & _SEALS != _SEALS:
            raise ValueError(f"the memfd lacks seals (has {seals:#x}, needs {_SEALS:#x})")
        size = _region_bytes(p.ring_bytes)
        if st.st_size != size:
            raise ValueError(f"the memfd is {st.st_size} bytes, rings of {p.ring_bytes} need {size}")
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        for fd in fds:
            os.close(fd)
    n = _native
    header = (n.load64(mm, _OFF_MAGIC), n.load32(mm, _OFF_VERSION), n.load32(mm, _OFF_HEADER_BYTES), n.load64(mm, _OFF_RING_BYTES), n.load32(mm, _OFF_WAKE))
    if header != (MAGIC, VERSION, HEADER_BYTES, p.ring_bytes, p.wake):
        mm.close()
        raise ValueError(f"the shared-memory header {header} disagrees with the offer")
    if n.exchange32(mm, _side(CLIENT_SIDE) + _SIDE_ATTACHED, 1) != 0:
        mm.close()
        raise ValueError("a client has already attached to this shared-memory region")
    n.store32(mm, _side(CLIENT_SIDE) + _SIDE_CPU, 0xFFFFFFFF)
    return ShmTransport(mm, p.ring_bytes, False, control, _MAX_SPIN if max_spin is None else max_spin, wake=p.wake)


class PendingShm:
    """The server's half-made shm transport between TRANSPORT_OFFER and TRANSPORT_ACK."""

    def __init__(self, ring: int, wake: int = WAKE_FUTEX, max_spin: Optional[float] = None) -> None:
        assert _native is not None
        self.ring = ring
        self.wake = wake
        self.max_spin = _MAX_SPIN if max_spin is None else max_spin
        fd = os.memfd_create("ipcrpc-shm", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        self.fds = [fd]
        try:
            size = _region_bytes(ring)
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            self.mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            self.close_fds()
            raise
        n = _native
        n.store64(self.mm, _OFF_RING_BYTES, ring)
        n.store32(self.mm, _OFF_VERSION, VERSION)
        n.store32(self.mm, _OFF_HEADER_BYTES, HEADER_BYTES)
        n.store32(self.mm, _OFF_WAKE, wake)
        if wake == WAKE_SEMAPHORE:
            sem = _sem()
            assert sem is not None
            anchor = ctypes.c_char.from_buffer(self.mm)
            for r in (0, 1):
                for off in _SEM_FOR_WORD.values():
                    sem.lib.sem_init(ctypes.addressof(anchor) + _ring(r) + off, 1, 0)
            del anchor
        for side in (SERVER_SIDE, CLIENT_SIDE):
            n.store32(self.mm, _side(side) + _SIDE_CPU, 0xFFFFFFFF)
        n.store32(self.mm, _side(SERVER_SIDE) + _SIDE_ATTACHED, 1)
        n.store64(self.mm, _OFF_MAGIC, MAGIC)
        self.offer = _wirepb.TransportOffer(NAME_FOR_WAKE[wake], shm=_wirepb.ShmParams(ring, wake))

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def complete(self, control: socket.socket) -> ShmTransport:
        if _native.load32(self.mm, _side(CLIENT_SIDE) + _SIDE_ATTACHED) != 1:  # type: ignore[union-attr]
            self.mm.close()
            raise ConnectionError("shm: the client acknowledged but did not attach")
        t = ShmTransport(self.mm, self.ring, True, control, self.max_spin, wake=self.wake)
        t.start()
        return t

    def abandon(self) -> None:
        self.close_fds()
        self.mm.close()


def prepare_server(request: _wirepb.TransportRequest, default_ring: int = 0, wake: int = WAKE_FUTEX, max_spin: Optional[float] = None) -> PendingShm:
    """Creates the region for one connection; honours the client's ring size if valid."""
    ring = default_ring if valid_ring_bytes(default_ring) else DEFAULT_RING
    if valid_ring_bytes(request.ring_bytes):
        ring = request.ring_bytes
    return PendingShm(ring, wake, max_spin)
