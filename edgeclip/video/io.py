"""Reading clips for training and evaluation: a video file (PyAV) or a folder of frames.

Decoding is the device demo's own code (`accident_demo.FolderSource` / `VideoSource`), so the
frames a head is trained on are decoded exactly as on the device. Bad input becomes a one-line
`UserError` naming the clip; a frame that cannot be decoded is skipped and counted, and a window
that needs it holds the newest earlier frame (as the demo does).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image

from edgeclip.errors import UserError
from edgeclip.utils import stable_hash
from edgeclip.video import accident_demo as device


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """The device code raises its own InputError (it cannot import edgeclip); here it is a UserError."""
    try:
        yield
    except device.InputError as exc:
        raise UserError(str(exc)) from None


def open_clip_source(path: str | Path, fps: float | None = None):
    """A FolderSource or VideoSource for `path`; missing or corrupt → UserError naming it."""
    path = Path(path)
    with user_errors():
        if path.is_dir():
            return device.open_source(frames=str(path), fps=fps)
        if not path.exists():
            raise UserError(f"clip {path} does not exist; fix the path in the clip list")
        return device.open_source(video=str(path), fps=fps)


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    num_frames: int
    fps: float
    identity: str  # changes when the clip's files change (cache keys)
    skipped: int = 0


def clip_identity(path: Path) -> str:
    """Path, sizes and modification times of the clip's file(s): cheap and changes when they do."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return f"{path.name}-{stable_hash(str(path.resolve()), stats)}"


def clip_info(path: str | Path, fps: float | None = None) -> ClipInfo:
    """Frame count and rate. Video containers often store no (or a wrong) frame count: decode to count."""
    path = Path(path)
    source = open_clip_source(path, fps)
    count, skipped = source.num_frames, 0
    if not path.is_dir():
        with user_errors():
            for _ in source.frames(wanted=lambda index: False):  # decode only: no frame is converted
                pass
        count, skipped = source.last_index + 1, len(source.skipped)
    if not count:
        raise UserError(f"clip {path} has no decodable frames; the file is corrupt or empty")
    return ClipInfo(path, int(count), float(source.fps), clip_identity(path), skipped)


def read_frames(path: str | Path, indices: list[int], fps: float | None = None) -> dict[int, Image.Image]:
    """The frames at `indices` (0-based) as RGB PIL images.

    An unreadable frame holds the newest readable frame before it, as the device demo does.
    """
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    source = open_clip_source(path, fps)
    last_needed = wanted[-1]
    frames: dict[int, Image.Image] = {}
    previous: Image.Image | None = None
    pending = list(wanted)  # wanted indices not yet passed, ascending
    with user_errors():
        for index, _time, image in source.frames(wanted=lambda i: i <= last_needed):
            while pending and pending[0] <= index:
                wanted_index = pending.pop(0)
                hold = image if wanted_index == index else previous
                if hold is None:
                    raise UserError(f"frame {wanted_index + 1} of clip {path} and every frame before it are unreadable; "
                                    "check the clip or drop it from the list")
                frames[wanted_index] = hold
            previous = image
            if not pending:
                break
    if pending:
        if previous is None:
            raise UserError(f"clip {path} has no decodable frames; the file is corrupt or empty")
        for wanted_index in pending:  # the stream ended early (a broken tail): hold its last frame
            frames[wanted_index] = previous
    return frames
