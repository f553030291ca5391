"""A Python client against the C++ and the Python TestService, each in its own process."""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Iterator

import pytest

import ipcrpc
import test_service_pb2 as pb
import test_service_ipcrpc as svc
from google.protobuf import empty_pb2

from conftest import ServerProcess

Code = ipcrpc.StatusCode
MiB = 1024 * 1024


TRANSPORTS = ["unix", "fifo"] + [t for t in ("shm", "shm+sem", "msgq") if t in ipcrpc.available_transports()]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stub(any_server: ServerProcess, transport: str) -> Iterator[svc.TestServiceStub]:
    with ipcrpc.channel(any_server.address(transport)) as ch:
        yield svc.TestServiceStub(ch)
        assert ch.transport_name() in (None, transport)


def test_unary_echo_reaches_the_server_with_our_pid(stub: svc.TestServiceStub) -> None:
    r = stub.Echo(pb.Request(text="hi", payload=b"\x00\x01"), timeout=5)
    assert (r.text, r.payload, r.peer_pid) == ("hi", b"\x00\x01", os.getpid())


def test_metadata_travels_both_ways(stub: svc.TestServiceStub) -> None:
    # As grpcio: values come back as str, as bytes only under keys ending in -bin;
    # an ordinary key may be sent a str or printable-ASCII bytes.
    md = [("echo-a", "1"), ("echo-c", b"printable"), ("echo-b-bin", b"\xff\x00"), ("other", "x")]
    r, call = stub.Echo.with_call(pb.Request(text="m"), timeout=5, metadata=md)
    assert r.text == "m"
    assert sorted(call.initial_metadata()) == [("initial-a", "1"), ("initial-b-bin", b"\xff\x00"), ("initial-c", "printable")]
    assert sorted(call.trailing_metadata()) == [("trailing-a", "1"), ("trailing-b-bin", b"\xff\x00"), ("trailing-c", "printable")]
    assert call.code() is Code.OK


def test_error_carries_str_trailing_metadata(stub: svc.TestServiceStub) -> None:
    with pytest.raises(ipcrpc.RpcError) as e:
        stub.Echo(pb.Request(status_code=Code.ABORTED.number, status_message="no"), timeout=5, metadata=[("echo-a", "1"), ("echo-z-bin", b"\x00")])
    assert e.value.code() is Code.ABORTED
    assert sorted(e.value.trailing_metadata()) == [("trailing-a", "1"), ("trailing-z-bin", b"\x00")]
    assert sorted(e.value.initial_metadata()) == [("initial-a", "1"), ("initial-z-bin", b"\x00")]


@pytest.mark.parametrize("entry", [("k", "caf\u00e9"), ("k", b"\x01"), ("k", "tab\there"), ("k", b"\x7f"), ("k-bin", "str"), ("k", 5)])
def test_metadata_values_that_grpc_refuses_fail_before_sending(stub: svc.TestServiceStub, entry: tuple) -> None:
    # grpcio raises ValueError("metadata was invalid") or TypeError here; ipcrpc raises RpcError(INVALID_ARGUMENT).
    with pytest.raises(ipcrpc.RpcError) as e:
        stub.Echo(pb.Request(), timeout=5, metadata=[entry])
    assert e.value.code() is Code.INVALID_ARGUMENT, entry
    assert repr(entry[0]) in e.value.details()


def test_python_server_sees_str_and_bin_bytes(py_server: ServerProcess) -> None:
    with ipcrpc.channel(py_server.address()) as ch:
        r = svc.TestServiceStub(ch).Echo(pb.Request(text="report-types"), timeout=5, metadata=[("a", "x"), ("b", b"y"), ("c-bin", b"\x00")])
    assert r.text == "a=str:x,b=str:y,c-bin=bytes:b'\\x00'"


def test_server_streaming(stub: svc.TestServiceStub) -> None:
    assert [r.index for r in stub.ServerStream(pb.Request(count=5, text="s"), timeout=5)] == [0, 1, 2, 3, 4]
    assert list(stub.ServerStream(pb.Request(count=0), timeout=5)) == []


