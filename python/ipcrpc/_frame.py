"""The frame layer of the ipcrpc wire protocol (docs/PROTOCOL.md §1-2, §7).

A frame is a 16-byte little-endian header followed by ``length`` payload
bytes.  :class:`FrameDecoder` turns an arbitrary split byte stream back into
frames; :func:`encode_frame` builds one.  Pure functions and a decoder object
owned by one reader; no locking here.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Protocol, Tuple

HEADER_SIZE = 16
MAGIC = b"IR"
VERSION = 1
FLAG_PING_ACK = 0x0001
# Default limits from PROTOCOL.md §3 (Hello fields with value 0).
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
DEFAULT_STREAM_WINDOW = 1024 * 1024

_HEADER = struct.Struct("<2sBBIIHBB")
assert _HEADER.size == HEADER_SIZE


class FrameType(enum.IntEnum):
    HELLO = 1
    CALL_START = 2
    MESSAGE = 3
    HALF_CLOSE = 4
    TRAILERS = 5
    CANCEL = 6
    CREDIT = 7
    PING = 8
    GOAWAY = 9
    HEADERS = 10
    TRANSPORT_REQUEST = 11
    TRANSPORT_OFFER = 12
    TRANSPORT_ACK = 13


KNOWN_TYPES = frozenset(int(t) for t in FrameType)


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must be closed."""


@dataclass
class Frame:
    """One decoded frame.  ``type`` is an int so unknown types survive."""

    type: int
    stream_id: int
    payload: bytes
    flags: int = 0
    fd_count: int = 0
    # True when the payload was larger than the decoder's limit: it was read
    # and dropped (``payload`` is empty) and ``length`` says how big it was.
    oversized: bool = False
    length: int = 0
    # The fd_count descriptors that came with a MESSAGE (an ipcrpc._fds.FdBatch,
    # which closes them unless released), or None.
    fds: Optional[Any] = None
    # The frame declared descriptors this process could not receive (out of
    # descriptors: the kernel truncated the batch): its stream fails.
    fds_lost: bool = False


def encode_header(type_: int, stream_id: int, length: int, flags: int = 0, fd_count: int = 0) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, type_, stream_id, length, flags, fd_count, 0)


def encode_frame(type_: int, stream_id: int, payload: bytes = b"", flags: int = 0, fd_count: int = 0) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, type_, stream_id, len(payload), flags, fd_count, 0) + payload


def _encode_unary(stream_id: int, call_start: bytes, message: bytes) -> bytes:
    return encode_frame(FrameType.CALL_START, stream_id, call_start) + encode_frame(FrameType.MESSAGE, stream_id, message) + encode_frame(FrameType.HALF_CLOSE, stream_id)


def _split_frames(data: bytes, max_message: int, max_control: int) -> Tuple[List[Tuple[int, int, int, int, bytes]], int]:
    frames: List[Tuple[int, int, int, int, bytes]] = []
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        magic, version, type_, stream_id, length, flags, fd_count, _ = _HEADER.unpack_from(data, pos)
        if magic != MAGIC or version != VERSION or length > (max_message if type_ == FrameType.MESSAGE else max_control) or len(data) - pos - HEADER_SIZE < length:
            break
        frames.append((type_, stream_id, flags, fd_count, bytes(data[pos + HEADER_SIZE : pos + HEADER_SIZE + length])))
        pos += HEADER_SIZE + length
    return frames, pos


# The client's hot path (ipcrpc._native when built, the same in Python otherwise):
# encode_unary(stream_id, call_start, message) -> CALL_START + MESSAGE + HALF_CLOSE;
# split_frames(data, max_message, max_control) -> ([(type, stream_id, flags, fd_count, payload)], consumed),
# stopping before an incomplete, oversized or malformed frame (FrameDecoder takes the rest).
try:
    from ._native import encode_unary, split_frames
except ImportError:  # built without the C extension
    encode_unary, split_frames = _encode_unary, _split_frames


