"""File descriptors in calls (PROTOCOL.md §10): ``ipcrpc.FileDescriptor`` fields.

A message type with fields of the well-known type ``ipcrpc.FileDescriptor``
(``proto/ipcrpc/file_descriptor.proto``: ``uint32 handle = 1``) carries real
descriptors beside the frame.  In the process that holds a message, a
field's ``handle`` is that process's descriptor number + 1 (0: none).

Sender: :func:`attach_fd` makes a field name a descriptor the caller keeps
owning (it must stay open until the call that sends the message returned).
Receiver: the descriptors that came with a message belong to that message
object until :func:`take_fd` moves one out (the caller then owns and closes
it); the runtime closes the others when the message object is dropped (or
at once, when what was deserialized is not a protobuf message).

The runtime side: :func:`collect` finds the descriptors a message names and
builds the frame's descriptor table; :class:`FdBatch` owns descriptors
received with a frame; :func:`deserialize` parses a payload that came with
descriptors and points its fields at them (:func:`bind`).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from ._status import RpcError, StatusCode

# The most descriptors one MESSAGE (one SCM_RIGHTS message) may carry: SCM_MAX_FD.
MAX_FDS_PER_MESSAGE = 253
TABLE_ENTRY = 4
FD_TYPE = "ipcrpc.FileDescriptor"
# A MESSAGE's compression algorithm bits (PROTOCOL.md §2).
COMPRESSION_MASK = 0x000F


# -- descriptors owned by the runtime -------------------------------------------


def close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


# The most descriptors a connection keeps in received messages that the
# application has not read yet (PROTOCOL.md §5 "Limits", as the C++ side).
MAX_UNREAD_FDS = 1024


class UnreadFds:
    """How many descriptors one connection holds in received messages the
    application has not read yet (any thread)."""

    __slots__ = ("_lock", "count")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, n: int) -> int:
        with self._lock:
            self.count += n
            return self.count

    def sub(self, n: int) -> None:
        with self._lock:
            self.count -= n


class FdBatch:
    """Descriptors received together (one SCM_RIGHTS message), owned until
    released: closed by close() or when the object is dropped."""

    __slots__ = ("fds", "truncated", "_unread", "__weakref__")

    def __init__(self, fds: Sequence[int], truncated: bool = False) -> None:
        self.fds: List[int] = list(fds)
        self.truncated = truncated  # the kernel could not install them all (MSG_CTRUNC)
        self._unread: Optional[Tuple[UnreadFds, int]] = None

    def __len__(self) -> int:
        return len(self.fds)

    def count_in(self, unread: UnreadFds) -> int:
        """Counts these descriptors as unread on their connection until they are
        released or closed; returns the connection's count with them."""
        n = len(self.fds)
        self._unread = (unread, n)
        return unread.add(n)

    def release(self) -> List[int]:
        fds, self.fds = self.fds, []
        counted, self._unread = self._unread, None
        if counted is not None:
            counted[0].sub(counted[1])
        return fds

    def close(self) -> None:
        for fd in self.release():
            close_quietly(fd)

    def __del__(self) -> None:
        self.close()


class FdPayload:
    """A received MESSAGE payload that came with descriptors: the message bytes,
    the descriptor table (u32 keys) and the descriptors, owned here until the
    message is deserialized (:func:`deserialize`) or this object is dropped."""

    __slots__ = ("message", "table", "batch", "wire_len")

    def __init__(self, message: bytes, table: bytes, batch: FdBatch, wire_len: int) -> None:
        self.message = message
        self.table = table
        self.batch = batch
        self.wire_len = wire_len

    def close(self) -> None:
        self.batch.close()


Incoming = Any  # bytes, or FdPayload when descriptors came with the message


def wire_len(item: Incoming) -> int:
    """The bytes a received payload counted on the wire (flow control)."""
    return len(item) if type(item) is bytes else item.wire_len  # type: ignore[no-any-return]


def close_items(items: Any) -> None:
    """Closes the descriptors of every FdPayload in ``items`` (an inbox that nobody will read)."""
    for item in items:
        if type(item) is FdPayload:
            item.close()