def test_server_streaming_error_after_messages(stub: svc.TestServiceStub) -> None:
    call = stub.ServerStream(pb.Request(count=2, status_code=Code.OUT_OF_RANGE.number, status_message="past the end"), timeout=5)
    got = []
    with pytest.raises(ipcrpc.RpcError) as e:
        for r in call:
            got.append(r.index)
    assert got == [0, 1]
    assert e.value.code() is Code.OUT_OF_RANGE and e.value.details() == "past the end"
    assert call.code() is Code.OUT_OF_RANGE


def test_client_streaming(stub: svc.TestServiceStub) -> None:
    r, call = stub.ClientStream.with_call(iter([pb.Request(text=t) for t in "abc"]), timeout=5)
    assert (r.text, r.index) == ("abc", 3)
    assert stub.ClientStream(iter([]), timeout=5).index == 0


def test_bidi_interleaves(stub: svc.TestServiceStub) -> None:
    q: "queue.Queue[object]" = queue.Queue()
    done = object()

    def requests() -> Iterator[pb.Request]:
        while True:
            item = q.get(timeout=5)
            if item is done:
                return
            yield item  # type: ignore[misc]

    call = stub.Bidi(requests(), timeout=5)
    for i in range(5):
        q.put(pb.Request(text=f"m{i}"))
        r = next(call)  # answered before the next request is sent
        assert (r.text, r.index) == (f"m{i}", i)
    q.put(done)
    assert list(call) == []
    assert call.code() is Code.OK


def test_bidi_error_from_server(stub: svc.TestServiceStub) -> None:
    reqs = [pb.Request(text="a"), pb.Request(status_code=Code.ABORTED.number, status_message="stop")]
    with pytest.raises(ipcrpc.RpcError) as e:
        list(stub.Bidi(iter(reqs), timeout=5))
    assert (e.value.code(), e.value.details()) == (Code.ABORTED, "stop")


def test_error_status_with_details(stub: svc.TestServiceStub) -> None:
    with pytest.raises(ipcrpc.RpcError) as e:
        stub.Echo(pb.Request(status_code=Code.NOT_FOUND.number, status_message="no such thing"), timeout=5)
    assert e.value.code() is Code.NOT_FOUND
    assert e.value.details() == "no such thing"
    assert "NOT_FOUND" in str(e.value) and "Echo" in str(e.value)


def test_unknown_method_is_unimplemented(any_server: ServerProcess) -> None:
    with ipcrpc.channel(any_server.address()) as ch:
        with pytest.raises(ipcrpc.RpcError) as e:
            ch.unary_unary("/ipcrpc.test.TestService/Nope")(b"", timeout=5)
        assert e.value.code() is Code.UNIMPLEMENTED
        with pytest.raises(ipcrpc.RpcError) as e:
            ch.unary_unary("/no.Such/Service")(b"", timeout=5)
        assert e.value.code() is Code.UNIMPLEMENTED


def test_unparsable_request_is_internal(any_server: ServerProcess) -> None:
    with ipcrpc.channel(any_server.address()) as ch:
        with pytest.raises(ipcrpc.RpcError) as e:
            ch.unary_unary("/ipcrpc.test.TestService/Echo")(b"\xff\xff\xff", timeout=5)
        assert e.value.code() is Code.INTERNAL


def test_invalid_metadata_key_fails_before_sending(stub: svc.TestServiceStub) -> None:
    for key in ("Upper", "", "sp ace", "ipcrpc-reserved"):
        with pytest.raises(ipcrpc.RpcError) as e:
            stub.Echo(pb.Request(), timeout=5, metadata=[(key, "v")])
        assert e.value.code() is Code.INVALID_ARGUMENT, key


def test_client_deadline_and_server_sees_it(stub: svc.TestServiceStub) -> None:
    t0 = time.monotonic()
    with pytest.raises(ipcrpc.RpcError) as e:
        stub.WaitForCancel(pb.Request(), timeout=0.2)
    assert e.value.code() is Code.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 9  # not the handler's 10 s
    assert _last_cancel(stub) in ("deadline", "cancelled")


def test_expired_deadline_fails_locally(stub: svc.TestServiceStub) -> None:
    with pytest.raises(ipcrpc.RpcError) as e:
        stub.Echo(pb.Request(), timeout=0)
    assert e.value.code() is Code.DEADLINE_EXCEEDED


