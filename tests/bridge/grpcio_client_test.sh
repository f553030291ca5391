#!/usr/bin/env bash
# Runs grpcio_client_test.py with Debian's Python (which has python3-grpcio).
set -euo pipefail
here="${TEST_SRCDIR}/${TEST_WORKSPACE}"
if ! /usr/bin/python3 -c "import grpc" 2>/dev/null; then
  echo "grpcio_client_test: /usr/bin/python3 has no grpc module (apt-get install python3-grpcio; tools/setup.sh does)" >&2
  exit 1
fi
exec /usr/bin/python3 "$here/tests/bridge/grpcio_client_test.py" \
  "$here/tests/bridge/bridge_test_server" "$here/tests/e2e/test_server" "$here/bridge/ipcrpc_gateway"
