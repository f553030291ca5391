"""Type hints: mypy over the package and over code that uses generated stubs
(their .pyi). Skipped where mypy is not installed (tools/setup.sh installs it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, _GEN

pytest.importorskip("mypy")


def _mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def test_package_type_checks() -> None:
    r = _mypy("--config-file", str(REPO / "python" / "pyproject.toml"), str(REPO / "python" / "ipcrpc"), cwd=REPO / "python")
    assert r.returncode == 0, r.stdout + r.stderr


def test_generated_stubs_type_check(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(textwrap.dedent('''
        import ipcrpc
        import greeter_ipcrpc
        from greeter_pb2 import HelloReply, HelloRequest

        def call(ch: ipcrpc.Channel) -> str:
            stub = greeter_ipcrpc.GreeterStub(ch)
            reply: HelloReply = stub.SayHello(HelloRequest(name="x"), timeout=1.0)
            for r in stub.LotsOfReplies(HelloRequest(name="y")):
                reply = r
            return reply.message

        class G(greeter_ipcrpc.GreeterServicer):
            def SayHello(self, request: HelloRequest, context: ipcrpc.ServicerContext) -> HelloReply:
                return HelloReply(message=request.name)
    '''))
    ok = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null", "--ignore-missing-imports", "--disable-error-code=import", str(user)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={"MYPYPATH": str(_GEN), "PATH": "/usr/bin:/bin"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
