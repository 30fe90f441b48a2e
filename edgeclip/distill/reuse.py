"""Reuse a finished run: the one rule, for every benchmark (and anything else that skips training).

A run directory may stand in for training again when
- it finished: `result.json` is written last and atomically (distill/results.py), so its presence
  means the run completed;
- it was made by the same recipe as that recipe reads today (config.recipe_differences: its prose
  aside; a field added to the code since the run counts as equal only while today's value is its
  default), except sections that do not change the trained student (`TRAINING_ONLY_IGNORED`: how it
  is exported and timed) and the caller's `ignore` (e.g. evaluation-only fields it re-measures);
- when the caller names a teacher spec (a teacher given outside the recipe, e.g. a saved teacher
  directory), the run recorded the same one (`teacher_spec` in its result.json).
Torch-free: it reads JSON only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgeclip.config import Recipe, recipe_differences
from edgeclip.io_utils import read_json

RESULT_FILE = "result.json"  # distill/results.RESULT_JSON (kept torch-free here)
# Recipe sections that say how a student is exported and benchmarked, not how it is trained.
TRAINING_ONLY_IGNORED = ("export", "bench")


@dataclass
class RunReuse:
    """What `reusable_run` found: the earlier result when the run may be reused, else why not."""

    result: dict[str, Any] | None  # the run's result.json, or None
    differences: list[str] = field(default_factory=list)  # dotted recipe fields (and `teacher_spec`) that differ
    reason: str = ""  # one line: why it is not reused ("" when it is)

    @property
    def reusable(self) -> bool:
        return self.result is not None


def reusable_run(run_dir: str | Path, recipe: Recipe, *, teacher: str | None = None,
                 ignore: Iterable[str] = ()) -> RunReuse:
    """Can the finished run in `run_dir` stand in for training `recipe` again (see the module doc)?
    `ignore`: more dotted recipe fields or sections whose difference does not matter to the caller."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return RunReuse(None, reason=f"{run_dir} holds no finished run ({RESULT_FILE} missing)")
    earlier = read_json(path)
    skipped = tuple(TRAINING_ONLY_IGNORED) + tuple(ignore)
    differences = [d for d in recipe_differences(earlier.get("recipe") or {}, recipe.to_dict(), dataclasses.asdict(Recipe()))
                   if not any(d == key or d.startswith(key + ".") for key in skipped)]
    if teacher is not None and earlier.get("teacher_spec") != teacher:
        differences.append("teacher_spec")
    if differences:
        return RunReuse(None, differences, f"the finished run in {run_dir} was made otherwise (differs in: {', '.join(differences)})")
    return RunReuse(earlier)
