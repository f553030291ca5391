#!/usr/bin/env python3
"""Two builds of the ipcrpc bench binaries side by side, over the unix transport.

What the event loop (docs/EVENT_CORE.md, step 1) changes and what it must not:
  * idle connections: server threads and resident KiB per idle connection
    (ipcrpc_bench_client --mode=idle_memory with --connections=N, fresh
    server per build, unpinned);
  * the fast path: 64 B unary p50 with server and client on different CPUs
    and on the same CPU (--mode=latency);
  * throughput: calls/s with 1, 4 and 16 client threads (--mode=concurrent),
    server pinned to CPU 0, and with 16 client threads, server unpinned
    (where loop threads run turns at once on every CPU: a loop that lost its
    threads there hung this figure, not the pinned ones).
Both builds' servers are driven by one client binary (--client, default the
after build's), so a difference is the server's; the idle figures need a
client that reports server threads. Rounds alternate which build goes first (the second of a pair tends to run
slower on a shared VM); every figure is the median over rounds, and the
report gives after/before for each.

Usage (build each tree with `bazel build -c opt //bench:ipcrpc_bench_server
//bench:ipcrpc_bench_client` first):
  python3 bench/event_loop/ab.py --before=OLD/bazel-bin/bench \\
      --after=bazel-bin/bench --rounds=6 --connections=1000 --out=report.md
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile


CLIENT_DIR = None


def start_server(bin_dir, address, cpu):
    argv = [os.path.join(bin_dir, "ipcrpc_bench_server"), "--address=" + address,
            "--cpu=%d" % cpu, "--stop_on_stdin_eof"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    record = json.loads(line) if line.startswith("{") else {}
    if record.get("bench") != "ready":
        proc.kill()
        proc.wait()
        raise SystemExit("%s did not start: %r" % (" ".join(argv), line))
    return proc, int(record["pid"])


def stop_server(proc):
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def client(bin_dir, address, args):
    argv = [os.path.join(CLIENT_DIR, "ipcrpc_bench_client"), "--address=" + address] + args
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def one_round(bin_dir, work, connections, results):
    socket = os.path.join(work, "s.sock")
    address = "unix:" + socket
    # Latency and throughput: server on CPU 0, client on CPU 1 (cross) or 0 (same).
    for placement, client_cpu in (("cross", 1), ("same", 0)):
        server, _ = start_server(bin_dir, address, 0)
        try:
            for r in client(bin_dir, address, ["--mode=latency", "--sizes=64", "--cpu=%d" % client_cpu,
                                               "--iterations=20000", "--max_ms=1000"]):
                if r["bench"] == "latency":
                    results.setdefault("64 B p50 %s, us" % placement, []).append(r["p50_us"])
            if placement == "cross":
                for r in client(bin_dir, address, ["--mode=concurrent", "--threads=1,4,16",
                                                   "--concurrent_ms=700"]):
                    if r["bench"] == "concurrent":
                        results.setdefault("calls/s, %d clients" % r["threads"], []).append(
                            r["calls_per_s"])
        finally:
            stop_server(server)
    # Unpinned: a fresh server, free to run turns on every CPU at once.
    server, _ = start_server(bin_dir, address, -1)
    try:
        for r in client(bin_dir, address, ["--mode=concurrent", "--threads=16",
                                           "--concurrent_ms=700"]):
            if r["bench"] == "concurrent":
                results.setdefault("calls/s, 16 clients, server unpinned", []).append(
                    r["calls_per_s"])
    finally:
        stop_server(server)
    # Idle connections: a fresh server, unpinned.
    server, pid = start_server(bin_dir, address, -1)
    try:
        for r in client(bin_dir, address, ["--mode=idle_memory", "--server_pid=%d" % pid,
                                           "--connections=%d" % connections]):
            if r["bench"] == "idle_memory":
                results.setdefault("server threads per idle connection", []).append(
                    r["server_threads_per_conn"])
                results.setdefault("server fds per idle connection", []).append(
                    r["server_fds_per_conn"])
                results.setdefault("server KiB per idle connection", []).append(
                    r["server_kib_per_conn"])
                results.setdefault("client KiB per idle connection", []).append(
                    r["client_kib_per_conn"])
    finally:
        stop_server(server)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="bazel-bin/bench of the old build")
    parser.add_argument("--after", required=True, help="bazel-bin/bench of the new build")
    parser.add_argument("--client", help="bazel-bin/bench whose client is used (default --after)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--scale", type=int, default=0,
                        help="also: this many idle connections to the after build alone "
                             "(its server started with --max_connections)")
    parser.add_argument("--out", help="write the Markdown report here too")
    args = parser.parse_args()
    global CLIENT_DIR
    CLIENT_DIR = args.client or args.after
    # An idle unix connection held two fds on each side (the socket and an
    # eventfd that interrupts a blocked read) before 2026-12-02, one since, so
    # N connections need up to 2N + some.
    need = 2 * max(args.connections, args.scale) + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        # Raising the hard limit needs CAP_SYS_RESOURCE (root); else as far as it goes.
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    builds = {"before": args.before, "after": args.after}
    results = {name: {} for name in builds}
    work = tempfile.mkdtemp(prefix="ipcrpc-ab-")
    try:
        for n in range(args.rounds):
            order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
            for name in order:
                one_round(builds[name], work, args.connections, results[name])
            print("round %d done" % (n + 1), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| figure (median of %d rounds) | before | after | after / before |" % args.rounds,
             "|---|---:|---:|---:|"]
    for key in results["before"]:
        b = statistics.median(results["before"][key])
        a = statistics.median(results["after"][key])
        ratio = "%.2f" % (a / b) if b else "—"
        lines.append("| %s | %.2f | %.2f | %s |" % (key, b, a, ratio))
    print("\n".join(lines) + "\n")
    if args.scale:
        work = tempfile.mkdtemp(prefix="ipcrpc-ab-")
        address = "unix:" + os.path.join(work, "s.sock")
        proc = subprocess.Popen(
            [os.path.join(args.after, "ipcrpc_bench_server"), "--address=" + address,
             "--stop_on_stdin_eof", "--max_connections=%d" % (args.scale + 64)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            pid = int(json.loads(proc.stdout.readline())["pid"])
            for r in client(args.after, address, ["--mode=idle_memory", "--server_pid=%d" % pid,
                                                  "--connections=%d" % args.scale]):
                if r["bench"] == "idle_memory":
                    lines += ["", "%d idle connections, after build only: server threads %d "
                              "before, %.4f per connection; server %.1f KiB and %.2f fds, "
                              "client %.1f KiB and %.2f fds per connection" % (
                                  args.scale, r["server_threads_before"],
                                  r["server_threads_per_conn"], r["server_kib_per_conn"],
                                  r["server_fds_per_conn"], r["client_kib_per_conn"],
                                  r["client_fds_per_conn"])]
        finally:
            stop_server(proc)
            shutil.rmtree(work, ignore_errors=True)
    report = "\n".join(lines) + "\n"
    if args.scale:
        print(lines[-1])
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
