#!/usr/bin/env python3
"""What one call forwarded by ipcrpc_gateway --listen costs the gateway process.

Starts tests/bridge/plain_grpc_server and `ipcrpc_gateway --listen=unix:... --to=grpc:...`,
warms up, then runs bench/grpc_bridge's ipcrpc client for CALLS 64 B unary Echo calls through
the gateway and prints, per call, the gateway's context switches and CPU time (`perf stat -e
context-switches,task-clock` on the gateway process, every thread including those that end
during the run), with the client's p50/p99. Context switches per call are a count, far steadier
on a noisy VM than a latency: each time a thread sleeps to wait for another is one.
Needs `perf` (Debian: linux-perf) and root or perf_event_paranoid <= 0.

  bazel build -c opt //bench/grpc_bridge:all_binaries
  bench/grpc_bridge/gateway_cost.py [--calls=5000] [--root=REPO]   (binaries from REPO/bazel-bin)
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def start(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    values = {}
    for line in proc.stdout:
        for word in line.split():
            if "=" in word:
                key, value = word.split("=", 1)
                values[key] = value
        if line.startswith("READY"):
            return proc, values
    sys.exit("%s did not start" % argv[0])


def perf_counts(path):
    """{event: value} from `perf stat -x,` output."""
    counts = {}
    for line in open(path):
        fields = line.strip().split(",")
        if len(fields) > 2 and fields[0] and fields[0][0].isdigit():
            counts[fields[2]] = float(fields[0])
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    args = parser.parse_args()
    bin_dir = os.path.join(args.root, "bazel-bin")
    client = os.path.join(bin_dir, "bench/grpc_bridge/bridge_bench_ipcrpc_client")
    for path in (client, os.path.join(bin_dir, "bridge/ipcrpc_gateway")):
        if not os.path.exists(path):
            sys.exit("missing %s: bazel build -c opt //bench/grpc_bridge:all_binaries" % path)
    tmp = tempfile.mkdtemp(prefix="gateway-cost-", dir="/tmp")
    procs = []
    try:
        plain, values = start([os.path.join(bin_dir, "tests/bridge/plain_grpc_server"),
                               "--listen=127.0.0.1:0"])
        procs.append(plain)
        address = "unix:%s/gw.sock" % tmp
        gateway, _ = start([os.path.join(bin_dir, "bridge/ipcrpc_gateway"), "--listen=" + address,
                            "--to=grpc:127.0.0.1:" + values["GRPC_PORT"]])
        procs.append(gateway)
        subprocess.run([client, "warmup", address, "500"], check=True, stdout=subprocess.DEVNULL)
        stat_file = os.path.join(tmp, "perf.txt")
        perf = subprocess.Popen(["perf", "stat", "-x,", "-o", stat_file, "-e",
                                 "context-switches,task-clock", "-p", str(gateway.pid)])
        time.sleep(0.3)  # perf attached
        out = subprocess.run([client, "gateway_out", address, str(args.calls)], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        perf.send_signal(signal.SIGINT)
        perf.wait()
        counts = perf_counts(stat_file)
        if "context-switches" not in counts or "task-clock" not in counts:
            sys.exit("perf stat gave no counts: %s" % open(stat_file).read())
        # task-clock is in ms; the 0.3 s before the calls are idle.
        print("gateway cpu_us_per_call=%.0f context_switches_per_call=%.2f client %s" % (
            counts["task-clock"] * 1e3 / args.calls, counts["context-switches"] / args.calls, out))
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
