#!/usr/bin/python3
"""End-to-end tests of the `ipcrpc` command-line client (tools/cli).

Every test runs the real binary as a child process against real
tests/e2e/test_server processes: on every local transport (all four RPC
kinds, metadata, status errors, health, a short bench run), with and without
reflection (--proto), and every wrong input the tool must turn into a clear
message and exit code (tools/cli/options.h lists the codes). Each CLI run has
a time limit, so a hang fails the test instead of stalling it. No timing is
asserted. Servers are stopped with SIGTERM; each makes its FIFO directories
inside its own temporary directory (IPCRPC_CONFIG), which must hold nothing
of the server's once it has exited, and is then removed. At the end no new
/dev/shm entry, and no SysV queue or segment last used by one of this test's
processes, may be left behind (objects of other processes on the machine are
not this test's business).
"""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

RUNFILES = os.environ.get("RUNFILES_DIR") or os.path.abspath(sys.argv[0] + ".runfiles")
ROOT = os.path.join(RUNFILES, "ipcrpc")
CLI = os.path.join(ROOT, "tools/cli/ipcrpc")
SERVER = os.path.join(ROOT, "tests/e2e/test_server")
PROTO = os.path.join(ROOT, "tests/e2e/test_service.proto")
TRANSPORTS = ["unix", "shm", "shm+sem", "fifo", "msgq", "auto"]
SERVICE = "ipcrpc.test.TestService"

# Exit codes (tools/cli/options.h).
EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_SERVING = 1, 2, 3
NOT_FOUND, DEADLINE_EXCEEDED, UNIMPLEMENTED, UNAVAILABLE = 5, 4, 12, 14


def status_exit(code):
    return 64 + code


