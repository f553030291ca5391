#!/usr/bin/env bash
# The Python package's tests: builds the C++ binaries the interop tests start
# (a no-op when tools/test.sh has just built //...), installs python/ with pip
# into a venv outside the repository (Debian's interpreter and its
# python3-protobuf 3.21, which matches protoc 3.21.12), and runs pytest.
# Ends with the line "N passed, N failed" (pytest's test cases).
#
#   tools/test_python.sh [pytest args...]     e.g. -k shm -x
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

fail() { echo "test_python: $*"; echo "0 passed, 1 failed"; exit 1; }

bazel build --noshow_progress \
    //tests/e2e:test_server //tests/python_interop:all \
    //examples/greeter:greeter_server //examples/greeter:greeter_client \
    || fail "bazel build of the C++ test binaries failed"

py="$(tools/python_venv.sh)" || fail "installing python/ into a venv failed"

xml="$(mktemp)"
trap 'rm -f "$xml"' EXIT
# Run from outside the source tree, so tests import the installed package.
(cd /tmp && "$py" -m pytest -q -p no:cacheprovider --junitxml="$xml" "$repo/python/tests" "$@")
rc=$?
counts="$("$py" - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(t - bad - skipped, bad)
PY
)"
read -r passed failed <<<"$counts"
passed="${passed:-0}"
failed="${failed:-1}"
# pytest exit 5 = no tests collected; any other non-zero without a counted failure is a failure too.
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "test_python: pytest exited with $rc"
  failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
