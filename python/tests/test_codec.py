"""The frame codec and the hand-written control-payload codec.

The control payloads are checked against protoc's own Python code for
proto/ipcrpc/wire.proto and transport.proto, byte for byte, both ways."""

from __future__ import annotations

import importlib
import random
import sys
import tempfile

import pytest

from ipcrpc import _frame, _wirepb
from ipcrpc._frame import FrameDecoder, FrameType, ProtocolError
from conftest import REPO


@pytest.fixture(scope="module")
def pb():  # type: ignore[no-untyped-def]
    from ipcrpc.tools import protoc

    out = tempfile.mkdtemp(prefix="ipcrpc-pytest-wirepb-")
    assert protoc.run([f"-I{REPO}", f"--python_out={out}", str(REPO / "proto/ipcrpc/wire.proto"), str(REPO / "proto/ipcrpc/transport.proto")]) == 0
    sys.path.insert(0, out)
    try:
        wire = importlib.import_module("proto.ipcrpc.wire_pb2")
        transport = importlib.import_module("proto.ipcrpc.transport_pb2")
        yield wire, transport
    finally:
        sys.path.remove(out)
        import shutil

        shutil.rmtree(out, ignore_errors=True)


def test_header_vector_from_protocol_md() -> None:
    # PROTOCOL.md §2: CREDIT on stream 0x01020304, 4 payload bytes, flags 1, fd_count 2.
    assert _frame.encode_header(7, 0x01020304, 4, 1, 2).hex(" ") == "49 52 01 07 04 03 02 01 04 00 00 00 01 00 02 00"


def test_decoder_any_split() -> None:
    frames = [
        _frame.encode_frame(FrameType.HELLO, 0, b"abc"),
        _frame.encode_frame(FrameType.MESSAGE, 7, b"x" * 1000),
        _frame.encode_frame(FrameType.HALF_CLOSE, 7),
        _frame.encode_frame(99, 3, b"unknown type"),
    ]
    stream = b"".join(frames)
    rnd = random.Random(1)
    for _ in range(50):
        d = FrameDecoder()
        got = []
        pos = 0
        while pos < len(stream):
            n = rnd.randint(1, 40)
            got += d.feed(stream[pos : pos + n])
            pos += n
        assert [(f.type, f.stream_id, f.payload) for f in got] == [(1, 0, b"abc"), (3, 7, b"x" * 1000), (4, 7, b""), (99, 3, b"unknown type")]
        assert not d.mid_frame


def test_decoder_discards_oversized_without_buffering() -> None:
    d = FrameDecoder(max_payload=100)
    out = d.feed(_frame.encode_header(FrameType.MESSAGE, 1, 10_000))
    assert out == []
    for _ in range(10):
        out += d.feed(b"z" * 1000)
        assert d.buffered == 0
    assert len(out) == 1 and out[0].oversized and out[0].length == 10_000 and out[0].payload == b""
    assert d.feed(_frame.encode_frame(FrameType.MESSAGE, 1, b"ok"))[0].payload == b"ok"