def _last_cancel(stub: svc.TestServiceStub) -> str:
    for _ in range(500):
        text = stub.LastCancel(empty_pb2.Empty(), timeout=5).text
        if text != "waiting":
            return text
        time.sleep(0.01)
    return "waiting"


def test_cancel_reaches_the_server(any_server: ServerProcess) -> None:
    with ipcrpc.channel(any_server.address()) as ch:
        stub = svc.TestServiceStub(ch)
        # WaitForCancel through a streaming-response callable: the call object can be cancelled.
        wait = ch.unary_stream("/ipcrpc.test.TestService/WaitForCancel", pb.Request.SerializeToString, pb.Response.FromString)
        call = wait(pb.Request(), timeout=30)
        for _ in range(500):
            if stub.LastCancel(empty_pb2.Empty(), timeout=5).text == "waiting":
                break
            time.sleep(0.01)
        assert call.cancel()
        with pytest.raises(ipcrpc.RpcError) as e:
            next(call)
        assert e.value.code() is Code.CANCELLED
        assert _last_cancel(stub) == "cancelled"


def test_cancel_mid_stream(stub: svc.TestServiceStub) -> None:
    call = stub.ServerStream(pb.Request(count=1000, delay_ms=5), timeout=30)
    assert next(call).index == 0
    call.cancel()
    with pytest.raises(ipcrpc.RpcError) as e:
        for _ in call:
            pass
    assert e.value.code() is Code.CANCELLED
    assert not call.is_active()
    # the connection still works
    assert stub.Echo(pb.Request(text="after"), timeout=5).text == "after"


def test_largest_message_both_ways(stub: svc.TestServiceStub) -> None:
    # A Request whose serialized size is exactly 4 MiB: 1 tag byte + 4 length bytes + payload.
    payload = os.urandom(4 * MiB - 5)
    req = pb.Request(payload=payload)
    assert req.ByteSize() == 4 * MiB
    with pytest.raises(ipcrpc.RpcError) as e:
        stub.Echo(req, timeout=10)  # the Response (same payload + peer_pid) is 4 MiB + a few bytes
    assert e.value.code() is Code.RESOURCE_EXHAUSTED
    r = stub.Echo(pb.Request(payload=payload[:-16]), timeout=10)
    assert r.payload == payload[:-16]


def test_too_large_request_fails_locally(stub: svc.TestServiceStub) -> None:
    with pytest.raises(ipcrpc.RpcError) as e:
        stub.Echo(pb.Request(payload=b"x" * (4 * MiB + 1)), timeout=5)
    assert e.value.code() is Code.RESOURCE_EXHAUSTED
    assert "exceeds" in e.value.details()
    assert stub.Echo(pb.Request(text="ok"), timeout=5).text == "ok"


def test_response_over_our_receive_limit(any_server: ServerProcess) -> None:
    with ipcrpc.channel(any_server.address(), max_receive_message_bytes=1000) as ch:
        stub = svc.TestServiceStub(ch)
        with pytest.raises(ipcrpc.RpcError) as e:
            stub.Echo(pb.Request(payload=b"x" * 2000), timeout=5)
        assert e.value.code() is Code.RESOURCE_EXHAUSTED
        assert stub.Echo(pb.Request(text="small"), timeout=5).text == "small"


def test_flow_control_server_respects_our_window(any_server: ServerProcess) -> None:
    window = 256 * 1024
    with ipcrpc.channel(any_server.address(), stream_window_bytes=window) as ch:
        stub = svc.TestServiceStub(ch)
        chunk = b"y" * (64 * 1024)
        call = stub.ServerStream(pb.Request(count=64, payload=chunk), timeout=30)  # 4 MiB in all
        first = next(call)
        ch._conn.read_for(0.5)  # read what arrives, consume nothing: the server must stop at the window
        buffered = sum(len(p) for p in call._stream.inbox)
        assert buffered <= window + len(chunk) + 64
        assert buffered >= window // 2  # it did send up to roughly the window
        assert [first.index] + [r.index for r in call] == list(range(64))


