"""The dual-encoder evaluation suite: one table, teacher and student side by side, retention per row.

Suites: `zero-shot` (prompt-ensemble top-1), `linear-probe` (logistic regression on frozen image
features, C swept on a validation split of train), `shift` (on photos: CIFAR-10-C-style corruptions
× severities 1..5 and their mean per severity, `eval/corruption_shift.py`; otherwise synthetic
shifts of the real test images and their mean; each user folder as its own row, never averaged
with them; top-1 and drop from in-distribution), `retrieval` (image↔text recall@1/5 on held-out
pairs). The size table (params, FLOPs, latency per tower per backend)
comes with every run. Retention = student / teacher on the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgeclip.data import open_image_dataset
from edgeclip.data.captions import digits_caption_bank
from edgeclip.data.class_match import align_classes
from edgeclip.errors import UserError
from edgeclip.eval.linear_probe import linear_probe
from edgeclip.eval.shift import SHIFT_DESCRIPTIONS, synthetic_shifts
from edgeclip.utils import fmt

SUITES = ("zero-shot", "linear-probe", "shift", "retrieval")


def parse_suites(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SUITES]
    if unknown or not names:
        raise UserError(f"unknown suite {unknown[0] if unknown else text!r}; choose from {', '.join(SUITES)} (comma-separated)")
    return names


def _pair(teacher: float | None, student: float | None) -> dict[str, float | None]:
    retention = student / teacher if teacher and student is not None else None
    return {"teacher": teacher, "student": student, "retention": retention}


def run_suite(teacher: Any, student: Any, *, test: Any, train: Any, templates: Sequence[str], suites: Sequence[str],
              shift_folders: Sequence[str] = (), seed: int = 0, progress: Any = None,
              class_map: Mapping[str, str] | None = None, shift_set: str = "auto",
              shift_images: int | None = None) -> dict[str, Any]:
    """Every asked-for metric for both encoders (see the module docstring); rows keyed by metric name.

    `shift_set`: auto (corruptions for photos, synthetic shifts otherwise), corruptions or synthetic;
    `shift_images`: evaluate corruptions on a seeded class-stratified subset of that many test images."""
    # lazy: defers torch
    from edgeclip.eval.corruption_shift import shift_family
    from edgeclip.eval.zero_shot import zero_shot_predictions

    say = progress or (lambda _m: None)
    # Every input check before the first image is encoded.
    opened_folders = [open_shift_folder(f, test.class_names, class_map) for f in shift_folders] if "shift" in suites else []
    family = shift_family(shift_set, test)
    if shift_images and family != "corruptions":
        raise UserError("a shift subset (--shift-images) applies to the corruption shifts of photos; drop it or use --shift-set corruptions")
    rows: dict[str, dict[str, float | None]] = {}
    details: dict[str, Any] = {}
    labels = np.asarray(test.labels)
    encoders = {"teacher": teacher, "student": student}
    say("encoding the test split")
    features = {role: enc.image_features(test) for role, enc in encoders.items()}
    class_embeddings = {role: enc.class_embeddings(test.class_names, templates) for role, enc in encoders.items()}

    def top1(role: str, feats: Any, y: np.ndarray = labels) -> float:
        return float((zero_shot_predictions(feats, class_embeddings[role]).numpy() == y).mean())

    in_distribution = {role: top1(role, features[role]) for role in encoders}
    if "zero-shot" in suites or "shift" in suites:
        rows["zero-shot top-1"] = _pair(in_distribution["teacher"], in_distribution["student"])
    if "linear-probe" in suites:
        say("linear probe (C sweep on a validation split of train)")
        probe = {}
        for role, enc in encoders.items():
            train_x = enc.image_features(train).numpy()
            probe[role] = linear_probe(train_x, np.asarray(train.labels), features[role].numpy(), labels, seed=seed)
        rows["linear-probe top-1"] = _pair(probe["teacher"].accuracy, probe["student"].accuracy)
        details["linear_probe"] = {role: {"best_C": r.best_c, "validation": r.validation} for role, r in probe.items()}
    if "shift" in suites and family == "corruptions":
        # lazy: defers torch
        from edgeclip.eval.corruption_shift import corruption_shift

        accuracy, shifted = corruption_shift(encoders, test, top1, seed=seed, images=shift_images, clean=in_distribution, say=say)
        for name, acc in accuracy.items():
            rows[name] = _pair(acc["teacher"], acc["student"])
        folders: dict[str, Any] = {}
        for folder, data in zip(shift_folders, opened_folders):
            folders.update(_folder_shift(folder, data, encoders, templates, in_distribution, rows))
        details["shift"] = {**shifted, "folders": folders} if folders else shifted
    elif "shift" in suites:
        size = max(teacher.preprocess.size, student.preprocess.size)
        shifted: dict[str, Any] = {}
        for name, transform in synthetic_shifts(size, seed).items():
            say(f"shift: {name}")
            acc = {role: top1(role, enc.image_features(test, transform=transform)) for role, enc in encoders.items()}
            rows[f"shift {name} top-1"] = _pair(acc["teacher"], acc["student"])
            shifted[name] = {"description": f"synthetic shift of real images: {SHIFT_DESCRIPTIONS[name]}", "source": "built-in",
                             **{f"{role}_drop": in_distribution[role] - acc[role] for role in encoders}}
        # The mean covers the built-in shifts only (comparable across runs and with the README);
        # user folders are other data, reported row by row and never averaged in.
        mean = {role: float(np.mean([rows[f"shift {n} top-1"][role] for n in shifted])) for role in encoders}
        rows["shift mean top-1"] = _pair(mean["teacher"], mean["student"])
        for folder, data in zip(shift_folders, opened_folders):
            shifted.update(_folder_shift(folder, data, encoders, templates, in_distribution, rows))
        details["shift"] = shifted
    if "retrieval" in suites:
        # lazy: defers torch
        from edgeclip.eval.retrieval import recall_at_k, relevance

        captions = _held_out_captions(test, seed, templates)
        relevant = relevance(list(test.labels), captions)
        say(f"retrieval on {len(captions)} held-out pairs")
        recalls = {role: recall_at_k(features[role], enc.encode_texts(captions), relevant) for role, enc in encoders.items()}
        for metric in recalls["teacher"]:
            rows[f"retrieval {metric}"] = _pair(recalls["teacher"][metric], recalls["student"][metric])
        details["retrieval"] = {"pairs": len(captions), "relevance": "same class (a caption names a class, so it describes every image of it)"}
    return {"rows": rows, "details": details, "test_images": len(test), "train_images": len(train)}


def _held_out_captions(test: Any, seed: int, templates: Sequence[str]) -> list[str]:
    """One caption per held-out test image, seeded: digits from their caption bank (templates ×
    word/numeral), any other data from the evaluation's templates × its class names."""
    if test.kind == "digits":
        bank, bank_labels = digits_caption_bank(list(test.class_names))
    else:
        bank = [t.format(name) for name in test.class_names for t in templates]
        bank_labels = [k for k in range(len(test.class_names)) for _ in templates]
    by_class = [[c for c, lab in zip(bank, bank_labels) if lab == k] for k in range(len(test.class_names))]
    rng = np.random.default_rng(seed)
    return [by_class[label][int(rng.integers(len(by_class[label])))] for label in test.labels]


