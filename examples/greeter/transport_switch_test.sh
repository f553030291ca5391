#!/usr/bin/env bash
# The example client changes transport without being rebuilt: by flag, by
# environment variable, and by config file. For every transport in
# $TRANSPORTS, each of the three ways must make the call go over it.
set -euo pipefail

here="$(dirname "$0")"
server_bin="$here/greeter_server"
client_bin="$here/greeter_client"
dir="$(mktemp -d /tmp/ipcrpc-switch-XXXXXX)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

"$server_bin" "unix:$dir/greeter.sock" >/dev/null &
server_pid=$!
for _ in $(seq 1 500); do [ -S "$dir/greeter.sock" ] && break; sleep 0.01; done

expect_over() {  # transport, client output
  local want="$1" out="$2" line
  line="$(grep '^unary ' <<<"$out")"
  if [ "$want" = unix ]; then
    grep -q "over unix:" <<<"$line" || { echo "FAIL: wanted unix, got: $line"; exit 1; }
  elif [ "$want" = auto ]; then  # the fastest both sides allow: shm
    grep -qF "over shm via auto:" <<<"$line" || { echo "FAIL: wanted shm via auto, got: $line"; exit 1; }
  else
    grep -qF "over $want via" <<<"$line" || { echo "FAIL: wanted $want, got: $line"; exit 1; }
  fi
}

for t in ${TRANSPORTS:-unix}; do
  out="$("$client_bin" "unix:$dir/greeter.sock" --transport="$t" --calls=20)"
  expect_over "$t" "$out"; echo "flag   $t: ok"

  out="$(IPCRPC_TRANSPORT="$t" "$client_bin" "unix:$dir/greeter.sock" --calls=20)"
  expect_over "$t" "$out"; echo "env    $t: ok"

  cat >"$dir/ipcrpc.textproto" <<CONF
channel { target: "greeter" address: "unix:$dir/greeter.sock" transport: "$t" }
CONF
  out="$(IPCRPC_CONFIG="$dir/ipcrpc.textproto" "$client_bin" greeter --calls=20)"
  expect_over "$t" "$out"; echo "config $t: ok"
done

# A transport that does not exist is a clear error, not a hang.
if out="$("$client_bin" "unix:$dir/greeter.sock" --transport=carrier-pigeon 2>&1)"; then
  echo "FAIL: an unknown transport was accepted"; exit 1
fi
grep -q 'transport "carrier-pigeon" is not supported' <<<"$out" || { echo "FAIL: $out"; exit 1; }
echo "unknown transport: clear error"
