#!/usr/bin/env bash
# One command: install what is missing, then run every test four times — a
# normal build (which includes the external-workspace test), an
# AddressSanitizer build, a ThreadSanitizer build (without the benchmark
# smoke test: the benchmark harness synchronizes with Debian's Abseil, which
# TSan cannot see; nor the tests tagged no_tsan, which link Debian's
# uninstrumented gRPC) and an UndefinedBehaviorSanitizer build — then each
# libFuzzer target for FUZZ_SECONDS (tools/fuzz.sh), and check that no IPC
# object was left behind. Ends with the line "N passed, N failed" (test
# targets, all runs; one count per fuzz target).
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
before="$(ls -d /tmp/ipcrpc-* 2>/dev/null | sort)"

run() {
  echo "== bazel test $*"
  bazel test --noshow_progress "$@" 2>&1 | grep -v '^[0-9.]*: src/main/tools/' | tee -a "$log"
  return "${PIPESTATUS[0]}"
}

status=0
run //... || status=1
# Python package (python/): pytest against the C++ binaries just built, before
# the sanitizer builds below rebuild them in place. Prints its own counts.
pylog="$(mktemp)"
tools/test_python.sh 2>&1 | tee "$pylog"
# The sanitizer runs build only what their tests need (--build_tests_only):
# under TSan that leaves out the gRPC bridge, whose tests it cannot run.
run --config=asan --build_tests_only --test_tag_filters=-external_workspace //... || status=1
run --config=tsan --build_tests_only --test_tag_filters=-external_workspace,-no_tsan \
  -- //... -//bench:smoke_test || status=1
run --config=ubsan --build_tests_only --test_tag_filters=-external_workspace //... || status=1
echo "== tools/fuzz.sh (${FUZZ_SECONDS:-25}s per target)"
tools/fuzz.sh 2>&1 | tee -a "$log"

passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED|^fuzz [^ ]+: PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE)|FAILED TO BUILD|^fuzz [^ ]+: FAILED' "$log")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "bazel failed before running tests (see above)"
  failed=1
fi

py_counts="$(tail -n 1 "$pylog")"
rm -f "$pylog"
if [[ "$py_counts" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
else
  echo "tools/test_python.sh did not report its counts"
  failed=$((failed + 1))
fi

after="$(ls -d /tmp/ipcrpc-* 2>/dev/null | sort)"
leaked="$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)"
if [ -n "$leaked" ]; then
  echo "left behind in /tmp by the tests: $leaked"
  failed=$((failed + 1))
else
  passed=$((passed + 1))  # the leak check itself
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