def open_shift_folder(folder: str, class_names: Sequence[str], class_map: Mapping[str, str] | None = None) -> Any:
    """A user shift folder, its labels matched by name to the test classes. Called before any
    encoding, so a bad folder fails at once (not after minutes of other rows)."""
    if not Path(folder).is_dir():
        raise UserError(f"shift folder {folder} does not exist; give a folder of class folders named like the test classes")
    return align_classes(open_image_dataset(folder, "all"), class_names, class_map, what=f"shift folder {folder}",
                         model="the test data")


def _folder_shift(folder: str, data: Any, encoders: dict[str, Any], templates: Sequence[str],
                  in_distribution: dict[str, float], rows: dict[str, Any]) -> dict[str, Any]:
    # lazy: defers torch
    from edgeclip.eval.zero_shot import zero_shot_top1

    name = f"folder:{Path(folder).name}"
    acc = {role: zero_shot_top1(enc, data, templates) for role, enc in encoders.items()}
    rows[f"shift {name} top-1"] = _pair(acc["teacher"], acc["student"])
    return {name: {"description": f"user folder {folder} ({len(data)} images)", "source": "user",
                   **{f"{role}_drop": in_distribution[role] - acc[role] for role in encoders}}}


def _corruption_row(name: str, shift: Mapping[str, Any]) -> bool:
    """Is `name` one corruption at one severity (shown in the grid, not the main table)?"""
    return any(name == f"shift {c} s{k} top-1" for c in shift["corruptions"] for k in shift["severities"])


