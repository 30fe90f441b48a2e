"""A written synthetic set (`synthetic.json` + class folders) read back as an `ImageDataset`.

The teacher's outputs travel with it: `teacher_logits()` = logit_scale × the cosine similarities
recorded when the images were saved, so KD never runs the teacher again and a user can inspect
exactly what the student was taught.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from edgeclip.data.base import ImageDataset
from edgeclip.distill.datafree.synthesis import SCHEMA, SYNTHETIC_JSON
from edgeclip.errors import UserError
from edgeclip.io_utils import read_json


class SyntheticImageSet(ImageDataset):
    """Images of a synthetic set, labelled by the class they were synthesized for."""

    kind = "datafree-synthetic"

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / SYNTHETIC_JSON
        if not path.is_file():
            raise UserError(f"{self.directory} has no {SYNTHETIC_JSON}; synthesize it first (edgeclip distill --method data-free)")
        data = read_json(path)
        if data.get("schema") != SCHEMA:
            raise UserError(f"{path} is not an edgeclip synthetic set ({data.get('schema')!r}); re-synthesize it")
        self.meta = data
        self.rows = data["images"]
        self.files = [self.directory / row["file"] for row in self.rows]
        self.labels = [int(row["label"]) for row in self.rows]
        self.class_names = list(data["class_names"])
        self.skipped = []
        self.identity = f"datafree:{data['method']}:{data['fingerprint']}:n={len(self.rows)}"

    def load(self, index: int) -> Image.Image:
        with Image.open(self.files[self._check_index(index)]) as image:
            return image.convert("RGB")

    def sample_ids(self) -> list[str]:
        return [f"datafree:{self.meta['fingerprint']}:{row['file']}" for row in self.rows]

    def teacher_similarity(self) -> torch.Tensor:
        """(N, C) cosine similarities of each saved image to every class embedding."""
        return torch.tensor([row["teacher_similarity"] for row in self.rows], dtype=torch.float32)

    def teacher_logits(self) -> torch.Tensor:
        """(N, C) the teacher's zero-shot logits: logit_scale × cosine (the KD targets)."""
        return float(self.meta["logit_scale"]) * self.teacher_similarity()
