"""The protobuf payloads of the control frames (PROTOCOL.md §3 and §12).

Encoded and decoded by hand with the proto3 binary rules (varints and
length-delimited fields) so the framing layer needs no generated code and
stays an implementation of the document.  Unknown fields are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ._frame import ProtocolError

Metadata = Tuple[Tuple[str, bytes], ...]

# -- primitive encoding ------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int32/int64 negatives are ten-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _uint(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value) if value else b""


def _bytes(number: int, value: bytes) -> bytes:
    return _key(number, 2) + _varint(len(value)) + value if value else b""


def _sub(number: int, value: bytes) -> bytes:
    # A present sub-message is written even when empty.
    return _key(number, 2) + _varint(len(value)) + value


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated varint in control payload")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtocolError("varint too long in control payload")


def _fields(data: bytes) -> Dict[int, List[object]]:
    """Parses a message into {field number: [values]}; ints or bytes."""
    out: Dict[int, List[object]] = {}
    pos = 0
    n = len(data)
    while pos < n:
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtocolError("field number 0 in control payload")
        value: object
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 1:
            if pos + 8 > n:
                raise ProtocolError("truncated fixed64 in control payload")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > n:
                raise ProtocolError("truncated field in control payload")
            value = bytes(data[pos : pos + length])
            pos += length
        elif wire_type == 5:
            if pos + 4 > n:
                raise ProtocolError("truncated fixed32 in control payload")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            raise ProtocolError(f"unsupported wire type {wire_type} in control payload")
        out.setdefault(number, []).append(value)
    return out


def _last_int(f: Dict[int, List[object]], number: int, bits: int = 64, signed: bool = False) -> int:
    values = f.get(number)
    if not values:
        return 0
    v = values[-1]
    if not isinstance(v, int):
        raise ProtocolError(f"field {number}: expected a varint")
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def _last_bytes(f: Dict[int, List[object]], number: int) -> bytes:
    values = f.get(number)
    if not values:
        return b""
    v = values[-1]
    if not isinstance(v, bytes):
        raise ProtocolError(f"field {number}: expected length-delimited bytes")
    return v


def _last_str(f: Dict[int, List[object]], number: int) -> str:
    try:
        return _last_bytes(f, number).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"field {number}: invalid UTF-8") from e


def _all_bytes(f: Dict[int, List[object]], number: int) -> List[bytes]:
    out = []
    for v in f.get(number, []):
        if not isinstance(v, bytes):
            raise ProtocolError(f"field {number}: expected length-delimited bytes")
        out.append(v)
    return out


# -- metadata ----------------------------------------------------------------


def encode_metadata(number: int, metadata: Sequence[Tuple[str, bytes]]) -> bytes:
    out = bytearray()
    for k, v in metadata:
        out += _sub(number, _bytes(1, k.encode("ascii")) + _bytes(2, v))
    return bytes(out)


def decode_metadata(f: Dict[int, List[object]], number: int) -> Metadata:
    out = []
    for raw in _all_bytes(f, number):
        e = _fields(raw)
        out.append((_last_str(e, 1), _last_bytes(e, 2)))
    return tuple(out)


# -- messages ----------------------------------------------------------------


@dataclass
class Hello:
    protocol_version: int = 0
    max_message_size: int = 0
    initial_stream_window: int = 0
    max_concurrent_streams: int = 0
    agent: str = ""
    accept_compression: int = 0  # bit N: algorithm id N (the Python package lists none)
    max_fds_per_message: int = 0  # descriptors accepted per MESSAGE (§10)

    def encode(self) -> bytes:
        return (
            _uint(1, self.protocol_version)
            + _uint(2, self.max_message_size)
            + _uint(3, self.initial_stream_window)
            + _uint(4, self.max_concurrent_streams)
            + _bytes(5, self.agent.encode())
            + _uint(6, self.accept_compression)
            + _uint(7, self.max_fds_per_message)
        )

    @classmethod
    def decode(cls, data: bytes) -> "Hello":
        f = _fields(data)
        return cls(_last_int(f, 1, 32), _last_int(f, 2, 32), _last_int(f, 3, 32), _last_int(f, 4, 32), _last_str(f, 5),
                   _last_int(f, 6, 32), _last_int(f, 7, 32))


@dataclass
class CallStart:
    method: str = ""
    timeout_micros: int = 0
    metadata: Metadata = ()

    def encode(self) -> bytes:
        return _bytes(1, self.method.encode()) + _uint(2, self.timeout_micros) + encode_metadata(3, self.metadata)

    @classmethod
    def decode(cls, data: bytes) -> "CallStart":
        f = _fields(data)
        return cls(_last_str(f, 1), _last_int(f, 2, 64), decode_metadata(f, 3))


def timeout_field(timeout_micros: int) -> bytes:
    """CallStart's timeout_micros field alone: appended to an encoded CallStart
    without it (fields may come in any order), as the client's hot path does."""
    return _uint(2, timeout_micros)


