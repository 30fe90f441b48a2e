"""Tiny synthetic dashcam clips written with PyAV, for tests and smoke runs (no real data needed).

A clip is a grey road with lane marks that move down the frame; from `accident_frame` on, a red
"crash" blob grows in the middle. The top-left 8×8 block encodes the frame index (grey level
10·i mod 250) so tests can check which frame they got.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def synthetic_frame(index: int, width: int = 64, height: int = 48, accident_frame: int | None = None) -> np.ndarray:
    """One RGB uint8 frame (H, W, 3); `accident_frame` is 0-based."""
    frame = np.full((height, width, 3), 90, np.uint8)
    frame[: height // 3] = (120, 150, 200)  # sky
    for y in range((index * 3) % 12 + height // 3, height, 12):  # lane marks moving towards the camera
        frame[y:y + 4, width // 2 - 2:width // 2 + 2] = 240
    if accident_frame is not None and index >= accident_frame:
        radius = min(width, height) // 8 + 2 * (index - accident_frame)
        yy, xx = np.ogrid[:height, :width]
        blob = (yy - height // 2) ** 2 + (xx - width // 2) ** 2 <= radius ** 2
        frame[blob] = (230, 30, 20)
    frame[:8, :8] = (10 * index) % 250
    return frame


def write_clip(path: str | Path, frames: int = 30, *, fps: int = 10, width: int = 64, height: int = 48,
               accident_frame: int | None = None, codec: str = "mpeg4") -> Path:
    """An MP4 (`codec` via PyAV) of `frames` synthetic frames; every frame a keyframe (exact indexing)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options={"g": "1", "qscale": "2"} if codec == "mpeg4" else {"g": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = synthetic_frame(index, width, height, accident_frame)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(path: str | Path, frames: int = 30, *, width: int = 64, height: int = 48,
                       accident_frame: int | None = None) -> Path:
    """The same clip as numbered PNG files (001.png, 002.png, ...), like the DAD frame folders."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        Image.fromarray(synthetic_frame(index, width, height, accident_frame)).save(path / f"{index + 1:03d}.png")
    return path


def frame_index_of(image: Image.Image) -> int:
    """Which synthetic frame this is (from the grey level of its top-left block)."""
    level = float(np.asarray(image.convert("L"))[1:7, 1:7].mean())
    return int(round(level / 10.0))
