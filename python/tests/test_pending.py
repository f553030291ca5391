"""Crash clean-up of half-negotiated FIFO directories and SysV queues
(ipcrpc/_pending.py; the same records as the C++ server's connect/pending_objects.h):
a server killed mid-negotiation leaves them on record, and the next server of
either language to start removes them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from conftest import _finish, child_env, start_cpp_server, start_py_server

import ipcrpc
from ipcrpc import _fifo, _msgq, _pending

pytestmark = pytest.mark.skipif(not _msgq.available(), reason="no SysV message queues")

# A server process "killed" right after it made a negotiation's objects: it
# records them as upgrade_connection does, then exits without removing them.
_DIES_MID_NEGOTIATION = """
import os, sys
from ipcrpc import _fifo, _msgq, _pending
record = _pending.Record()
_fifo.PendingFifo(sys.argv[1], record)
_msgq.PendingMsgq(record)
print(record.path, flush=True)
os._exit(0)
"""


@pytest.fixture
def pending_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private records directory (also for the servers started from here), and
    a private parent for FIFO directories."""
    root = Path(tempfile.mkdtemp(prefix="ipcrpc-pytest-pending-"))
    monkeypatch.setenv("IPCRPC_PENDING_DIR", str(root / "pending"))
    (root / "fifos").mkdir()
    yield root
    # Whatever a failed test left: FIFO directories and the queues they name.
    for qid in _recorded_queues(root / "pending"):
        _msgq._remove(qid)
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _recorded_queues(pending: Path) -> List[int]:
    queues = []
    if pending.is_dir():
        for record in pending.iterdir():
            for line in record.read_text().splitlines():
                kind, _, arg = line.partition(" ")
                if kind == "msgq":
                    queues.append(int(arg))
    return queues


def _queue_exists(qid: int) -> bool:
    return qid in _msgq._queue_info()


def _die_mid_negotiation(root: Path) -> Tuple[str, List[int]]:
    """Runs a process that dies mid-negotiation; its FIFO directory and queues."""
    out = subprocess.run([sys.executable, "-c", _DIES_MID_NEGOTIATION, str(root / "fifos")],
                         env=child_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    record = Path(out.stdout.strip())
    assert record.parent == root / "pending", "nothing was recorded"
    lines = record.read_text().splitlines()
    fifo_dirs = [line.split(" ", 1)[1] for line in lines if line.startswith("fifo ")]
    queues = [int(line.split(" ", 1)[1]) for line in lines if line.startswith("msgq ")]
    assert len(fifo_dirs) == 1 and len(queues) == 2, lines
    assert os.path.isdir(fifo_dirs[0]) and sorted(os.listdir(fifo_dirs[0])) == ["c2s", "s2c"]
    assert all(_queue_exists(q) for q in queues)
    return fifo_dirs[0], queues


def test_a_dead_servers_objects_are_swept(pending_dir: Path) -> None:
    fifo_dir, queues = _die_mid_negotiation(pending_dir)
    assert _pending.sweep() == 1
    assert not os.path.exists(fifo_dir)
    assert not any(_queue_exists(q) for q in queues)
    assert not (pending_dir / "pending").exists(), "the directory goes when empty"


@pytest.mark.parametrize("kind", ["cpp", "python"])
def test_the_next_server_of_either_language_sweeps_them(pending_dir: Path, kind: str) -> None:
    """The records are the C++ server's format: a C++ server sweeps a Python
    server's, and a Python server sweeps when it starts listening."""
    fifo_dir, queues = _die_mid_negotiation(pending_dir)
    server = start_cpp_server() if kind == "cpp" else start_py_server()
    try:
        assert not os.path.exists(fifo_dir)
        assert not any(_queue_exists(q) for q in queues)
    finally:
        _finish(server)


def test_a_live_servers_objects_are_left_alone(pending_dir: Path) -> None:
    record = _pending.Record()
    pending = _fifo.PendingFifo(str(pending_dir / "fifos"), record)
    queues = _msgq.PendingMsgq(record)
    try:
        assert _pending.sweep() == 0, "this process is alive"
        assert os.path.isdir(pending.dir)
        assert all(_queue_exists(q) for q in queues.ids)
    finally:
        pending.abandon()
        queues.abandon()
        record.close()
    assert not (pending_dir / "pending").exists()


def test_a_fifo_directory_is_on_record_before_it_exists(pending_dir: Path) -> None:
    seen: List[Tuple[str, bool]] = []

    class Watching(_pending.Record):
        def fifo_directory(self, path: str) -> None:
            seen.append((path, os.path.exists(path)))
            super().fifo_directory(path)

    record = Watching()
    pending = _fifo.PendingFifo(str(pending_dir / "fifos"), record)
    try:
        assert seen == [(pending.dir, False)], "made before it was recorded"
        assert (Path(record.path or "").read_text()) == f"fifo {pending.dir}\n"
    finally:
        pending.abandon()
        record.close()


def test_a_negotiation_that_ends_removes_its_record(pending_dir: Path) -> None:
    """A normal fifo and msgq connection to a Python server leaves no record
    (and nothing else) behind."""
    server = start_py_server()
    try:
        for transport in ("fifo", "msgq"):
            with ipcrpc.channel(server.address(transport)) as ch:
                ch.unary_unary("/ipcrpc.test.TestService/Echo")(b"", timeout=10)
            assert not (pending_dir / "pending").exists() or not list((pending_dir / "pending").iterdir())
    finally:
        _finish(server)


def _dead_pid() -> int:
    """A pid that no longer exists (a child that has exited and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_line_cut_short_is_not_acted_on(pending_dir: Path) -> None:
    """A record's last line without its newline (the process died while writing
    it) names nothing for certain: the queue it names stays."""
    queues = _msgq.PendingMsgq()
    try:
        (pending_dir / "pending").mkdir(mode=0o700)
        record = pending_dir / "pending" / f"{os.stat('/proc/self/ns/pid').st_ino}-{_dead_pid()}-0"
        record.write_text(f"msgq {queues.ids[0]}")
        assert _pending.sweep() == 1
        assert _queue_exists(queues.ids[0])
        assert not record.exists()
    finally:
        queues.abandon()


def test_records_of_another_pid_namespace_are_left_alone(pending_dir: Path) -> None:
    queues = _msgq.PendingMsgq()
    try:
        (pending_dir / "pending").mkdir(mode=0o700)
        record = pending_dir / "pending" / f"1-{_dead_pid()}-0"  # namespace "1": not ours
        record.write_text(f"msgq {queues.ids[0]}\n")
        assert _pending.sweep() == 0
        assert _queue_exists(queues.ids[0])
        assert record.exists()
    finally:
        queues.abandon()


def test_a_directory_others_can_write_is_neither_used_nor_swept(pending_dir: Path) -> None:
    d = pending_dir / "pending"
    d.mkdir()
    d.chmod(0o777)
    record = _pending.Record()
    assert record.path is None, "recorded in a directory others can write"
    record.fifo_directory("/tmp/ipcrpc-fifo-never")  # nothing is written
    record.close()
    assert list(d.iterdir()) == []
    planted = d / f"{os.stat('/proc/self/ns/pid').st_ino}-{_dead_pid()}-0"
    victim = pending_dir / "fifos" / "ipcrpc-fifo-victim"
    victim.mkdir()
    planted.write_text(f"fifo {victim}\n")
    assert _pending.sweep() == 0
    assert victim.is_dir() and planted.exists()
