#!/usr/bin/env bash
# CI smoke of bench/fd_passing_bench: a few iterations, the summary line is
# there. No timing is asserted.
set -euo pipefail
bin="${RUNFILES_DIR:-$0.runfiles}/ipcrpc/bench/fd_passing_bench"
[ -x "$bin" ] || bin="$(cd "$(dirname "$0")" && pwd)/fd_passing_bench"
out=$("$bin" --iterations=50 --rounds=1)
echo "$out"
echo "$out" | grep -q '"bench":"fd_passing_summary"'
