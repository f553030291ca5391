"""Python grpcio (a third-party gRPC client, Debian's python3-grpcio) calls
ipcrpc's TestService (tests/e2e/test_service.proto) in other processes:

  * InProcessBridge: bridge_test_server — test_server with ServeOverGrpc;
  * GatewayUnix / GatewayShm: test_server behind ipcrpc_gateway
    --grpc_listen=127.0.0.1:0 --to=unix:... (and --to=shm:..., another
    local transport).

Every route: all four kinds, metadata both ways (incl. -bin), status code,
message and details, deadline, cancellation, an unknown method, and a slow
reader of a 256 MiB stream that must not make the bridging process buffer.

Usage: grpcio_client_test.py BRIDGE_TEST_SERVER TEST_SERVER IPCRPC_GATEWAY
Messages are encoded by hand (a few proto3 fields), so no generated code.
"""
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

BRIDGE_TEST_SERVER, TEST_SERVER, GATEWAY = sys.argv[1:4]
SERVICE = "/ipcrpc.test.TestService/"


# --- proto3 by hand: Request {1 text, 2 payload, 3 count, 4 status_code,
# 5 status_message, 6 delay_ms}; Response {1 text, 2 payload, 3 index,
# 4 peer_pid, 5 deadline_unix_micros}.
def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def request(text="", payload=b"", count=0, status_code=0, status_message="", delay_ms=0):
    out = b""
    for field, value in ((1, text.encode()), (2, payload), (5, status_message.encode())):
        if value:
            out += _varint(field << 3 | 2) + _varint(len(value)) + value
    for field, value in ((3, count), (4, status_code), (6, delay_ms)):
        if value:
            out += _varint(field << 3) + _varint(value)
    return out


