"""Matching a dataset's classes onto a model's classes by name, never by position.

A folder's classes are its sorted folder names (`eight, five, four, …`), while a model predicts
its classes in the order it was trained with (`zero, one, two, …`). Comparing the two lists in
order fails even when the names are the same; comparing them by name works, and a class map
(`--class-map 0=zero,1=one` or a YAML/JSON file, recipe `data.classname_map`) renames folders whose
names differ from the model's (`0` → `zero`).

- `parse_class_map(text)`: `""` → {}; an existing .yaml/.yml/.json file → its mapping; else `a=b,c=d`.
- `rename_classes(dataset, class_map)`: the same images with the mapped class names.
- `align_classes(dataset, class_names, class_map, ...)`: a view whose `class_names` are the
  model's and whose labels index them; a data class the model lacks is an error with a table of
  missing/extra names and the fix. Model classes absent from the data are allowed (evaluating
  on a subset of the classes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image

from edgeclip.data.base import ImageDataset
from edgeclip.errors import UserError

CLASS_MAP_HELP = "a YAML/JSON file mapping folder name → class name, or 'a=b,c=d' (e.g. 0=zero,1=one)"


def parse_class_map(text: str | None) -> dict[str, str]:
    """A class map from `--class-map` / recipe `data.classname_map` (see CLASS_MAP_HELP)."""
    text = (text or "").strip()
    if not text:
        return {}
    path = Path(text).expanduser()
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise UserError(f"class map file {path} does not exist; pass {CLASS_MAP_HELP}")
        import yaml

        raw = path.read_text()
        try:
            data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise UserError(f"class map file {path} is not valid {path.suffix[1:].upper() or 'YAML'} "
                            f"({str(exc).splitlines()[0]}); write one 'folder: class' pair per line") from None
        if not isinstance(data, dict) or not data:
            raise UserError(f"class map file {path} must be a non-empty mapping of folder name → class name")
        pairs = [(str(k), v) for k, v in data.items()]
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            source, sep, target = item.partition("=")
            if not sep or not source.strip() or not target.strip():
                raise UserError(f"class map entry '{item}' is not 'folder=class'; pass {CLASS_MAP_HELP}")
            pairs.append((source.strip(), target.strip()))
    mapping: dict[str, str] = {}
    for source, target in pairs:
        if not isinstance(target, str) and not isinstance(target, int):
            raise UserError(f"class map: '{source}' must map to a class name, got {target!r}")
        if source in mapping:
            raise UserError(f"class map names folder '{source}' twice; give each folder one class name")
        mapping[source] = str(target)
    return mapping


class RelabelledDataset(ImageDataset):
    """The images of `dataset` with other class names and labels (`labels[i] = remap[old label]`)."""

    def __init__(self, dataset: ImageDataset, class_names: Sequence[str], remap: Sequence[int], note: str) -> None:
        self.dataset = dataset
        self.kind = dataset.kind
        self.class_names = list(class_names)
        self.labels = [int(remap[label]) for label in dataset.labels]
        self.skipped = list(dataset.skipped)
        self.identity = f"{dataset.identity}:{note}"

    def load(self, index: int) -> Image.Image:
        return self.dataset.load(index)

    def sample_ids(self) -> list[str]:
        return self.dataset.sample_ids()


def rename_classes(dataset: ImageDataset, class_map: Mapping[str, str], what: str = "data") -> ImageDataset:
    """`dataset` with each class folder name replaced by its mapped name (unmapped names stay)."""
    if not class_map:
        return dataset
    unknown = sorted(set(class_map) - set(dataset.class_names))
    if unknown:
        raise UserError(f"class map names {', '.join(unknown)} but {what} has no such class folder (it has "
                        f"{', '.join(dataset.class_names)}); map the folder names as they are spelled")
    renamed = [class_map.get(name, name) for name in dataset.class_names]
    doubled = sorted({name for name in renamed if renamed.count(name) > 1})
    if doubled:
        raise UserError(f"class map gives several folders of {what} the class name(s) {', '.join(doubled)}; "
                        "map each folder to a different class")
    note = "renamed=" + ",".join(f"{a}>{b}" for a, b in sorted(class_map.items()))
    return RelabelledDataset(dataset, renamed, list(range(len(renamed))), note)


def mismatch_table(data_names: Sequence[str], model_names: Sequence[str]) -> str:
    """A one-line table of names only in the data (extra) and only in the model (missing)."""
    extra = [n for n in data_names if n not in set(model_names)]
    missing = [n for n in model_names if n not in set(data_names)]
    return (f"| in the data, not the model (extra): {', '.join(extra) or '-'} "
            f"| in the model, not the data (missing): {', '.join(missing) or '-'} |")


def class_hint(data_names: Sequence[str], model_names: Sequence[str]) -> str:
    if all(name.isdigit() for name in data_names) and not all(name.isdigit() for name in model_names):
        pairs = ",".join(f"{d}={m}" for d, m in zip(sorted(data_names, key=int), model_names))
        return (f"folder names must be the model's class words; rename the folders or pass --class-map "
                f"(e.g. --class-map {pairs[:80]}{'…' if len(pairs) > 80 else ''})")
    return f"rename the class folders to the model's class names, or pass --class-map ({CLASS_MAP_HELP})"


def align_classes(dataset: ImageDataset, class_names: Sequence[str], class_map: Mapping[str, str] | None = None, *,
                  what: str = "data", model: str = "the model") -> ImageDataset:
    """`dataset` (renamed by `class_map`) relabelled so label i means `class_names[i]`.

    Matching is by name. A data class the model does not predict is an error (its images could
    never be right); model classes with no images in the data are allowed (their count is 0 in
    `class_counts()`).
    """
    renamed = rename_classes(dataset, class_map or {}, what)
    model_names = list(class_names)
    if list(renamed.class_names) == model_names:
        return renamed
    extra = [n for n in renamed.class_names if n not in model_names]
    if extra:
        raise UserError(f"{what} has classes {model} does not predict "
                        f"{mismatch_table(renamed.class_names, model_names)}; {class_hint(renamed.class_names, model_names)}")
    remap = [model_names.index(name) for name in renamed.class_names]
    return RelabelledDataset(renamed, model_names, remap, f"classes-of={len(model_names)}")


def teacher_columns(teacher_names: Sequence[str], model_names: Sequence[str], teacher: str = "the teacher") -> list[int]:
    """Indices into a teacher's outputs that give its logits in the model's class order (by name).
    Every model class must be one of the teacher's; extra teacher classes are dropped."""
    teacher_names, model_names = list(teacher_names), list(model_names)
    missing = [n for n in model_names if n not in teacher_names]
    if missing:
        raise UserError(f"teacher '{teacher}' does not predict every class of the model "
                        f"{mismatch_table(teacher_names, model_names)}; use a teacher trained on the same classes")
    return [teacher_names.index(n) for n in model_names]
