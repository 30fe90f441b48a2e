"""Example images for the zero-shot page, from real data the project has.

- Digits: a few held-out `test` digits of scikit-learn's digits (8x8, exactly the pixels
  `open_image_dataset("digits", "test").load(i)` gives), shipped as PNGs in `examples/`.
  `python -m edgeclip.demo.examples` rewrites them (tests check they still match the data).
- Dashcam frames: the DAD demo clips' PROVENANCE.md says "do not redistribute", so no frame is
  shipped; when `shared/data/dad-demo` is present beside the checkout (or `--examples-data DIR`
  names it), two frames are read from it at start-up and scaled down in memory.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from edgeclip.data import open_image_dataset

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
# (label, index into the digits test split): the first test image of each of these classes.
DIGIT_CLASSES = ("zero", "three", "five", "seven", "nine")
# (clip, frame, caption): a street before an accident and a collision in progress (DAD: accident in the last 10 frames).
DASHCAM_FRAMES = (("000478", 30, "dashcam: street with a scooter"), ("000550", 95, "dashcam: truck hits a scooter"))
DASHCAM_SIZE = (320, 180)


@dataclass(frozen=True)
class Example:
    name: str  # URL-safe file name
    caption: str
    label: str | None  # the true class where there is one (digits)
    content_type: str
    data: bytes


def default_shared_data() -> Path | None:
    """$EDGECLIP_SHARED_DATA, else `shared/data` beside the checkout (where the project keeps real data)."""
    if os.environ.get("EDGECLIP_SHARED_DATA"):
        return Path(os.environ["EDGECLIP_SHARED_DATA"])
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside if beside.is_dir() else None


def digit_examples() -> list[Example]:
    out = []
    for path in sorted(EXAMPLES_DIR.glob("digit-*.png")):
        label = path.stem.split("-", 2)[1]
        out.append(Example(path.name, f"digit {label} (held-out test split)", label, "image/png", path.read_bytes()))
    return out


def dashcam_examples(shared_data: Path | None) -> list[Example]:
    """Frames of the DAD demo clips, scaled down in memory; none when the data is absent."""
    if shared_data is None:
        return []
    out = []
    for clip, frame, caption in DASHCAM_FRAMES:
        path = shared_data / "dad-demo" / clip / f"{frame:03d}.jpg"
        if not path.is_file():
            continue
        with Image.open(path) as image:
            small = image.convert("RGB").resize(DASHCAM_SIZE, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=85)
        out.append(Example(f"dashcam-{clip}-{frame:03d}.jpg", f"{caption} (DAD {clip}, frame {frame}; not shipped, "
                                                                 "read from shared/data)", None, "image/jpeg", buffer.getvalue()))
    return out


def load_examples(shared_data: Path | None) -> dict[str, Example]:
    return {e.name: e for e in digit_examples() + dashcam_examples(shared_data)}


def digit_test_images() -> dict[str, tuple[int, Image.Image]]:
    """label → (test index, image) for DIGIT_CLASSES: the first test digit of each class (needs edgeclip.data)."""
    test = open_image_dataset("digits", "test")
    found: dict[str, tuple[int, Image.Image]] = {}
    for index, label in enumerate(test.labels):
        name = test.class_names[int(label)]
        if name in DIGIT_CLASSES and name not in found:
            found[name] = (index, test.load(index))
    return found


def write_digit_examples(directory: Path = EXAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (index, image) in sorted(digit_test_images().items()):
        path = directory / f"digit-{name}-test{index}.png"
        image.save(path, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_digit_examples():
        print(written_path)
