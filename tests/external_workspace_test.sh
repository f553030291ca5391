#!/usr/bin/env bash
# Builds and tests tests/external_workspace/, a separate Bazel workspace that
# uses ipcrpc through local_repository, with a Bazel server of its own.
# Runs as a `bazel test` target (tagged local: it needs the real source tree
# and starts a nested, offline Bazel).
set -euo pipefail

root="$(dirname "$(readlink -f "${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-ipcrpc}/WORKSPACE")")"
work="${TEST_TMPDIR:-$(mktemp -d)}/external"
rm -rf "$work"
mkdir -p "$work"
cp -r "$root/tests/external_workspace/." "$work/"
# Point the copy at this checkout.
sed -i "s|\"\\.\\./\\.\\.\"|\"$root\"|g" "$work/WORKSPACE"

cd "$work"
# A Bazel of its own (the outer one holds its output base); offline as always.
export HOME="${TEST_TMPDIR:-$work}/home"
mkdir -p "$HOME"
bazel_cmd=(bazel --output_user_root="${TEST_TMPDIR:-$work}/bazel_root" --max_idle_secs=5)
status=0
"${bazel_cmd[@]}" test --noshow_progress //... || status=$?
"${bazel_cmd[@]}" shutdown >/dev/null 2>&1 || true
exit $status
