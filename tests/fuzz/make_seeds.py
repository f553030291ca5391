#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/ (run from the repository root).

Each seed is a small valid input of the kind the target parses (frames of
docs/PROTOCOL.md, CALL_START payloads, a negotiation, ring operations), so
the fuzzers start from the protocol instead of from nothing. Protobuf is
encoded by hand to need no Python protobuf package.
"""
import os
import struct

ROOT = "tests/fuzz/corpus"


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field_varint(num, value):
    return varint(num << 3) + varint(value)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint((num << 3) | 2) + varint(len(data)) + data


def entry(key, value):
    return field_bytes(1, key) + field_bytes(2, value)


def frame(ftype, stream, payload=b"", flags=0, length=None):
    n = len(payload) if length is None else length
    return b"IR\x01" + bytes([ftype]) + struct.pack("<IIHBB", stream, n, flags, 0, 0) + payload


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


hello = frame(1, 0, field_varint(1, 1) + field_varint(2, 4 << 20) + field_bytes(5, "ipcrpc-cpp/0.1"))
call_start = field_bytes(1, "/demo.Greeter/SayHello") + field_varint(2, 5000) + \
    field_bytes(3, entry("request-id", "42")) + field_bytes(3, entry("k", b"\x00\xff"))
unary = hello + frame(2, 1, call_start) + frame(3, 1, field_bytes(1, "ada")) + frame(4, 1)
stream = unary + frame(7, 1, struct.pack("<I", 65536)) + frame(8, 0, b"12345678") + \
    frame(8, 0, b"12345678", flags=1) + frame(99, 0, b"unknown") + frame(6, 1) + \
    frame(9, 0, field_varint(1, 7) + field_bytes(3, "bye"))

# frame_reader_fuzzer: a mode byte, then the byte stream.
for mode, name in [(0x00, "whole"), (0x01, "two-byte-chunks"), (0x35, "interrupted"),
                   (0x4c, "large-limit-recycled"), (0xc3, "recycle")]:
    write("frame_reader_fuzzer", name, bytes([mode]) + stream)
write("frame_reader_fuzzer", "oversized-message", bytes([0x02]) + hello +
      frame(3, 1, b"x" * 1500) + frame(2, 3, b"y" * 600) + frame(8, 0, b"abcdefgh"))
write("frame_reader_fuzzer", "large-message", bytes([0x4a]) + frame(3, 1, bytes(range(256)) * 400))
write("frame_reader_fuzzer", "declared-not-sent", bytes([0x40]) + frame(3, 1, b"abc", length=290000))
write("frame_reader_fuzzer", "recycled-then-smaller", bytes([0xc0]) + frame(3, 1, b"a" * 200000) +
      frame(3, 1, b"b" * 120000) + frame(8, 0, b"12345678"))
write("frame_reader_fuzzer", "bad-magic", bytes([0x00]) + b"GET / HTTP/1.1\r\n\r\n")

# call_start_fuzzer: a CALL_START (or HEADERS / TRAILERS) payload.
write("call_start_fuzzer", "call-start", call_start)
write("call_start_fuzzer", "no-metadata", field_bytes(1, "/a.B/C"))
write("call_start_fuzzer", "huge-timeout", field_bytes(1, "/a.B/C") + field_varint(2, (1 << 64) - 1))
write("call_start_fuzzer", "many-keys", field_bytes(1, "/a.B/C") + field_bytes(3, entry("a", "")) * 300)
write("call_start_fuzzer", "big-value", field_bytes(1, "/a.B/C") + field_bytes(3, entry("big", "v" * 9000)))
write("call_start_fuzzer", "empty-key", field_bytes(1, "/a.B/C") + field_bytes(3, entry("", "v")))
write("call_start_fuzzer", "trailers", field_varint(1, 8) + field_bytes(2, "too much") +
      field_bytes(3, entry("trailing-x", "1")))

# negotiation_fuzzer: a flag byte (bit 0: the server allows "unix"), then
# what the client sends on the socket.
def request(names, ring_bytes=0):
    payload = b"".join(field_bytes(1, n) for n in names)
    if ring_bytes:
        payload += field_varint(2, ring_bytes)
    return frame(11, 0, payload)

ack_ok = frame(13, 0, field_varint(1, 1))
ack_no = frame(13, 0, field_bytes(2, "could not attach"))
write("negotiation_fuzzer", "fake-accepted", b"\x00" + request(["fake"], 2) + ack_ok + hello)
write("negotiation_fuzzer", "fake-complete-fails", b"\x00" + request(["fake"], 3) + ack_ok + hello)
write("negotiation_fuzzer", "fake-nack", b"\x00" + request(["fake"]) + ack_no)
write("negotiation_fuzzer", "unix", b"\x01" + request(["shm", "unix"]) + hello + frame(2, 1, call_start))
write("negotiation_fuzzer", "unix-not-allowed", b"\x00" + request(["unix"]))
write("negotiation_fuzzer", "failing", b"\x00" + request(["failing", "fake"]))
write("negotiation_fuzzer", "none-known", b"\x01" + request(["nope", "also-nope"]))
write("negotiation_fuzzer", "hello-directly", b"\x01" + unary)
write("negotiation_fuzzer", "wrong-ack-type", b"\x00" + request(["fake"], 2) + hello)

# shm_ring_fuzzer: ops (0 write bytes, 1 read, 2 write, 3 store a control word).
def scribble(offset, data):
    return bytes([0]) + struct.pack("<I", offset)[:3] + bytes([len(data)]) + data

def store(word, value):
    return bytes([3, word]) + struct.pack("<Q", value)

RING0 = 4096  # client -> server data
msg = stream[:200]
write("shm_ring_fuzzer", "honest-client", scribble(RING0, msg[:200]) + store(0, 200) +
      bytes([1, 50]) + bytes([1, 200]) + bytes([2, 30]) + store(6, 600) + bytes([2, 250]))
write("shm_ring_fuzzer", "head-beyond-capacity", store(0, 5000) + bytes([1, 10]))
write("shm_ring_fuzzer", "tail-moved-under-reader", scribble(RING0, b"abcdef") + store(0, 6) +
      store(2, 3) + bytes([1, 10]))
write("shm_ring_fuzzer", "head-goes-back", store(0, 100) + bytes([1, 200]) + store(0, 50) + bytes([1, 5]))
write("shm_ring_fuzzer", "outgoing-tail-impossible", bytes([2, 180]) + store(6, 99999) + bytes([2, 180]))
write("shm_ring_fuzzer", "full-ring", bytes([2, 255]) * 3 + store(6, 4000) + bytes([2, 255]))
write("shm_ring_fuzzer", "magic-overwritten", store(10, 0) + bytes([1, 1]) + bytes([2, 1]))
write("shm_ring_fuzzer", "peer-closed", scribble(RING0, b"last") + store(0, 4) + store(8, 1) +
      bytes([1, 1]) + bytes([1, 1]))
write("shm_ring_fuzzer", "sleeping-words", store(1, 1) + store(3, 7) + store(5, 1) + store(7, 1) +
      bytes([2, 10]) + bytes([1, 1]))
write("shm_ring_fuzzer", "wraparound", scribble(RING0 + 4090, b"123456") + scribble(RING0, b"789") +
      store(2, 4090) + store(0, 4099) + bytes([1, 100]))