def size_table(teacher_model: Any, student_model: Any, *, teacher_pre: Any, student_pre: Any, teacher_context: int,
               student_context: int, latency: dict[str, Any] | None = None) -> dict[str, Any]:
    """Params and FLOPs per tower for both, ratios student/teacher, and latency per tower per backend."""
    # lazy: defers torch
    from edgeclip.eval.size import tower_flops, tower_params

    table: dict[str, Any] = {}
    for role, model, pre, context in (("teacher", teacher_model, teacher_pre, teacher_context),
                                      ("student", student_model, student_pre, student_context)):
        params, flops = tower_params(model), tower_flops(model, pre.size, context)
        table[role] = {tower: {"params": params[tower], "flops": flops[tower]} for tower in ("image", "text")}
    table["ratio"] = {tower: {k: table["student"][tower][k] / table["teacher"][tower][k] for k in ("params", "flops")}
                      for tower in ("image", "text")}
    if latency:
        table["latency_ms_p50"] = {k: v.get("p50") for k, v in latency.items()}
        table["latency_errors"] = {k: v["error"] for k, v in latency.items() if "error" in v}
    return table


def render_markdown(report: dict[str, Any]) -> str:
    suite = report["suite"]
    shift = suite["details"].get("shift") or {}
    corruptions = shift.get("family") == "corruptions"
    if corruptions:
        shifts_text = (f"Shifts: {shift['description']}; {shift['subset'] or 'all test images'}. `shift mean s<k>` is the mean "
                       "over the corruptions at severity k, `shift mean` the mean over severities")
    else:
        shifts_text = "Shifts are synthetic shifts of the real test images; `shift mean` averages those built-in shifts only"
    lines = [f"# Dual-encoder evaluation: {report['student']} vs {report['teacher']}", "",
             f"Data: `{report['data']}` — {suite['test_images']} held-out test images, {suite['train_images']} train "
             f"images (linear probe only). {shifts_text} — a user folder (`shift folder:…`) is other data, reported on its own "
             f"row and never averaged in. Templates: {report['templates']}.", "",
             "| metric | teacher | student | retention |", "|---|---:|---:|---:|"]
    grid = {name for name in suite["rows"] if corruptions and _corruption_row(name, shift)}
    for name, row in suite["rows"].items():
        if name not in grid:
            lines.append(f"| {name} | {fmt(row['teacher'], True)} | {fmt(row['student'], True)} | {fmt(row['retention'])} |")
    if grid:
        lines += ["", "Top-1 per corruption and severity, teacher / student:", "",
                  "| corruption | " + " | ".join(f"s{k}" for k in shift["severities"]) + " |",
                  "|---|" + "---:|" * len(shift["severities"])]
        for name in shift["corruptions"]:
            cells = [suite["rows"][f"shift {name} s{k} top-1"] for k in shift["severities"]]
            lines.append(f"| {name} | " + " | ".join(f"{fmt(c['teacher'], True)} / {fmt(c['student'], True)}" for c in cells) + " |")
    size = report.get("size")
    if size:
        lines += ["", "| tower | teacher params | student params | ratio | teacher FLOPs | student FLOPs | ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for tower in ("image", "text"):
            t, s, r = size["teacher"][tower], size["student"][tower], size["ratio"][tower]
            lines.append(f"| {tower} | {t['params']:,} | {s['params']:,} | {r['params']:.3f} | {t['flops'] / 1e6:.2f} M | "
                         f"{s['flops'] / 1e6:.2f} M | {r['flops']:.3f} |")
        if size.get("latency_ms_p50"):
            lines += ["", "| tower / backend | latency p50 (ms, batch 1, interleaved) |", "|---|---:|"]
            lines += [f"| {k} | {v:.3f} |" for k, v in size["latency_ms_p50"].items() if v is not None]
            lines += [f"| {k} | failed: {e} |" for k, e in size.get("latency_errors", {}).items()]
    return "\n".join(lines) + "\n"
