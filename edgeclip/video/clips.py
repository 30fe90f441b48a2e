"""Clip lists and the labelled-window protocol.

A clip list is a text file, one clip per line, as the DAD/CCD loaders read them:

    clip_dir_or_video  label  [accident_frame]

`label` is 1 / accident / positive or 0 / normal / negative; `accident_frame` is the 1-based
frame where the accident starts (CCD's annotation). A positive clip without it follows DAD: the
accident lies within its last `last_frames` (10) frames. Paths are relative to the list file;
`#` starts a comment.

Protocol (what a window's label is), stated in every result this package writes:
- a window that ends at least `gap_s` seconds before the accident onset is normal driving (DAD,
  1 s at 20 fps: windows inside frames 1–70 when the accident lies in frames 91–100);
- a window whose newest frame is an accident frame is positive: for DAD only the window ending
  at the last frame (the only position certain to include the accident); for clips with a known
  onset every window ending at or after the onset frame;
- every window of a normal clip (label 0) is normal; windows between the two zones are not used.
Windows end every `hop` frames; at most `max_windows` per clip and class, evenly spread, so one
long video cannot outweigh the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeclip.errors import UserError
from edgeclip.io_utils import read_text_file
from edgeclip.video.sampling import WindowSampling

POSITIVE_WORDS = {"1": 1, "accident": 1, "positive": 1, "crash": 1, "0": 0, "normal": 0, "negative": 0}


@dataclass(frozen=True)
class ClipEntry:
    path: Path
    label: int
    accident_frame: int | None = None  # 1-based onset; None: normal clip, or DAD-style "in the last frames"
    where: str = ""  # "list.txt:3", for error messages

    @property
    def name(self) -> str:
        parent = self.path.parent.name
        return f"{parent}/{self.path.name}" if parent else self.path.name


@dataclass(frozen=True)
class Window:
    clip: int  # index into the clip list
    end: int  # 0-based index of the window's newest frame
    label: int


@dataclass(frozen=True)
class LabelProtocol:
    gap_s: float = 1.0
    last_frames: int = 10
    hop: int = 2
    max_windows: int = 8

    def describe(self) -> str:
        return (f"normal = windows ending >= {self.gap_s:g} s before the accident onset and every window of a normal clip; "
                f"accident = windows whose newest frame is an accident frame (onset given: ending at or after it; "
                f"DAD-style clips without an onset, accident in the last {self.last_frames} frames: the window ending at "
                f"the last frame); windows every {self.hop} frames, at most {self.max_windows} per clip and class")


def parse_label(word: str, where: str) -> int:
    try:
        return POSITIVE_WORDS[word.lower()]
    except KeyError:
        raise UserError(f"{where}: unknown label '{word}'; use 1/accident or 0/normal") from None


def read_clip_list(path: str | Path) -> list[ClipEntry]:
    """Entries of one list file (or of `<dir>/labels.txt` when a directory is given)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "labels.txt").is_file():
            raise UserError(f"{path} is a folder without labels.txt; pass a clip list file "
                            "(lines of `clip_dir_or_video label [accident_frame]`)")
        path = path / "labels.txt"
    if not path.is_file():
        raise UserError(f"clip list {path} does not exist; pass a text file of `clip_dir_or_video label [accident_frame]` lines")
    entries: list[ClipEntry] = []
    for number, raw in enumerate(read_text_file(path, "clip list").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        fields = line.split()
        if len(fields) not in (2, 3):
            raise UserError(f"{where}: expected `clip_dir_or_video label [accident_frame]`, got '{line}'")
        label = parse_label(fields[1], where)
        accident = None
        if len(fields) == 3:
            if not fields[2].isdigit() or int(fields[2]) < 1:
                raise UserError(f"{where}: accident frame '{fields[2]}' is not a 1-based frame number")
            if label == 0:
                raise UserError(f"{where}: a normal clip (label 0) cannot have an accident frame; drop it or label the clip 1")
            accident = int(fields[2])
        clip = Path(fields[0]).expanduser()
        clip = clip if clip.is_absolute() else (path.parent / clip)
        if not clip.exists():
            raise UserError(f"{where}: clip {clip} does not exist; fix the path (relative paths start at the list's folder)")
        entries.append(ClipEntry(clip.resolve(), label, accident, where))
    if not entries:
        raise UserError(f"clip list {path} has no clips; add lines of `clip_dir_or_video label [accident_frame]`")
    return entries


def read_clip_lists(paths: list[str | Path]) -> list[ClipEntry]:
    entries = [entry for path in paths for entry in read_clip_list(path)]
    seen: dict[Path, str] = {}
    for entry in entries:
        if entry.path in seen:
            raise UserError(f"{entry.where}: clip {entry.path} is already listed at {seen[entry.path]}; list each clip once")
        seen[entry.path] = entry.where
    return entries


def onset_index(entry: ClipEntry, num_frames: int, protocol: LabelProtocol) -> int | None:
    """0-based first accident frame (DAD-style: the first of the last `last_frames`); None for normal clips."""
    if entry.label == 0:
        return None
    if entry.accident_frame is not None:
        if entry.accident_frame > num_frames:
            raise UserError(f"{entry.where}: accident frame {entry.accident_frame} is beyond the clip's {num_frames} frames")
        return entry.accident_frame - 1
    return max(0, num_frames - protocol.last_frames)


def _spread(ends: list[int], limit: int) -> list[int]:
    if limit <= 0 or len(ends) <= limit:
        return ends
    return [ends[int(round(i * (len(ends) - 1) / (limit - 1)))] for i in range(limit)] if limit > 1 else [ends[-1]]


def clip_windows(clip: int, entry: ClipEntry, num_frames: int, fps: float, sampling: WindowSampling,
                 protocol: LabelProtocol) -> list[Window]:
    """The labelled windows of one clip (see the module doc); may be empty for a short clip."""
    first = sampling.length - 1  # the earliest frame a full window can end at
    last = num_frames - 1
    onset = onset_index(entry, num_frames, protocol)
    if onset is None:
        negatives = list(range(first, last + 1, protocol.hop))
        return [Window(clip, end, 0) for end in _spread(negatives, protocol.max_windows)]
    gap = int(round(protocol.gap_s * fps))
    negatives = list(range(first, onset - gap, protocol.hop))  # newest frame >= gap frames before the onset
    if entry.accident_frame is None:
        positives = [last] if last >= first else []
    else:
        positives = list(range(last, max(onset, first) - 1, -protocol.hop))[::-1]
    return ([Window(clip, end, 0) for end in _spread(negatives, protocol.max_windows)]
            + [Window(clip, end, 1) for end in _spread(positives, protocol.max_windows)])


def describe_counts(windows: list[Window]) -> dict[str, Any]:
    positives = sum(w.label for w in windows)
    return {"windows": len(windows), "accident": positives, "normal": len(windows) - positives,
            "clips": len({w.clip for w in windows})}
