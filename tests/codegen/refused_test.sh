#!/bin/bash
# protoc-gen-ipcrpc refuses what it cannot generate correct code for, and says
# which file, which service and why:
#   refused_test.sh PROTOC PLUGIN
set -euo pipefail

protoc=$1 plugin=$2
out="$(mktemp -d "${TEST_TMPDIR:-/tmp}/ipcrpc_refused.XXXXXX")"
trap 'rm -rf "$out"' EXIT

# expect_refusal PROTO MESSAGE: protoc must fail and print MESSAGE.
expect_refusal() {
  local proto=$1 expected=$2 log="$out/log"
  if "$protoc" --plugin=protoc-gen-ipcrpc="$plugin" --ipcrpc_out="$out" \
      -I. "$proto" 2>"$log"; then
    echo "FAIL: protoc accepted $proto" >&2
    exit 1
  fi
  if ! grep -qF -- "$expected" "$log"; then
    echo "FAIL: $proto: expected \"$expected\" in:" >&2
    cat "$log" >&2
    exit 1
  fi
}

expect_refusal tests/codegen/refused/generic_services.proto \
  "tests/codegen/refused/generic_services.proto: service refused.Lookup: option cc_generic_services = true"
echo "PASS"
