#!/usr/bin/env bash
# The whole benchmark comparison in one command (docs/BENCHMARKS.md):
#
#   bench/run.sh            # full run, a few minutes: writes bench/results/<date>.{md,png,raw.txt}
#   bench/run.sh --quick    # seconds; the same path the CI smoke test takes
#
# Installs what is missing from Debian's archive (ipcrpc's own packages via
# tools/setup.sh, plus gRPC 1.51 and gnuplot), builds every benchmark with
# -c opt, and runs bench/run.py, which starts every process, pins them,
# collects their output and writes the report. Extra arguments go to run.py
# (e.g. --placements=cross,same, --out_dir=DIR, --no_plot).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh
bench_packages=(libgrpc++-dev protobuf-compiler-grpc gnuplot-nox)
missing=()
for p in "${bench_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  echo "bench/run.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bazel build -c opt //bench:binaries
bin_dir="$(bazel info -c opt bazel-bin 2>/dev/null)/bench"
exec /usr/bin/python3 bench/run.py --bin_dir="$bin_dir" --command="bench/run.sh${*:+ $*}" "$@"
