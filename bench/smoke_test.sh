#!/usr/bin/env bash
# CI smoke of the benchmarks: runs every benchmark binary through
# bench/run.py --quick (a few iterations of everything, one placement) and
# checks that the report, the raw output and the chart are written and well
# formed. run.py itself fails on a binary that exits non-zero, prints a
# malformed line, leaves an IPC object behind, or misses a figure. No timing
# is asserted: this is about the benchmarks building and running.
set -euo pipefail

here="${RUNFILES_DIR:-$0.runfiles}/ipcrpc/bench"
[ -x "$here/ipcrpc_bench_client" ] || here="$(cd "$(dirname "$0")" && pwd)"
out="${TEST_TMPDIR:-$(mktemp -d)}/results"

/usr/bin/python3 "$here/run.py" --quick --bin_dir="$here" --out_dir="$out" \
    --command="bench/run.sh --quick" > "$out.log" 2>&1 || {
  cat "$out.log"
  echo "smoke: bench/run.py --quick failed" >&2
  exit 1
}

/usr/bin/python3 - "$out" <<'PY'
import glob, json, os, shutil, sys

out = sys.argv[1]
md = glob.glob(os.path.join(out, "*.md"))
raw = glob.glob(os.path.join(out, "*.raw.txt"))
assert len(md) == 1 and len(raw) == 1, "expected one report and one raw output: %s" % os.listdir(out)
text = open(md[0]).read()
for heading in ("## Targets", "### Unary round trip", "### Server-streaming throughput",
                "### Aggregate unary calls/s", "### Resident memory of an idle connection",
                "## Raw output"):
    assert heading in text, "report lacks %r" % heading
assert "ipcrpc unix" in text and "gRPC (unix socket)" in text and "raw unix" in text
kinds = set()
for line in open(raw[0]):
    line = line.rstrip("\n")
    if not line or line.startswith(("$ ", "# ")):
        continue
    kinds.add((json.loads(line)["bench"], json.loads(line).get("system")))
for wanted in [("latency", "raw"), ("stream", "raw"), ("latency", "ipcrpc"), ("stream", "ipcrpc"),
               ("concurrent", "ipcrpc"), ("idle_memory", "ipcrpc"), ("latency", "grpc"),
               ("stream", "grpc"), ("concurrent", "grpc"), ("idle_memory", "grpc")]:
    assert wanted in kinds, "no %s line from %s" % wanted
if shutil.which("gnuplot"):
    png = glob.glob(os.path.join(out, "*.png"))
    assert len(png) == 1 and open(png[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n", "no PNG chart"
    assert "![" in text, "the report does not show the chart"
else:
    print("smoke: gnuplot is not installed; the chart was not checked")
print("smoke: report, raw output%s well formed" % (" and chart" if shutil.which("gnuplot") else ""))
PY
