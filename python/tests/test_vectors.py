"""The shared frame vectors (tests/protocol/vectors/frames.txt), decoded and
re-encoded by the Python codec; tests/protocol/frame_vectors_test.cc does
the same with the C++ codec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import pytest

from ipcrpc import _frame
from conftest import REPO

VECTORS = REPO / "tests" / "protocol" / "vectors" / "frames.txt"


@dataclass
class Vector:
    name: str
    about: str = ""
    max_payload: int = _frame.DEFAULT_MAX_MESSAGE
    data: bytes = b""
    split: List[int] = field(default_factory=list)
    split_every: int = 0
    frames: List[Tuple[str, int, int, int, int, bytes]] = field(default_factory=list)  # kind, type, stream, flags/len, fd, payload
    error: bool = False


def load() -> List[Vector]:
    out: List[Vector] = []
    cur: Optional[Vector] = None
    for raw in VECTORS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "vector":
            if cur is not None:
                raise ValueError(f"vector {cur.name} has no end")
            cur = Vector(rest)
        elif cur is None:
            raise ValueError(f"{raw!r} outside a vector")
        elif word == "about":
            cur.about = rest
        elif word == "max_payload":
            cur.max_payload = int(rest)
        elif word == "input":
            cur.data += bytes.fromhex(rest.replace(" ", ""))
        elif word == "split":
            if rest.startswith("every "):
                cur.split_every = int(rest.split()[1])
            else:
                cur.split = [int(x) for x in rest.split()]
        elif word == "frame":
            t, s, fl, fd, p = rest.split()
            cur.frames.append(("frame", int(t), int(s), int(fl), int(fd), b"" if p == "-" else bytes.fromhex(p)))
        elif word == "oversized":
            t, s, n = rest.split()
            cur.frames.append(("oversized", int(t), int(s), int(n), 0, b""))
        elif word == "error":
            cur.error = True
        elif word == "end":
            out.append(cur)
            cur = None
        else:
            raise ValueError(f"unknown line {raw!r}")
    return out


def chunks(v: Vector) -> List[bytes]:
    if v.split_every:
        return [v.data[i : i + v.split_every] for i in range(0, len(v.data), v.split_every)]
    out, pos = [], 0
    for n in v.split:
        out.append(v.data[pos : pos + n])
        pos += n
    out.append(v.data[pos:])
    return out


ALL = load()


def test_the_file_has_the_promised_vectors() -> None:
    names = {v.name for v in ALL}
    assert {"every_frame_type", "bad_magic", "bad_version", "oversized_message_is_discarded", "unknown_types_pass_through", "client_unary_call_byte_by_byte"} <= names
    types = {f[1] for v in ALL for f in v.frames if f[0] == "frame"}
    assert set(range(1, 14)) <= types


@pytest.mark.parametrize("v", ALL, ids=[v.name for v in ALL])
def test_vector(v: Vector) -> None:
    d = _frame.FrameDecoder(v.max_payload)
    got: List[_frame.Frame] = []
    error = False
    for c in chunks(v):
        try:
            got += d.feed(c)
        except _frame.ProtocolError:
            error = True
            break
    assert error == v.error
    expected = v.frames
    assert len(got) == len(expected)
    reencoded = b""
    for g, (kind, t, s, x, fd, payload) in zip(got, expected):
        if kind == "oversized":
            assert (g.oversized, g.type, g.stream_id, g.length, g.payload) == (True, t, s, x, b"")
        else:
            assert not g.oversized
            assert (g.type, g.stream_id, g.flags, g.fd_count, g.payload) == (t, s, x, fd, payload)
            reencoded += _frame.encode_frame(g.type, g.stream_id, g.payload, g.flags, g.fd_count)
    if not v.error and not any(f[0] == "oversized" for f in expected):
        assert reencoded == v.data  # decoding and re-encoding gives the same bytes
