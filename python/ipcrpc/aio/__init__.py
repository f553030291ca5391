"""ipcrpc.aio: the asyncio API (shaped like grpc.aio).

    async with ipcrpc.aio.channel("unix:/run/app.sock") as ch:
        stub = GreeterStub(ch)                       # the same generated stub
        reply = await stub.SayHello(HelloRequest(name="ada"), timeout=1)
        async for r in stub.LotsOfReplies(HelloRequest(name="ada")):
            ...

    server = ipcrpc.aio.server()
    add_GreeterServicer_to_server(MyAsyncGreeter(), server)   # async def methods
    server.add_listening_address("unix:/run/app.sock")
    await server.start()
    await server.wait_for_termination()
"""

from ._channel import (
    EOF,
    Call,
    Channel,
    StreamStreamCall,
    StreamStreamMultiCallable,
    StreamUnaryCall,
    StreamUnaryMultiCallable,
    UnaryStreamCall,
    UnaryStreamMultiCallable,
    UnaryUnaryCall,
    UnaryUnaryMultiCallable,
    channel,
)
from ._server import Server, ServicerContext, server

__all__ = [
    "EOF",
    "Call",
    "Channel",
    "Server",
    "ServicerContext",
    "StreamStreamCall",
    "StreamStreamMultiCallable",
    "StreamUnaryCall",
    "StreamUnaryMultiCallable",
    "UnaryStreamCall",
    "UnaryStreamMultiCallable",
    "UnaryUnaryCall",
    "UnaryUnaryMultiCallable",
    "channel",
    "server",
]
