"""What one peer may make the other hold (PROTOCOL.md §5 "Limits"): metadata
and control-frame sizes, with the C++ defaults.  Shared by the sync and the
asyncio client and server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._frame import Frame
from ._status import WireMetadata

DEFAULT_MAX_METADATA_BYTES = 8 * 1024
DEFAULT_MAX_METADATA_ENTRIES = 256
METADATA_ENTRY_OVERHEAD = 32  # counted per entry, as gRPC counts headers
CONTROL_FRAME_ALLOWANCE = 16 * 1024  # beyond the metadata limit, for the rest of a control frame


@dataclass(frozen=True)
class MetadataLimits:
    max_bytes: int = DEFAULT_MAX_METADATA_BYTES
    max_entries: int = DEFAULT_MAX_METADATA_ENTRIES

    @classmethod
    def of(cls, max_bytes: Optional[int], max_entries: Optional[int], config_entry: Any = None) -> "MetadataLimits":
        """The arguments, else the config entry's fields, else the defaults."""
        if max_bytes is None:
            max_bytes = getattr(config_entry, "max_metadata_bytes", 0) or DEFAULT_MAX_METADATA_BYTES
        if max_entries is None:
            max_entries = getattr(config_entry, "max_metadata_entries", 0) or DEFAULT_MAX_METADATA_ENTRIES
        return cls(max_bytes, max_entries)

    @property
    def control_frame_limit(self) -> int:
        """The largest payload of a frame other than MESSAGE that is read."""
        return min(self.max_bytes + CONTROL_FRAME_ALLOWANCE, 0xFFFFFFFF)

    def check(self, metadata: WireMetadata, what: str) -> Optional[str]:
        """None if ``metadata`` fits, else why not (for RESOURCE_EXHAUSTED)."""
        size = 0
        for key, value in metadata:
            size += len(key.encode()) + len(value) + METADATA_ENTRY_OVERHEAD
        if len(metadata) > self.max_entries:
            return f"{what} has {len(metadata)} entries, more than the limit of {self.max_entries} (max_metadata_entries)"
        if size > self.max_bytes:
            return (f"{what} of {size} bytes (keys + values + {METADATA_ENTRY_OVERHEAD} per entry) exceeds the limit "
                    f"of {self.max_bytes} bytes (max_metadata_bytes)")
        return None

    def oversized(self, frame: Frame, side: str) -> str:
        """Why an oversized control frame was discarded."""
        return (f"frame of type {frame.type} with {frame.length} payload bytes exceeds the {side}'s control-frame limit "
                f"of {self.control_frame_limit} bytes (max_metadata_bytes {self.max_bytes} + {CONTROL_FRAME_ALLOWANCE})")
