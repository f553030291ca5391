#!/usr/bin/env bash
# The README's quick start, exactly as written, in a new Bazel workspace that
# uses ipcrpc through local_repository (with a Bazel server of its own):
# every block of README.md marked `<!-- quickstart: PATH -->` is written to
# PATH (the WORKSPACE's /path/to/ipcrpc becomes this checkout, and the
# server's socket moves from /tmp/greeter.sock into the test's directory).
# Then it builds the server and the client, runs them, checks the reply,
# stops the server with SIGTERM and checks that the socket file is gone.
# The "From one machine to many" blocks too (a path given twice is the
# blocks joined): bridged_server serves over gRPC on a free port (instead of
# 50051), and the same client, linked with the bridge, calls it with
# "grpc:localhost:PORT".
# tests/external_workspace/calc/ (a gtest against ipcrpc) is built and
# tested in the same workspace. Tagged local: it needs the real source tree
# and starts a nested, offline Bazel.
set -euo pipefail

root="$(dirname "$(readlink -f "${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-ipcrpc}/WORKSPACE")")"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
work="$tmp/external"
rm -rf "$work"
mkdir -p "$work"
# A short directory: a unix socket path is limited to 107 bytes.
socket_dir="$(mktemp -d /tmp/quickstart.XXXXXX)"
socket="$socket_dir/greeter.sock"

grpc_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

python3 - "$root/README.md" "$work" "$root" "$socket" "$grpc_port" <<'PY'
import os, re, sys
readme, work, root, socket, grpc_port = sys.argv[1:]
text = open(readme).read()
blocks = re.findall(r'<!-- quickstart: (\S+) -->\n```[a-z]*\n(.*?)```', text, re.S)
wanted = {"WORKSPACE", ".bazelrc", "hello/greeter.proto", "hello/BUILD.bazel",
          "hello/server.cc", "hello/client.cc", "hello/bridged_server.cc"}
found = {path for path, _ in blocks}
if found != wanted:
    sys.exit(f"README quick-start blocks: expected {sorted(wanted)}, found {sorted(found)}")
written = set()
for path, body in blocks:
    body = body.replace("/path/to/ipcrpc", root).replace("/tmp/greeter.sock", socket)
    body = body.replace("0.0.0.0:50051", "127.0.0.1:" + grpc_port)
    os.makedirs(os.path.join(work, os.path.dirname(path)), exist_ok=True)
    with open(os.path.join(work, path), "a" if path in written else "w") as f:
        f.write(body if path not in written else "\n" + body)
    written.add(path)
PY
cp -r "$root/tests/external_workspace/calc" "$work/"

cd "$work"
# A Bazel of its own (the outer one holds its output base); offline as always.
export HOME="$tmp/home"
mkdir -p "$HOME"
bazel_cmd=(bazel --output_user_root="$tmp/bazel_root" --max_idle_secs=5)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  rm -rf "$socket_dir"
  "${bazel_cmd[@]}" shutdown >/dev/null 2>&1 || true
}
trap cleanup EXIT

"${bazel_cmd[@]}" build --noshow_progress //hello:server //hello:client //hello:bridged_server \
  //hello:grpc_client
"${bazel_cmd[@]}" test --noshow_progress --test_output=errors //calc/...

bin="$("${bazel_cmd[@]}" info bazel-bin 2>/dev/null)"
"$bin/hello/server" &
server_pid=$!
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
[ -S "$socket" ] || { echo "the README's server did not create $socket"; exit 1; }

reply="$("$bin/hello/client")"
[ "$reply" = "Hello, world" ] || { echo "the README's client printed '$reply'"; exit 1; }
echo "client: $reply"

kill -TERM "$server_pid"
wait "$server_pid" || { echo "the README's server exited with $? after SIGTERM"; exit 1; }
server_pid=""
[ ! -e "$socket" ] || { echo "the README's server left $socket behind after SIGTERM"; exit 1; }
echo "README quick start: built, called, stopped by SIGTERM, socket removed"

# From one machine to many: the bridged server, called over gRPC by the
# same client code with a grpc: address.
"$bin/hello/bridged_server" &
server_pid=$!
reply=""
for _ in $(seq 200); do
  reply="$("$bin/hello/grpc_client" "grpc:localhost:$grpc_port" 2>/dev/null)" && break
  sleep 0.05
done
[ "$reply" = "Hello, world" ] || { echo "the README's grpc_client printed '$reply'"; exit 1; }
echo "grpc_client via grpc:localhost:$grpc_port: $reply"
reply="$("$bin/hello/client" "unix:$socket")"
[ "$reply" = "Hello, world" ] || { echo "the README's client printed '$reply' from bridged_server"; exit 1; }
kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
rm -f "$socket"  # pause() ends with the signal; nothing removes the socket file
echo "README bridge: bridged_server answered over gRPC and over its unix socket"
