"""What the zero-shot page says the models know, and which example a user sees first (torch-free).

- `known_domain`: from the towers' manifests (`domain`, written by `exporters/dual.py`): the run's
  teacher, data and prompt templates, and for a proxy teacher the only classes it was trained on —
  the page shows it, so a digits model's confident percentages for a dashcam photo are not taken
  at face value.
- `outside_domain`: typed names a proxy teacher never saw, with the prompt they really became
  ("a photo of the digit car."), so that is said instead of happening silently.
- `measure_examples`: every labelled example classified by every model over the known classes at
  start-up; the examples are ordered by how many models get them right (ties keep their order), so
  the first example shown is one both models classify correctly whenever one exists — measured,
  not hand-picked.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

from PIL import Image

from edgeclip.demo.examples import Example
from edgeclip.prompt_ensemble import prompt_name


def _prompt_name(name: str) -> str:
    return prompt_name(name)


def known_domain(student: Any, teacher: Any, default_classes: Sequence[str]) -> dict[str, Any]:
    """{proxy, data, teacher, template_set, classes, summary} for the page's "what the models know" line."""
    domain = student.domain or (teacher.domain if teacher is not None else None) or {}
    proxy = domain.get("proxy") if isinstance(domain.get("proxy"), dict) else None
    classes = [str(c) for c in (proxy.get("classes") if proxy else None) or default_classes]
    if proxy:
        summary = (f"This proxy teacher ({proxy.get('name')}) only knows {proxy.get('knows')}: {', '.join(classes)}. "
                   "The student learned from it, so any other name gets a percentage that means nothing.")
    elif domain.get("data"):
        summary = (f"Distilled and evaluated on {domain['data']} ({', '.join(classes)}); other names are prompted "
                   "with the same templates and may be outside what the models learned.")
    else:
        summary = ("This export records no training domain (it predates edgeclip recording one); the models may know "
                   "nothing about the names you type.")
    return {"proxy": proxy, "data": domain.get("data"), "teacher": domain.get("teacher"),
            "template_set": domain.get("template_set"), "classes": classes, "summary": summary}


def outside_domain(names: Sequence[str], knows: dict[str, Any], templates: Sequence[str]) -> dict[str, Any] | None:
    """Typed names a proxy teacher was never trained on, and the prompt the first one became; None if all known."""
    if not knows.get("proxy"):
        return None  # only a proxy's domain is known to be all it knows
    known = {str(c).lower() for c in [*knows["classes"], *(knows["proxy"].get("aliases") or [])]}
    outside = [n for n in names if _prompt_name(n).lower() not in known]
    if not outside:
        return None
    prompt = (list(templates) or ["{}"])[0].format(_prompt_name(outside[0]))
    shown = ", ".join(f"“{n}”" for n in outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
    return {"names": outside, "prompt": prompt,
            "note": (f"{shown} {'is' if len(outside) == 1 else 'are'} outside what this proxy teacher knows "
                     f"({knows['proxy'].get('knows')}): “{outside[0]}” was prompted as “{prompt}”, so "
                     f"{'its percentage means' if len(outside) == 1 else 'their percentages mean'} nothing.")}


def measure_examples(examples: dict[str, Example], models: dict[str, Any], classes: Sequence[str]) -> list[dict[str, Any]]:
    """Examples in page order with their true label and each model's top-1 over `classes` (labelled ones only)."""
    records = []
    for index, example in enumerate(examples.values()):
        record: dict[str, Any] = {"name": example.name, "caption": example.caption, "label": example.label,
                                  "url": f"/api/examples/{example.name}", "top1": {}, "correct": {}}
        if example.label is not None and example.label in classes:
            with Image.open(io.BytesIO(example.data)) as image:
                rgb = image.convert("RGB")
            for role, model in models.items():
                names = list(model.fused_classes) if model.mode == "fused" else list(classes)
                top = model.classify(rgb, names)["top"][0]["class"]
                record["top1"][role] = top
                record["correct"][role] = top == example.label
        record["all_correct"] = bool(record["correct"]) and all(record["correct"].values())
        records.append((-sum(record["correct"].values()), record["label"] is None, index, record))
    return [r for *_, r in sorted(records, key=lambda item: item[:3])]


def examples_note(ordered: list[dict[str, Any]]) -> str:
    """One line under the examples: what the measurement found."""
    labelled = [r for r in ordered if r["correct"]]
    if not labelled:
        return "Examples without a label among these classes: any answer is outside what the models know."
    right = sum(r["all_correct"] for r in labelled)
    if right == 0:
        return (f"None of the {len(labelled)} labelled examples is classified correctly by every model here "
                "(measured at start-up); the ones most models get right come first.")
    return (f"{right} of {len(labelled)} labelled examples are classified correctly by every model here (measured at "
            "start-up); they come first.")