def test_flow_control_client_stream_needs_credit(stub: svc.TestServiceStub) -> None:
    # 6 MiB of requests: more than the server's 1 MiB window, so CREDIT must flow.
    reqs = (pb.Request(text="z", payload=b"p" * (256 * 1024)) for _ in range(24))
    r = stub.ClientStream(reqs, timeout=30)
    assert (r.index, r.text) == (24, "z" * 24)


def test_many_threads_share_a_channel(stub: svc.TestServiceStub) -> None:
    errors = []

    def work(i: int) -> None:
        try:
            for j in range(30):
                assert stub.Echo(pb.Request(text=f"{i}-{j}"), timeout=10).text == f"{i}-{j}"
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors


def test_channel_close_ends_calls_and_fds(any_server: ServerProcess, transport: str) -> None:
    before = len(os.listdir("/proc/self/fd"))
    maps_before = open("/proc/self/maps").read().count("memfd:ipcrpc")
    ch = ipcrpc.channel(any_server.address(transport))
    stub = svc.TestServiceStub(ch)
    call = stub.ServerStream(pb.Request(count=1000, delay_ms=5), timeout=30)
    next(call)
    ch.close()
    with pytest.raises(ipcrpc.RpcError) as e:
        list(call)
    assert e.value.code() in (Code.UNAVAILABLE, Code.CANCELLED)
    assert len(os.listdir("/proc/self/fd")) == before
    import gc

    gc.collect()
    assert open("/proc/self/maps").read().count("memfd:ipcrpc") == maps_before  # the shm mapping is gone


@pytest.mark.parametrize("start", ["cpp", "python"])
def test_server_killed_gives_unavailable_fast(start: str, transport: str) -> None:
    if True:
        from conftest import start_cpp_server, start_py_server, _finish

        server = start_cpp_server() if start == "cpp" else start_py_server()
        try:
            with ipcrpc.channel(server.address(transport)) as ch:
                stub = svc.TestServiceStub(ch)
                stub.Echo(pb.Request(), timeout=5)
                result: "queue.Queue[object]" = queue.Queue()

                def blocked() -> None:
                    try:
                        stub.WaitForCancel(pb.Request(), timeout=60)
                        result.put(None)
                    except ipcrpc.RpcError as e:
                        result.put(e)

                threading.Thread(target=blocked, daemon=True).start()
                time.sleep(0.2)
                t0 = time.monotonic()
                server.kill9()
                err = result.get(timeout=10)  # a hang would fail here, not wait for 60 s
                assert isinstance(err, ipcrpc.RpcError) and err.code() is Code.UNAVAILABLE, (start, err)
                assert time.monotonic() - t0 < 10
                # later calls: UNAVAILABLE too (nobody listens any more)
                with pytest.raises(ipcrpc.RpcError) as e:
                    stub.Echo(pb.Request(), timeout=5)
                assert e.value.code() is Code.UNAVAILABLE
        finally:
            _finish(server)


def test_no_server_is_unavailable(tmp_path: "os.PathLike[str]") -> None:
    with ipcrpc.channel(f"unix:{tmp_path}/nobody.sock") as ch:
        with pytest.raises(ipcrpc.RpcError) as e:
            ch.unary_unary("/a.B/C")(b"", timeout=5)
        assert e.value.code() is Code.UNAVAILABLE
        assert "nobody.sock" in e.value.details()


def test_bad_addresses() -> None:
    for bad in ("nocolon", "tcp:/x", "unix:", "unix:@"):
        with pytest.raises(ipcrpc.RpcError) as e:
            ipcrpc.channel(bad)
        assert e.value.code() is Code.INVALID_ARGUMENT, bad