def response(data):
    fields, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            fields[field], i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            fields[field], i = data[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return {"text": fields.get(1, b"").decode(), "payload": fields.get(2, b""),
            "index": fields.get(3, 0), "deadline_unix_micros": fields.get(5, 0)}


def _read_varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


class Process:
    """A child that prints READY (after NAME=VALUE lines); stopped with SIGTERM."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.values = {}
        for line in self.proc.stdout:
            for word in line.split():
                if "=" in word:
                    k, v = word.split("=", 1)
                    self.values[k] = v
            if line.startswith("READY"):
                return
        raise RuntimeError("%s exited before READY (status %s)" % (argv[0], self.proc.wait()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class Route:
    """The tests; a subclass starts the processes and sets cls.port and cls.bridging_pid."""
    processes = []

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.processes):
            p.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.channel = grpc.insecure_channel("127.0.0.1:%s" % self.port)
        self.addCleanup(self.channel.close)

    def unary(self, method):
        return self.channel.unary_unary(SERVICE + method)

    def last_cancel(self):
        return response(self.unary("LastCancel")(b"", timeout=10))["text"]

    def wait_while_last_cancel_is(self, value):
        for _ in range(500):
            seen = self.last_cancel()
            if seen != value:
                return seen
            time.sleep(0.01)
        return seen

    def test_unary_with_metadata_both_ways(self):
        raw = b"\x00\x01\xff\n"
        reply, call = self.unary("Echo").with_call(
            request(text="hi", payload=b"x" * 1000), timeout=10,
            metadata=(("echo-plain", "hello"), ("echo-raw-bin", raw)))
        r = response(reply)
        self.assertEqual(r["text"], "hi")
        self.assertEqual(len(r["payload"]), 1000)
        initial = dict(call.initial_metadata())
        trailing = dict(call.trailing_metadata())
        self.assertEqual(initial.get("initial-plain"), "hello")
        self.assertEqual(initial.get("initial-raw-bin"), raw)
        self.assertEqual(trailing.get("trailing-plain"), "hello")
        self.assertEqual(trailing.get("trailing-raw-bin"), raw)

    def test_error_code_message_and_details(self):
        details = b"\x08\x05\x12\x03why"
        with self.assertRaises(grpc.RpcError) as caught:
            self.unary("Echo")(request(status_code=5, status_message="no such thing"), timeout=10,
                               metadata=(("details-bin", details),))
        e = caught.exception
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(e.details(), "no such thing")
        self.assertEqual(dict(e.trailing_metadata()).get("grpc-status-details-bin"), details)

    def test_server_streaming(self):
        stream = self.channel.unary_stream(SERVICE + "ServerStream")(
            request(text="s", count=5), timeout=10)
        self.assertEqual([response(m)["index"] for m in stream], [0, 1, 2, 3, 4])
        self.assertEqual(stream.code(), grpc.StatusCode.OK)

    def test_client_streaming(self):
        reply = self.channel.stream_unary(SERVICE + "ClientStream")(
            iter([request(text=t) for t in "abc"]), timeout=10)
        r = response(reply)
        self.assertEqual((r["text"], r["index"]), ("abc", 3))

    def test_bidi_ping_pong(self):
        requests = queue.Queue()
        stream = self.channel.stream_stream(SERVICE + "Bidi")(iter(requests.get, None), timeout=10)
        for i in range(3):
            requests.put(request(text="m%d" % i))
            r = response(next(stream))  # each reply before the next request
            self.assertEqual((r["text"], r["index"]), ("m%d" % i, i))
        requests.put(None)
        self.assertEqual(list(stream), [])
        self.assertEqual(stream.code(), grpc.StatusCode.OK)

    def test_one_request_then_a_late_half_close(self):
        # The bridge starts the call before it knows the client is done: the
        # half-close follows on its own, after the reply.
        requests = queue.Queue()
        stream = self.channel.stream_stream(SERVICE + "Bidi")(iter(requests.get, None), timeout=10)
        requests.put(request(text="only"))
        r = response(next(stream))
        self.assertEqual((r["text"], r["index"]), ("only", 0))
        time.sleep(0.05)
        requests.put(None)
        self.assertEqual(list(stream), [])
        self.assertEqual(stream.code(), grpc.StatusCode.OK)

    def test_single_request_streams(self):
        # One request and the half-close at once: the bridge starts the ipcrpc
        # call with both, whatever the method's kind.
        reply = self.channel.stream_unary(SERVICE + "ClientStream")(
            iter([request(text="x")]), timeout=10)
        self.assertEqual((response(reply)["text"], response(reply)["index"]), ("x", 1))
        replies = list(self.channel.stream_stream(SERVICE + "Bidi")(
            iter([request(text="y")]), timeout=10))
        self.assertEqual([(response(m)["text"], response(m)["index"]) for m in replies], [("y", 0)])
        reply = self.channel.stream_unary(SERVICE + "ClientStream")(iter([]), timeout=10)
        self.assertEqual(response(reply)["index"], 0)

    def test_deadline_reaches_the_handler(self):
        before = time.time()
        r = response(self.unary("ReportDeadline")(request(), timeout=30))
        self.assertNotEqual(r["deadline_unix_micros"], 0)
        self.assertLess(abs(r["deadline_unix_micros"] / 1e6 - (before + 30)), 5)

    def test_deadline_exceeded(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.unary("WaitForCancel")(request(), timeout=0.3)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(self.wait_while_last_cancel_is("waiting"), "deadline")

    def test_cancellation_reaches_the_handler(self):
        future = self.unary("WaitForCancel").future(request(), timeout=20)
        for _ in range(1000):
            if self.last_cancel() == "waiting":
                break
            time.sleep(0.005)
        future.cancel()
        self.assertEqual(self.wait_while_last_cancel_is("waiting"), "cancelled")

    def test_unknown_method_is_unimplemented(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.unary("NoSuchMethod")(b"", timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_slow_reader_does_not_make_the_bridge_buffer(self):
        before = rss_bytes(self.bridging_pid)
        stream = self.channel.unary_stream(SERVICE + "ServerStream")(
            request(count=256, payload=b"p" * (1 << 20)), timeout=120)
        next(stream)
        time.sleep(1)  # the handler keeps writing meanwhile
        stalled = rss_bytes(self.bridging_pid)
        print("\n  bridging process RSS %.1f MiB before, %.1f MiB with the reader stalled; this process %.1f MiB"
              % (before / 2**20, stalled / 2**20, rss_bytes(os.getpid()) / 2**20), file=sys.stderr)
        n = 1 + sum(1 for _ in stream)
        self.assertEqual(n, 256)
        self.assertLess(stalled - before, 64 << 20,
                        "bridging process RSS grew from %d to %d" % (before, stalled))


class InProcessBridge(Route, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ipcrpc-grpcio-", dir="/tmp")
        server = Process([BRIDGE_TEST_SERVER, "unix:%s/s.sock" % cls.dir,
                          "--grpc_listen=127.0.0.1:0"])
        cls.processes = [server]
        cls.port = server.values["GRPC_PORT"]
        cls.bridging_pid = server.proc.pid


def gateway_route(transport):
    class Gateway(Route, unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            cls.dir = tempfile.mkdtemp(prefix="ipcrpc-grpcio-", dir="/tmp")
            server = Process([TEST_SERVER, "unix:%s/s.sock" % cls.dir])
            cls.processes = [server]
            gateway = Process([GATEWAY, "--grpc_listen=127.0.0.1:0",
                               "--to=%s:%s/s.sock" % (transport, cls.dir)])
            cls.processes.append(gateway)
            cls.port = gateway.values["grpc_port"]
            cls.bridging_pid = gateway.proc.pid
    Gateway.__name__ = Gateway.__qualname__ = "Gateway_" + transport
    return Gateway


GatewayUnix = gateway_route("unix")
GatewayShm = gateway_route("shm")

if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
