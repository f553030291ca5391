"""protoc's Python code for proto/ipcrpc/config.proto (protoc 3.21.12), checked in so
that the package needs no protoc at install time. python/tests/test_config.py
regenerates it and fails if it drifted from the .proto."""