@pytest.mark.parametrize("header", [b"IX" + bytes(14), b"xR" + bytes(14), b"IR\x02" + bytes(13), b"IR\x00" + bytes(13)])
def test_bad_magic_or_version(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(header)


def test_credit_payload_must_be_four_bytes() -> None:
    assert _frame.decode_credit(b"\x01\x00\x00\x00") == 1
    for bad in (b"", b"\x01\x00\x00", b"\x01\x00\x00\x00\x00"):
        with pytest.raises(ProtocolError):
            _frame.decode_credit(bad)


def _rand_md(rnd: random.Random) -> tuple:
    return tuple((f"k{rnd.randint(0, 9)}-x", bytes(rnd.randint(0, 255) for _ in range(rnd.randint(0, 5)))) for _ in range(rnd.randint(0, 3)))


def test_control_payloads_match_protoc(pb) -> None:  # type: ignore[no-untyped-def]
    wire, transport = pb
    rnd = random.Random(2)
    for _ in range(200):
        h = _wirepb.Hello(rnd.choice([0, 1, 7]), rnd.randint(0, 2**32 - 1), rnd.randint(0, 2**20), rnd.randint(0, 5), rnd.choice(["", "ipcrpc-python/0.1"]))
        ref = wire.Hello(protocol_version=h.protocol_version, max_message_size=h.max_message_size, initial_stream_window=h.initial_stream_window, max_concurrent_streams=h.max_concurrent_streams, agent=h.agent)
        assert h.encode() == ref.SerializeToString()
        assert _wirepb.Hello.decode(ref.SerializeToString()) == h

        md = _rand_md(rnd)
        cs = _wirepb.CallStart("/a.B/C" * rnd.randint(0, 2), rnd.choice([0, 1, 2**64 - 1]), md)
        ref = wire.CallStart(method=cs.method, timeout_micros=cs.timeout_micros, metadata=[wire.MetadataEntry(key=k, value=v) for k, v in md])
        assert cs.encode() == ref.SerializeToString()
        assert _wirepb.CallStart.decode(ref.SerializeToString()) == cs

        tr = _wirepb.Trailers(rnd.choice([0, 5, 16, -1, 2**31 - 1, -(2**31)]), rnd.choice(["", "why"]), md)
        ref = wire.Trailers(code=tr.code, message=tr.message, metadata=[wire.MetadataEntry(key=k, value=v) for k, v in md])
        assert tr.encode() == ref.SerializeToString()
        assert _wirepb.Trailers.decode(ref.SerializeToString()) == tr

        ga = _wirepb.GoAway(rnd.randint(0, 2**32 - 1), rnd.choice([0, 14, -3]), "bye")
        ref = wire.GoAway(last_stream_id=ga.last_stream_id, code=ga.code, reason=ga.reason)
        assert ga.encode() == ref.SerializeToString()
        assert _wirepb.GoAway.decode(ref.SerializeToString()) == ga

    req = _wirepb.TransportRequest(["shm", "unix"], 1 << 20)
    ref = transport.TransportRequest(transports=["shm", "unix"], ring_bytes=1 << 20)
    assert req.encode() == ref.SerializeToString()
    assert _wirepb.TransportRequest.decode(ref.SerializeToString()) == req

    offer = _wirepb.TransportOffer("shm", "", shm=_wirepb.ShmParams(1 << 20, 1))
    ref = transport.TransportOffer(transport="shm", shm=transport.ShmParams(ring_bytes=1 << 20, wake=1))
    assert offer.encode() == ref.SerializeToString()
    assert _wirepb.TransportOffer.decode(ref.SerializeToString()) == offer
    m = transport.TransportOffer(transport="msgq", msgq=transport.MsgqParams(client_to_server_id=5, server_to_client_id=6, max_fragment_bytes=8192))
    assert _wirepb.TransportOffer.decode(m.SerializeToString()).msgq == _wirepb.MsgqParams(5, 6, 8192)
    f = transport.TransportOffer(transport="fifo", fifo=transport.FifoParams(client_to_server_path="/a", server_to_client_path="/b"))
    assert _wirepb.TransportOffer.decode(f.SerializeToString()).fifo == _wirepb.FifoParams("/a", "/b")
    ack = transport.TransportAck(ok=True, error="")
    assert _wirepb.TransportAck(True).encode() == ack.SerializeToString()


def test_unknown_fields_are_skipped(pb) -> None:  # type: ignore[no-untyped-def]
    wire, _ = pb
    data = wire.Hello(protocol_version=1, agent="x").SerializeToString()
    # field 100 varint, field 101 fixed64, field 102 bytes, field 103 fixed32
    extra = bytes([0xA0, 0x06, 0x05, 0xA9, 0x06]) + bytes(8) + bytes([0xB2, 0x06, 0x02, 0x61, 0x62, 0xBD, 0x06]) + bytes(4)
    assert _wirepb.Hello.decode(data + extra) == _wirepb.Hello(1, 0, 0, 0, "x")


@pytest.mark.parametrize("bad", [b"\x0a\x05ab", b"\x08", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x0b", b"\x00\x01"])
def test_malformed_payloads_raise(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        _wirepb.CallStart.decode(bad)


def test_hot_path_helpers_agree_with_the_decoder() -> None:
    """encode_unary and split_frames (C when ipcrpc._native is built, else the
    Python fallbacks) against encode_frame and FrameDecoder, on random streams
    cut anywhere, with oversized frames and a bad header in them."""
    helpers = [(_frame._encode_unary, _frame._split_frames)]
    if _frame.split_frames is not _frame._split_frames:
        helpers.append((_frame.encode_unary, _frame.split_frames))
    rng = random.Random(7)
    for encode_unary, split_frames in helpers:
        assert encode_unary(5, b"cs", b"msg") == (_frame.encode_frame(FrameType.CALL_START, 5, b"cs") + _frame.encode_frame(FrameType.MESSAGE, 5, b"msg")
                                                  + _frame.encode_frame(FrameType.HALF_CLOSE, 5))
        for _ in range(200):
            frames = [_frame.encode_frame(rng.choice([3, 5, 7, 10, 42]), rng.randrange(1 << 32), rng.randbytes(rng.choice([0, 1, 7, 64, 300])),
                                          rng.randrange(1 << 16)) for _ in range(rng.randrange(1, 6))]
            if rng.random() < 0.2:
                frames.insert(rng.randrange(len(frames) + 1), b"XX" + frames[0][2:])  # bad magic
            data = b"".join(frames)
            cut = rng.randrange(len(data) + 1)
            tuples, used = split_frames(data[:cut], 200, 100)
            assert 0 <= used <= cut
            ref = FrameDecoder(200, 100)
            try:
                want = [f for f in ref.feed(data[:used])]
            except ProtocolError:
                raise AssertionError("split_frames consumed a malformed frame")
            assert [(f.type, f.stream_id, f.flags, f.fd_count, f.payload) for f in want] == tuples
            assert not ref.mid_frame  # it stopped on a frame boundary
            rest = data[used:cut]
            if len(rest) >= _frame.HEADER_SIZE:  # what it left is incomplete, oversized or malformed
                try:
                    more = FrameDecoder(200, 100).feed(rest)
                except ProtocolError:
                    more = []
                assert all(f.oversized for f in more[:1])