class Server:
    """A test_server process on a unix socket in a fresh /tmp directory."""

    def __init__(self, *flags):
        # /tmp, not TEST_TMPDIR: a unix socket path must stay short.
        self.dir = tempfile.mkdtemp(prefix="ipcrpc-test-cli-", dir="/tmp")
        self.socket = os.path.join(self.dir, "server.sock")
        fifos = os.path.join(self.dir, "fifos")
        os.mkdir(fifos, 0o700)
        config = os.path.join(self.dir, "config.textproto")
        with open(config, "w") as f:
            f.write('server { tuning { fifo { parent_dir: "%s" } } }\n' % fifos)
        env = dict(os.environ, IPCRPC_CONFIG=config)
        self.proc = subprocess.Popen([SERVER, "unix:" + self.socket, "--grace_ms=500", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        OUR_PIDS.add(self.proc.pid)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "READY":
            self.stop()
            raise RuntimeError("test_server did not start: %r %s" % (line, self.proc.stderr.read()))

    def address(self, transport="unix"):
        return "%s:%s" % (transport, self.socket)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        # The socket file and every connection's FIFO directory are gone.
        left = [n for n in os.listdir(self.dir) if n not in ("fifos", "config.textproto", "bad.proto")]
        left += ["fifos/" + n for n in os.listdir(os.path.join(self.dir, "fifos"))]
        shutil.rmtree(self.dir, ignore_errors=True)
        if left:
            raise AssertionError("the server left %s in %s" % (", ".join(left), self.dir))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# Every process this test started (for the leak check).
OUR_PIDS = set()


def cli(*args, stdin=None, timeout=60):
    """Runs the CLI; returns (exit code, stdout, stderr)."""
    with subprocess.Popen([CLI, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        OUR_PIDS.add(proc.pid)
        try:
            out, err = proc.communicate(stdin if stdin is not None else "", timeout=timeout)
        except subprocess.TimeoutExpired as e:
            proc.kill()
            proc.communicate()
            raise AssertionError("ipcrpc %s did not finish within %d s" % (" ".join(args), timeout)) from e
    return proc.returncode, out, err


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ipc_snapshot():
    """/dev/shm entries; SysV queues and segments with the pids that last used them."""
    objects = {}
    for name in os.listdir("/dev/shm"):
        objects["/dev/shm/" + name] = set()
    # /proc/sysvipc/msg: key msqid perms cbytes qnum lspid lrpid ...
    # /proc/sysvipc/shm: key shmid perms size cpid lpid ...
    for kind, pid_columns in (("msg", (5, 6)), ("shm", (4, 5))):
        with open("/proc/sysvipc/" + kind) as f:
            next(f)
            for line in f:
                fields = line.split()
                objects["sysv %s id %s" % (kind, fields[1])] = {int(fields[c]) for c in pid_columns}
    return objects


def leaked_since(before):
    """What appeared since `before` and is still there: /dev/shm entries, and
    SysV objects last used by one of this test's processes."""
    now = ipc_snapshot()
    return sorted(name for name, pids in now.items()
                  if name not in before and (name.startswith("/dev/shm/") or pids & OUR_PIDS))


class CliTest(unittest.TestCase):
    maxDiff = None

    def assertExit(self, result, code, stderr_has=""):
        rc, out, err = result
        self.assertEqual(rc, code, "exit %d, expected %d\nstdout: %s\nstderr: %s" % (rc, code, out, err))
        if stderr_has:
            self.assertIn(stderr_has, err)

    def test_every_transport(self):
        with Server("--reflection", "--health") as server:
            for transport in TRANSPORTS:
                with self.subTest(transport=transport):
                    self.check_transport(server.address(transport))

    def check_transport(self, address):
        # ls
        rc, out, err = cli("ls", address)
        self.assertExit((rc, out, err), 0)
        self.assertIn(SERVICE, out.split())
        self.assertIn("grpc.reflection.v1.ServerReflection", out.split())
        # unary, with metadata both ways (-v prints the server's)
        rc, out, err = cli("call", address, SERVICE + "/Echo", "-d", '{"text": "hi"}',
                           "-H", "echo-one:1", "-H", "Echo-Two: 2", "-v")
        self.assertExit((rc, out, err), 0)
        self.assertEqual(json_lines(out)[0]["text"], "hi")
        for line in ("header initial-one: 1", "header initial-two: 2",
                     "trailer trailing-one: 1", "trailer trailing-two: 2"):
            self.assertIn(line, err)
        # server streaming: JSON lines
        rc, out, err = cli("call", address, SERVICE + "/ServerStream", "-d",
                           '{"text": "s", "count": 3}')
        self.assertExit((rc, out, err), 0)
        self.assertEqual([r.get("index", 0) for r in json_lines(out)], [0, 1, 2])
        # client streaming: objects on stdin, one per line and concatenated
        rc, out, err = cli("call", address, SERVICE + "/ClientStream",
                           stdin='{"text": "a"}\n{"text": "b"}{"text": "c"}\n')
        self.assertExit((rc, out, err), 0)
        self.assertEqual(json_lines(out), [{"text": "abc", "index": 3}])
        # bidi
        rc, out, err = cli("call", address, SERVICE + "/Bidi",
                           stdin='{"text": "x"}\n{"text": "y"}\n')
        self.assertExit((rc, out, err), 0)
        self.assertEqual([r["text"] for r in json_lines(out)], ["x", "y"])
        # a status from the handler: its code name and message, exit 64 + code
        rc, out, err = cli("call", address, SERVICE + "/Echo", "-d",
                           '{"statusCode": 5, "statusMessage": "no such thing"}')
        self.assertExit((rc, out, err), status_exit(NOT_FOUND), "NOT_FOUND: no such thing")
        # health
        self.assertExit(cli("health", address), 0)
        # bench, briefly
        rc, out, err = cli("bench", address, SERVICE + "/Echo", "-d", '{"text": "b"}',
                           "-c", "2", "-z", "300ms")
        self.assertExit((rc, out, err), 0)
        for word in ("Calls/s:", "p50", "p99 ", "p99.9", "OK"):
            self.assertIn(word, out)

    def test_ls_service_and_describe(self):
        with Server("--reflection") as server:
            a = server.address()
            rc, out, err = cli("ls", a, SERVICE)
            self.assertExit((rc, out, err), 0)
            self.assertIn(SERVICE + "/Echo", out.split())
            self.assertIn(SERVICE + "/Bidi", out.split())
            rc, out, err = cli("describe", a, SERVICE)
            self.assertExit((rc, out, err), 0)
            self.assertIn("rpc Bidi(stream .ipcrpc.test.Request) returns (stream .ipcrpc.test.Response)", out)
            for symbol, text in ((SERVICE + "/Echo", "is a method"), (SERVICE + ".Echo", "is a method"),
                                 ("ipcrpc.test.Request", "string text = 1;"),
                                 (".ipcrpc.test.Request.count", "is a field"),
                                 ("google.protobuf.Empty", "message Empty")):
                rc, out, err = cli("describe", a, symbol)
                self.assertExit((rc, out, err), 0)
                self.assertIn(text, out, symbol)
            self.assertExit(cli("describe", a, "no.Such"), EXIT_FAILURE, 'NOT_FOUND: symbol "no.Such" not found')
            self.assertExit(cli("ls", a, "no.Such"), EXIT_FAILURE, 'unknown service "no.Such"')

    def test_generic_service_described_by_an_extra_pool(self):
        with Server("--reflection", "--generic_echo") as server:
            rc, out, err = cli("ls", server.address())
            self.assertIn("ipcrpc.test.dynamic.DynamicEcho", out.split())
            rc, out, err = cli("call", server.address(), "ipcrpc.test.dynamic.DynamicEcho/Say",
                               "-d", '{"text": "via a generic service"}')
            self.assertExit((rc, out, err), 0)
            self.assertEqual(json_lines(out), [{"text": "via a generic service"}])

    def test_bidi_responses_arrive_while_stdin_is_open(self):
        with Server("--reflection") as server:
            proc = subprocess.Popen([CLI, "call", server.address("shm"), SERVICE + "/Bidi"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                for word in ("one", "two"):
                    proc.stdin.write('{"text": "%s"}\n' % word)
                    proc.stdin.flush()
                    ready, _, _ = select.select([proc.stdout], [], [], 30)
                    self.assertTrue(ready, "no response to %s while stdin is open" % word)
                    self.assertEqual(json.loads(proc.stdout.readline())["text"], word)
                proc.stdin.close()
                self.assertEqual(proc.wait(timeout=30), 0, proc.stderr.read())
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
                proc.stderr.close()

    def test_bench_counts_and_json_report(self):
        with Server("--reflection") as server:
            rc, out, err = cli("bench", server.address("shm"), SERVICE + "/Echo", "-d", '{"text": "b"}',
                               "-n", "50", "-c", "3", "--connections", "2", "--json")
            self.assertExit((rc, out, err), 0)
            report = json.loads(out)
            self.assertEqual((report["calls"], report["ok"], report["callers"], report["connections"]),
                             (50, 50, 3, 2))
            self.assertEqual(report["status_codes"], {"OK": 50})
            self.assertEqual(sorted(report["latency_us"]),
                             sorted(["min", "mean", "p50", "p90", "p99", "p99.9", "max"]))
            self.assertFalse(report["interrupted"])
            lat = report["latency_us"]
            self.assertTrue(0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], lat)

    def test_bench_stops_at_ctrl_c_with_a_report(self):
        with Server("--reflection") as server:
            proc = subprocess.Popen([CLI, "bench", server.address(), SERVICE + "/Echo", "-z", "10m", "-c", "2"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            OUR_PIDS.add(proc.pid)
            try:
                ready, _, _ = select.select([proc.stderr], [], [], 60)
                self.assertTrue(ready)
                self.assertIn("Ctrl-C ends it early", proc.stderr.readline())  # the calls have started
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=60)
                self.assertEqual(proc.returncode, 0, err)
                self.assertIn("(interrupted)", out)
                self.assertIn("Calls/s:", out)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()

    def test_timeout(self):
        with Server("--reflection") as server:
            self.assertExit(cli("call", server.address(), SERVICE + "/Echo", "-d", '{"delayMs": 10000}',
                                "--timeout", "200ms"),
                            status_exit(DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED")

    def test_health(self):
        with Server("--health") as server:
            a = server.address()
            rc, out, err = cli("health", a)
            self.assertExit((rc, out, err), 0)
            self.assertEqual(out.strip(), "SERVING")
            self.assertExit(cli("health", a, "no.Such"), status_exit(NOT_FOUND), "NOT_FOUND")
            # SetHealth (count 0) makes the service NOT_SERVING: exit 3.
            self.assertExit(cli("call", a, SERVICE + "/SetHealth", "--proto", PROTO, "-d",
                                '{"text": "%s", "count": 0}' % SERVICE), 0)
            rc, out, err = cli("health", a, SERVICE)
            self.assertExit((rc, out, err), EXIT_NOT_SERVING)
            self.assertEqual(out.strip(), "NOT_SERVING")
        with Server() as server:
            self.assertExit(cli("health", server.address()), status_exit(UNIMPLEMENTED),
                            "does not serve grpc.health.v1.Health")

    def test_health_watch_prints_each_change_until_ctrl_c(self):
        with Server("--health") as server:
            a = server.address("shm")
            proc = subprocess.Popen([CLI, "health", a, SERVICE, "--watch"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            OUR_PIDS.add(proc.pid)
            try:
                def next_line():
                    ready, _, _ = select.select([proc.stdout], [], [], 60)
                    self.assertTrue(ready, "no status line within 60 s")
                    return proc.stdout.readline().strip()
                self.assertEqual(next_line(), "SERVING")
                self.assertExit(cli("call", a, SERVICE + "/SetHealth", "--proto", PROTO, "-d",
                                    '{"text": "%s", "count": 0}' % SERVICE), 0)
                self.assertEqual(next_line(), "NOT_SERVING")
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=60)
                self.assertEqual(proc.returncode, EXIT_NOT_SERVING, err)  # the last status seen
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            # --timeout ends a watch the same way; an unknown service is
            # SERVICE_UNKNOWN (Watch does not fail for it, as gRPC's does not).
            rc, out, err = cli("health", a, "--watch", "--timeout", "2s")
            self.assertExit((rc, out, err), 0)
            self.assertEqual(out.split(), ["SERVING"])
            rc, out, err = cli("health", a, "no.Such", "--watch", "--timeout", "2s")
            self.assertExit((rc, out, err), EXIT_NOT_SERVING)
            self.assertEqual(out.split(), ["SERVICE_UNKNOWN"])
            self.assertExit(cli("ls", a, "--watch"), EXIT_USAGE, "--watch is for health")
        with Server() as server:
            self.assertExit(cli("health", server.address(), "--watch", "--timeout", "5s"),
                            status_exit(UNIMPLEMENTED), "does not serve grpc.health.v1.Health")

    def test_proto_files_without_reflection(self):
        with Server() as server:
            a = server.address("shm")
            self.assertExit(cli("ls", a), status_exit(UNIMPLEMENTED), "--proto")
            self.assertExit(cli("call", a, SERVICE + "/Echo", "-d", "{}"),
                            status_exit(UNIMPLEMENTED), "does not serve reflection")
            for include in (["-I", ROOT], []):  # without -I: the file's own directory
                proto = ["--proto", PROTO, *include]
                rc, out, err = cli("ls", a, *proto)
                self.assertExit((rc, out, err), 0)
                self.assertEqual(out.split(), [SERVICE])
                rc, out, err = cli("call", a, SERVICE + "/Echo", "-d", '{"text": "p"}', *proto)
                self.assertExit((rc, out, err), 0)
                self.assertEqual(json_lines(out)[0]["text"], "p")
            rc, out, err = cli("call", a, SERVICE + "/Bidi", "--proto", PROTO, stdin='{"text":"q"}')
            self.assertExit((rc, out, err), 0)
            self.assertEqual(json_lines(out), [{"text": "q"}])
            # LastCancel takes google.protobuf.Empty: the well-known types need no -I.
            self.assertExit(cli("call", a, SERVICE + "/LastCancel", "--proto", PROTO), 0)
            rc, out, err = cli("describe", a, "ipcrpc.test.Response", "--proto", PROTO)
            self.assertExit((rc, out, err), 0)
            self.assertIn("int64 deadline_unix_micros = 5;", out)
            # wrong .proto input
            self.assertExit(cli("ls", a, "--proto", "/no/such.proto"), EXIT_FAILURE, "no such file")
            bad = os.path.join(server.dir, "bad.proto")
            with open(bad, "w") as f:
                f.write('syntax = "proto3";\nmessage {\n')
            self.assertExit(cli("ls", a, "--proto", bad), EXIT_FAILURE, "cannot parse --proto")
            self.assertExit(cli("ls", a, "--proto", PROTO, "-I", "/usr"), EXIT_FAILURE,
                            "not inside any import path")

    def test_wrong_input(self):
        with Server("--reflection") as server:
            a = server.address()
            echo = SERVICE + "/Echo"
            cases = [
                # (args, stdin, exit code, stderr contains)
                (["call", "bogus", echo], "", EXIT_FAILURE, "INVALID_ARGUMENT"),
                (["call", "carrier-pigeon:/x.sock", echo], "", EXIT_FAILURE, "INVALID_ARGUMENT"),
                (["call", "unix:" + server.dir + "/nobody.sock", echo], "", status_exit(UNAVAILABLE),
                 "UNAVAILABLE"),
                (["call", "unix:" + server.dir + "/nobody.sock", echo, "--proto", PROTO, "-d", "{}"], "",
                 status_exit(UNAVAILABLE), "UNAVAILABLE"),
                (["call", a, SERVICE + "/NoSuch"], "", EXIT_FAILURE, 'has no method "NoSuch"'),
                (["call", a, "no.Such/Echo"], "", EXIT_FAILURE, 'unknown service "no.Such"'),
                (["call", a, "Echo"], "", EXIT_FAILURE, "not a method name"),
                (["call", a, echo, "-d", '{"text": '], "", EXIT_FAILURE, "ends inside a JSON object"),
                (["call", a, echo, "-d", '{"txet": "x"}'], "", EXIT_FAILURE, "bad JSON for ipcrpc.test.Request"),
                (["call", a, echo, "-d", '{"count": "many"}'], "", EXIT_FAILURE, "bad JSON"),
                (["call", a, echo, "-d", "[1, 2]"], "", EXIT_FAILURE, "expected a JSON object"),
                (["call", a, echo, "-d", "{} {}"], "", EXIT_FAILURE, "takes one request"),
                (["call", a, echo], "not json", EXIT_FAILURE, "expected a JSON object"),
                (["call", a, SERVICE + "/ClientStream"], '{"text": "a"}\n{"text": 1.5.}\n', EXIT_FAILURE,
                 "request 2"),
                (["call", a, SERVICE + "/Bidi"], '{"text": "a"}\n{"nope": 1}\n', EXIT_FAILURE, "request 2"),
                (["bench", a, SERVICE + "/Bidi", "-z", "1s"], "", EXIT_FAILURE, "bench calls unary methods"),
                (["bench", a, echo, "-z", "1s", "-d", '{"statusCode": 7, "statusMessage": "no"}'], "",
                 status_exit(7), "the first call failed"),
                ([], "", EXIT_USAGE, "no command"),
                (["frobnicate", a], "", EXIT_USAGE, "unknown command"),
                (["call", a], "", EXIT_USAGE, "usage: ipcrpc call"),
                (["ls"], "", EXIT_USAGE, "usage: ipcrpc ls"),
                (["call", a, echo, "--bogus"], "", EXIT_USAGE, "unknown flag --bogus"),
                (["call", a, echo, "--timeout", "soon"], "", EXIT_USAGE, "not a duration"),
                (["call", a, echo, "--timeout", "-1s"], "", EXIT_USAGE, "positive"),
                (["call", a, echo, "-H", "novalue"], "", EXIT_USAGE, "key:value"),
                (["call", a, echo, "-d"], "", EXIT_USAGE, "-d needs a value"),
                (["bench", a, echo, "-c", "0"], "", EXIT_USAGE, "-c 0"),
                (["bench", a, echo, "-z", "forever"], "", EXIT_USAGE, "not a duration"),
                (["bench", a, echo, "-n", "-5"], "", EXIT_USAGE, "-n -5"),
                (["bench", a, echo, "--json=yes"], "", EXIT_USAGE, "--json takes no value"),
            ]
            for args, stdin, code, message in cases:
                with self.subTest(args=args):
                    self.assertExit(cli(*args, stdin=stdin), code, message)
            rc, out, err = cli("--help")
            self.assertEqual(rc, 0)
            self.assertIn("usage: ipcrpc COMMAND", out)


if __name__ == "__main__":
    before = ipc_snapshot()
    result = unittest.main(exit=False, verbosity=2).result
    # Servers have exited; anything they or the CLI made must be gone.
    leaked = leaked_since(before)
    if leaked:
        print("left behind: %s" % ", ".join(leaked))
    sys.exit(0 if result.wasSuccessful() and not leaked else 1)
