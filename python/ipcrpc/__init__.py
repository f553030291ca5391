"""ipcrpc for Python: gRPC-style RPC between processes on one Linux machine.

An independent implementation of docs/PROTOCOL.md (not a binding of the C++
runtime).  The API follows grpcio::

    import ipcrpc
    from greeter_pb2 import HelloRequest
    from greeter_ipcrpc import GreeterStub

    with ipcrpc.channel("unix:/tmp/greeter.sock") as ch:
        reply = GreeterStub(ch).SayHello(HelloRequest(name="ada"), timeout=1.0)

See docs/PYTHON.md.
"""

from ._client import (
    Call,
    CallFuture,
    Channel,
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
    channel,
)
from ._server import (
    GenericRpcHandler,
    PeerCredentials,
    RpcMethodHandler,
    Server,
    ServicerContext,
    method_handlers_generic_handler,
    server,
    stream_stream_rpc_method_handler,
    stream_unary_rpc_method_handler,
    unary_stream_rpc_method_handler,
    unary_unary_rpc_method_handler,
)
from ._fds import attach_fd, peek_fd, take_fd
from ._status import RpcError, StatusCode
from ._transport import available_transports

__version__ = "0.1.0"

__all__ = [
    "Call",
    "CallFuture",
    "Channel",
    "GenericRpcHandler",
    "PeerCredentials",
    "RpcError",
    "RpcMethodHandler",
    "Server",
    "ServicerContext",
    "StatusCode",
    "StreamStreamMultiCallable",
    "StreamUnaryMultiCallable",
    "UnaryStreamMultiCallable",
    "UnaryUnaryMultiCallable",
    "attach_fd",
    "available_transports",
    "channel",
    "method_handlers_generic_handler",
    "peek_fd",
    "server",
    "stream_stream_rpc_method_handler",
    "stream_unary_rpc_method_handler",
    "take_fd",
    "unary_stream_rpc_method_handler",
    "unary_unary_rpc_method_handler",
]
