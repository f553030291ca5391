"""protoc-gen-ipcrpc_python: what it generates, checked by importing it."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ipcrpc
from ipcrpc.tools import protoc


def _gen(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(textwrap.dedent(text))
    assert protoc.run([f"-I{tmp_path}", f"--python_out={tmp_path}", f"--ipcrpc_python_out={tmp_path}", str(tmp_path / name)]) == 0
    return tmp_path


PROTO = """
    syntax = "proto3";
    package gen.test;
    import "google/protobuf/empty.proto";
    message Outer { message Inner { string s = 1; } Inner inner = 1; }
    // The service's comment.
    service Things {
      // Gets one thing.
      rpc Get(Outer.Inner) returns (Outer);
      rpc List(google.protobuf.Empty) returns (stream Outer);
      rpc Put(stream Outer) returns (google.protobuf.Empty);
      rpc Chat(stream Outer.Inner) returns (stream Outer.Inner);
    }
    service Empty2 {}
"""


def test_generated_module_shape(tmp_path: Path) -> None:
    _gen(tmp_path, "things.proto", PROTO)
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module("things_ipcrpc")
        pb = importlib.import_module("things_pb2")
        src = (tmp_path / "things_ipcrpc.py").read_text()
        assert "The service's comment." in src and "Gets one thing." in src
        pyi = (tmp_path / "things_ipcrpc.pyi").read_text()
        assert "ipcrpc.UnaryUnaryMultiCallable[things__pb2.Outer.Inner, things__pb2.Outer]" in pyi
        assert "typing.Iterator[things__pb2.Outer.Inner]" in pyi

        class Impl(mod.ThingsServicer):
            def Get(self, request, context):  # type: ignore[no-untyped-def]
                return pb.Outer(inner=request)

        server = ipcrpc.server(max_workers=2)
        mod.add_ThingsServicer_to_server(Impl(), server)
        mod.add_Empty2Servicer_to_server(mod.Empty2Servicer(), server)
        sock = tmp_path / "s.sock"
        server.add_listening_address(f"unix:{sock}")
        server.start()
        try:
            with ipcrpc.channel(f"unix:{sock}") as ch:
                stub = mod.ThingsStub(ch)
                assert stub.Get(pb.Outer.Inner(s="x"), timeout=5).inner.s == "x"
                with pytest.raises(ipcrpc.RpcError) as e:  # not overridden: UNIMPLEMENTED
                    list(stub.List(importlib.import_module("google.protobuf.empty_pb2").Empty(), timeout=5))
                assert e.value.code() is ipcrpc.StatusCode.UNIMPLEMENTED
                assert "/gen.test.Things/List" in e.value.details()
        finally:
            server.stop(None).wait(5)
    finally:
        sys.path.remove(str(tmp_path))
        for m in ("things_ipcrpc", "things_pb2"):
            sys.modules.pop(m, None)


def test_file_without_services_gets_both_files(tmp_path: Path) -> None:
    _gen(tmp_path, "plain.proto", 'syntax = "proto3"; message M { int32 a = 1; }')
    assert "defines no services" in (tmp_path / "plain_ipcrpc.py").read_text()
    assert (tmp_path / "plain_ipcrpc.pyi").exists()


def test_console_script_is_a_protoc_plugin(tmp_path: Path) -> None:
    # The same plugin run as protoc would run it: request on stdin, response on stdout.
    (tmp_path / "a.proto").write_text('syntax = "proto3"; package p; message M {} service S { rpc F(M) returns (M); }')
    fds = tmp_path / "fds.bin"
    subprocess.run(["protoc", f"-I{tmp_path}", "--include_source_info", f"--descriptor_set_out={fds}", str(tmp_path / "a.proto")], check=True)
    from google.protobuf import descriptor_pb2
    from google.protobuf.compiler import plugin_pb2

    req = plugin_pb2.CodeGeneratorRequest(file_to_generate=["a.proto"])
    req.proto_file.extend(descriptor_pb2.FileDescriptorSet.FromString(fds.read_bytes()).file)
    out = subprocess.run([sys.executable, "-m", "ipcrpc.tools.protoc_plugin"], input=req.SerializeToString(), capture_output=True, check=True)
    resp = plugin_pb2.CodeGeneratorResponse.FromString(out.stdout)
    assert not resp.error
    assert sorted(f.name for f in resp.file) == ["a_ipcrpc.py", "a_ipcrpc.pyi"]
    compile(resp.file[0].content, "a_ipcrpc.py", "exec")
