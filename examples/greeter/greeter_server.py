"""The example Greeter server in Python (the same behaviour as greeter_server.cc).

    python -m ipcrpc.tools.protoc -I. --python_out=. --ipcrpc_python_out=. greeter.proto
    python greeter_server.py unix:/tmp/greeter.sock

Stops on SIGINT/SIGTERM, letting calls in flight finish for up to 2 s.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Iterator

import ipcrpc

import greeter_ipcrpc
import greeter_pb2


class Greeter(greeter_ipcrpc.GreeterServicer):
    def SayHello(self, request: greeter_pb2.HelloRequest, context: ipcrpc.ServicerContext) -> greeter_pb2.HelloReply:
        if not request.name:
            context.abort(ipcrpc.StatusCode.INVALID_ARGUMENT, "name must not be empty")
        context.set_trailing_metadata([("served-by-pid", str(os.getpid()))])
        return greeter_pb2.HelloReply(message=f"Hello, {request.name}!")

    def LotsOfReplies(self, request: greeter_pb2.HelloRequest, context: ipcrpc.ServicerContext) -> Iterator[greeter_pb2.HelloReply]:
        for greeting in ("Hello", "Bonjour", "Hola", "Hallo", "Ciao"):
            yield greeter_pb2.HelloReply(message=f"{greeting}, {request.name}!")

    def LotsOfGreetings(self, request_iterator: Iterator[greeter_pb2.HelloRequest], context: ipcrpc.ServicerContext) -> greeter_pb2.HelloReply:
        names = [r.name for r in request_iterator]
        return greeter_pb2.HelloReply(message="Hello, " + " and ".join(names) + "!")

    def Chat(self, request_iterator: Iterator[greeter_pb2.HelloRequest], context: ipcrpc.ServicerContext) -> Iterator[greeter_pb2.HelloReply]:
        for line in request_iterator:
            yield greeter_pb2.HelloReply(message=f"You said: {line.name}")


def add_to_server(server: ipcrpc.Server) -> None:
    greeter_ipcrpc.add_GreeterServicer_to_server(Greeter(), server)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: greeter_server.py unix:/path/to.sock", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = ipcrpc.server(max_workers=8)
    add_to_server(server)
    server.add_listening_address(sys.argv[1])
    server.start()
    print(f"greeter_server.py: listening on {sys.argv[1]} (pid {os.getpid()})", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(2.0).wait()
    print("greeter_server.py: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
