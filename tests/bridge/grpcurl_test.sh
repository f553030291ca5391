#!/usr/bin/env bash
# grpcurl (github.com/fullstorydev/grpcurl v1.9.4, tools/setup.sh) calls
# ipcrpc's TestService through the in-process bridge (bridge_test_server)
# and through ipcrpc_gateway in front of test_server: all four kinds,
# metadata both ways, an error's code and message — with the service's
# .proto given by -proto, and, with the servers' reflection service on
# (--reflection), grpcurl's own list, describe and a call without -proto.
set -euo pipefail
here="${TEST_SRCDIR}/${TEST_WORKSPACE}"
grpcurl="$(command -v grpcurl || true)"
[ -n "$grpcurl" ] || { echo "grpcurl_test: no grpcurl on PATH; run tools/setup.sh" >&2; exit 1; }

dir="$(mktemp -d /tmp/ipcrpc-grpcurl.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Starts "$@" with stdout in $dir/$name.out; waits for READY; sets $started_pid.
start() {
  local name="$1"; shift
  "$@" > "$dir/$name.out" &
  started_pid=$!
  pids+=("$started_pid")
  for _ in $(seq 400); do
    grep -q READY "$dir/$name.out" 2>/dev/null && return 0
    kill -0 "$started_pid" 2>/dev/null || break
    sleep 0.025
  done
  echo "grpcurl_test: $name did not start"; cat "$dir/$name.out"; exit 1
}
value() { grep -o "$2=[0-9]*" "$dir/$1.out" | head -1 | cut -d= -f2; }

start bridged "$here/tests/bridge/bridge_test_server" "unix:$dir/bridged.sock" --grpc_listen=127.0.0.1:0 \
  --reflection
bridge_port="$(value bridged GRPC_PORT)"
start server "$here/tests/e2e/test_server" "unix:$dir/server.sock" --reflection
start gateway "$here/bridge/ipcrpc_gateway" --grpc_listen=127.0.0.1:0 "--to=unix:$dir/server.sock"
gateway_port="$(value gateway grpc_port)"

proto_dir="$here/tests/e2e"
call() {  # call PORT METHOD [grpcurl flags...]
  local port="$1" method="$2"; shift 2
  "$grpcurl" -plaintext -import-path "$proto_dir" -proto test_service.proto "$@" \
    "127.0.0.1:$port" "ipcrpc.test.TestService/$method"
}
expect() {  # expect WHAT OUTPUT PATTERN
  if ! grep -q -- "$3" <<<"$2"; then
    echo "FAIL $1: no '$3' in:"; echo "$2"; exit 1
  fi
}

for route in "bridge:$bridge_port" "gateway:$gateway_port"; do
  name="${route%%:*}" port="${route##*:}"
  out="$(call "$port" Echo -v -H 'echo-who: grpcurl' -H 'echo-raw-bin: AAEC/w==' -d '{"text": "hi"}')"
  expect "$name unary" "$out" '"text": "hi"'
  expect "$name initial metadata" "$out" 'initial-who: grpcurl'
  expect "$name trailing metadata" "$out" 'trailing-who: grpcurl'
  expect "$name -bin metadata" "$out" 'trailing-raw-bin: AAEC/w=='
  out="$(call "$port" ServerStream -d '{"text": "s", "count": 3}')"
  expect "$name server streaming" "$out" '"index": 2'
  out="$(call "$port" ClientStream -d '{"text": "a"} {"text": "b"} {"text": "c"}')"
  expect "$name client streaming" "$out" '"text": "abc"'
  out="$(call "$port" Bidi -d '{"text": "x"} {"text": "y"}')"
  expect "$name bidi" "$out" '"text": "y"'
  status=0
  out="$(call "$port" Echo -d '{"status_code": 5, "status_message": "no such thing"}' 2>&1)" || status=$?
  [ "$status" -ne 0 ] || { echo "FAIL $name error: grpcurl succeeded"; exit 1; }
  expect "$name error code" "$out" 'Code: NotFound'
  expect "$name error message" "$out" 'Message: no such thing'
  out="$("$grpcurl" -plaintext "127.0.0.1:$port" list)"
  expect "$name list (reflection)" "$out" 'ipcrpc.test.TestService'
  out="$("$grpcurl" -plaintext "127.0.0.1:$port" describe ipcrpc.test.TestService)"
  expect "$name describe (reflection)" "$out" 'rpc Echo ( .ipcrpc.test.Request ) returns ( .ipcrpc.test.Response )'
  out="$("$grpcurl" -plaintext -d '{"text": "reflected"}' "127.0.0.1:$port" ipcrpc.test.TestService/Echo)"
  expect "$name call via reflection" "$out" '"text": "reflected"'
  echo "grpcurl via the $name: unary, metadata, server/client streaming, bidi, error, list/describe/call by reflection: ok"
done
