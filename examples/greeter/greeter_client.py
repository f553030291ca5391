"""The example Greeter client in Python: every RPC kind, metadata, an error.

    python -m ipcrpc.tools.protoc -I. --python_out=. --ipcrpc_python_out=. greeter.proto
    python greeter_client.py unix:/tmp/greeter.sock      # or shm:/tmp/greeter.sock
"""

from __future__ import annotations

import sys

import ipcrpc

import greeter_ipcrpc
from greeter_pb2 import HelloRequest


def main() -> int:
    address = sys.argv[1] if len(sys.argv) > 1 else "unix:/tmp/greeter.sock"
    with ipcrpc.channel(address) as channel:
        stub = greeter_ipcrpc.GreeterStub(channel)
        reply, call = stub.SayHello.with_call(HelloRequest(name="python"), timeout=2.0, metadata=[("request-id", "42")])
        print(f'python unary       SayHello -> "{reply.message}" (trailers {dict(call.trailing_metadata())}, over {channel.transport_name()})')
        for r in stub.LotsOfReplies(HelloRequest(name="python"), timeout=2.0):
            print(f'python server-stream LotsOfReplies -> "{r.message}"')
        names = (HelloRequest(name=n) for n in ("ada", "grace", "linus"))
        print(f'python client-stream LotsOfGreetings -> "{stub.LotsOfGreetings(names, timeout=2.0).message}"')
        for r in stub.Chat(iter([HelloRequest(name="hi"), HelloRequest(name="bye")]), timeout=2.0):
            print(f'python bidi        Chat -> "{r.message}"')
        try:
            stub.SayHello(HelloRequest(), timeout=2.0)
        except ipcrpc.RpcError as e:
            print(f"python error path  SayHello(\"\") -> {e.code().name}: {e.details()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
