"""Runs the Python TestService (or Greeter) server in its own process.

    python serve.py ADDRESS [--grace_ms=N] [--service=test|greeter|aio] [--max_message_bytes=N] [--max_fds_per_message=N]

Prints READY once serving; SIGTERM stops it with a drain of --grace_ms.
"""

from __future__ import annotations

import signal
import sys
import threading


def main() -> int:
    import ipcrpc

    address, grace_ms, service, max_message = "", 2000, "test", 4 << 20
    max_fds = 253
    for arg in sys.argv[1:]:
        if arg.startswith("--grace_ms="):
            grace_ms = int(arg.split("=", 1)[1])
        elif arg.startswith("--service="):
            service = arg.split("=", 1)[1]
        elif arg.startswith("--max_message_bytes="):
            max_message = int(arg.split("=", 1)[1])
        elif arg.startswith("--max_fds_per_message="):
            max_fds = int(arg.split("=", 1)[1])
        else:
            address = arg
    if service == "aio":
        return serve_aio(address, grace_ms, max_message, max_fds)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = ipcrpc.server(max_workers=16, max_message_bytes=max_message, max_fds_per_message=max_fds)
    if service == "greeter":
        from greeter_server import add_to_server
    else:
        from py_test_service import TestService
        from py_fd_service import FdService
        import fd_service_ipcrpc
        import test_service_ipcrpc

        def add_to_server(s: ipcrpc.Server) -> None:
            test_service_ipcrpc.add_TestServiceServicer_to_server(TestService(), s)
            fd_service_ipcrpc.add_FdServiceServicer_to_server(FdService(), s)

    add_to_server(server)
    server.add_listening_address(address)
    server.start()
    print("READY", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(grace_ms / 1000).wait()
    return 0


def serve_aio(address: str, grace_ms: int, max_message: int, max_fds: int = 253) -> int:
    import asyncio

    import ipcrpc.aio
    import fd_service_ipcrpc
    import test_service_ipcrpc
    from py_aio_test_service import AioTestService
    from py_fd_service import AioFdService

    async def run() -> None:
        server = ipcrpc.aio.server(max_message_bytes=max_message, max_fds_per_message=max_fds)
        test_service_ipcrpc.add_TestServiceServicer_to_server(AioTestService(), server)
        fd_service_ipcrpc.add_FdServiceServicer_to_server(AioFdService(), server)
        server.add_listening_address(address)
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("READY", flush=True)
        await stop.wait()
        await server.stop(grace_ms / 1000)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
