"""IPCRPC_CONFIG / IPCRPC_TRANSPORT, resolved as in C++ (runtime/config.h)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

import ipcrpc
import ipcrpc.aio
from ipcrpc import _config
import test_service_pb2 as pb
import test_service_ipcrpc as svc

from conftest import REPO, ServerProcess

Code = ipcrpc.StatusCode


def test_checked_in_config_pb2_matches_the_proto(tmp_path: Path) -> None:
    subprocess.run(["protoc", f"-I{REPO}/proto", f"--python_out={tmp_path}", f"{REPO}/proto/ipcrpc/config.proto"], check=True)
    fresh = (tmp_path / "ipcrpc" / "config_pb2.py").read_text()
    assert fresh == (REPO / "python" / "ipcrpc" / "_proto" / "config_pb2.py").read_text(), "regenerate python/ipcrpc/_proto/config_pb2.py"


def _write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "ipcrpc.textproto"
    p.write_text(text)
    return str(p)


def test_named_target_and_precedence(tmp_path: Path, cpp_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPCRPC_TRANSPORT", raising=False)
    monkeypatch.setenv("IPCRPC_CONFIG", _write(tmp_path, f'''
        channel {{ target: "test" address: "unix:{cpp_server.sock}" transport: "fifo" max_receive_message_bytes: 1000 }}
        channel {{ target: "*" transport: "unix" }}
    '''))
    with ipcrpc.channel("test") as ch:
        stub = svc.TestServiceStub(ch)
        assert stub.Echo(pb.Request(text="by name"), timeout=5).text == "by name"
        assert ch.transport_name() == "fifo"
        with pytest.raises(ipcrpc.RpcError) as e:  # the entry's receive limit applies
            stub.Echo(pb.Request(payload=b"x" * 2000), timeout=5)
        assert e.value.code() is Code.RESOURCE_EXHAUSTED
    with ipcrpc.channel(f"fifo:{cpp_server.sock}") as ch:  # the "*" entry overrides the address
        svc.TestServiceStub(ch).Echo(pb.Request(), timeout=5)
        assert ch.transport_name() == "unix"
    monkeypatch.setenv("IPCRPC_TRANSPORT", "unix")  # over the file and the address
    with ipcrpc.channel("test") as ch:
        svc.TestServiceStub(ch).Echo(pb.Request(), timeout=5)
        assert ch.transport_name() == "unix"


def test_bad_targets_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPCRPC_CONFIG", _write(tmp_path, 'channel { target: "x" }'))
    with pytest.raises(ipcrpc.RpcError) as e:
        ipcrpc.channel("x")
    assert e.value.code() is Code.INVALID_ARGUMENT and "IPCRPC_CONFIG" in e.value.details()
    monkeypatch.setenv("IPCRPC_CONFIG", _write(tmp_path, "channel { nonsense: 1 }"))
    with pytest.raises(ipcrpc.RpcError) as e:
        ipcrpc.channel("unix:/tmp/x.sock")
    assert e.value.code() is Code.INVALID_ARGUMENT and "ipcrpc.textproto" in e.value.details()
    monkeypatch.setenv("IPCRPC_CONFIG", str(tmp_path / "missing"))
    with pytest.raises(ipcrpc.RpcError):
        ipcrpc.channel("unix:/tmp/x.sock")
    monkeypatch.delenv("IPCRPC_CONFIG")
    monkeypatch.setenv("IPCRPC_TRANSPORT", "carrier-pigeon")
    with pytest.raises(ipcrpc.RpcError) as e:
        ipcrpc.channel("unix:/tmp/x.sock")
    assert e.value.code() is Code.INVALID_ARGUMENT and "shm" in e.value.details()


def test_server_section_limits_transports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPCRPC_TRANSPORT", raising=False)
    monkeypatch.setenv("IPCRPC_CONFIG", _write(tmp_path, 'server { allowed_transports: ["unix"] max_message_bytes: 2048 }'))
    server = ipcrpc.server(max_workers=2)
    assert server.allowed_transports() == ["unix"] and server.max_message_bytes == 2048
    server.add_generic_rpc_handlers([ipcrpc.method_handlers_generic_handler("t.S", {"M": ipcrpc.unary_unary_rpc_method_handler(lambda r, c: r)})])
    sock = tmp_path / "s.sock"
    server.add_listening_address(f"unix:{sock}")
    server.start()
    monkeypatch.delenv("IPCRPC_CONFIG")
    try:
        with ipcrpc.channel(f"fifo:{sock}") as ch:
            with pytest.raises(ipcrpc.RpcError) as e:
                ch.unary_unary("/t.S/M")(b"hi", timeout=5)
            assert e.value.code() is Code.FAILED_PRECONDITION and "unix" in e.value.details()
        with ipcrpc.channel(f"auto:{sock}") as ch:
            assert ch.unary_unary("/t.S/M")(b"hi", timeout=5) == b"hi"
            with pytest.raises(ipcrpc.RpcError) as e:
                ch.unary_unary("/t.S/M")(b"x" * 4096, timeout=5)
            assert e.value.code() is Code.RESOURCE_EXHAUSTED
    finally:
        server.stop(None).wait(5)


def test_max_fds_per_message_comes_from_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`max_fds_per_message` in a channel entry and in the server section, as in
    C++ (0 refuses descriptors: the peer announces none in HELLO)."""
    monkeypatch.setenv("IPCRPC_CONFIG", _write(tmp_path, 'channel { target: "*" max_fds_per_message: 0 } server { max_fds_per_message: 3 }'))
    assert _config.plan_channel("unix:/x.sock").max_fds == 0
    assert ipcrpc.server(max_workers=1).max_fds_per_message == 3
    assert ipcrpc.aio.server().max_fds_per_message == 3
    assert ipcrpc.server(max_workers=1, max_fds_per_message=7).max_fds_per_message == 7  # the caller's value wins
    monkeypatch.setenv("IPCRPC_CONFIG", _write(tmp_path, 'channel { target: "*" }'))
    assert _config.plan_channel("unix:/x.sock").max_fds is None


@pytest.mark.skipif("shm" not in ipcrpc.available_transports(), reason="ipcrpc._native is not built")
def test_shm_spin_tuning_reaches_the_ring(tmp_path: Path, cpp_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # As in C++: spin_off turns spinning off, max_spin_micros sets the budget (at most 10 ms).
    monkeypatch.delenv("IPCRPC_TRANSPORT", raising=False)
    monkeypatch.setenv("IPCRPC_CONFIG", _write(tmp_path, f'''
        channel {{ target: "off" address: "shm:{cpp_server.sock}" tuning {{ shm {{ spin_off: true }} }} }}
        channel {{ target: "big" address: "shm:{cpp_server.sock}" tuning {{ shm {{ max_spin_micros: 99999 }} }} }}
        channel {{ target: "*" address: "shm:{cpp_server.sock}" }}
    '''))
    assert [_config.plan_channel(t).max_spin for t in ("off", "big", "other")] == [0.0, 0.01, None]
    for target in ("off", "big", "other"):
        with ipcrpc.channel(target) as ch:
            assert svc.TestServiceStub(ch).Echo(pb.Request(text=target), timeout=5).text == target
            assert ch.transport_name() == "shm"
