#!/bin/sh
# protoc-gen-ipcrpc_python inside Bazel: the plugin module from this
# package's runfiles, on Debian's interpreter.
set -eu
here=""
for d in "$0.runfiles"/*/python "$(dirname "$0")"; do
  if [ -f "$d/ipcrpc/tools/protoc_plugin.py" ]; then here="$d"; break; fi
done
[ -n "$here" ] || { echo "protoc-gen-ipcrpc_python: cannot find the ipcrpc package" >&2; exit 1; }
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec /usr/bin/python3 -m ipcrpc.tools.protoc_plugin "$@"
