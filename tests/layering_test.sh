#!/usr/bin/env bash
# Runs tools/check_layers.py on the source tree (every include and BUILD dep
# of base/, transports/, wire/, connect/, runtime/, codegen/ and bridge/ points
# down, and only bridge/ uses gRPC), and its self-test (injected upward
# includes and deps, and gRPC in the core, are reported).
# Tagged local: it reads the real source tree.
set -euo pipefail
root="$(dirname "$(readlink -f "${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-ipcrpc}/WORKSPACE")")"
python3 "$root/tools/check_layers.py" "$root"
python3 "$root/tools/check_layers.py" --self-test
