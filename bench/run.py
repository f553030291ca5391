#!/usr/bin/python3
"""Runs the ipcrpc benchmarks side by side and writes the report.

    bench/run.sh [--quick] [--placements=cross,same,unpinned]   # builds, then runs this

In one run, for each placement (client and server on different CPUs, on one
CPU, unpinned): the raw IPC mechanisms (bench/raw), ipcrpc over every
transport of the build (asked of ipcrpc_bench_client --mode=transports, so
new transports are picked up without a change here) and gRPC over a unix
socket, all with the same payloads. Every binary prints JSON lines; this
script collects them, and writes

    OUT/<date>.md        tables with ratios, the targets met or missed, the machine
    OUT/<date>.png       a chart (gnuplot), unless --no_plot or gnuplot is missing
    OUT/<date>.raw.txt   every command run and its exact output

(<date>-quick.* with --quick; OUT is bench/results unless --out_dir says otherwise.)

Everything the benchmarks create lives in one private directory under /tmp
(removed at the end, also on Ctrl-C or SIGTERM); every process started here
is stopped by its pid. Only Debian's python3 standard library is used.
"""

import argparse
import datetime
import json
import os
import platform
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------------------
# What is measured

LATENCY_SIZES = [64, 4096, 65536, 1048576]
STREAM_SIZES = [4096, 1048576]
THREADS = [1, 4, 16]

# The raw mechanism each ipcrpc transport is built on (for "ipcrpc / raw").
RAW_FOR_TRANSPORT = {
    "unix": "unix",
    "fifo": "fifo",
    "shm": "shm-futex-spin",
    "shm+sem": "shm-sem",
    "msgq": "msgq",
}
# Transports whose receiver sleeps at once (the shm transport spins first).
SLEEPING_TRANSPORTS = ["unix", "fifo", "shm+sem", "msgq"]

# Each placement is measured in `rounds` rounds; a round runs every system once,
# in reverse order every other round, so slow drift of the machine (other
# processes, frequency, the hypervisor) spreads over all systems alike. The
# tables show the median over rounds and how far the rounds' p50s spread.
FULL = {
    "rounds": 3,
    "latency": ["--warmup=200", "--iterations=20000", "--max_ms=350"],
    "stream": ["--stream_ms=250", "--stream_warmup=20"],
    "concurrent": ["--concurrent_ms=400"],
    "idle": ["--connections=32"],
    "timeout": 180,
}
QUICK = {
    "rounds": 1,
    "latency": ["--warmup=5", "--iterations=20", "--max_ms=50"],
    "stream": ["--stream_ms=20", "--stream_warmup=2"],
    "concurrent": ["--concurrent_ms=50"],
    "idle": ["--connections=2"],
    "timeout": 60,
}

# The fields each kind of JSON line must carry (anything else is malformed).
SCHEMA = {
    "latency": ["system", "transport", "size", "samples", "p50_us", "p99_us", "p999_us"],
    "stream": ["system", "transport", "size", "messages", "seconds", "msgs_per_s", "mb_per_s"],
    "concurrent": ["system", "transport", "threads", "calls", "seconds", "calls_per_s"],
    "idle_memory": ["system", "transport", "connections", "server_kib_per_conn",
                    "client_kib_per_conn", "server_threads_per_conn"],
    "transport": ["system", "transport", "available"],
    "mechanism": ["system", "transport", "description", "spins_only"],
    "skipped": ["system", "transport", "reason"],
    "ready": ["system", "pid"],
    "error": ["program", "message"],
}


class BenchError(Exception):
    pass


class Stop(Exception):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


# ---------------------------------------------------------------------------
# Running the binaries

