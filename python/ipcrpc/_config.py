"""IPCRPC_CONFIG and IPCRPC_TRANSPORT, as the C++ runtime reads them (docs/TRANSPORTS.md).

A channel target is resolved like C++'s PlanChannel: the config entry whose
`target` equals it (a name, the full address, or the socket path), else the
"*" entry; a name without a scheme needs an entry with an `address`. The
transport is IPCRPC_TRANSPORT if set, else the entry's, else the address's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from ._status import RpcError, StatusCode

CONFIG_ENV = "IPCRPC_CONFIG"
TRANSPORT_ENV = "IPCRPC_TRANSPORT"


def load() -> Any:
    """The config::Config that IPCRPC_CONFIG names (empty when unset)."""
    from google.protobuf import text_format

    from ._proto import config_pb2

    cfg = config_pb2.Config()  # type: ignore[attr-defined]
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return cfg
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"reading ipcrpc config {path} (from {CONFIG_ENV}): {e.strerror or e}") from None
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as e:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"ipcrpc config {path}: {e}") from None
    return cfg


@dataclass
class ChannelPlan:
    address: str
    transport: Optional[str]  # None: as the address says
    ring_bytes: int = 0
    max_send: int = 0  # 0: the caller's value
    max_receive: int = 0
    max_metadata_bytes: int = 0  # 0: the caller's value
    max_metadata_entries: int = 0
    max_spin: Optional[float] = None  # shm spin budget in seconds; None: the default (50 µs), 0: no spinning
    max_fds: Optional[int] = None  # max_fds_per_message; None: the caller's value


def shm_max_spin(shm_tuning: Any) -> Optional[float]:
    """The spin budget a `tuning { shm { ... } }` section asks for (as C++: spin_off,
    max_spin_micros capped at 10 ms), or None for the default."""
    if shm_tuning.spin_off:
        return 0.0
    if shm_tuning.max_spin_micros:
        return min(shm_tuning.max_spin_micros, 10000) * 1e-6
    return None


def plan_channel(target: str, config: Any = None) -> ChannelPlan:
    config = load() if config is None else config
    has_scheme = ":" in target
    socket_path = target.split(":", 1)[1] if has_scheme else ""
    entry = None
    wildcard = None
    for e in config.channel:
        if e.target == target or (socket_path and e.target == socket_path):
            entry = e
            break
        if e.target == "*" and wildcard is None:
            wildcard = e
    entry = entry or wildcard
    if has_scheme:
        address = target
    elif entry is not None and entry.address:
        address = entry.address
    else:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f'"{target}" is neither an address (TRANSPORT:SOCKET, e.g. unix:/run/app.sock) nor a target with an address in the ipcrpc config ({CONFIG_ENV})')
    plan = ChannelPlan(address, None)
    if entry is not None:
        plan.transport = entry.transport or None
        plan.ring_bytes = entry.tuning.shm.ring_bytes
        plan.max_spin = shm_max_spin(entry.tuning.shm)
        plan.max_send = entry.max_send_message_bytes
        plan.max_receive = entry.max_receive_message_bytes
        plan.max_metadata_bytes = entry.max_metadata_bytes
        plan.max_metadata_entries = entry.max_metadata_entries
        if entry.HasField("max_fds_per_message"):
            plan.max_fds = entry.max_fds_per_message
    env = os.environ.get(TRANSPORT_ENV)
    if env:
        plan.transport = env
    return plan


def server_section(config: Any = None) -> Any:
    config = load() if config is None else config
    return config.server