def decode_header(data: bytes) -> Frame:
    """Parses 16 header bytes; raises ProtocolError on bad magic or version."""
    magic, version, type_, stream_id, length, flags, fd_count, _ = _HEADER.unpack(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {magic.hex()} (expected 4952)")
    if version != VERSION:
        raise ProtocolError(f"unsupported frame version {version} (expected {VERSION})")
    return Frame(type_, stream_id, b"", flags, fd_count, False, length)


def encode_credit(n: int) -> bytes:
    return struct.pack("<I", n)


def decode_credit(payload: bytes) -> int:
    if len(payload) != 4:
        raise ProtocolError(f"CREDIT payload of {len(payload)} bytes (must be 4)")
    return struct.unpack("<I", payload)[0]


class FdSource(Protocol):
    """Where a decoder gets the descriptors a header declares (a Transport)."""

    def claim_fds(self, header_offset: int, count: int) -> Any: ...

    def check_undeclared(self, next_header_offset: int) -> None: ...


class FrameDecoder:
    """Incremental decoder: feed() bytes as they arrive, get whole frames.

    ``MESSAGE`` payloads larger than ``max_payload``, and those of other frames
    larger than ``max_control`` (default: ``max_payload``), are discarded as
    they stream past (never buffered) and reported with ``oversized=True``.
    Memory is held only for bytes that arrived, never for a declared length.

    Without an ``fd_source`` it is a codec: fd_count is decoded and reported,
    no descriptors are looked for.  With an ``fd_source`` (the transport the bytes came from, fed every byte
    it received, in order), a header that declares descriptors takes them
    from it (PROTOCOL.md §10): only a MESSAGE may, at most ``max_fds`` (what
    this side announced); anything else is a ProtocolError, and the
    descriptors involved are closed.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_MESSAGE, max_control: Optional[int] = None,
                 fd_source: Optional[FdSource] = None, max_fds: int = 0) -> None:
        self.max_payload = max_payload
        self.max_control = max_payload if max_control is None else max_control
        self.fd_source = fd_source
        self.max_fds = max_fds
        self._buf = bytearray()
        self._pending: Optional[Frame] = None  # header read, payload not complete
        self._skip = 0  # bytes of an oversized payload still to drop
        self.offset = 0  # stream offset of the first byte in _buf

    def advance(self, n: int) -> None:
        """Counts ``n`` bytes of whole frames decoded elsewhere (split_frames) while
        this decoder held nothing."""
        self.offset += n
        if self.fd_source is not None:
            self.fd_source.check_undeclared(self.offset)

    def _claim(self, frame: Frame, header_offset: int) -> None:
        src = self.fd_source
        if src is None:
            return  # codec mode (conformance vectors, recorded streams): fd_count is reported, nothing is matched
        batch = src.claim_fds(header_offset, frame.fd_count)
        if frame.type != FrameType.MESSAGE or frame.fd_count > self.max_fds:
            batch.close()
            raise ProtocolError(f"a frame of type {frame.type} carries {frame.fd_count} file descriptors; this side accepts {self.max_fds} per MESSAGE and none on other frames; they were closed")
        if batch.truncated and len(batch) < frame.fd_count:
            batch.close()  # out of descriptors here: only this frame's stream fails
            frame.fds_lost = True
            return
        if len(batch) != frame.fd_count:
            n = len(batch)
            batch.close()
            raise ProtocolError(f"a frame declares {frame.fd_count} file descriptors, {n} came with it; they were closed")
        frame.fds = batch

    @property
    def buffered(self) -> int:
        """Bytes held that do not form a whole frame yet."""
        return len(self._buf)

    @property
    def mid_frame(self) -> bool:
        return self._pending is not None or bool(self._buf)

    def feed(self, data: bytes) -> List[Frame]:
        self._buf += data
        return list(self._drain())

    def _drain(self) -> Iterator[Frame]:
        buf = self._buf
        pos = 0
        try:
            while True:
                if self._pending is None:
                    if len(buf) - pos < HEADER_SIZE:
                        break
                    frame = decode_header(bytes(buf[pos : pos + HEADER_SIZE]))
                    if frame.fd_count:
                        self._claim(frame, self.offset + pos)
                    pos += HEADER_SIZE
                    if frame.length > (self.max_payload if frame.type == FrameType.MESSAGE else self.max_control):
                        frame.oversized = True
                        self._skip = frame.length
                    self._pending = frame
                frame = self._pending
                if frame.oversized:
                    take = min(self._skip, len(buf) - pos)
                    pos += take
                    self._skip -= take
                    if self._skip:
                        break
                else:
                    if len(buf) - pos < frame.length:
                        break
                    frame.payload = bytes(buf[pos : pos + frame.length])
                    pos += frame.length
                self._pending = None
                if self.fd_source is not None:
                    self.fd_source.check_undeclared(self.offset + pos)
                yield frame
        finally:
            del buf[:pos]
            self.offset += pos
