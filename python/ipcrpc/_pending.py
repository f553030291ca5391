"""Crash clean-up: the kernel objects of negotiations in progress, on record.

While a server negotiates fifo or msgq with a client (PROTOCOL.md §12) it owns
objects the kernel keeps after it dies: a private FIFO directory, a pair of
SysV message queues. Once the connection is established (or the negotiation
fails) they are removed; a server killed in between (SIGKILL, OOM) would leave
them for good. So each negotiation is recorded in a per-user directory, as
the C++ server does (connect/pending_objects.h), in the same files — either
language's server sweeps the other's records:

* the directory: ``$IPCRPC_PENDING_DIR``, else ``/tmp/ipcrpc-pending-EUID``,
  mode 0700, owned by this user (otherwise nothing is recorded or swept);
* one file per negotiation, named ``PIDNS-PID-SERIAL`` (PIDNS: the inode of
  /proc/self/ns/pid), made before the objects, removed when the negotiation
  ends either way, the directory with it when empty;
* one line per object, each written with one ``write``: ``fifo DIR`` just
  before the directory is made, ``msgq ID`` just after ``msgget`` returns it.

:func:`sweep` (run by every server that starts listening) reads the records of
processes of this PID namespace that no longer exist, removes their queues
(only this user's, mode 0600) and FIFO directories (only this user's, named
``ipcrpc-fifo-*``, and only the FIFOs inside), and deletes the records.
"""

import itertools
import os
import stat
import threading
from typing import List, Optional

FIFO_DIR_PREFIX = "ipcrpc-fifo-"
_serial = itertools.count()
_serial_lock = threading.Lock()


def pending_dir() -> str:
    """Where the records live."""
    return os.environ.get("IPCRPC_PENDING_DIR") or f"/tmp/ipcrpc-pending-{os.geteuid()}"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _safe_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and (st.st_mode & 0o077) == 0


class Record:
    """One negotiation's record: made (empty) now, one line per object reported,
    removed by :meth:`close`. Never fails the negotiation: if the directory cannot
    be used safely, nothing is recorded."""

    def __init__(self) -> None:
        self.path: Optional[str] = None
        self._fd = -1
        d = pending_dir()
        # Another record's close() may remove the directory, empty for a moment,
        # between our mkdir and open: then we make it again.
        for _ in range(64):
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                pass
            except OSError:
                return
            try:
                if not _safe_dir(os.lstat(d)):
                    return
            except FileNotFoundError:
                continue
            except OSError:
                return
            with _serial_lock:
                serial = next(_serial)
            path = os.path.join(d, f"{_pid_namespace()}-{os.getpid()}-{serial}")
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue
            except OSError:
                return
            self.path = path
            return

    def fifo_directory(self, path: str) -> None:
        """Call just before the directory is made."""
        self._append(f"fifo {path}\n")

    def message_queue(self, qid: int) -> None:
        """Call just after msgget returned ``qid``."""
        self._append(f"msgq {qid}\n")

    def _append(self, line: str) -> None:
        if self._fd >= 0:
            data = line.encode()
            while True:
                try:
                    os.write(self._fd, data)
                    return
                except InterruptedError:
                    continue
                except OSError:
                    return

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            try:
                os.rmdir(os.path.dirname(self.path))  # only if empty
            except OSError:
                pass
            self.path = None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_queue(qid: int) -> None:
    from . import _msgq

    try:
        info = _msgq._queue_info().get(qid)
    except OSError:
        return
    if info is None or info["cuid"] != os.geteuid() or (info["perms"] & 0o777) != 0o600:
        return
    _msgq._remove(qid)


def _remove_fifo_dir(path: str) -> None:
    if not path.startswith("/") or not os.path.basename(path).startswith(FIFO_DIR_PREFIX):
        return
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return
    try:
        names = os.listdir(path)
    except OSError:
        names = []
    for name in names:
        entry = os.path.join(path, name)
        try:
            if stat.S_ISFIFO(os.lstat(entry).st_mode):
                os.unlink(entry)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def sweep() -> int:
    """Removes the objects recorded by processes that no longer exist, and their
    records. Returns how many records were swept."""
    d = pending_dir()
    try:
        if not _safe_dir(os.lstat(d)):
            return 0  # not ours to trust
        names = [n for n in os.listdir(d) if not n.startswith(".")]
    except OSError:
        return 0
    namespace = _pid_namespace()
    swept = 0
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != namespace or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid <= 0 or _process_exists(pid):
            continue
        path = os.path.join(d, name)
        try:
            with open(path, "rb") as f:
                content = f.read().decode(errors="replace")
        except OSError:
            continue
        lines: List[str] = content.split("\n")[:-1]  # after the last newline: empty, or cut short
        for line in lines:
            kind, _, arg = line.partition(" ")
            if kind == "msgq" and arg.isdigit():
                _remove_queue(int(arg))
            elif kind == "fifo" and arg:
                _remove_fifo_dir(arg)
        try:
            os.unlink(path)
        except OSError:
            pass
        swept += 1
    try:
        os.rmdir(d)  # only if empty
    except OSError:
        pass
    return swept
