#!/usr/bin/env python3
"""The Python side of the benchmark comparison (issue 10), in one run and one placement:

* Python client (sync, and asyncio) -> C++ ipcrpc_bench_server, per Python transport
* C++ ipcrpc_bench_client -> Python server (ipcrpc.server), per transport
* grpcio client -> grpcio server over a unix socket (Debian's python3-grpcio)

for 64 B and 64 KiB unary round trips (p50/p99) and a 4 KiB server stream
(messages/s), with bench/bench.proto's service and payloads. Client and
server run in separate processes, pinned to different CPUs when there are two
(`--placement=same` pins both to CPU 0, `unpinned` does not pin). Reports
ratios; asserts nothing about timings.

    py_bench.py --bin_dir=DIR_WITH_ipcrpc_bench_server [--quick] [--out=FILE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SIZES = [64, 65536]
STREAM_BYTES = 4096
ECHO = "/ipcrpc_bench.Bench/Echo"
STREAM = "/ipcrpc_bench.Bench/Stream"


def gen_messages(out: str) -> None:
    rc = subprocess.call(["protoc", f"-I{REPO}/bench", f"--python_out={out}", f"{REPO}/bench/bench.proto"])
    if rc:
        raise SystemExit("protoc failed")
    sys.path.insert(0, out)


def pin(cpu: Optional[int]) -> None:
    if cpu is not None and cpu < os.cpu_count():  # type: ignore[operator]
        os.sched_setaffinity(0, {cpu})


def percentile(sorted_us: List[float], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(len(sorted_us) * q))]


# -- servers (run as child processes: py_bench.py --serve=KIND --address=...) ---


def serve(kind: str, address: str, cpu: Optional[int]) -> None:
    pin(cpu)
    import bench_pb2 as pb

    def echo(request: Any, context: Any) -> Any:
        return request

    def stream(request: Any, context: Any) -> Any:
        payload = pb.Payload(data=os.urandom(request.message_bytes))
        for _ in range(request.message_count):
            yield payload

    if kind == "ipcrpc":
        import ipcrpc

        server = ipcrpc.server(max_workers=4)
        server.add_generic_rpc_handlers([ipcrpc.method_handlers_generic_handler("ipcrpc_bench.Bench", {
            "Echo": ipcrpc.unary_unary_rpc_method_handler(echo, pb.Payload.FromString, pb.Payload.SerializeToString),
            "Stream": ipcrpc.unary_stream_rpc_method_handler(stream, pb.StreamRequest.FromString, pb.Payload.SerializeToString),
        })])
        server.add_listening_address(address)
        server.start()
        print("READY", flush=True)
        _wait_stdin()
        server.stop(0.5).wait(5)
    else:
        import grpc

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("ipcrpc_bench.Bench", {
            "Echo": grpc.unary_unary_rpc_method_handler(echo, pb.Payload.FromString, pb.Payload.SerializeToString),
            "Stream": grpc.unary_stream_rpc_method_handler(stream, pb.StreamRequest.FromString, pb.Payload.SerializeToString),
        })])
        server.add_insecure_port(address)
        server.start()
        print("READY", flush=True)
        _wait_stdin()
        server.stop(0.5).wait(5)


def _wait_stdin() -> None:
    sys.stdin.read()  # the parent closes our stdin to stop us


class Child:
    def __init__(self, argv: List[str], env: Dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "READY" not in line and "ready" not in line:
            self.stop()
            raise RuntimeError(f"{argv[:3]} did not start: {line!r}")

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


# -- clients ---------------------------------------------------------------------


def measure_sync(echo: Callable[[Any], Any], stream: Callable[[Any], Any], iterations: int, stream_s: float) -> Dict[str, float]:
    import bench_pb2 as pb

    out: Dict[str, float] = {}
    for size in SIZES:
        req = pb.Payload(data=os.urandom(size))
        for _ in range(max(20, iterations // 20)):
            echo(req)
        samples = []
        deadline = time.perf_counter() + 3.0
        for _ in range(iterations):
            t = time.perf_counter()
            echo(req)
            samples.append((time.perf_counter() - t) * 1e6)
            if t > deadline:
                break
        samples.sort()
        out[f"p50_{size}"] = percentile(samples, 0.5)
        out[f"p99_{size}"] = percentile(samples, 0.99)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < stream_s:
        for _ in stream(pb.StreamRequest(message_bytes=STREAM_BYTES, message_count=2000)):
            n += 1
    out["stream_msgs_per_s"] = n / (time.perf_counter() - t0)
    return out


async def measure_async(stub_echo: Any, stub_stream: Any, iterations: int, stream_s: float) -> Dict[str, float]:
    import bench_pb2 as pb

    out: Dict[str, float] = {}
    for size in SIZES:
        req = pb.Payload(data=os.urandom(size))
        for _ in range(max(20, iterations // 20)):
            await stub_echo(req)
        samples = []
        deadline = time.perf_counter() + 3.0
        for _ in range(iterations):
            t = time.perf_counter()
            await stub_echo(req)
            samples.append((time.perf_counter() - t) * 1e6)
            if t > deadline:
                break
        samples.sort()
        out[f"p50_{size}"] = percentile(samples, 0.5)
        out[f"p99_{size}"] = percentile(samples, 0.99)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < stream_s:
        async for _ in stub_stream(pb.StreamRequest(message_bytes=STREAM_BYTES, message_count=2000)):
            n += 1
    out["stream_msgs_per_s"] = n / (time.perf_counter() - t0)
    return out


def ipcrpc_sync_client(address: str, iterations: int, stream_s: float) -> Dict[str, float]:
    import bench_pb2 as pb
    import ipcrpc

    with ipcrpc.channel(address) as ch:
        echo = ch.unary_unary(ECHO, pb.Payload.SerializeToString, pb.Payload.FromString)
        stream = ch.unary_stream(STREAM, pb.StreamRequest.SerializeToString, pb.Payload.FromString)
        return measure_sync(echo, stream, iterations, stream_s)


def ipcrpc_async_client(address: str, iterations: int, stream_s: float) -> Dict[str, float]:
    import bench_pb2 as pb
    import ipcrpc.aio

    async def main() -> Dict[str, float]:
        async with ipcrpc.aio.channel(address) as ch:
            echo = ch.unary_unary(ECHO, pb.Payload.SerializeToString, pb.Payload.FromString)
            stream = ch.unary_stream(STREAM, pb.StreamRequest.SerializeToString, pb.Payload.FromString)
            return await measure_async(echo, stream, iterations, stream_s)

    return asyncio.run(main())


def grpcio_client(address: str, iterations: int, stream_s: float) -> Dict[str, float]:
    import bench_pb2 as pb
    import grpc

    with grpc.insecure_channel(address) as ch:
        echo = ch.unary_unary(ECHO, pb.Payload.SerializeToString, pb.Payload.FromString)
        stream = ch.unary_stream(STREAM, pb.StreamRequest.SerializeToString, pb.Payload.FromString)
        return measure_sync(echo, stream, iterations, stream_s)


def cpp_client(bin_dir: str, address: str, cpu: Optional[int], quick: bool) -> Dict[str, float]:
    out: Dict[str, float] = {}
    base = [os.path.join(bin_dir, "ipcrpc_bench_client"), f"--address={address}", f"--cpu={-1 if cpu is None else cpu}"]
    lat = subprocess.run(base + ["--mode=latency", f"--sizes={','.join(map(str, SIZES))}", "--warmup=100",
                                 f"--iterations={300 if quick else 20000}", f"--max_ms={100 if quick else 1500}"],
                         capture_output=True, text=True, timeout=120)
    for line in lat.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            out[f"p50_{r['size']}"] = r["p50_us"]
            out[f"p99_{r['size']}"] = r["p99_us"]
    st = subprocess.run(base + ["--mode=stream", f"--stream_sizes={STREAM_BYTES}", f"--stream_ms={100 if quick else 1000}"],
                        capture_output=True, text=True, timeout=120)
    for line in st.stdout.splitlines():
        if line.startswith("{"):
            out["stream_msgs_per_s"] = json.loads(line)["msgs_per_s"]
    if not out:
        raise RuntimeError(f"ipcrpc_bench_client printed nothing: {lat.stderr[-500:]} {st.stderr[-500:]}")
    return out


# -- the run -------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin_dir", default=os.path.join(REPO, "bazel-bin", "bench"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--placement", default="cross", choices=["cross", "same", "unpinned"])
    ap.add_argument("--out", default="")
    ap.add_argument("--serve", default="")
    ap.add_argument("--address", default="")
    ap.add_argument("--cpu", type=int, default=-1)
    ap.add_argument("--gen", default="")
    args = ap.parse_args()
    if args.serve:
        sys.path.insert(0, args.gen)
        serve(args.serve, args.address, None if args.cpu < 0 else args.cpu)
        return 0

    import ipcrpc

    work = tempfile.mkdtemp(prefix="ipcrpc-pybench-")
    children: List[Child] = []
    try:
        gen_messages(work)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([work] + sys.path))
        ncpu = os.cpu_count() or 1
        client_cpu, server_cpu = {"cross": (0, 1 if ncpu > 1 else 0), "same": (0, 0), "unpinned": (None, None)}[args.placement]
        iterations = 300 if args.quick else 5000
        stream_s = 0.2 if args.quick else 1.0
        transports = list(ipcrpc.available_transports())
        results: Dict[str, Dict[str, float]] = {}

        def start(kind: str, address: str) -> Child:
            if kind == "cpp":
                argv = [os.path.join(args.bin_dir, "ipcrpc_bench_server"), f"--address={address}",
                        f"--cpu={-1 if server_cpu is None else server_cpu}", "--stop_on_stdin_eof"]
            else:
                argv = [sys.executable, os.path.abspath(__file__), f"--serve={kind}", f"--address={address}",
                        f"--cpu={-1 if server_cpu is None else server_cpu}", f"--gen={work}"]
            c = Child(argv, env)
            children.append(c)
            return c

        pin(client_cpu)
        cpp = start("cpp", f"unix:{work}/cpp.sock")
        for t in transports:
            results[f"Python sync → C++ ({t})"] = ipcrpc_sync_client(f"{t}:{work}/cpp.sock", iterations, stream_s)
            results[f"Python asyncio → C++ ({t})"] = ipcrpc_async_client(f"{t}:{work}/cpp.sock", iterations, stream_s)
        cpp.stop()
        py = start("ipcrpc", f"unix:{work}/py.sock")
        for t in transports:
            results[f"C++ → Python sync server ({t})"] = cpp_client(args.bin_dir, f"{t}:{work}/py.sock", client_cpu, args.quick)
        results["Python sync → Python sync server (unix)"] = ipcrpc_sync_client(f"unix:{work}/py.sock", iterations, stream_s)
        py.stop()
        g = start("grpcio", f"unix:{work}/grpc.sock")
        results["grpcio → grpcio (unix socket)"] = grpcio_client(f"unix:{work}/grpc.sock", iterations, stream_s)
        g.stop()
        report = render(results, args, transports)
        print(report)
        if args.out:
            with open(args.out, "w") as f:
                f.write(report)
        return 0
    finally:
        for c in children:
            if c.proc.poll() is None:
                c.stop()
        shutil.rmtree(work, ignore_errors=True)


def render(results: Dict[str, Dict[str, float]], args: argparse.Namespace, transports: List[str]) -> str:
    import ipcrpc

    lines = [
        f"# Python benchmarks, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"`bench/python/py_bench.py{' --quick' if args.quick else ''} --placement={args.placement}`: one run, client and "
        f"server in separate processes ({args.placement}: "
        + {"cross": "different CPUs", "same": "both on CPU 0", "unpinned": "not pinned"}[args.placement]
        + f"), Python {sys.version.split()[0]}, ipcrpc {ipcrpc.__version__} with transports {', '.join(transports)}. "
        "Unary p50/p99 in µs; stream = server stream of 4 KiB messages.",
        "",
        "| system | 64 B p50 | 64 B p99 | 64 KiB p50 | 64 KiB p99 | 4 KiB stream msgs/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r.get('p50_64', 0):.1f} | {r.get('p99_64', 0):.1f} | {r.get('p50_65536', 0):.1f} | {r.get('p99_65536', 0):.1f} | {r.get('stream_msgs_per_s', 0):,.0f} |")
    g = results.get("grpcio → grpcio (unix socket)", {})
    lines += ["", "## Ratios (how many times faster than grpcio ↔ grpcio over a unix socket, 64 B p50; issue 10's targets)", ""]

    def ratio(name: str) -> Optional[float]:
        r = results.get(name)
        return g.get("p50_64", 0) / r["p50_64"] if r and g and r.get("p50_64") else None

    for name, target in [("Python sync → C++ (shm)", 10.0), ("Python sync → C++ (unix)", 3.0)]:
        x = ratio(name)
        if x is not None:
            lines.append(f"* {name}: {x:.1f}× (target ≥ {target:.0f}×: {'met' if x >= target else 'missed'})")
    for t in transports:
        s, a = results.get(f"Python sync → C++ ({t})"), results.get(f"Python asyncio → C++ ({t})")
        if s and a:
            q = a["p50_64"] / s["p50_64"]
            lines.append(f"* asyncio / sync client over {t}, 64 B p50: {q:.2f} (target ≤ 1.5: {'met' if q <= 1.5 else 'missed'})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
