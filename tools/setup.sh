#!/usr/bin/env bash
# Installs what ipcrpc needs on Debian 12, from Debian's archive only (Bazel
# 4.2.3, protobuf 3.21.12, Abseil 20220623, GoogleTest 1.12.1, zlib). Idempotent:
# does nothing when everything is there already. Needs root (uses sudo if
# it is not root).
set -euo pipefail

packages=(
  bazel-bootstrap bazel-rules-java
  protobuf-compiler libprotobuf-dev libprotoc-dev
  libabsl-dev libgtest-dev
  # gzip compression of messages (wire/compression.h)
  zlib1g-dev
  g++
  # tools/fuzz.sh: libFuzzer and the sanitizer runtimes come with clang
  clang-14 libclang-rt-14-dev
  # bridge/ (the gRPC bridge) and bench/: gRPC C++; gnuplot (the chart);
  # openssl makes tests/bridge's TLS certificate
  libgrpc++-dev protobuf-compiler-grpc gnuplot-nox openssl
  # python/: Debian's interpreter with a protobuf runtime matching protoc 3.21.12,
  # what pip needs to build the package (and its C extension) offline, pytest;
  # grpcio for bench/'s comparison and tests/bridge's third-party client
  python3-venv python3-dev python3-protobuf python3-setuptools python3-wheel
  python3-pytest python3-grpcio mypy
)

# grpcurl (tests/bridge/grpcurl_test.sh: a third-party gRPC client through the
# bridge), from the Go module proxy, into /usr/local/bin; needs Go (skipped,
# with a note, where there is none).
grpcurl_version=v1.9.4
install_grpcurl() {
  command -v grpcurl >/dev/null && return 0
  if ! command -v go >/dev/null; then
    echo "ipcrpc setup: no Go toolchain, so no grpcurl (tests/bridge:grpcurl_test will fail)" >&2
    return 0
  fi
  echo "ipcrpc setup: installing grpcurl $grpcurl_version" >&2
  local as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" env GOBIN=/usr/local/bin GOPATH="${GOPATH:-$HOME/go}" PATH="$PATH" \
    go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$grpcurl_version"
}
install_grpcurl

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "ipcrpc setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
