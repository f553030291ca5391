#!/usr/bin/env python3
"""The gRPC bridge's cost, measured in one run (docs/GRPC_BRIDGE.md).

64 B unary Echo (tests/e2e/test_service.proto), p50 / p99 of CALLS round
trips, each client and server in its own process, over TCP loopback for gRPC
and a unix socket for ipcrpc:

  grpc            grpc++ client -> plain grpc++ server                 (baseline)
  bridge          grpc++ client -> ServeOverGrpc in an ipcrpc server   (in-process bridge)
  gateway_in      grpc++ client -> ipcrpc_gateway -> ipcrpc server (unix)
  ipcrpc_hop      ipcrpc client -> ipcrpc server (unix)                (one local hop)
  grpc_address    ipcrpc client -> grpc:127.0.0.1:PORT -> plain grpc++ server
  gateway_out     ipcrpc client -> ipcrpc_gateway (unix) -> plain grpc++ server

Targets (issue 12): bridge <= 1.10 x grpc; gateway_in - grpc and
gateway_out - grpc_address each <= 1.10 x ipcrpc_hop.
The set is run ROUNDS times, alternating, and the median of each figure is
reported (these VMs drift +-20% between runs).

  bazel build //bench/grpc_bridge:all_binaries
  bench/grpc_bridge/run.py [--calls=5000] [--rounds=3] [--out=FILE.md]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bazel-bin")


def binary(path):
    full = os.path.join(BIN, path)
    if not os.path.exists(full):
        sys.exit("missing %s: bazel build //bench/grpc_bridge:all_binaries" % full)
    return full


class Process:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.values = {}
        for line in self.proc.stdout:
            for word in line.split():
                if "=" in word:
                    k, v = word.split("=", 1)
                    self.values[k] = v
            if line.startswith("READY"):
                return
        sys.exit("%s did not start" % argv[0])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(client, name, target, calls):
    out = subprocess.run([binary(client), name, target, str(calls)], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bridge-bench-", dir="/tmp")
    procs = []
    try:
        def start(argv):
            p = Process(argv)
            procs.append(p)
            return p
        plain = start([binary("tests/bridge/plain_grpc_server"), "--listen=127.0.0.1:0"])
        grpc_target = "127.0.0.1:" + plain.values["GRPC_PORT"]
        bridged = start([binary("tests/bridge/bridge_test_server"), "unix:%s/bridged.sock" % tmp,
                         "--grpc_listen=127.0.0.1:0"])
        local = start([binary("tests/e2e/test_server"), "unix:%s/local.sock" % tmp])
        gw_in = start([binary("bridge/ipcrpc_gateway"), "--grpc_listen=127.0.0.1:0",
                       "--to=unix:%s/local.sock" % tmp])
        start([binary("bridge/ipcrpc_gateway"), "--listen=unix:%s/gw_out.sock" % tmp,
               "--to=grpc:" + grpc_target])
        grpc_client = "bench/grpc_bridge/bridge_bench_grpc_client"
        ipc_client = "bench/grpc_bridge/bridge_bench_ipcrpc_client"
        plan = [
            ("grpc", grpc_client, grpc_target),
            ("bridge", grpc_client, "127.0.0.1:" + bridged.values["GRPC_PORT"]),
            ("gateway_in", grpc_client, "127.0.0.1:" + gw_in.values["grpc_port"]),
            ("ipcrpc_hop", ipc_client, "unix:%s/local.sock" % tmp),
            ("grpc_address", ipc_client, "grpc:" + grpc_target),
            ("gateway_out", ipc_client, "unix:%s/gw_out.sock" % tmp),
        ]
        results = {name: [] for name, _, _ in plan}
        for r in range(args.rounds):
            for name, client, target in plan:
                results[name].append(measure(client, name, target, args.calls))
                print(json.dumps(results[name][-1]), file=sys.stderr)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    p50 = {n: statistics.median(x["p50_us"] for x in v) for n, v in results.items()}
    p99 = {n: statistics.median(x["p99_us"] for x in v) for n, v in results.items()}
    lines = [
        "# gRPC bridge: 64 B unary, p50 / p99 (µs), median of %d alternating rounds of %d calls"
        % (args.rounds, args.calls),
        "",
        "%s, %d CPUs, commit %s" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                   os.cpu_count(),
                                   subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                                  stdout=subprocess.PIPE, text=True).stdout.strip()),
        "",
        "| route | p50 | p99 |",
        "|---|---:|---:|",
    ]
    for name, _, _ in plan:
        lines.append("| %s | %.1f | %.1f |" % (name, p50[name], p99[name]))
    hop = p50["ipcrpc_hop"]
    lines += [
        "",
        "| target | measured | goal | met |",
        "|---|---:|---:|---|",
        "| bridge / grpc (p50) | %.2f | ≤ 1.10 | %s |"
        % (p50["bridge"] / p50["grpc"], "yes" if p50["bridge"] <= 1.10 * p50["grpc"] else "no"),
        "| (gateway_in − grpc) / ipcrpc_hop (p50) | %.2f | ≤ 1.10 | %s |"
        % ((p50["gateway_in"] - p50["grpc"]) / hop,
           "yes" if p50["gateway_in"] - p50["grpc"] <= 1.10 * hop else "no"),
        "| (gateway_out − grpc_address) / ipcrpc_hop (p50) | %.2f | ≤ 1.10 | %s |"
        % ((p50["gateway_out"] - p50["grpc_address"]) / hop,
           "yes" if p50["gateway_out"] - p50["grpc_address"] <= 1.10 * hop else "no"),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
