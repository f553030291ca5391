"""Who may connect to a server (the C++ ``runtime/access_policy.h``), and the
listening socket that enforces its file mode.  Used by the sync and the
asyncio server alike.

Every connection accepted on a listening socket is checked with the identity
the kernel reports for it (``SO_PEERCRED``) before anything else happens on
it; a refused peer gets one ``GOAWAY`` (code ``PERMISSION_DENIED``, reason) as
its first frame and is closed (PROTOCOL.md §4 "Refusing a connection").  The
default lets in the server's own user and root.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, List, NamedTuple, Optional

from . import _frame, _wirepb
from ._frame import FrameType
from ._status import RpcError, StatusCode

DEFAULT_SOCKET_MODE = 0o600


class PeerCredentials(NamedTuple):
    """The client process as the kernel reports it (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    return PeerCredentials(*struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)))


@dataclass
class AccessPolicy:
    """The rules; ``check`` is safe on any thread."""

    allow_any_peer: bool = False  # everyone who can reach the socket; overrides the rest
    allowed_uids: List[int] = field(default_factory=list)  # besides the server's euid and root
    allowed_gids: List[int] = field(default_factory=list)  # matched against the peer's primary gid

    def check(self, peer: PeerCredentials) -> Optional[str]:
        """None if ``peer`` may connect, else the reason it may not."""
        if self.allow_any_peer or peer.uid in (0, os.geteuid()) or peer.uid in self.allowed_uids or peer.gid in self.allowed_gids:
            return None
        return (f"this server does not accept connections from pid {peer.pid}, uid {peer.uid}, gid {peer.gid} "
                "(its access policy lets in its own user, root, and the uids/gids it lists)")


def policy_from(allowed_uids: Optional[Iterable[int]], allowed_gids: Optional[Iterable[int]], allow_any_peer: bool,
                section: Any) -> AccessPolicy:
    """The arguments of a server, extended (as in C++) by the config file's ``server`` section."""
    return AccessPolicy(
        allow_any_peer=allow_any_peer or section.allow_any_peer,
        allowed_uids=list(allowed_uids or ()) + list(section.allowed_uids),
        allowed_gids=list(allowed_gids or ()) + list(section.allowed_gids),
    )


def socket_mode_from(socket_mode: Optional[int], section: Any) -> int:
    """The argument, else the config file's ``socket_mode``, else 0600."""
    mode = socket_mode if socket_mode is not None else (section.socket_mode or DEFAULT_SOCKET_MODE)
    if not 0 <= mode <= 0o7777:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"socket_mode {mode:o} is not a file mode (0 to 07777)")
    return mode


def listen(path: str, mode: int) -> socket.socket:
    """A non-blocking listening socket on ``path`` (a file, or "\\0name"); a
    file gets ``mode`` between bind and listen, so nobody connects before it
    holds.  Raises OSError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        if not path.startswith("\0"):
            try:
                os.chmod(path, mode)
            except OSError:
                os.unlink(path)
                raise
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def admit(sock: socket.socket, policy: AccessPolicy) -> Optional[PeerCredentials]:
    """The peer of a just-accepted socket if ``policy`` lets it in; otherwise
    sends it the refusal, closes ``sock`` and returns None."""
    try:
        peer = peer_credentials(sock)
    except OSError:
        sock.close()
        return None
    reason = policy.check(peer)
    if reason is None:
        return peer
    goaway = _wirepb.GoAway(0, StatusCode.PERMISSION_DENIED.number, reason)
    try:
        sock.send(_frame.encode_frame(FrameType.GOAWAY, 0, goaway.encode()), socket.MSG_DONTWAIT)
    except OSError:
        pass  # the peer is gone already
    sock.close()
    return None
