#!/usr/bin/env bash
# One command: install what is missing, build, and run the greeter demo.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
exec bazel run //examples/greeter:demo