class Runner:
    """Starts the benchmark binaries, remembers every line they print."""

    def __init__(self, bin_dir, work_dir, quick):
        self.bin = {
            "ipcrpc_server": os.path.join(bin_dir, "ipcrpc_bench_server"),
            "ipcrpc_client": os.path.join(bin_dir, "ipcrpc_bench_client"),
            "grpc_server": os.path.join(bin_dir, "grpc", "grpc_bench_server"),
            "grpc_client": os.path.join(bin_dir, "grpc", "grpc_bench_client"),
            "raw": os.path.join(bin_dir, "raw", "raw_bench"),
        }
        for path in self.bin.values():
            if not os.access(path, os.X_OK):
                raise BenchError("missing benchmark binary %s (build //bench:binaries)" % path)
        self.work_dir = work_dir
        self.settings = QUICK if quick else FULL
        self.records = []    # parsed lines, each with "placement"
        self.raw_log = []    # "$ command" and output lines, as printed
        self.failures = []   # one string per failed command
        self.servers = []    # live server Popen objects
        self.clients = []    # the running client, if any
        self.env = dict(os.environ)
        for name in ("IPCRPC_TRANSPORT", "IPCRPC_CONFIG"):
            self.env.pop(name, None)  # the environment must not change what is measured

    def _parse(self, argv, stdout, placement):
        records = []
        for line in stdout.splitlines():
            if not line.strip():
                continue
            self.raw_log.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                raise BenchError("%s printed a line that is not JSON: %r" % (argv[0], line))
            kind = record.get("bench")
            missing = [k for k in SCHEMA.get(kind, ["?"]) if k not in record]
            if kind not in SCHEMA or missing:
                raise BenchError("%s printed a malformed %s line (missing %s): %s"
                                 % (os.path.basename(argv[0]), kind, missing, line))
            record["placement"] = placement
            records.append(record)
        return records

    def run(self, argv, placement, round_number=0):
        """Runs one client; returns its records, or [] after noting a failure."""
        self.raw_log.append("$ " + " ".join(argv))
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)
        self.clients.append(proc)
        try:
            stdout, stderr = proc.communicate(timeout=self.settings["timeout"])
        except subprocess.TimeoutExpired:
            self.terminate(proc)
            stdout, stderr = proc.communicate()
            self.failures.append("%s: timed out after %d s" % (" ".join(argv),
                                                                self.settings["timeout"]))
        self.clients.remove(proc)
        records = self._parse(argv, stdout, placement)
        for r in records:
            r["round"] = round_number
        if proc.returncode != 0:
            tail = stderr.strip().splitlines()[-5:]
            self.failures.append("%s: exit %d: %s" % (" ".join(argv), proc.returncode,
                                                        " | ".join(tail)))
            self.raw_log.append("# exit %d; stderr: %s" % (proc.returncode, " | ".join(tail)))
            return []
        self.records.extend(r for r in records if r["bench"] != "ready")
        return records

    @staticmethod
    def terminate(proc):
        """SIGTERM (the raw benchmark then removes its FIFOs and queues), then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                return
            proc.send_signal(sig)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass

    def start_server(self, kind, address, cpu):
        """Starts a server; returns (Popen, pid) once it says it is ready."""
        argv = [self.bin[kind + "_server"], "--address=" + address, "--cpu=%d" % cpu,
                "--stop_on_stdin_eof"]
        self.raw_log.append("$ " + " ".join(argv) + " &")
        stderr = tempfile.TemporaryFile(dir=self.work_dir)
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, env=self.env, text=True)
        proc.stderr_file = stderr
        self.servers.append(proc)
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline and not line:
            if selector.select(timeout=0.1):
                line = proc.stdout.readline()
                if not line:
                    break  # exited
        selector.close()
        if not line:
            self.stop_server(proc)
            raise BenchError("%s did not start: %s" % (" ".join(argv), self._stderr_tail(proc)))
        record = self._parse(argv, line, None)[0]
        if record["bench"] != "ready":
            self.stop_server(proc)
            raise BenchError("%s: %s" % (" ".join(argv), line.strip()))
        return proc, int(record["pid"])

    @staticmethod
    def _stderr_tail(proc):
        proc.stderr_file.seek(0)
        return " | ".join(proc.stderr_file.read().decode(errors="replace").splitlines()[-5:])

    def stop_server(self, proc):
        """Closes the server's stdin (it stops by itself), then SIGTERM, then SIGKILL."""
        try:
            proc.stdin.close()
        except OSError:
            pass
        for sig, wait in ((None, 3), (signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            if sig is not None and proc.poll() is None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.returncode not in (0, None):
            self.failures.append("%s exited %d: %s" % (proc.args[0], proc.returncode,
                                                      self._stderr_tail(proc)))
        proc.stdout.close()
        proc.stderr_file.close()
        if proc in self.servers:
            self.servers.remove(proc)

    def stop_all(self):
        for proc in list(self.clients):
            self.terminate(proc)
            self.clients.remove(proc)
        for proc in list(self.servers):
            self.stop_server(proc)


# ---------------------------------------------------------------------------
# The run

def pick_placements(names):
    cpus = sorted(os.sched_getaffinity(0))
    first = cpus[0]
    second = cpus[1] if len(cpus) > 1 else None
    placements, notes = [], []
    for name in names:
        if name == "cross":
            if second is None:
                notes.append("cross-CPU placement skipped: only one CPU is available")
                continue
            placements.append(("cross", first, second,
                               "client and server on different CPUs (client CPU %d, server CPU %d)"
                               % (first, second)))
        elif name == "same":
            placements.append(("same", first, first, "client and server both on CPU %d" % first))
        elif name == "unpinned":
            placements.append(("unpinned", -1, -1, "unpinned: the scheduler places both"))
        else:
            raise BenchError("unknown placement %r (cross, same, unpinned)" % name)
    return placements, notes


def run_benchmarks(runner, placements):
    s = runner.settings
    sizes = "--sizes=" + ",".join(str(x) for x in LATENCY_SIZES)
    stream_sizes = "--stream_sizes=" + ",".join(str(x) for x in STREAM_SIZES)
    threads = "--threads=" + ",".join(str(x) for x in THREADS)
    work = runner.work_dir
    ipcrpc_socket = os.path.join(work, "ipcrpc.sock")
    grpc_address = "unix:" + os.path.join(work, "grpc.sock")

    # Which transports this build has, and which raw mechanisms exist.
    listing = runner.run([runner.bin["ipcrpc_client"], "--address=unix:" + ipcrpc_socket,
                          "--mode=transports"], None)
    transports = [r["transport"] for r in listing if r["available"]]
    skipped = [(r["transport"], r.get("reason", "")) for r in listing if not r["available"]]
    mechanisms = runner.run([runner.bin["raw"], "--list"], None)
    if not transports or not mechanisms:
        raise BenchError("could not list transports or raw mechanisms: %s" % runner.failures)
    for name, reason in skipped:
        print("skipping ipcrpc transport %s: %s" % (name, reason), flush=True)

    # One job per system: (label, function(placement, cpus, round)).
    def raw_job(mechanism):
        def job(placement, client_cpu, server_cpu, round_number):
            runner.run([runner.bin["raw"], "--mechanism=" + mechanism,
                        "--client_cpu=%d" % client_cpu, "--server_cpu=%d" % server_cpu, sizes,
                        stream_sizes] + s["latency"] + s["stream"], placement, round_number)
        return "raw " + mechanism, job

    def rpc_job(system, transport):
        def job(placement, client_cpu, server_cpu, round_number):
            address = "unix:" + ipcrpc_socket if system == "ipcrpc" else grpc_address
            server, _ = runner.start_server(system, address, server_cpu)
            try:
                target = (transport + ":" + ipcrpc_socket) if system == "ipcrpc" else address
                base = [runner.bin[system + "_client"], "--address=" + target,
                        "--cpu=%d" % client_cpu]
                for mode in (["--mode=latency", sizes] + s["latency"],
                             ["--mode=stream", stream_sizes] + s["stream"],
                             ["--mode=concurrent", threads] + s["concurrent"]):
                    runner.run(base + mode, placement, round_number)
            finally:
                runner.stop_server(server)
        return "%s %s" % (system, transport), job

    jobs = ([raw_job(m["transport"]) for m in mechanisms] +
            [rpc_job("ipcrpc", t) for t in transports] + [rpc_job("grpc", "unix")])
    for placement, client_cpu, server_cpu, title in placements:
        for round_number in range(s["rounds"]):
            print("== %s, round %d of %d" % (title, round_number + 1, s["rounds"]), flush=True)
            for label, job in (jobs if round_number % 2 == 0 else reversed(jobs)):
                print("   " + label, flush=True)
                job(placement, client_cpu, server_cpu, round_number)

    # Idle-connection memory: a fresh, unpinned server per transport.
    print("== idle connection memory", flush=True)
    for system, transport_list in (("ipcrpc", transports), ("grpc", ["unix"])):
        for transport in transport_list:
            address = "unix:" + ipcrpc_socket if system == "ipcrpc" else grpc_address
            server, pid = runner.start_server(system, address, -1)
            try:
                target = (transport + ":" + ipcrpc_socket) if system == "ipcrpc" else address
                runner.run([runner.bin[system + "_client"], "--address=" + target,
                            "--mode=idle_memory", "--server_pid=%d" % pid] + s["idle"],
                           "unpinned")
            finally:
                runner.stop_server(server)
    return transports, skipped, mechanisms


# ---------------------------------------------------------------------------
# Reading the results

def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


# The field whose spread over rounds each kind reports.
SPREAD_FIELD = {"latency": "p50_us", "stream": "mb_per_s", "concurrent": "calls_per_s"}


def combine(records):
    """One record from the rounds of one measurement: medians, summed counts, spread."""
    if len(records) == 1:
        out = dict(records[0])
        out["rounds"] = 1
        out["spread"] = 0.0
        return out
    out = dict(records[0])
    for field, value in records[0].items():
        if isinstance(value, (int, float)) and field not in ("size", "threads", "round"):
            if field in ("samples", "messages", "calls"):
                out[field] = sum(r[field] for r in records)
            else:
                out[field] = median([r[field] for r in records])
    out["rounds"] = len(records)
    key = SPREAD_FIELD.get(records[0]["bench"])
    if key:
        values = [r[key] for r in records]
        out["spread"] = (max(values) - min(values)) / out[key] if out[key] else 0.0
    return out


def index(records):
    groups = {}
    for r in records:
        kind = r["bench"]
        if kind in ("latency", "stream"):
            key = (kind, r["placement"], r["system"], r["transport"], r["size"])
        elif kind == "concurrent":
            key = (kind, r["placement"], r["system"], r["transport"], r["threads"])
        elif kind == "idle_memory":
            key = (kind, r["system"], r["transport"])
        elif kind == "skipped":
            key = (kind, r["placement"], r["system"], r["transport"])
        else:
            continue
        groups.setdefault(key, []).append(r)
    return {key: combine(group) for key, group in groups.items()}


def spread(r):
    return "—" if r.get("rounds", 1) < 2 else "%.0f%%" % (100 * r["spread"])


def size_name(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return "%d MiB" % (n >> 20)
    if n >= 1024 and n % 1024 == 0:
        return "%d KiB" % (n >> 10)
    return "%d B" % n


def us(x):
    if x is None:
        return "—"
    if x < 10:
        return "%.2f" % x
    if x < 100:
        return "%.1f" % x
    return "%.0f" % x


def rate(x):
    return "—" if x is None else "{:,.0f}".format(x)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def ratio_text(x):
    return "—" if x is None else "%.2f" % x


def system_label(system, transport):
    if system == "grpc":
        return "gRPC (unix socket)"
    return "%s %s" % ("ipcrpc" if system == "ipcrpc" else "raw", transport)


class Report:
    def __init__(self, runner, transports, skipped, mechanisms, placements, notes, args, machine):
        self.by = index(runner.records)
        self.transports = transports
        self.skipped = skipped
        self.mechanisms = mechanisms
        self.placements = placements
        self.notes = notes
        self.args = args
        self.machine = machine
        self.failures = runner.failures
        self.rounds = runner.settings["rounds"]
        self.systems = ([("raw", m["transport"]) for m in mechanisms] +
                        [("ipcrpc", t) for t in transports] + [("grpc", "unix")])

    def get(self, kind, placement, system, transport, param, field):
        r = self.by.get((kind, placement, system, transport, param))
        return None if r is None else r[field]

    def missing(self):
        """Every figure this run should have produced but did not."""
        missing = []
        for placement, _, _, _ in self.placements:
            for system, transport in self.systems:
                if ("skipped", placement, system, transport) in self.by:
                    continue
                wanted = ([("latency", s) for s in LATENCY_SIZES] +
                          [("stream", s) for s in STREAM_SIZES])
                if system != "raw":
                    wanted += [("concurrent", t) for t in THREADS]
                for kind, param in wanted:
                    if (kind, placement, system, transport, param) not in self.by:
                        missing.append("%s %s %s %s" % (placement, system_label(system, transport),
                                                        kind, param))
        for system, transport in self.systems:
            if system != "raw" and ("idle_memory", system, transport) not in self.by:
                missing.append("idle_memory %s" % system_label(system, transport))
        return missing

    # -- tables ------------------------------------------------------------

    def latency_table(self, placement, title):
        out = ["### Unary round trip, %s" % title, "",
               "| payload | system | p50 µs | p99 µs | p99.9 µs | samples | p50 spread "
               "| ipcrpc ÷ raw (p50) | gRPC ÷ ipcrpc (p50) |",
               "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for size in LATENCY_SIZES:
            for system, transport in self.systems:
                r = self.by.get(("latency", placement, system, transport, size))
                if r is None:
                    continue
                vs_raw = vs_grpc = "—"
                if system == "ipcrpc":
                    raw_name = RAW_FOR_TRANSPORT.get(transport)
                    raw_p50 = self.get("latency", placement, "raw", raw_name, size, "p50_us")
                    if raw_p50 is not None:
                        vs_raw = "%s (vs raw %s)" % (ratio_text(ratio(r["p50_us"], raw_p50)),
                                                     raw_name)
                    grpc_p50 = self.get("latency", placement, "grpc", "unix", size, "p50_us")
                    vs_grpc = ratio_text(ratio(grpc_p50, r["p50_us"]))
                out.append("| %s | %s | %s | %s | %s | %d | %s | %s | %s |" % (
                    size_name(size), system_label(system, transport), us(r["p50_us"]),
                    us(r["p99_us"]), us(r["p999_us"]), r["samples"], spread(r), vs_raw,
                    vs_grpc))
        for system, transport in self.systems:
            r = self.by.get(("skipped", placement, system, transport))
            if r is not None:
                out.append("")
                out.append("%s: not run here — %s." % (system_label(system, transport),
                                                      r["reason"]))
        return out

    def stream_table(self, placement, title):
        out = ["### Server-streaming throughput, %s" % title, "",
               "| message | system | messages/s | MB/s | MB/s spread | ipcrpc ÷ raw (MB/s) "
               "| gRPC ÷ ipcrpc (MB/s) |",
               "|---|---|---:|---:|---:|---:|---:|"]
        for size in STREAM_SIZES:
            for system, transport in self.systems:
                r = self.by.get(("stream", placement, system, transport, size))
                if r is None:
                    continue
                vs_raw = vs_grpc = "—"
                if system == "ipcrpc":
                    raw_name = RAW_FOR_TRANSPORT.get(transport)
                    raw_mb = self.get("stream", placement, "raw", raw_name, size, "mb_per_s")
                    if raw_mb is not None:
                        vs_raw = "%s (vs raw %s)" % (ratio_text(ratio(r["mb_per_s"], raw_mb)),
                                                     raw_name)
                    grpc_mb = self.get("stream", placement, "grpc", "unix", size, "mb_per_s")
                    vs_grpc = ratio_text(ratio(grpc_mb, r["mb_per_s"]))
                out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    size_name(size), system_label(system, transport), rate(r["msgs_per_s"]),
                    rate(r["mb_per_s"]), spread(r), vs_raw, vs_grpc))
        return out

    def concurrent_table(self, placement, title):
        header = " | ".join("%d client%s calls/s" % (t, "" if t == 1 else "s") for t in THREADS)
        out = ["### Aggregate unary calls/s (64 B), %s" % title, "",
               "| system | %s | spread (%d clients) | gRPC ÷ ipcrpc (%s clients) |" % (
                   header, THREADS[-1], " / ".join(str(t) for t in THREADS)),
               "|---|%s---:|---:|" % ("---:|" * len(THREADS))]
        for system, transport in self.systems:
            if system == "raw":
                continue
            values = [self.get("concurrent", placement, system, transport, t, "calls_per_s")
                      for t in THREADS]
            if all(v is None for v in values):
                continue
            vs_grpc = "—"
            if system == "ipcrpc":
                grpc = [self.get("concurrent", placement, "grpc", "unix", t, "calls_per_s")
                        for t in THREADS]
                vs_grpc = " / ".join(ratio_text(ratio(g, v)) for g, v in zip(grpc, values))
            last = self.by.get(("concurrent", placement, system, transport, THREADS[-1]))
            out.append("| %s | %s | %s | %s |" % (
                system_label(system, transport), " | ".join(rate(v) for v in values),
                "—" if last is None else spread(last), vs_grpc))
        return out

    def idle_table(self):
        out = ["### Resident memory of an idle connection (unpinned)", "",
               "| system | server KiB per connection | client KiB per connection "
               "| server threads per connection | server fds per connection "
               "| server RSS before, KiB | connections opened |",
               "|---|---:|---:|---:|---:|---:|---:|"]
        for system, transport in self.systems:
            r = self.by.get(("idle_memory", system, transport))
            if r is None:
                continue
            fds = r.get("server_fds_per_conn")
            out.append("| %s | %.1f | %.1f | %.2f | %s | %s | %d |" % (
                system_label(system, transport), r["server_kib_per_conn"],
                r["client_kib_per_conn"], r["server_threads_per_conn"],
                "—" if fds is None else "%.2f" % fds,
                rate(r.get("server_rss_kib")), r["connections"]))
        return out

    # -- targets -----------------------------------------------------------

    def targets(self):
        """(target, placement, measured, verdict) rows; verdict met/missed/not measured."""
        rows = []
        placements = [p[0] for p in self.placements]
        titles = {"cross": "cross-CPU", "same": "one CPU", "unpinned": "unpinned"}

        def verdict(ok):
            return "met" if ok else "missed"

        # 1. shm with spinning, cross-CPU, 64 B p50 <= 1.5 us.
        name = "shm transport (spinning), 64 B p50 ≤ 1.5 µs across CPUs"
        p50 = self.get("latency", "cross", "ipcrpc", "shm", 64, "p50_us")
        if "shm" not in self.transports:
            rows.append((name, "cross-CPU", "shm transport not in this build", "not measured"))
        elif p50 is None:
            rows.append((name, "cross-CPU", "no result (see failures)", "not measured"))
        else:
            raw = self.get("latency", "cross", "raw", "shm-spin", 64, "p50_us")
            rows.append((name, "cross-CPU", "%s µs (raw shm-spin %s µs)" % (us(p50), us(raw)),
                         verdict(p50 <= 1.5)))

        # 2. Every sleeping transport <= 1.25x its raw mechanism (64 B p50).
        name = "sleeping transport, 64 B p50 ≤ 1.25 × its raw mechanism"
        for transport in SLEEPING_TRANSPORTS:
            if transport not in self.transports:
                rows.append((name + " (%s)" % transport, "—",
                             "%s transport not in this build" % transport, "not measured"))
                continue
            raw_name = RAW_FOR_TRANSPORT[transport]
            for p in placements:
                ipc = self.get("latency", p, "ipcrpc", transport, 64, "p50_us")
                raw = self.get("latency", p, "raw", raw_name, 64, "p50_us")
                if ipc is None or raw is None:
                    rows.append((name + " (%s)" % transport, titles[p], "no result",
                                 "not measured"))
                    continue
                rows.append((name + " (%s)" % transport, titles[p],
                             "%s µs vs raw %s %s µs = %.2f×" % (us(ipc), raw_name, us(raw),
                                                                ipc / raw),
                             verdict(ipc <= 1.25 * raw)))

        # 3. unix >= 2x faster than gRPC across CPUs, >= 5x on one CPU (64 B p50).
        for p, factor in (("cross", 2.0), ("same", 5.0)):
            name = "unix transport ≥ %g× faster than gRPC, 64 B p50" % factor
            ipc = self.get("latency", p, "ipcrpc", "unix", 64, "p50_us")
            grpc = self.get("latency", p, "grpc", "unix", 64, "p50_us")
            if p not in placements or ipc is None or grpc is None:
                rows.append((name, titles[p], "no result", "not measured"))
                continue
            rows.append((name, titles[p], "gRPC %s µs ÷ ipcrpc %s µs = %.2f×" % (
                us(grpc), us(ipc), grpc / ipc), verdict(grpc >= factor * ipc)))

        # 4. 1 MiB unary over shm >= 3 GB/s effective.
        name = "1 MiB unary over shm ≥ 3 GB/s effective"
        if "shm" not in self.transports:
            rows.append((name, "—", "shm transport not in this build", "not measured"))
        else:
            for p in placements:
                p50 = self.get("latency", p, "ipcrpc", "shm", 1048576, "p50_us")
                if p50 is None:
                    rows.append((name, titles[p], "no result", "not measured"))
                    continue
                both = 2 * 1048576 / (p50 * 1e-6) / 1e9
                rows.append((name, titles[p],
                             "%.2f GB/s (2 MiB moved per round trip of %s µs; %.2f GB/s "
                             "counting one direction)" % (both, us(p50), both / 2),
                             verdict(both >= 3.0)))

        # 5. 16 concurrent clients >= 3x gRPC's aggregate calls/s.
        name = "16 concurrent clients ≥ 3 × gRPC's aggregate calls/s"
        for transport in self.transports:
            for p in placements:
                ipc = self.get("concurrent", p, "ipcrpc", transport, 16, "calls_per_s")
                grpc = self.get("concurrent", p, "grpc", "unix", 16, "calls_per_s")
                if ipc is None or grpc is None:
                    rows.append((name + " (%s)" % transport, titles[p], "no result",
                                 "not measured"))
                    continue
                rows.append((name + " (%s)" % transport, titles[p],
                             "%s calls/s vs gRPC %s = %.2f×" % (rate(ipc), rate(grpc),
                                                                 ipc / grpc),
                             verdict(ipc >= 3 * grpc)))
        return rows

    # -- the file ------------------------------------------------------------

    def markdown(self, png_name, raw_name):
        m = self.machine
        targets = self.targets()
        count = {v: sum(1 for t in targets if t[3] == v) for v in ("met", "missed",
                                                                    "not measured")}
        out = ["# ipcrpc benchmarks, %s" % m["date"], "",
               "Produced by `%s` (see `docs/BENCHMARKS.md`). All figures below come from "
               "this one run, so they can be compared with each other; figures from "
               "different runs on these VMs cannot (they drift ±20%%)." % self.args.command, "",
               "| | |", "|---|---|",
               "| started | %s |" % m["started"],
               "| duration | %.0f s |" % m["duration"],
               "| machine | %s CPUs (`nproc`), %s |" % (m["nproc"], m["cpu_model"]),
               "| kernel | %s |" % m["kernel"],
               "| load average at start / end | %s / %s |" % (m["load_start"],
                                                             m["load_end"]),
               "| ipcrpc commit | %s |" % m["commit"],
               "| build | `bazel build -c opt //bench:binaries` (%s) |" % m["compiler"],
               "| gRPC | %s |" % m["grpc"],
               "| mode | %s, %d round(s) per placement |" % (
                   "quick (smoke: too few samples to mean anything)" if self.args.quick
                   else "full", self.rounds),
               "| ipcrpc transports measured | %s |" % ", ".join(self.transports),
               ]
        for name, reason in self.skipped:
            out.append("| transport skipped | %s: %s |" % (name, reason))
        out.append("")
        for note in self.notes:
            out.append("Note: %s." % note)
        if self.failures:
            out += ["", "**Failures in this run** (their figures are missing below):", ""]
            out += ["- `%s`" % f for f in self.failures]
        out += ["", "## Targets", "",
                "Reported, not asserted. p50 of the same run and placement. "
                "%d met, %d missed, %d not measured." % (count["met"], count["missed"],
                                                         count["not measured"]), "",
                "| target | placement | measured | verdict |", "|---|---|---|---|"]
        for name, placement, measured, v in targets:
            out.append("| %s | %s | %s | **%s** |" % (name, placement, measured, v))
        out += ["", "## How to read this", "",
                "- **Latency**: one unary call (Echo, the payload both ways) timed by the client "
                "with `CLOCK_MONOTONIC`; p50/p99/p99.9 over `samples` calls after a warm-up. "
                "With few samples (1 MiB) p99.9 is simply the slowest call.",
                "- **ipcrpc ÷ raw** (latency): ipcrpc's p50 divided by the p50 of the raw "
                "mechanism it is built on (1.00 = no framework cost; 1.50 = 50% slower). "
                "**gRPC ÷ ipcrpc**: gRPC's p50 over ipcrpc's (2.00 = ipcrpc is twice as fast).",
                "- **Throughput** ratios divide rates, so there a value below 1 means the first "
                "is slower: ipcrpc ÷ raw = the fraction of the raw mechanism's MB/s ipcrpc "
                "reaches; gRPC ÷ ipcrpc below 1 = gRPC is slower.",
                "- **Rounds**: each placement was measured in %d round(s), every system once per "
                "round (alternating the order); figures are medians over rounds (sample counts "
                "are summed). **spread** = (largest − smallest round) ÷ median: how much the "
                "machine drifted while measuring; ratios within a few times the spread of "
                "each other mean nothing." % self.rounds,
                "- **raw** rows are the mechanisms with no framework (bench/raw): one payload "
                "each way per round trip and nothing else; the floor any framework pays.",
                "- **Placements**: cross-CPU is the common case for two busy processes; on one "
                "CPU every hand-off is a context switch instead of a cross-CPU wake-up; unpinned "
                "shows what the scheduler does by itself.",
                ""]
        if png_name:
            out += ["![latency, throughput and calls/s](%s)" % png_name, ""]
        out += ["## Results", ""]
        for placement, _, _, title in self.placements:
            out += self.latency_table(placement, title) + [""]
        for placement, _, _, title in self.placements:
            out += self.stream_table(placement, title) + [""]
        for placement, _, _, title in self.placements:
            out += self.concurrent_table(placement, title) + [""]
        out += self.idle_table() + [""]
        out += ["## Raw mechanisms", ""]
        for mech in self.mechanisms:
            out.append("- **raw %s**: %s" % (mech["transport"], mech["description"]))
        out += ["", "## Raw output", "",
                "Every command this run executed and every line it printed: "
                "[`%s`](%s)." % (raw_name, raw_name), ""]
        return "\n".join(out)


# ---------------------------------------------------------------------------
# The chart

def plot(report, png_path, work_dir):
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return "gnuplot is not installed (bench/run.sh installs gnuplot-nox)"
    by = report.by
    placements = [p[0] for p in report.placements]
    systems = [s for s in report.systems
               if any(("latency", p, s[0], s[1], 64) in by for p in placements)]

    def label(s):
        return system_label(*s).replace(" (unix socket)", "")

    def value(key, field):
        r = by.get(key)
        return "?" if r is None else "%g" % r[field]

    files = {}
    lines = []
    for s in systems:
        lines.append('"%s" ' % label(s) + " ".join(
            value(("latency", p, s[0], s[1], 64), "p50_us") for p in placements))
    files["p50"] = lines
    lines = []
    stream_systems = [s for s in report.systems
                      if any(("stream", p, s[0], s[1], 1048576) in by for p in placements)]
    for s in stream_systems:
        lines.append('"%s" ' % label(s) + " ".join(
            value(("stream", p, s[0], s[1], 1048576), "mb_per_s") for p in placements))
    files["stream"] = lines
    curve_place = "cross" if "cross" in placements else placements[0]
    curves = [s for s in systems if s[0] != "raw" or
              s[1] in [RAW_FOR_TRANSPORT.get(t) for t in report.transports]]
    for i, s in enumerate(curves):
        files["size%d" % i] = ["%d %s" % (size, value(("latency", curve_place, s[0], s[1], size),
                                                      "p50_us")) for size in LATENCY_SIZES]
    conc = [s for s in report.systems if s[0] != "raw"]
    for i, s in enumerate(conc):
        files["conc%d" % i] = ["%d %s" % (t, value(("concurrent", curve_place, s[0], s[1], t),
                                                   "calls_per_s")) for t in THREADS]
    for name, content in files.items():
        with open(os.path.join(work_dir, name + ".dat"), "w") as f:
            f.write("\n".join(content) + "\n")

    def dat(name):
        return "'%s'" % os.path.join(work_dir, name + ".dat")

    hist_cols = " ".join("%d" % (i + 2) for i in range(len(placements)))
    script = [
        "set terminal pngcairo size 1600,1100 font 'sans,10'",
        "set output '%s'" % png_path,
        "set datafile missing '?'",
        "set multiplot layout 2,2 title 'ipcrpc benchmarks, %s (%s CPUs, %s)'"
        % (report.machine["date"], report.machine["nproc"], report.machine["cpu_model"]),
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set key top left",
        "set grid ytics",
        "set logscale y",
        "set xtics rotate by -35",
        "set title '64 B unary round trip, p50 (µs, log scale)'",
        "plot " + ", ".join("%s using %s:xtic(1) title '%s'" % (dat("p50"), c, p)
                            for c, p in zip(hist_cols.split(), placements)),
        "set title '1 MiB server-streaming throughput (MB/s, log scale)'",
        "plot " + ", ".join("%s using %s:xtic(1) title '%s'" % (dat("stream"), c, p)
                            for c, p in zip(hist_cols.split(), placements)),
        "unset style",
        "set style data linespoints",
        "set xtics norotate",
        "set logscale xy",
        "set key top left",
        "set xlabel 'payload'",
        "set xrange [40:1.6e6]",
        "set xtics (%s)" % ", ".join("'%s' %d" % (size_name(x), x) for x in LATENCY_SIZES),
        "set title 'unary round trip p50 vs payload, %s (µs)'" % curve_place,
        "plot " + ", ".join("%s using 1:2 with linespoints lw 2 title '%s'"
                            % (dat("size%d" % i), label(s)) for i, s in enumerate(curves)),
        "unset logscale",
        "set logscale x 2",
        "set xrange [0.8:20]",
        "set xtics (%s)" % ", ".join("'%d' %d" % (t, t) for t in THREADS),
        "set yrange [0:*]",
        "set xlabel 'concurrent client threads'",
        "set title 'aggregate 64 B calls/s, %s'" % curve_place,
        "plot " + ", ".join("%s using 1:2 with linespoints lw 2 title '%s'"
                            % (dat("conc%d" % i), label(s)) for i, s in enumerate(conc)),
        "unset multiplot",
    ]
    script_path = os.path.join(work_dir, "chart.gp")
    with open(script_path, "w") as f:
        f.write("\n".join(script) + "\n")
    done = subprocess.run([gnuplot, script_path], capture_output=True, text=True)
    if done.returncode != 0:
        return "gnuplot failed: %s" % done.stderr.strip()[-500:]
    return None


# ---------------------------------------------------------------------------
# The machine

def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        return out.strip().splitlines()[0] if out.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = first_line(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    if dirty not in ("unknown", ""):
        commit += " (with uncommitted changes)"
    grpc = first_line(["dpkg-query", "-W", "-f=${Package} ${Version}", "libgrpc++-dev"])
    now = datetime.datetime.now()
    return {
        "date": now.date().isoformat(),
        "started": now.strftime("%Y-%m-%d %H:%M:%S %Z").strip(),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "commit": commit,
        "compiler": first_line(["gcc", "--version"]),
        "grpc": grpc,
        "load_start": open("/proc/loadavg").read().split()[0],
    }


def ipc_objects():
    """Names of IPC objects on the machine (to report anything left behind)."""
    found = set()
    for d in ("/dev/shm",):
        found.update(os.path.join(d, n) for n in os.listdir(d))
    for kind in ("msg", "sem", "shm"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if len(fields) > 1:
                        found.add("sysv %s id %s" % (kind, fields[1]))
        except OSError:
            pass
    found.update(os.path.join("/tmp", n) for n in os.listdir("/tmp")
                 if n.startswith("ipcrpc-bench"))
    return found


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin_dir", required=True,
                        help="directory of the built benchmarks (bazel-bin/bench)")
    parser.add_argument("--out_dir", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--quick", action="store_true",
                        help="a few iterations of everything, one placement (the CI smoke)")
    parser.add_argument("--placements", default=None,
                        help="comma-separated: cross,same,unpinned (quick: cross)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per placement (default: 3; quick: 1)")
    parser.add_argument("--no_plot", action="store_true")
    parser.add_argument("--command", default="bench/run.py " + " ".join(sys.argv[1:]),
                        help="the command line to record in the report")
    args = parser.parse_args()

    names = (args.placements or ("cross" if args.quick else "cross,same,unpinned")).split(",")
    placements, notes = pick_placements(names)
    if not placements:  # e.g. --quick on one CPU
        placements, more = pick_placements(["unpinned"])
        notes += more
    os.makedirs(args.out_dir, exist_ok=True)
    machine = machine_info()
    before = ipc_objects()

    def on_signal(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    work_dir = tempfile.mkdtemp(prefix="ipcrpc-bench-", dir="/tmp")
    runner = None
    started = time.monotonic()
    try:
        runner = Runner(args.bin_dir, work_dir, args.quick)
        if args.rounds is not None:
            runner.settings = dict(runner.settings, rounds=max(1, args.rounds))
        transports, skipped, mechanisms = run_benchmarks(runner, placements)
        machine["duration"] = time.monotonic() - started
        machine["load_end"] = open("/proc/loadavg").read().split()[0]
        report = Report(runner, transports, skipped, mechanisms, placements, notes, args,
                        machine)
        # A quick run never overwrites the day's real result.
        stem = os.path.join(args.out_dir, machine["date"] + ("-quick" if args.quick else ""))
        png_name = None
        if not args.no_plot:
            problem = plot(report, stem + ".png", work_dir)
            if problem:
                notes.append("no chart: " + problem)
            else:
                png_name = os.path.basename(stem + ".png")
        runner.stop_all()
        missing = report.missing()
        if missing:
            runner.failures.append("no result for: " + "; ".join(missing))
        # The benchmarks' own objects are all anonymous or removed at once; anything
        # new is a leak (or, on a shared machine, another process's: say so).
        left = sorted(ipc_objects() - before - {work_dir})
        if left and args.quick:
            runner.failures.append("left behind by the benchmarks: " + ", ".join(left))
        elif left:
            notes.append("IPC objects that appeared during the run and remain (another "
                         "process's, or a leak): " + ", ".join(left))
        if float(machine["load_start"]) > 0.5:
            notes.append("the load average was %s when the run started: other processes "
                         "were competing for the CPUs, so this run is noisier than an idle "
                         "machine's" % machine["load_start"])
        markdown = report.markdown(png_name, os.path.basename(stem + ".raw.txt"))
        with open(stem + ".md", "w") as f:
            f.write(markdown)
        with open(stem + ".raw.txt", "w") as f:
            f.write("\n".join(runner.raw_log) + "\n")
        print(markdown[markdown.index("## Targets"):markdown.index("## How to read")])
        print(markdown[markdown.index("## Results"):markdown.index("## Raw mechanisms")])
        print("wrote %s.md, %s.raw.txt%s" % (stem, stem, ", %s.png" % stem if png_name else
                                              " (no chart)"))
        if runner.failures:
            print("FAILURES:\n  " + "\n  ".join(runner.failures), file=sys.stderr)
            return 1
        return 0
    except BenchError as e:
        print("bench/run.py: %s" % e, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        print("bench/run.py: interrupted; stopping the benchmarks", file=sys.stderr)
        return 130
    finally:
        if runner is not None:
            runner.stop_all()
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