def split_payload(payload: bytes, batch: FdBatch) -> Optional[FdPayload]:
    """The FdPayload of a MESSAGE that came with ``batch``; None (batch closed) if
    its descriptor table does not fit the payload."""
    n = len(batch)
    if len(payload) < n * TABLE_ENTRY:
        batch.close()
        return None
    cut = len(payload) - n * TABLE_ENTRY
    return FdPayload(payload[:cut], payload[cut:], batch, len(payload))


# -- received descriptors, until taken -------------------------------------------

_lock = threading.Lock()
_received: Dict[int, "_Holder"] = {}  # descriptor number -> the message holding it


class _Holder:
    """The not-yet-taken descriptors of one received message."""

    __slots__ = ("fds",)

    def __init__(self, fds: Sequence[int]) -> None:
        self.fds: Set[int] = set(fds)
        with _lock:
            for fd in self.fds:
                _received[fd] = self  # replaces a stale entry whose number was closed by someone else

    def close(self) -> None:
        with _lock:
            mine = [fd for fd in self.fds if _received.get(fd) is self]
            for fd in mine:
                del _received[fd]
            self.fds = set()
        for fd in mine:
            close_quietly(fd)


def held_count() -> int:
    """Received descriptors not taken yet (tests and diagnostics)."""
    with _lock:
        return len(_received)


def _is_message(obj: Any) -> bool:
    return hasattr(obj, "DESCRIPTOR") and hasattr(obj, "ListFields")


_reach_cache: Dict[Any, bool] = {}


def _reaches(desc: Any) -> bool:
    """Whether messages of this type can contain an ipcrpc.FileDescriptor.

    Cached per type, only as whole answers (a type met while exploring another
    may depend on a cycle still being explored)."""
    known = _reach_cache.get(desc)
    if known is not None:
        return known
    seen: Set[Any] = set()
    stack = [desc]
    found = False
    while stack and not found:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        if d.full_name == FD_TYPE:
            found = True
            break
        for f in d.fields:
            if f.message_type is not None:
                stack.append(f.message_type)
    _reach_cache[desc] = found
    return found


def _fd_fields(msg: Any) -> List[Any]:
    """Every FileDescriptor message within ``msg`` that is set, in field order
    (repeated fields by index, map values by key)."""
    out: List[Any] = []
    _walk(msg, out)
    return out


def _walk(msg: Any, out: List[Any]) -> None:
    for field, value in msg.ListFields():
        mt = field.message_type
        if mt is None or not _reaches(mt):
            continue
        if mt.GetOptions().map_entry:
            vt = mt.fields_by_name["value"].message_type
            if vt is None:
                continue
            items = [value[k] for k in sorted(value)]
            direct = vt.full_name == FD_TYPE
        elif field.label == field.LABEL_REPEATED:
            items = list(value)
            direct = mt.full_name == FD_TYPE
        else:
            items = [value]
            direct = mt.full_name == FD_TYPE
        for sub in items:
            if direct:
                out.append(sub)
            else:
                _walk(sub, out)


# -- the user API --------------------------------------------------------------


def attach_fd(field: Any, fd: int) -> None:
    """Makes the ``ipcrpc.FileDescriptor`` field ``field`` name ``fd`` (borrowed).

    The caller keeps owning ``fd``: it must stay open until the call that
    sends the message (the stub call, a streaming write, a handler's return)
    has returned; the receiver gets its own copy.  A negative ``fd`` clears
    the field.  Example: ``ipcrpc.attach_fd(request.file, f.fileno())``."""
    if not isinstance(fd, int):
        fd = fd.fileno()
    field.handle = 0 if fd < 0 else fd + 1


def peek_fd(field: Any) -> int:
    """The descriptor number ``field`` names in this process, or -1 (nothing is taken)."""
    return int(field.handle) - 1


def take_fd(field: Any) -> int:
    """Moves the descriptor that ``field`` of a received message names out of
    the runtime: the caller owns the returned number and must close it.

    Raises LookupError if the field names none (handle 0), or a descriptor that
    was taken already or did not come with a received message."""
    handle = int(field.handle)
    if handle == 0:
        raise LookupError("the FileDescriptor field names no descriptor (handle 0)")
    fd = handle - 1
    with _lock:
        holder = _received.pop(fd, None)
        if holder is not None:
            holder.fds.discard(fd)
    if holder is None:
        raise LookupError(f"descriptor {fd} is not held for a received message (taken already, or never received)")
    return fd


