#!/usr/bin/env python3
"""What one call forwarded by ipcrpc_gateway --listen costs the gateway process.

Starts tests/bridge/plain_grpc_server and `ipcrpc_gateway --listen=unix:... --to=grpc:...`,
warms up, then runs bench/grpc_bridge's ipcrpc client for CALLS 64 B unary Echo calls through
the gateway and prints the gateway's CPU time per call (utime + stime, whole process) and its
threads' context switches per call (voluntary + involuntary, threads alive at the end), with the
client's p50/p99. Context switches per call are a count, far steadier on a noisy VM than a
latency; each one that puts a thread to sleep and wakes it is one cross-thread hand-off.

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


def cpu_ticks(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def context_switches(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            status = open("/proc/%d/task/%s/status" % (pid, tid)).read()
        except FileNotFoundError:
            continue  # the thread ended
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


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
        cpu0, switches0 = cpu_ticks(gateway.pid), context_switches(gateway.pid)
        out = subprocess.run([client, "gateway_out", address, str(args.calls)], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        cpu1, switches1 = cpu_ticks(gateway.pid), context_switches(gateway.pid)
        print("gateway cpu_us_per_call=%.0f context_switches_per_call=%.2f client %s" % (
            (cpu1 - cpu0) * 1e6 / os.sysconf("SC_CLK_TCK") / args.calls,
            (switches1 - switches0) / args.calls, out))
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
