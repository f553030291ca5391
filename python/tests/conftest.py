"""Fixtures: generated modules, C++ binaries, and server processes.

Generated code (protoc --python_out + this package's plugin) goes to a
per-session temp dir that is put on sys.path and on PYTHONPATH of the
server processes the tests start.  C++ binaries come from bazel-bin (built by
tools/test_python.sh), or from $IPCRPC_BAZEL_BIN.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BAZEL_BIN = Path(os.environ.get("IPCRPC_BAZEL_BIN", REPO / "bazel-bin"))

_GEN = Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-gen-"))
# The servers these tests start make their FIFO directories here (config
# `server.tuning.fifo.parent_dir`), not in /tmp, which other test runs share.
_FIFO_PARENT = _GEN / "fifo"
_FIFO_PARENT.mkdir()
_SERVER_CONFIG = _GEN / "server.textproto"
_SERVER_CONFIG.write_text(f'server {{ tuning {{ fifo {{ parent_dir: "{_FIFO_PARENT}" }} }} }}\n')
SPAWNED = {os.getpid()}  # processes whose SysV IPC objects the leak check follows


def _generate() -> None:
    from ipcrpc.tools import protoc

    for include, proto in (("tests/e2e", "test_service.proto"), ("examples/greeter", "greeter.proto")):
        rc = protoc.run([f"-I{REPO / include}", f"--python_out={_GEN}", f"--pyi_out={_GEN}", f"--ipcrpc_python_out={_GEN}", str(REPO / include / proto)])
        if rc != 0:
            raise RuntimeError(f"generating code for {proto} failed")
    # fd_service.proto imports "proto/ipcrpc/file_descriptor.proto" (from the repository root).
    rc = protoc.run([f"-I{REPO / 'tests/e2e'}", f"-I{REPO}", f"--python_out={_GEN}", f"--pyi_out={_GEN}", f"--ipcrpc_python_out={_GEN}",
                     str(REPO / "tests/e2e/fd_service.proto"), str(REPO / "proto/ipcrpc/file_descriptor.proto")])
    if rc != 0:
        raise RuntimeError("generating code for fd_service.proto failed")


_generate()
_PATHS = [str(_GEN), str(HERE), str(REPO / "examples" / "greeter")]
sys.path[:0] = _PATHS


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    shutil.rmtree(_GEN, ignore_errors=True)


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(_PATHS + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop("IPCRPC_TRANSPORT", None)
    env["IPCRPC_CONFIG"] = str(_SERVER_CONFIG)
    return env


def cpp_binary(label: str) -> Path:
    path = BAZEL_BIN / label
    if not os.access(path, os.X_OK):
        pytest.fail(f"C++ binary {path} is missing: run `bazel build //{label.rsplit('/', 1)[0]}:{label.rsplit('/', 1)[1]}` (tools/test_python.sh does)")
    return path


class ServerProcess:
    """A server in its own process, listening on a socket in a private temp dir."""

    def __init__(self, argv: List[str], sock: Path, tmpdir: Path) -> None:
        self.sock = sock
        self.tmpdir = tmpdir
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True)
        SPAWNED.add(self.proc.pid)
        deadline = time.monotonic() + 15
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "READY" (bounded: the process prints or dies)
        if "READY" not in line:
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"server {argv} did not start: {line!r} {err}")
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def address(self, transport: str = "unix") -> str:
        return f"{transport}:{self.sock}"

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def _tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-"))


def start_cpp_server(extra: Optional[List[str]] = None) -> ServerProcess:
    d = _tmpdir()
    sock = d / "s.sock"
    return ServerProcess([str(cpp_binary("tests/e2e/test_server")), f"unix:{sock}"] + (extra or []), sock, d)


def start_py_server(extra: Optional[List[str]] = None) -> ServerProcess:
    d = _tmpdir()
    sock = d / "s.sock"
    return ServerProcess([sys.executable, str(HERE / "serve.py"), f"unix:{sock}"] + (extra or []), sock, d)


SERVERS = {
    "cpp": lambda: [str(cpp_binary("tests/e2e/test_server"))],
    "python": lambda: [sys.executable, str(HERE / "serve.py")],
    "python-aio": lambda: [sys.executable, str(HERE / "serve.py"), "--service=aio"],
}


def start_server_with_config(kind: str, config: str) -> Tuple[subprocess.Popen, str, Path]:
    """A TestService server on a fresh abstract address, with ``config`` as its IPCRPC_CONFIG."""
    d = Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-"))
    (d / "config.textproto").write_text(config)
    env = child_env()
    env["IPCRPC_CONFIG"] = str(d / "config.textproto")
    name = f"ipcrpc-pytest-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen(SERVERS[kind]() + [f"unix:@{name}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    SPAWNED.add(proc.pid)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "READY" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"test_server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, name, d


def stop_server_with_config(proc: subprocess.Popen, d: Path) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in (proc.stdout, proc.stderr):
        if f:
            f.close()
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def _finish(server: ServerProcess) -> None:
    server.stop()
    shutil.rmtree(server.tmpdir, ignore_errors=True)


@pytest.fixture(scope="module")
def cpp_server() -> Iterator[ServerProcess]:
    s = start_cpp_server()
    yield s
    _finish(s)


@pytest.fixture(scope="module")
def py_server() -> Iterator[ServerProcess]:
    s = start_py_server()
    yield s
    _finish(s)


@pytest.fixture(params=["cpp", "python"], scope="module")
def any_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The same tests against the C++ and the Python TestService."""
    s = start_cpp_server() if request.param == "cpp" else start_py_server()
    yield s
    _finish(s)


