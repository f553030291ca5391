"""Metadata and control-frame limits (PROTOCOL.md §5 "Limits"): the C++
defaults (8 KiB and 256 entries of metadata per call each way, control frames
up to 24 KiB) in the Python client and servers; exceeding them fails that
call RESOURCE_EXHAUSTED and the connection stays usable."""

from __future__ import annotations

import asyncio
from typing import Iterator, Tuple

import pytest

import ipcrpc
import ipcrpc.aio
import test_service_pb2 as pb
import test_service_ipcrpc as svc

from conftest import SERVERS, start_server_with_config, stop_server_with_config

# 200 entries "echo-NNN" of 40 bytes each (8000 <= 8 KiB); the servers echo them
# as "initial-NNN" / "trailing-NNN" entries (8600 / 8800 bytes > 8 KiB).
ECHO_200 = tuple((f"echo-{i:03d}", b"") for i in range(200))


def _server(kind: str, config: str) -> Iterator[str]:
    proc, name, d = start_server_with_config(kind, config)
    yield f"unix:@{name}"
    stop_server_with_config(proc, d)


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _server(request.param, "")


@pytest.fixture(scope="module", params=list(SERVERS))
def generous_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server whose own metadata limit is 64 KiB (config file)."""
    yield from _server(request.param, "server { max_metadata_bytes: 65536 }\n")


def _echo(ch: ipcrpc.Channel, metadata: tuple) -> Tuple[str, str]:
    try:
        svc.TestServiceStub(ch).Echo(pb.Request(text="hi"), timeout=5, metadata=metadata)
        return "OK", ""
    except ipcrpc.RpcError as e:
        return e.code().name, e.details()


def test_client_refuses_to_send_too_much_metadata(server: str) -> None:
    with ipcrpc.channel(server) as ch:
        code, details = _echo(ch, (("big", b"v" * (9 << 10)),))
        assert code == "RESOURCE_EXHAUSTED" and "max_metadata_bytes" in details
        code, details = _echo(ch, tuple((f"k{i}", b"") for i in range(257)))
        assert code == "RESOURCE_EXHAUSTED" and "max_metadata_entries" in details
        assert _echo(ch, ()) == ("OK", "")


@pytest.mark.parametrize("what,metadata", [("bytes", (("big", b"v" * (9 << 10)),)),
                                           ("entries", tuple((f"k{i}", b"") for i in range(257))),
                                           ("control frame", (("big", b"v" * (40 << 10)),))])
def test_server_refuses_too_much_request_metadata(server: str, what: str, metadata: tuple) -> None:
    # A client that allows itself more (64 KiB, 1000 entries) sends it; the server refuses the call.
    with ipcrpc.channel(server, max_metadata_bytes=1 << 16, max_metadata_entries=1000) as ch:
        code, _ = _echo(ch, metadata)
        assert code == "RESOURCE_EXHAUSTED"
        assert _echo(ch, ()) == ("OK", "")  # the connection stays usable
        assert ch.transport_name() == "unix"


def test_server_fails_a_call_whose_response_metadata_is_too_large(server: str) -> None:
    with ipcrpc.channel(server) as ch:
        code, details = _echo(ch, ECHO_200)
        assert code == "RESOURCE_EXHAUSTED" and "metadata" in details
        assert _echo(ch, ()) == ("OK", "")


@pytest.mark.parametrize("use_aio", [False, True], ids=["sync", "aio"])
def test_client_fails_a_call_whose_response_metadata_is_too_large(generous_server: str, use_aio: bool) -> None:
    if use_aio:
        async def run() -> Tuple[str, str, str]:
            async with ipcrpc.aio.channel(generous_server) as ch:
                stub = svc.TestServiceStub(ch)
                try:
                    await stub.Echo(pb.Request(text="hi"), timeout=5, metadata=ECHO_200)
                    first = ("OK", "")
                except ipcrpc.RpcError as e:
                    first = (e.code().name, e.details())
                second = (await stub.Echo(pb.Request(text="again"), timeout=5)).text
                return first[0], first[1], second
        code, details, second = asyncio.run(run())
    else:
        with ipcrpc.channel(generous_server) as ch:
            code, details = _echo(ch, ECHO_200)
            second = svc.TestServiceStub(ch).Echo(pb.Request(text="again"), timeout=5).text
    assert code == "RESOURCE_EXHAUSTED" and "the server's initial metadata" in details, details
    assert second == "again"


def test_client_metadata_limits_are_configurable(server: str) -> None:
    with ipcrpc.channel(server, max_metadata_bytes=100) as ch:
        code, details = _echo(ch, (("k", b"v" * 100),))
        assert code == "RESOURCE_EXHAUSTED" and "100 bytes" in details