def test_python_server_limits(tmp_path: "os.PathLike[str]") -> None:
    # max_concurrent_streams (announced in HELLO, enforced per connection) and
    # maximum_concurrent_rpcs (whole server): RESOURCE_EXHAUSTED beyond them.
    import test_service_ipcrpc
    from py_test_service import TestService

    for kwargs in ({"max_concurrent_streams": 2}, {"maximum_concurrent_rpcs": 2}):
        server = ipcrpc.server(max_workers=8, **kwargs)
        test_service_ipcrpc.add_TestServiceServicer_to_server(TestService(), server)
        server.add_listening_address(f"unix:{tmp_path}/limits.sock")
        server.start()
        try:
            with ipcrpc.channel(f"unix:{tmp_path}/limits.sock") as ch:
                stub = svc.TestServiceStub(ch)
                slow = [stub.ServerStream(pb.Request(count=1, delay_ms=2000), timeout=10) for _ in range(2)]
                time.sleep(0.2)
                if "max_concurrent_streams" in kwargs:
                    # the client knows the server's limit from its HELLO and refuses locally
                    with pytest.raises(ipcrpc.RpcError) as e:
                        stub.Echo(pb.Request(), timeout=5)
                else:
                    with pytest.raises(ipcrpc.RpcError) as e:
                        stub.Echo(pb.Request(), timeout=5)
                assert e.value.code() is Code.RESOURCE_EXHAUSTED, kwargs
                for c in slow:
                    c.cancel()
        finally:
            server.stop(None).wait(5)


def test_future_cancel_and_result(stub: svc.TestServiceStub) -> None:
    f = stub.Echo.future(pb.Request(text="f"), timeout=5)
    assert f.result(timeout=5).text == "f" and f.done() and f.code() is Code.OK
    f = stub.WaitForCancel.future(pb.Request(), timeout=30)
    with pytest.raises(TimeoutError):
        f.result(timeout=0.05)
    seen: list = []
    f.add_done_callback(lambda fut: seen.append(fut.exception().code()))
    assert f.cancel()
    with pytest.raises(ipcrpc.RpcError) as e:
        f.result(timeout=5)
    assert e.value.code() is Code.CANCELLED and f.cancelled()
    for _ in range(100):
        if seen:
            break
        time.sleep(0.01)
    assert seen == [Code.CANCELLED]
    assert stub.ClientStream.future(iter([pb.Request(text="a")]), timeout=5).result(5).text == "a"


def test_client_killed_cancels_the_call_on_the_server(any_server: ServerProcess, transport: str) -> None:
    # A client process that dies (SIGKILL: nothing sent) mid-call: the server
    # must see the call cancelled (through the socket, on every transport).
    import signal
    import subprocess
    import sys

    from conftest import child_env

    code = f"""
import sys, ipcrpc, test_service_pb2 as pb, test_service_ipcrpc as svc
ch = ipcrpc.channel({any_server.address(transport)!r})
stub = svc.TestServiceStub(ch)
stub.Echo(pb.Request(), timeout=5)
print("CALLING", flush=True)
stub.WaitForCancel(pb.Request(), timeout=60)
"""
    with ipcrpc.channel(any_server.address()) as ch:
        stub = svc.TestServiceStub(ch)
        _last_cancel(stub)  # an earlier WaitForCancel has finished
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=child_env())
        try:
            assert p.stdout is not None and p.stdout.readline().strip() == "CALLING"
            for _ in range(500):
                if stub.LastCancel(empty_pb2.Empty(), timeout=5).text == "waiting":
                    break
                time.sleep(0.01)
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            assert _last_cancel(stub) == "cancelled"
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()


def test_threads_mix_streams_and_unary_on_one_channel(stub: svc.TestServiceStub) -> None:
    # The sync client has no reader thread: whichever caller waits reads for
    # everyone. Streams that are read slowly, unary calls and client streams
    # from several threads must all finish, whoever holds the reader role.
    errors: list = []

    def streamer(i: int) -> None:
        try:
            n = 0
            for r in stub.ServerStream(pb.Request(count=40, payload=b"s" * 2048), timeout=30):
                n += 1
                if n % 10 == 0:
                    time.sleep(0.005)  # a slow reader: the others keep going
            assert n == 40
        except Exception as e:  # reported below
            errors.append(("stream", i, e))

    def unary(i: int) -> None:
        try:
            for j in range(40):
                assert stub.Echo(pb.Request(text=f"{i}.{j}"), timeout=30).text == f"{i}.{j}"
        except Exception as e:
            errors.append(("unary", i, e))

    def client_stream(i: int) -> None:
        try:
            r = stub.ClientStream(iter([pb.Request(text="c")] * 30), timeout=30)
            assert r.index == 30
        except Exception as e:
            errors.append(("client_stream", i, e))

    threads = [threading.Thread(target=f, args=(i,)) for i in range(3) for f in (streamer, unary, client_stream)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
