#!/usr/bin/env bash
# The ipcrpc demo: starts greeter_server on a unix socket in a private temp
# directory, runs greeter_client against it (every RPC kind, an async call, an
# error, a latency measurement, a spawned worker), then the Python client
# (greeter_client.py, with the stubs ipcrpc_py_library generated), then stops
# the server and checks that nothing is left behind.
set -euo pipefail

here="${RUNFILES_DIR:-$0.runfiles}/ipcrpc/examples/greeter"
[ -x "$here/greeter_server" ] || here="$(dirname "$0")"
server_bin="$here/greeter_server"
client_bin="$here/greeter_client"

dir="$(mktemp -d /tmp/ipcrpc-demo-XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

address="unix:$dir/greeter.sock"
"$server_bin" "$address" &
server_pid=$!
for _ in $(seq 1 500); do
  [ -S "$dir/greeter.sock" ] && break
  sleep 0.01
done
[ -S "$dir/greeter.sock" ] || { echo "demo: server did not start" >&2; exit 1; }

# Every RPC kind over the unix socket, then one round-trip line per transport
# against the same server, then a spawned worker on a socketpair.
"$client_bin" "$address" --calls="${DEMO_CALLS:-5000}" --compare_transports \
    --spawn_worker="$server_bin"

# The same server from Python (the ipcrpc package in python/, Debian's
# python3 with python3-protobuf).
root="$(cd "$here/../.." && pwd)"
PYTHONPATH="$root/python:$root:$here" /usr/bin/python3 "$here/greeter_client.py" "$address"

kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
if [ -e "$dir/greeter.sock" ]; then
  echo "demo: the server left its socket file behind" >&2
  exit 1
fi
echo "demo: server stopped cleanly; socket file removed"
