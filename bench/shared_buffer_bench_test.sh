#!/usr/bin/env bash
# CI smoke of bench/shared_buffer_bench: two sizes, one short round, the
# summary lines are there and nothing is left in /tmp. No timing is asserted.
set -euo pipefail
bin="${RUNFILES_DIR:-$0.runfiles}/ipcrpc/bench/shared_buffer_bench"
[ -x "$bin" ] || bin="$(cd "$(dirname "$0")" && pwd)/shared_buffer_bench"
out=$("$bin" --sizes=65536,1048576 --rounds=1 --max_seconds=0.05)
echo "$out"
[ "$(echo "$out" | grep -c '"bench":"shared_buffer_summary"')" = 2 ]
