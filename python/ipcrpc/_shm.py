"""Placeholder until the shared-memory transport lands: not available."""

from __future__ import annotations

from typing import Any, List


def available() -> bool:
    return False


def attach_client(offer: Any, fds: List[int], sock: Any) -> Any:
    raise RuntimeError("the shm transport needs the ipcrpc._native extension, which is not built")
