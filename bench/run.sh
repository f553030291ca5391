#!/usr/bin/env bash
# The whole benchmark comparison in one command (docs/BENCHMARKS.md):
#
#   bench/run.sh            # full run, a few minutes: writes bench/results/<date>.{md,png,raw.txt}
#   bench/run.sh --quick    # seconds; the same path the CI smoke test takes
#
# Installs what is missing from Debian's archive (tools/setup.sh, which
# includes gRPC 1.51 and gnuplot), builds every benchmark with
# -c opt, and runs bench/run.py, which starts every process, pins them,
# collects their output and writes the report. Extra arguments go to run.py
# (e.g. --placements=cross,same, --out_dir=DIR, --no_plot).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh  # includes gRPC 1.51 and gnuplot

bazel build -c opt //bench:binaries
bin_dir="$(bazel info -c opt bazel-bin 2>/dev/null)/bench"
/usr/bin/python3 bench/run.py --bin_dir="$bin_dir" --command="bench/run.sh${*:+ $*}" "$@"

# The Python package (python/) against the same C++ binaries, and grpcio <->
# grpcio, in one more run: bench/results/<date>-python[-quick].md.
quick=""
for a in "$@"; do [ "$a" = "--quick" ] && quick="--quick"; done
py="$(tools/python_venv.sh)"
"$py" bench/python/py_bench.py --bin_dir="$bin_dir" $quick \
    --out="bench/results/$(date +%Y-%m-%d)-python${quick:+-quick}.md"
