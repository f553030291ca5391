"""Status codes (PROTOCOL.md §6) and the exception calls raise."""

from __future__ import annotations

import enum
import re
from typing import Optional, Sequence, Tuple, Union

# Metadata as calls hand it to users, as grpcio does: a value is str, except
# under a key ending in "-bin", whose value is bytes.
MetadataValue = Union[str, bytes]
MetadataType = Tuple[Tuple[str, MetadataValue], ...]
# Metadata as the wire carries it (PROTOCOL.md §8): every value is bytes.
WireMetadata = Tuple[Tuple[str, bytes], ...]


class StatusCode(enum.Enum):
    """gRPC's canonical codes.  ``value`` is ``(number, "lowercase name")`` like grpc.StatusCode."""

    OK = (0, "ok")
    CANCELLED = (1, "cancelled")
    UNKNOWN = (2, "unknown")
    INVALID_ARGUMENT = (3, "invalid argument")
    DEADLINE_EXCEEDED = (4, "deadline exceeded")
    NOT_FOUND = (5, "not found")
    ALREADY_EXISTS = (6, "already exists")
    PERMISSION_DENIED = (7, "permission denied")
    RESOURCE_EXHAUSTED = (8, "resource exhausted")
    FAILED_PRECONDITION = (9, "failed precondition")
    ABORTED = (10, "aborted")
    OUT_OF_RANGE = (11, "out of range")
    UNIMPLEMENTED = (12, "unimplemented")
    INTERNAL = (13, "internal")
    UNAVAILABLE = (14, "unavailable")
    DATA_LOSS = (15, "data loss")
    UNAUTHENTICATED = (16, "unauthenticated")

    @property
    def number(self) -> int:
        return self.value[0]

    @classmethod
    def from_number(cls, number: int) -> "StatusCode":
        """The code for a wire number; anything outside 0-16 is UNKNOWN."""
        return _BY_NUMBER.get(number, cls.UNKNOWN)


_BY_NUMBER = {c.value[0]: c for c in StatusCode}


class RpcError(Exception):
    """Raised by a call that did not end OK.

    Like ``grpc.RpcError`` raised by grpcio, it is also the call's outcome:
    ``code()``, ``details()``, ``initial_metadata()``, ``trailing_metadata()``.
    """

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        trailing_metadata: MetadataType = (),
        initial_metadata: MetadataType = (),
        method: str = "",
    ) -> None:
        super().__init__(code, details)
        self._code = code
        self._details = details
        self._trailing = tuple(trailing_metadata)
        self._initial = tuple(initial_metadata)
        self._method = method

    def code(self) -> StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> MetadataType:
        return self._trailing

    def initial_metadata(self) -> MetadataType:
        return self._initial

    def __str__(self) -> str:
        where = f" in {self._method}" if self._method else ""
        return f"{self._code.name}{where}: {self._details}" if self._details else f"{self._code.name}{where}"

    def __repr__(self) -> str:
        return f"<RpcError code={self._code.name} details={self._details!r}>"


class AbortError(Exception):
    """Raised inside a handler by ``context.abort()``; ends the call with its status."""

    def __init__(self, code: StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


_KEY_RE = re.compile(r"^[a-z0-9_.-]+$")


_PRINTABLE_ASCII = re.compile(rb"^[\x20-\x7e]*$")


def is_binary_key(key: str) -> bool:
    return key.endswith("-bin")


def normalize_metadata(metadata: Optional[Sequence[Tuple[str, object]]], *, reserved_ok: bool = False) -> WireMetadata:
    """Validates metadata to be sent and turns it into its wire form (bytes values).

    grpcio's rules: keys are lowercase ``[a-z0-9_.-]+`` (PROTOCOL.md §8); under a
    key ending in ``-bin`` the value must be bytes (any bytes); under any other
    key it may be str or bytes but must be printable ASCII (0x20-0x7E).
    Raises RpcError(INVALID_ARGUMENT) naming the bad entry (where grpcio raises
    ValueError "metadata was invalid", or TypeError for a str under a -bin key).
    """
    if not metadata:
        return ()
    out = []
    for item in metadata:
        try:
            key, value = item
        except (TypeError, ValueError):
            raise RpcError(StatusCode.INVALID_ARGUMENT, f"metadata entry {item!r} is not a (key, value) pair") from None
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise RpcError(StatusCode.INVALID_ARGUMENT, f"invalid metadata key {key!r}: keys are lowercase [a-z0-9_.-]+")
        if not reserved_ok and key.startswith("ipcrpc-"):
            raise RpcError(StatusCode.INVALID_ARGUMENT, f"metadata key {key!r}: keys starting with 'ipcrpc-' are reserved")
        binary = is_binary_key(key)
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value)
        elif isinstance(value, str) and not binary:
            try:
                value = value.encode("ascii")
            except UnicodeEncodeError:
                value = b"\x80"  # fails the printable check below
        elif isinstance(value, str):
            raise RpcError(StatusCode.INVALID_ARGUMENT, f"metadata value for {key!r} must be bytes: keys ending in '-bin' carry binary values")
        else:
            raise RpcError(StatusCode.INVALID_ARGUMENT, f"metadata value for {key!r} must be str or bytes, not {type(value).__name__}")
        if not binary and not _PRINTABLE_ASCII.match(value):
            raise RpcError(StatusCode.INVALID_ARGUMENT, f"metadata value for {key!r} must be printable ASCII (0x20-0x7E); send binary values under a key ending in '-bin'")
        out.append((key, value))
    return tuple(out)


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:  # what grpcio does with a value that is not UTF-8
        return value.decode("latin-1")


def user_metadata(metadata: WireMetadata) -> MetadataType:
    """Received metadata as users get it: str values (UTF-8; Latin-1 if not valid
    UTF-8), bytes under keys ending in ``-bin`` (grpcio's behaviour)."""
    if not metadata:
        return ()
    return tuple((k, v if k.endswith("-bin") else _text(v)) for k, v in metadata)
