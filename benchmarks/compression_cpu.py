"""Compression on this CPU: fp32 / int8 PTQ / int8 mixed / int8 QAT / pruned 30-50-70% (+ int8), ORT and OpenVINO.

Students (MobileNetV3-S/L, ResNet18 widths) are distilled with KD from the proxy teacher
`proxy-digits` on digits `train` (719 images) and evaluated on the 359 held-out digits `test`
images at 32×32 — digits are 8×8, so 32×32 keeps every pixel. Variants per student:
- int8 mixed: exactly what `edgeclip build` makes from the training recipe (digits-kd): its `int8:`
  settings (config.Int8Config), its calibration and validation images (compress/int8_inputs.py:
  `data.calibration_count` seeded train images; the sensitivity search validates on
  `int8.validation_count` other train images) and its parity sample — the product's own defaults;
- int8 PTQ: the same with `int8.mixed: false` — a deliberate variation, to show what the sensitivity
  search adds (the build never makes this row);
- int8 QAT: 4-epoch QAT + KD fine-tune (teacher mixed with the fp32 student), then int8 as the build;
- pruned 30/50/70%: torch-pruning (L2), 10 epochs of KD recovery from the teacher, fp32 and int8.
Speed references at 224²: the OpenAI ViT-B/32 image tower and a DistillCLIP image tower
(distillclip_vit_s32), both with random weights (no hub offline: speed, size and FLOPs only; the
DistillCLIP tower's pruned rows are pruned random weights, no recovery). Every artifact of every
model is timed round-robin in ONE interleaved run (batch 1, fixed threads).

"Passes": an fp32 student artifact passes when it runs; an int8 one when edgeclip's one ship rule
(compress/ship_rule.py, what `edgeclip build` applies) lets it ship instead of the fp32 artifact of
the same checkpoint and backend; the ViT-B/32 tower passes with its export parity (cosine). The 25×
target compares each model at its fastest passing variant, in the same backend. The result file's
`settings` block records the int8 settings used and every deliberate variation.

Usage:
    python benchmarks/compression_cpu.py --work runs/bench-compression --out benchmarks/results/compression_cpu
Steps whose outputs exist in --work are reused (delete a directory to redo it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeclip.bench.environment import collect_environment
from edgeclip.bench.flops import count_flops
from edgeclip.bench.harness import benchmark_interleaved
from edgeclip.compress.prune import prune_model
from edgeclip.config import PruneConfig
from edgeclip.compress.qat import QatConfig
from edgeclip.compress.int8_inputs import qat_record
from edgeclip.compress.int8_rule import INT8_AGREEMENT_BAR, REJECTED, REJECTED_NOTE, agreement_problem
from edgeclip.compress.ship_rule import int8_decision
from edgeclip.distill.compression import prune_checkpoint, qat_checkpoint
from edgeclip.data import open_image_dataset, preprocess_all
from edgeclip.exporters import ImageTower, export_model, image_tower_spec
from edgeclip.manifest import read_manifest
from edgeclip.runtimes import load_runtime
from edgeclip.students import create_student
from edgeclip.students.checkpoint import load_checkpoint
from edgeclip.utils import count_params
from edgeclip.io_utils import write_result_files

BACKENDS = ("onnx", "openvino")
STUDENTS = ("mobilenetv3_small", "mobilenetv3_large", "resnet18_w8", "resnet18_w4", "resnet18_w2")
PRUNE_RATIOS = (0.3, 0.5, 0.7)
RETENTION_BAR = 0.95
REFERENCE = "ViT-B/32 image tower (OpenAI arch)"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from compression_report import int8_verdicts, to_markdown  # noqa: E402


def log(message: str) -> None:
    print(f"[compression] {message}", file=sys.stderr, flush=True)


def distill(student: str, work: Path, epochs: int) -> Path:
    """The KD student of recipe digits-kd (student and epochs overridden); a finished run of that
    recipe in --work is reused (edgeclip.distill.reuse, the product's one rule)."""
    from edgeclip.config import load_recipe
    from edgeclip.distill.reuse import reusable_run

    run = work / f"kd-{student}"
    recipe = load_recipe("digits-kd", [f"student.name={student}", f"distill.epochs={epochs}",
                                       f"distill.milestones=[{int(epochs * 0.6)},{int(epochs * 0.9)}]"])
    found = reusable_run(run, recipe)
    if not found.reusable:
        from edgeclip.distill.classifier_kd import distill_classifier

        log(f"distilling {student} ({epochs} epochs): {found.reason}")
        distill_classifier(recipe, out_dir=run, progress=False)
    return run


def variants(run: Path, args: argparse.Namespace, compress: bool) -> dict[str, Path]:
    """Checkpoint per variant: fp32 student, QAT-tuned, pruned 30/50/70 (made here if missing)."""
    student = run / "student"
    found = {"base": student}
    if not compress:
        return found
    qat = run / "student-qat"
    if not (qat / "model.pt").is_file():
        log(f"QAT {run.name}")
        qat_checkpoint(student, qat, QatConfig(epochs=args.qat_epochs), progress=False)
    found["qat"] = qat
    if args.prune_students is not None and run.name.removeprefix("kd-") not in args.prune_students:
        return found
    for ratio in PRUNE_RATIOS:
        pruned = run / f"student-pruned{round(ratio * 100)}"
        if not (pruned / "model.pt").is_file():
            log(f"pruning {run.name} at {ratio}")
            prune_checkpoint(student, pruned, PruneConfig(ratio=ratio, recover_epochs=args.recover_epochs), progress=False,
                             resume=pruned.with_name(pruned.name + ".recovery").is_dir())
        found[f"pruned{round(ratio * 100)}"] = pruned
    return found


_ARRAYS: dict[str, dict[str, np.ndarray]] = {}
TRAINING_RECIPE = "digits-kd"  # the students' recipe: its int8/data/export settings are the build's


def product_recipe() -> Any:
    from edgeclip.config import load_recipe

    return load_recipe(TRAINING_RECIPE)


def digits_arrays(preprocess: Any) -> dict[str, np.ndarray]:
    key = json.dumps(preprocess.to_dict(), sort_keys=True)
    if key not in _ARRAYS:
        _ARRAYS[key] = _digits_arrays(preprocess)
    return _ARRAYS[key]


def _digits_arrays(preprocess: Any) -> dict[str, np.ndarray]:
    """The build's int8 and parity inputs for the training recipe (compress/int8_inputs.py): calibration
    and validation from digits `train`, parity a seeded sample of `test`. All 359 `test` images are
    evaluated."""
    from edgeclip.compress.int8_inputs import int8_images
    from edgeclip.data.sampling import sample_images

    recipe = product_recipe()
    calibration, validation = int8_images(open_image_dataset("digits", "train"), preprocess, recipe.int8,
                                          calibration_count=recipe.data.calibration_count, seed=recipe.seed)
    test_set = open_image_dataset("digits", "test")
    return {"calibration": calibration, "validation": validation,
            "parity": sample_images(test_set, preprocess, recipe.export.parity_samples, recipe.seed),
            "test": preprocess_all(test_set, preprocess).numpy(), "labels": np.asarray(test_set.labels)}


def settings_record() -> dict[str, Any]:
    """What the int8 artifacts were made with, and which rows deliberately vary it (into the result file)."""
    import dataclasses

    recipe = product_recipe()
    return {"recipe": TRAINING_RECIPE, "int8": dataclasses.asdict(recipe.int8),
            "calibration_count": recipe.data.calibration_count, "parity_samples": recipe.export.parity_samples,
            "seed": recipe.seed, "ship_rule": "edgeclip.compress.ship_rule.int8_decision",
            "variations": {"int8 PTQ": "int8.mixed=false: shows what the sensitivity search adds; the build makes only the mixed row",
                           "towers": "ViT-B/32 / DistillCLIP towers (speed references, random weights): int8.mixed=false and "
                                     "calibration on the 32 frames they are timed with (no labels to search against)"}}


def export_variant(model: Any, spec: Any, backend: str, label: str, out: Path, arrays: dict[str, np.ndarray], *,
                   source: Path | None, mixed: bool, qat: dict | None = None) -> Path:
    """One artifact made as `edgeclip build` makes it (compress/int8_inputs.int8_options on the training
    recipe's int8 settings); `mixed=False` is the deliberate PTQ variation (see settings_record)."""
    if (out / "manifest.json").is_file():
        return out
    import dataclasses

    from edgeclip.compress.int8_inputs import int8_options

    log(f"exporting {out.parent.name}/{out.name}")
    precision = "fp32" if label == "fp32" else "int8"
    options = None
    if precision == "int8":
        settings = dataclasses.replace(product_recipe().int8, mixed=mixed and product_recipe().int8.mixed)
        options = int8_options(settings, arrays["validation"], None, qat)
    export_model(model, spec, backend, precision, out, calibration=arrays["calibration"], parity_inputs=arrays["parity"],
                 source_checkpoint=str(source) if source else None, int8=options)
    return out


def plan(variant: str) -> list[tuple[str, str, bool]]:
    """(artifact label, row format, mixed search) per checkpoint variant."""
    if variant == "base":
        return [("fp32", "fp32", False), ("int8-ptq", "int8 PTQ", False), ("int8", "int8 mixed", True)]
    if variant == "qat":
        return [("int8", "int8 QAT", True)]
    return [("fp32", "fp32", False), ("int8", "int8 mixed", True)]


def student_artifacts(student: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    run = distill(student, args.work, args.kd_epochs)
    result = json.loads((run / "result.json").read_text())
    teacher_accuracy = result["metrics"]["teacher_accuracy"]
    rows = []
    compress = not args.compress_students or student in args.compress_students
    for variant, checkpoint in variants(run, args, compress).items():
        record = json.loads((checkpoint / "compress.json").read_text()) if (checkpoint / "compress.json").is_file() else {}
        epochs = {"kd_epochs": result["training"]["epochs"],
                  "recover_epochs": ((record.get("prune") or {}).get("recovery") or {}).get("epochs"),
                  "qat_epochs": ((record.get("qat") or {}).get("config") or {}).get("epochs")}
        model, spec, info = load_checkpoint(checkpoint)
        arrays = digits_arrays(spec.preprocess)
        for backend in BACKENDS:
            for label, name, mixed in plan(variant):
                out = args.work / "artifacts" / student / f"{variant}-{backend}-{label}"
                export_variant(model, spec, backend, label, out, arrays, source=checkpoint, mixed=mixed,
                               qat=qat_record(checkpoint))
                rows.append({"model": student, "variant": "base" if variant == "qat" else variant, "format": name,
                             "backend": backend, "artifact": out, "checkpoint": checkpoint,
                             "teacher_accuracy": teacher_accuracy, **epochs})
    return rows


def zero_shot_artifacts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The trained DistillCLIP digits student as it ships for zero-shot: its image tower fused with the
    class embeddings of its own text tower (image → 10 logits), fp32 / int8 PTQ / int8 mixed on both
    backends — judged like the classifier students (accuracy, agreement with its fp32 PyTorch self,
    retention against the teacher's zero-shot accuracy recorded in the run)."""
    from edgeclip.exporters.dual import class_embeddings
    from edgeclip.exporters.towers import FusedZeroShotClassifier, zero_shot_classifier_spec
    from edgeclip.teacher.templates import get_templates

    run = args.distillclip_run
    result = json.loads((run / "result.json").read_text())
    model, spec, _ = load_checkpoint(run / "student")
    model.eval()
    names = list(open_image_dataset("digits", "test").class_names)
    templates = get_templates(result["recipe"]["data"]["templates"])
    logit_scale = float(spec.extra.get("logit_scale") or model.logit_scale.exp().item())
    with torch.no_grad():
        embeddings = class_embeddings(model, int(spec.context_length or 77), names, templates)
    fused = FusedZeroShotClassifier(model, embeddings, logit_scale).eval()
    fused_spec = zero_shot_classifier_spec(model, f"{spec.name}-zeroshot", names, spec.preprocess)
    fused_spec.extra["logit_scale"] = logit_scale
    arrays = digits_arrays(fused_spec.preprocess)
    label = f"{spec.name} zero-shot (trained DistillCLIP)"
    rows = []
    for backend in BACKENDS:
        for name, row_format, mixed in plan("base"):
            out = args.work / "artifacts" / "distillclip" / f"base-{backend}-{name}"
            export_variant(fused, fused_spec, backend, name, out, arrays, source=run / "student", mixed=mixed)
            rows.append({"model": label, "variant": "base", "format": row_format, "backend": backend, "artifact": out,
                         "reference_model": fused, "params_module": model.visual, "preprocess": fused_spec.preprocess,
                         "teacher_accuracy": result["metrics"]["teacher_zero_shot"],
                         "kd_epochs": result["recipe"]["distill"]["epochs"], "recover_epochs": None, "qat_epochs": None})
    return rows


def tower_artifacts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """ViT-B/32 (reference) and a DistillCLIP tower (+ pruned) at 224², random weights: speed only."""
    import open_clip

    torch.backends.mha.set_fastpath_enabled(False)
    rows = []
    torch.manual_seed(0)
    towers: list[tuple[str, str, Any, Any]] = []
    vit = open_clip.create_model("ViT-B-32")
    towers.append((REFERENCE, "base", ImageTower(vit).eval(), image_tower_spec(vit, "vit_b32_image")))
    clip, spec = create_student("distillclip_vit_s32")
    towers.append(("distillclip_vit_s32 image tower", "base", ImageTower(clip).eval(), image_tower_spec(clip, "distillclip_vit_s32_image")))
    for ratio in PRUNE_RATIOS:
        pruned, _ = prune_model(clip, spec, PruneConfig(ratio=ratio))
        towers.append(("distillclip_vit_s32 image tower", f"pruned{round(ratio * 100)}", ImageTower(pruned).eval(),
                       image_tower_spec(pruned, "distillclip_vit_s32_image")))
    frames = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "dad-demo").glob("*/*.jpg"))[::25][:32]
    for label, variant, model, tower_spec in towers:
        from edgeclip.data.images import load_image

        images = (np.stack([tower_spec.preprocess(load_image(p)) for p in frames]).astype(np.float32) if frames
                  else preprocess_all(open_image_dataset("digits", "train"), tower_spec.preprocess).numpy()[:32])
        arrays = {"calibration": images, "validation": None, "parity": images, "test": images}
        for backend in BACKENDS:
            for precision in ("fp32", "int8"):
                out = args.work / "artifacts" / "towers" / f"{tower_spec.name}-{variant}-{backend}-{precision}"
                export_variant(model, tower_spec, backend, precision, out, arrays, source=None, mixed=False)
                rows.append({"model": label, "variant": variant, "format": "fp32" if precision == "fp32" else "int8 PTQ",
                             "backend": backend, "artifact": out, "tower": model})
    return rows


def measure(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Params, FLOPs and size per row; then every artifact timed interleaved in one run."""
    runners, inputs, models = {}, {}, {}
    for index, row in enumerate(rows):
        manifest = read_manifest(row["artifact"])
        row["size_mb"] = manifest["size_bytes"] / 1e6
        row["quantization"] = {k: manifest["quantization"].get(k) for k in ("method", "weights", "float_layers", "validation")
                               if k in manifest["quantization"]}
        row["parity"] = {k: manifest["parity"].get(k) for k in ("passed", "mean_cosine", "top1_agreement")}
        if manifest.get("status") == REJECTED:  # the export's own int8 rule rejected it (compress/int8_rule.py)
            row["rejected"] = REJECTED_NOTE + str(manifest.get("next_step") or "")
        key = str(row.get("checkpoint") or f"{row['model']}-{row['variant']}")
        if key not in models:
            model = row.get("tower") or row.get("reference_model") or load_checkpoint(row["checkpoint"])[0]
            size = manifest["inputs"][0]["shape"][-1]
            part = row.get("params_module") or (model.clip.visual if hasattr(model, "clip") else model)
            models[key] = (count_params(part), count_flops(model, (torch.zeros(1, 3, size, size),)))
        row["params"], row["flops"] = models[key]
        runner = load_runtime(row["artifact"], threads=args.threads)
        runners[str(index)] = runner.run
        inputs[str(index)] = np.random.default_rng(0).standard_normal((1, *manifest["inputs"][0]["shape"][1:])).astype(np.float32)
    log(f"timing {len(runners)} artifacts interleaved ({args.threads} thread(s), batch 1)")
    stats = benchmark_interleaved(runners, inputs, warmup=args.warmup, iterations=args.iterations,
                                  max_seconds=args.seconds * len(runners))
    for index, row in enumerate(rows):
        result = stats[str(index)]
        # round_p50: the interleaved rounds the ship rule takes its int8/fp32 median over.
        row["latency_ms"] = {k: result.get(k) for k in ("p50", "p90", "iterations", "round_p50")} if "p50" in result else None
        row["status"] = "ok" if "p50" in result else f"failed: {result.get('error')}"


@torch.no_grad()
def evaluate(rows: list[dict[str, Any]]) -> None:
    """Accuracy, agreement with the fp32 student (and with the variant's own float model) on test digits."""
    references: dict[str, np.ndarray] = {}
    for row in rows:
        if "reference_model" in row:  # the fused zero-shot model: its own fp32 self is the reference
            arrays = digits_arrays(row["preprocess"])
            base = row["artifact"].parent / "base-fp32-reference"
            if str(base) not in references:
                references[str(base)] = row["reference_model"](torch.from_numpy(arrays["test"])).numpy()
            _score(row, arrays, references[str(base)], references[str(base)])
            continue
        if "checkpoint" not in row:
            continue
        model, spec, _ = load_checkpoint(row["checkpoint"])
        arrays = digits_arrays(spec.preprocess)
        base = row["checkpoint"].parent / "student"
        for path in {base, row["checkpoint"]}:
            if str(path) not in references:
                references[str(path)] = load_checkpoint(path)[0](torch.from_numpy(arrays["test"])).numpy()
        _score(row, arrays, references[str(base)], references[str(row["checkpoint"])])


def _score(row: dict[str, Any], arrays: dict[str, np.ndarray], fp32_student: np.ndarray, own_float: np.ndarray) -> None:
    """Accuracy, retention and top-1 agreement of the artifact on the held-out test digits."""
    predicted = load_runtime(row["artifact"], threads=0).run(arrays["test"]).argmax(1)
    row["test_images"] = int(len(predicted))
    row["accuracy"] = float((predicted == arrays["labels"]).mean())
    row["retention"] = row["accuracy"] / row["teacher_accuracy"]
    row["agreement_fp32_student"] = float((predicted == fp32_student.argmax(1)).mean())
    row["agreement_own_float"] = float((predicted == own_float.argmax(1)).mean())


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which rows pass, the fastest passing variant per model and backend, and the 25× target rows.

    A student's fp32 artifact passes when it ran; its int8 artifact passes when edgeclip's one ship
    rule lets it ship instead of the fp32 artifact of the same checkpoint and backend
    (compress/ship_rule.int8_decision, as `edgeclip build` decides: not rejected at export, top-1
    agreement with the float model it was exported from on the test digits, clearly faster). A tower
    (speed reference) passes with its export parity (cosine). A student counts for the target when it
    also keeps retention >= 0.95 vs the teacher.
    """
    fp32 = {(r["model"], r["variant"], r["backend"]): r for r in rows if r["format"] == "fp32" and r["status"] == "ok"}
    for row in rows:
        ok = row["status"] == "ok"
        if "agreement_own_float" not in row:
            row["passes"] = ok and bool(row["parity"].get("passed"))
        elif row["format"] == "fp32":
            row["passes"] = ok
        else:
            twin = fp32.get((row["model"], row["variant"], row["backend"]))
            decision = int8_decision(agreement=row["agreement_own_float"], images=row.get("test_images"),
                                     latency=row["latency_ms"], fp32_latency=twin["latency_ms"] if twin else None,
                                     backend=row["backend"], rejected=row.get("rejected"))
            row["passes"], row["ship_rule"] = ok and decision.ships, decision.reason
            row["int8_holds"] = (None if row["variant"] != "base" else
                                 ok and agreement_problem(row["agreement_fp32_student"], row.get("test_images")) is None)
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        eligible = row["passes"] and (row.get("retention", 1.0) >= RETENTION_BAR if "retention" in row else row["variant"] == "base")
        key = f"{row['model']}|{row['backend']}"
        if eligible and (key not in best or row["latency_ms"]["p50"] < best[key]["latency_ms"]["p50"]):
            best[key] = row
    targets = []
    for backend in BACKENDS:
        reference = best.get(f"{REFERENCE}|{backend}")
        for key, row in best.items():
            if reference is None or not key.endswith(f"|{backend}") or "retention" not in row:
                continue
            targets.append({"backend": backend, "student": row["model"], "variant": row["variant"], "format": row["format"],
                            "student_p50_ms": row["latency_ms"]["p50"], "reference_format": reference["format"],
                            "reference_p50_ms": reference["latency_ms"]["p50"], "retention": row["retention"],
                            "agreement_own_float": row["agreement_own_float"],
                            "speedup": reference["latency_ms"]["p50"] / row["latency_ms"]["p50"]})
    targets.sort(key=lambda t: -t["speedup"])
    return {"fastest_passing": {k: {"variant": v["variant"], "format": v["format"], "p50_ms": v["latency_ms"]["p50"]}
                                for k, v in best.items()}, "targets": targets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-compression"))
    parser.add_argument("--out", default="benchmarks/results/compression_cpu")
    parser.add_argument("--students", nargs="*", default=list(STUDENTS))
    parser.add_argument("--compress-students", nargs="*", default=[],
                        help="students that also get QAT and pruned variants (default: all of --students)")
    parser.add_argument("--prune-students", nargs="*", default=None,
                        help="of those, the ones that get pruned variants (default: all of them; others get QAT only)")
    parser.add_argument("--kd-epochs", type=int, default=30)
    parser.add_argument("--recover-epochs", type=int, default=10)
    parser.add_argument("--qat-epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=4.0, help="timing budget per artifact (the run gets this × artifacts)")
    parser.add_argument("--skip-towers", action="store_true")
    parser.add_argument("--subset-note", default="", help="why this run covers less than the full benchmark (into the result file)")
    parser.add_argument("--distillclip-run", type=Path, default=None,
                        help="a trained `edgeclip distill --recipe distillclip-digits` run: its fused zero-shot model gets "
                             "fp32 / int8 PTQ / int8 mixed rows judged on the test digits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for student in args.students:
        rows += student_artifacts(student, args)
    if args.distillclip_run is not None:
        rows += zero_shot_artifacts(args)
    if not args.skip_towers:
        rows += tower_artifacts(args)
    measure(rows, args)
    evaluate(rows)
    result = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": shlex.join(["python"] + sys.argv),
              "environment": collect_environment(threads=args.threads), "threads": args.threads,
              "load_average_at_end": list(__import__("os").getloadavg()), "seconds": round(time.perf_counter() - started),
              "bars": {"agreement": INT8_AGREEMENT_BAR, "retention": RETENTION_BAR}, "settings": settings_record(), "subset_note": args.subset_note,
              "rows": [{k: (str(v) if isinstance(v, Path) else v) for k, v in row.items()
                       if k not in ("tower", "reference_model", "params_module", "preprocess")} for row in rows]}
    result.update(verdicts(result["rows"]))
    result["int8_verdicts"] = int8_verdicts(result["rows"])
    out = Path(args.out)
    write_result_files(out, result, to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