# -- sending -------------------------------------------------------------------


class FdError(RpcError):
    """A message's descriptors cannot be sent (raised before anything is sent)."""


class Outgoing:
    """The descriptors a message names, ready to go with its frame."""

    __slots__ = ("fds", "table")

    def __init__(self, fds: List[int], table: bytes) -> None:
        self.fds = fds
        self.table = table


def collect(msg: Any) -> Optional[Outgoing]:
    """The descriptors ``msg`` names (None: none).  INVALID_ARGUMENT for more
    than 253 distinct descriptors or one that is not open."""
    if not _is_message(msg) or not _reaches(msg.DESCRIPTOR):
        return None
    handles: List[int] = []
    seen: Set[int] = set()
    for sub in _fd_fields(msg):
        h = int(sub.handle)
        if h and h not in seen:
            seen.add(h)
            handles.append(h)
    if not handles:
        return None
    if len(handles) > MAX_FDS_PER_MESSAGE:
        raise FdError(StatusCode.INVALID_ARGUMENT, f"a message names {len(handles)} file descriptors; at most {MAX_FDS_PER_MESSAGE} (SCM_MAX_FD) can go with one message")
    fds = [h - 1 for h in handles]
    for fd in fds:
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            raise FdError(StatusCode.INVALID_ARGUMENT, f"a FileDescriptor field names descriptor {fd}, which is not open in this process") from None
    return Outgoing(fds, struct.pack(f"<{len(handles)}I", *handles))


def check_peer(out: Optional[Outgoing], peer_max: int, peer: str) -> Optional[Tuple[StatusCode, str]]:
    """Why ``out`` cannot go to a peer that announced ``peer_max`` (None: it can)."""
    if out is None:
        return None
    n = len(out.fds)
    if peer_max == 0:
        return StatusCode.FAILED_PRECONDITION, f"the peer at {peer} does not accept file descriptors (it announced max_fds_per_message 0 in its HELLO)"
    if n > peer_max:
        return StatusCode.RESOURCE_EXHAUSTED, f"a message names {n} file descriptors; the peer at {peer} accepts {peer_max} per message"
    return None


def serialize(serializer: Callable[[Any], bytes], msg: Any) -> Tuple[bytes, Optional[Outgoing]]:
    """The MESSAGE payload of ``msg`` (its descriptor table appended) and its descriptors."""
    out = collect(msg)
    payload = serializer(msg)
    if out is not None:
        payload = payload + out.table
    return payload, out


# -- receiving -----------------------------------------------------------------


def bind(msg: Any, item: FdPayload) -> Any:
    """Points the FileDescriptor fields of ``msg`` (parsed from ``item``) at the
    descriptors that came with it, which ``msg`` then owns until taken."""
    fds = item.batch.release()
    n = min(len(fds), len(item.table) // TABLE_ENTRY)
    keys = struct.unpack_from(f"<{n}I", item.table) if n else ()
    local: Dict[int, int] = {}
    for key, fd in zip(keys, fds):
        local.setdefault(key, fd)
    holder = _Holder(fds)
    try:
        if not _is_message(msg):
            raise TypeError("not a protobuf message")
        if _reaches(msg.DESCRIPTOR):
            for sub in _fd_fields(msg):
                h = int(sub.handle)
                if h:
                    sub.handle = local.get(h, -1) + 1
        weakref.finalize(msg, holder.close)
    except TypeError:
        holder.close()  # nobody can take them
    return msg


def clear_handles(msg: Any) -> Any:
    """For a message that came with no descriptors: every FileDescriptor field
    names none, whatever number the peer wrote there (so peek_fd can never be
    made to name one of this process's own descriptors)."""
    if _is_message(msg) and _reaches(msg.DESCRIPTOR):
        for sub in _fd_fields(msg):
            sub.handle = 0
    return msg


def deserialize(deserializer: Callable[[bytes], Any], item: Incoming) -> Any:
    if type(item) is bytes:
        return clear_handles(deserializer(item))
    msg = deserializer(item.message)
    return bind(msg, item)
