"""Labelled windows with their frame features: what temporal heads are trained and evaluated on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.errors import UserError
from edgeclip.video.accident_demo import Windows
from edgeclip.video.clips import ClipEntry, LabelProtocol, Window, clip_windows, describe_counts, onset_index, read_clip_lists
from edgeclip.video.features import FrameEncoder, clip_features
from edgeclip.video.io import ClipInfo, clip_info
from edgeclip.video.sampling import WindowSampling


@dataclass
class WindowDataset:
    entries: list[ClipEntry]
    infos: list[ClipInfo]
    windows: list[Window]
    features: list[np.ndarray]  # per clip: (num_frames, D), every frame (for sliding-window evaluation)
    sampling: WindowSampling
    protocol: LabelProtocol

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([w.label for w in self.windows], dtype=np.int64)

    @property
    def clips(self) -> np.ndarray:
        return np.asarray([w.clip for w in self.windows], dtype=np.int64)

    def window_features(self, index: list[int] | np.ndarray | None = None) -> np.ndarray:
        """(N, T, D) float32 for the chosen windows (all by default)."""
        chosen = range(len(self.windows)) if index is None else index
        return np.stack([self.features[self.windows[i].clip][self.sampling.indices(self.windows[i].end)]
                         for i in chosen]).astype(np.float32)

    def onset(self, clip: int) -> int | None:
        return onset_index(self.entries[clip], self.infos[clip].num_frames, self.protocol)

    def gap_frames(self, clip: int) -> int:
        return int(round(self.protocol.gap_s * self.infos[clip].fps))

    def describe(self) -> dict[str, Any]:
        return {"clips": [{"clip": e.name, "path": str(e.path), "label": e.label, "accident_frame": e.accident_frame,
                           "frames": i.num_frames, "fps": i.fps, "unreadable_frames": i.skipped,
                           "windows": describe_counts([w for w in self.windows if w.clip == c])}
                          for c, (e, i) in enumerate(zip(self.entries, self.infos))],
                "counts": describe_counts(self.windows), "sampling": self.sampling.to_dict(),
                "protocol": self.protocol.describe()}


def build_dataset(clip_lists: list[str | Path], encoder: FrameEncoder, sampling: WindowSampling,
                  protocol: LabelProtocol, *, fps: float | None = None, progress: bool = True) -> WindowDataset:
    """Read the lists, label windows by the protocol, encode every frame of every clip (cached)."""
    from tqdm.auto import tqdm

    entries = read_clip_lists(clip_lists)
    infos = [clip_info(entry.path, fps if entry.path.is_dir() else None) for entry in entries]
    for entry, info in zip(entries, infos):
        if info.num_frames < sampling.length:
            raise UserError(f"{entry.where}: clip {entry.path} has {info.num_frames} frames, shorter than the window of "
                            f"{sampling.length} frames ({sampling.frames} frames, stride {sampling.stride}); "
                            "drop the clip or use a shorter window (--frames/--stride)")
    windows = [w for c, (e, i) in enumerate(zip(entries, infos))
               for w in clip_windows(c, e, i.num_frames, i.fps, sampling, protocol)]
    counts = describe_counts(windows)
    if counts["accident"] == 0 or counts["normal"] == 0:
        missing = "accident" if counts["accident"] == 0 else "normal"
        raise UserError(f"the clips give no {missing} windows under the protocol ({protocol.describe()}); add clips "
                        f"with {missing} driving, or shorten the window so one fits before the accident")
    features = [clip_features(encoder, info, progress=False)
                for info in tqdm(infos, desc=f"features ({encoder.name})", unit="clip", disable=not progress)]
    return WindowDataset(entries, infos, windows, features, sampling, protocol)


def stream_probabilities(dataset: WindowDataset, clip: int, predict, hop: int) -> tuple[list[int], list[float]]:
    """Sliding window over a whole clip (as the demo runs it): window ends every `hop` frames."""
    grid = Windows(dataset.sampling.offsets, hop)
    ends = [t for t in range(dataset.infos[clip].num_frames) if grid.evaluates(t)]
    if not ends:
        return [], []
    stacked = np.stack([dataset.features[clip][dataset.sampling.indices(t)] for t in ends]).astype(np.float32)
    return ends, [float(p) for p in predict(stacked)]
