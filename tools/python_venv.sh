#!/usr/bin/env bash
# Makes (once) a venv outside the repository with Debian's python3 and its
# python3-protobuf (3.21, matching protoc 3.21.12), installs python/ into it
# with pip offline (Debian's setuptools; the C extension is compiled too), and
# prints the venv's python. Used by tools/test_python.sh and bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${IPCRPC_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ipcrpc/py-venv}"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv" >&2
fi
"$venv/bin/python" -m pip install -q --no-index --no-build-isolation --force-reinstall --no-deps ./python >&2
rm -rf python/build python/*.egg-info  # setuptools may leave these behind
echo "$venv/bin/python"