@dataclass
class Headers:
    metadata: Metadata = ()

    def encode(self) -> bytes:
        return encode_metadata(1, self.metadata)

    @classmethod
    def decode(cls, data: bytes) -> "Headers":
        return cls(decode_metadata(_fields(data), 1))


@dataclass
class Trailers:
    code: int = 0
    message: str = ""
    metadata: Metadata = ()

    def encode(self) -> bytes:
        return _uint(1, self.code) + _bytes(2, self.message.encode()) + encode_metadata(3, self.metadata)

    @classmethod
    def decode(cls, data: bytes) -> "Trailers":
        f = _fields(data)
        return cls(_last_int(f, 1, 32, signed=True), _last_str(f, 2), decode_metadata(f, 3))


@dataclass
class GoAway:
    last_stream_id: int = 0
    code: int = 0
    reason: str = ""

    def encode(self) -> bytes:
        return _uint(1, self.last_stream_id) + _uint(2, self.code) + _bytes(3, self.reason.encode())

    @classmethod
    def decode(cls, data: bytes) -> "GoAway":
        f = _fields(data)
        return cls(_last_int(f, 1, 32), _last_int(f, 2, 32, signed=True), _last_str(f, 3))


@dataclass
class TransportRequest:
    transports: List[str] = field(default_factory=list)
    ring_bytes: int = 0

    def encode(self) -> bytes:
        out = b"".join(_sub(1, t.encode()) for t in self.transports)
        return out + _uint(2, self.ring_bytes)

    @classmethod
    def decode(cls, data: bytes) -> "TransportRequest":
        f = _fields(data)
        try:
            names = [b.decode() for b in _all_bytes(f, 1)]
        except UnicodeDecodeError as e:
            raise ProtocolError("transport name: invalid UTF-8") from e
        return cls(names, _last_int(f, 2, 64))


@dataclass
class FifoParams:
    client_to_server_path: str = ""
    server_to_client_path: str = ""


@dataclass
class ShmParams:
    ring_bytes: int = 0
    wake: int = 0  # 1 FUTEX, 2 SEMAPHORE


@dataclass
class MsgqParams:
    client_to_server_id: int = 0
    server_to_client_id: int = 0
    max_fragment_bytes: int = 0


@dataclass
class TransportOffer:
    transport: str = ""
    error: str = ""
    fifo: Optional[FifoParams] = None
    shm: Optional[ShmParams] = None
    msgq: Optional[MsgqParams] = None

    def encode(self) -> bytes:
        out = _bytes(1, self.transport.encode()) + _bytes(2, self.error.encode())
        if self.fifo is not None:
            out += _sub(3, _bytes(1, self.fifo.client_to_server_path.encode()) + _bytes(2, self.fifo.server_to_client_path.encode()))
        if self.shm is not None:
            out += _sub(4, _uint(1, self.shm.ring_bytes) + _uint(2, self.shm.wake))
        if self.msgq is not None:
            m = self.msgq
            out += _sub(5, _uint(1, m.client_to_server_id) + _uint(2, m.server_to_client_id) + _uint(3, m.max_fragment_bytes))
        return out

    @classmethod
    def decode(cls, data: bytes) -> "TransportOffer":
        f = _fields(data)
        offer = cls(_last_str(f, 1), _last_str(f, 2))
        if 3 in f:
            g = _fields(_last_bytes(f, 3))
            offer.fifo = FifoParams(_last_str(g, 1), _last_str(g, 2))
        if 4 in f:
            g = _fields(_last_bytes(f, 4))
            offer.shm = ShmParams(_last_int(g, 1, 64), _last_int(g, 2, 32, signed=True))
        if 5 in f:
            g = _fields(_last_bytes(f, 5))
            offer.msgq = MsgqParams(_last_int(g, 1, 32, True), _last_int(g, 2, 32, True), _last_int(g, 3, 32))
        return offer


@dataclass
class TransportAck:
    ok: bool = False
    error: str = ""

    def encode(self) -> bytes:
        return _uint(1, int(self.ok)) + _bytes(2, self.error.encode())

    @classmethod
    def decode(cls, data: bytes) -> "TransportAck":
        f = _fields(data)
        return cls(bool(_last_int(f, 1)), _last_str(f, 2))
