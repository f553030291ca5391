#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz/ with clang (AddressSanitizer +
# UndefinedBehaviorSanitizer; Bazel here builds with gcc, which has no
# libFuzzer) and runs each for a bounded time from its checked-in seed corpus
# tests/fuzz/corpus/<target>/. Prints "fuzz <target>: PASSED|FAILED" per
# target and exits non-zero if any crashed, leaked, hung or reported
# undefined behaviour; a failing input is kept (its path is printed).
#
#   tools/fuzz.sh                    # every target, FUZZ_SECONDS each (default 25)
#   FUZZ_SECONDS=600 tools/fuzz.sh shm_ring_fuzzer   # one target, longer, by hand
#
# New inputs found are not written into the repository; to keep one as a
# seed, copy it into the target's corpus directory.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-25}"
jobs="${FUZZ_BUILD_JOBS:-2}"
all_targets=(frame_reader_fuzzer call_start_fuzzer negotiation_fuzzer decompress_fuzzer shm_ring_fuzzer)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

cxx="$(command -v clang++ || command -v clang++-14 || true)"
if [ -z "$cxx" ] || ! echo 'int main(){}' | "$cxx" -x c++ -fsanitize=fuzzer-no-link,address - -o /dev/null 2>/dev/null; then
  echo "fuzz: clang++ with sanitizer runtimes is missing (apt-get install clang-14 libclang-rt-14-dev)"
  for t in "${targets[@]}"; do echo "fuzz $t: FAILED (no compiler)"; done
  exit 1
fi

work="$(mktemp -d /tmp/fuzz-build.XXXXXX)"
keep_work=0
cleanup() { [ "$keep_work" -eq 1 ] || rm -rf "$work"; }
trap cleanup EXIT

# Sources each target needs, besides its own file (all compiled once).
declare -A deps=(
  [frame_reader_fuzzer]="wire/frame.cc base/scoped_fd.cc"
  [decompress_fuzzer]="wire/compression.cc"
  [call_start_fuzzer]="wire/frame.cc base/scoped_fd.cc runtime/internal/call_limits.cc runtime/metadata.cc GEN/proto/ipcrpc/wire.pb.cc"
  [negotiation_fuzzer]="wire/frame.cc wire/refusal.cc connect/negotiation.cc connect/pending_objects.cc transports/unix_socket.cc base/fd_util.cc base/scoped_fd.cc GEN/proto/ipcrpc/transport.pb.cc GEN/proto/ipcrpc/wire.pb.cc"
  [shm_ring_fuzzer]="transports/shm/shm_ring.cc transports/shm/ring_transport.cc transports/shm/shm_region.cc transports/shm/wake.cc transports/shm/shared_semaphore.cc transports/shm/spin_policy.cc transports/control_channel.cc base/fd_util.cc base/scoped_fd.cc GEN/proto/ipcrpc/transport.pb.cc"
)

gen="$work/gen"
mkdir -p "$gen" "$work/obj"
protoc -I. --cpp_out="$gen" proto/ipcrpc/wire.proto proto/ipcrpc/transport.proto || {
  for t in "${targets[@]}"; do echo "fuzz $t: FAILED (protoc)"; done
  exit 1
}

cflags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
        -fno-sanitize-recover=all -I. -I"$gen" -Wno-deprecated-declarations)
absl_libs=$(sed -n 's/.*"\(-labsl_[a-z0-9_]*\)".*/\1/p' third_party/system/BUILD.system | tr '\n' ' ')
ldflags=(-fsanitize=fuzzer,address,undefined -lprotobuf $absl_libs -lz -lpthread)

# Compile every needed source once, `jobs` at a time.
sources=()
for t in "${targets[@]}"; do
  sources+=("tests/fuzz/$t.cc")
  for d in ${deps[$t]}; do sources+=("$d"); done
done
mapfile -t sources < <(printf '%s\n' "${sources[@]}" | sort -u)
obj() { echo "$work/obj/$(echo "$1" | tr '/' '_').o"; }
build_failed=0
pids=()
for s in "${sources[@]}"; do
  src="${s/GEN/$gen}"
  "$cxx" "${cflags[@]}" -c "$src" -o "$(obj "$s")" 2> "$(obj "$s").log" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || build_failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || build_failed=1; done
if [ "$build_failed" -ne 0 ]; then
  cat "$work"/obj/*.log
fi

status=0
for t in "${targets[@]}"; do
  objs=("$(obj "tests/fuzz/$t.cc")")
  for d in ${deps[$t]}; do objs+=("$(obj "$d")"); done
  if ! "$cxx" "${objs[@]}" "${ldflags[@]}" -o "$work/$t" 2> "$work/$t.link.log"; then
    cat "$work/$t.link.log"
    echo "fuzz $t: FAILED (build)"
    status=1
    continue
  fi
  seeds="tests/fuzz/corpus/$t"
  corpus="$work/corpus-$t"
  mkdir -p "$corpus" "$work/artifacts-$t"
  echo "== fuzz $t for ${seconds}s (seeds: $(ls "$seeds" 2>/dev/null | wc -l))"
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
    "$work/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts-$t/" "$corpus" "$seeds" > "$work/$t.log" 2>&1
  rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' "$work/$t.log" | tr '\n' ' '
  echo
  if [ "$rc" -ne 0 ] || grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$work/$t.log"; then
    grep -E -A30 'runtime error:|ERROR: ' "$work/$t.log" | head -60
    keep_work=1
    echo "fuzz $t: FAILED (log $work/$t.log, input in $work/artifacts-$t/)"
    status=1
  else
    echo "fuzz $t: PASSED"
  fi
done
exit "$status"
