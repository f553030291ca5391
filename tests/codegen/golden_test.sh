#!/bin/bash
# Golden-file test of protoc-gen-ipcrpc: runs the plugin through protoc over
# the corpus and diffs each generated file against golden/<name>.golden.
#
#   golden_test.sh PROTOC PLUGIN PROTO...            compare (bazel test)
#   golden_test.sh --update PROTOC PLUGIN PROTO...   rewrite the goldens
#
# After an intended change to the generated code, regenerate the goldens with
#   bazel run //tests/codegen:update_goldens
# and review the diff (git diff tests/codegen/golden) before committing.
set -euo pipefail

update=false
if [[ "${1:-}" == "--update" ]]; then
  update=true
  shift
fi
protoc=$1 plugin=$2
shift 2

golden_dir=tests/codegen/golden
if $update; then
  golden_dir="${BUILD_WORKSPACE_DIRECTORY:?run me with bazel run}/$golden_dir"
fi
# @ipcrpc_system is /usr: the well-known protos sit in include/, next to bin/.
well_known_root="$(dirname "$(dirname "$protoc")")/include"

out="$(mktemp -d "${TEST_TMPDIR:-/tmp}/ipcrpc_golden.XXXXXX")"
trap 'rm -rf "$out"' EXIT
"$protoc" --plugin=protoc-gen-ipcrpc="$plugin" --ipcrpc_out="$out" \
  -I. -I"$well_known_root" "$@"

failed=0
for proto in "$@"; do
  for suffix in .ipcrpc.pb.h .ipcrpc.pb.cc; do
    generated="$out/${proto%.proto}$suffix"
    golden="$golden_dir/$(basename "${proto%.proto}")$suffix.golden"
    if $update; then
      cp "$generated" "$golden"
      echo "wrote $golden"
    elif ! diff -u "$golden" "$generated"; then
      failed=1
    fi
  done
done
if ((failed)); then
  echo "FAIL: generated code differs from the goldens (diff above)." >&2
  echo "If the change is intended: bazel run //tests/codegen:update_goldens" >&2
  exit 1
fi
$update || echo "PASS: generated code matches the goldens for $# files."