@pytest.fixture(scope="module")
def aio_server() -> Iterator[ServerProcess]:
    """The Python TestService on ipcrpc.aio.server()."""
    s = start_py_server(["--service=aio"])
    yield s
    _finish(s)


@pytest.fixture
def fresh_cpp_server() -> Iterator[ServerProcess]:
    s = start_cpp_server()
    yield s
    _finish(s)


@pytest.fixture
def fresh_py_server() -> Iterator[ServerProcess]:
    s = start_py_server()
    yield s
    _finish(s)


def _ipc_snapshot() -> set:
    """IPC objects these tests could leave behind: their /tmp directories,
    ipcrpc entries in /dev/shm, SysV objects created by processes they started.
    (Other objects belong to whatever else runs on the machine.)"""
    mine = ("ipcrpc-pytest-", "ipcrpc-protoc-", "ipcrpc-pystubs-")
    names = {f"tmp:{p}" for p in os.listdir("/tmp") if p.startswith(mine) and not str(_GEN).endswith(p)}
    names |= {f"fifo-dir:{p}" for p in os.listdir(_FIFO_PARENT)}
    names |= {f"shm:{p}" for p in os.listdir("/dev/shm") if "ipcrpc" in p}
    for kind in ("q", "m"):
        try:
            out = subprocess.run(["ipcs", f"-{kind}", "-p"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines():
            parts = line.split()  # shmid owner cpid lpid | msqid owner lspid lrpid
            if len(parts) >= 4 and parts[0].isdigit() and {p for p in parts[2:4] if p.isdigit() and int(p) in SPAWNED}:
                names.add(f"ipcs-{kind}:{parts[0]}")
    return names


@pytest.fixture(scope="session", autouse=True)
def no_leaked_ipc_objects() -> Iterator[None]:
    """Fails the session (as an error at teardown) if the tests left IPC objects behind."""
    before = _ipc_snapshot()
    yield
    leaked: set = set()
    for _ in range(50):  # processes that were just killed may still be tearing down
        leaked = _ipc_snapshot() - before
        if not leaked:
            return
        time.sleep(0.1)
    pytest.fail(f"IPC objects left behind by the tests: {sorted(leaked)}")
