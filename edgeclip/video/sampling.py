"""Which frames of a clip a model sees (DESIGN §4.6, paper 001 §3.3.5).

Two ways to pick T frames:
- fixed stride: every s-th frame (the paper: every 14th from frame 0 of a 100-frame clip, which
  gives frames 0, 14, ..., 98 — 8 frames, although the paper calls them "10-frame videos");
- N evenly spaced frames, first and last included.

A *window* is T frames that end at one frame t of the stream; its frames lie `offsets` back from
t (`WindowSampling.offsets`). Training windows and the device demo's sliding window use the same
offsets (`accident_demo.window_offsets`), so the head sees the same spacing in both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgeclip.errors import UserError
from edgeclip.utils import stable_hash
from edgeclip.video import accident_demo as device

PAPER_STRIDE = 14


def stride_indices(num_frames: int, stride: int = PAPER_STRIDE, start: int = 0, count: int = 0) -> list[int]:
    """Every `stride`-th frame from `start` (0-based); `count` > 0 keeps the first `count` of them."""
    if stride < 1:
        raise UserError(f"frame stride must be >= 1, got {stride}; e.g. 14 as in paper 001")
    indices = list(range(start, num_frames, stride))
    if count:
        if len(indices) < count:
            raise UserError(f"a clip of {num_frames} frames has only {len(indices)} frames at stride {stride} from "
                            f"frame {start}, fewer than {count}; use a longer clip or a smaller stride")
        indices = indices[:count]
    return indices


def even_indices(num_frames: int, count: int) -> list[int]:
    """`count` frames evenly spaced over the clip, first and last included (0-based)."""
    if count < 1:
        raise UserError(f"number of frames must be >= 1, got {count}")
    if num_frames < count:
        raise UserError(f"a clip of {num_frames} frames is shorter than the {count} frames asked for; use a longer clip")
    if count == 1:
        return [num_frames - 1]
    return [int(round(i * (num_frames - 1) / (count - 1))) for i in range(count)]


@dataclass(frozen=True)
class WindowSampling:
    """T frames per window: `stride` apart, or (stride 0) evenly spaced over the last `span` frames."""

    frames: int = 8
    stride: int = 2
    span: int = 0

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise UserError(f"window frames must be >= 1, got {self.frames}")
        if self.stride < 0 or self.span < 0 or (self.stride == 0 and self.span < self.frames):
            raise UserError(f"a window needs stride >= 1, or stride 0 and span >= frames ({self.frames}); "
                            f"got stride {self.stride}, span {self.span}")

    @property
    def offsets(self) -> list[int]:
        return device.window_offsets(self.frames, self.stride, 0 if self.stride else self.span)

    @property
    def length(self) -> int:
        """Frames from the window's oldest to its newest frame, inclusive."""
        return self.offsets[0] + 1

    def indices(self, end: int) -> list[int]:
        """0-based frame indices of the window ending at frame `end` (0-based), oldest first."""
        if end - self.offsets[0] < 0:
            raise UserError(f"a window ending at frame {end + 1} would start before the clip (it spans {self.length} frames)")
        return [end - offset for offset in self.offsets]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "length": self.length, "mode": "stride" if self.stride else "even"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WindowSampling":
        return cls(frames=int(data["frames"]), stride=int(data.get("stride") or 0), span=int(data.get("span") or 0))

    @property
    def key(self) -> str:
        return stable_hash(self.frames, self.stride, self.span, length=8)
