"""Compression on CIFAR-10: per-student int8 verdicts, pruning 30/50/70% + KD recovery, QAT — on all 10,000 test photos.

Students are the finished paper-000 KD runs (`edgeclip build --recipe cifar10-kd` students: ResNet18-1/8
and MobileNetV3-small, each with its run's fine-tuned proxy-cifar10 teacher) and the DistillCLIP
CIFAR-10 student shipped as a zero-shot classifier (image tower fused with its own text tower's
class embeddings). Everything runs through the product with its own defaults:
- pruned 30/50/70%: `compress.workflow.prune_checkpoint` (= `edgeclip compress prune`: torch-pruning
  L2, KD recovery from the run's teacher; the DistillCLIP tower recovers from its unpruned self);
- QAT: `compress.workflow.qat_checkpoint` (= `edgeclip compress qat`), classifier students only
  (the product refuses QAT for a dual encoder);
- int8: `exporters.export_model` with the recipe's int8 options for `--target cpu`
  (`compress.int8_inputs`: auto mode, this CPU's weight format, the sensitivity
  search against 256 train images disjoint from the 64 calibration images, the export-time speed
  check) — the int8 an `edgeclip build --recipe cifar10-kd --target cpu` ships; "int8 PTQ" is the
  same without the search;
- the int8-ships verdict: the product's one rule (compress/ship_rule.py, see `judge_rows`), fed
  with agreement on all 10,000 test photos and the interleaved timing of this run.
Every artifact (ORT and OpenVINO) is evaluated on CIFAR-10's 10,000 test photos; agreement is
top-1 agreement with the fp32 PyTorch model. The artifacts of one model and backend are timed
round-robin in one run (batch 1, one thread).

Usage:
    python benchmarks/compression_cifar10.py --kd-runs runs/bench-kd-cifar10/proxy-resnet18_w8-k0 \
        runs/bench-kd-cifar10/proxy-mobilenetv3_small-k0 --distillclip-run runs/distillclip-cifar10 \
        --work runs/bench-compression-cifar10 --out benchmarks/results/cifar10_compression
Steps whose outputs exist in --work are reused (delete a directory to redo it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compression_cifar10_report import to_markdown  # noqa: E402

BACKENDS = ("onnx", "openvino")
PRUNE_RATIOS = (0.3, 0.5, 0.7)
RECIPE = "cifar10-kd"
EVAL_CHUNK = 500  # images per runtime call when evaluating (OpenVINO compiles one static shape for all chunks)


def log(message: str) -> None:
    print(f"[compression-cifar10] {message}", file=sys.stderr, flush=True)


# --- inputs -------------------------------------------------------------------------------------

_INPUTS: dict[str, dict[str, np.ndarray]] = {}


def cifar_inputs(preprocess: Any) -> dict[str, np.ndarray]:
    """What a cifar10-kd build uses, preprocessed the model's way: calibration and validation train
    images by the product's one rule (compress/int8_inputs.int8_images), parity test images as the
    build samples them, and all 10,000 test photos with their labels for evaluation."""
    key = json.dumps(preprocess.to_dict(), sort_keys=True)
    if key not in _INPUTS:
        from edgeclip.compress.int8_inputs import int8_images
        from edgeclip.config import load_recipe
        from edgeclip.data import open_image_dataset, preprocess_all
        from edgeclip.data.sampling import sample_images

        recipe = load_recipe(RECIPE)
        train, test = open_image_dataset("cifar10", "train"), open_image_dataset("cifar10", "test")
        calibration, validation = int8_images(train, preprocess, recipe.int8, calibration_count=recipe.data.calibration_count,
                                              seed=recipe.seed)
        _INPUTS[key] = {"calibration": calibration, "validation": validation,
                        "parity": sample_images(test, preprocess, recipe.export.parity_samples, recipe.seed),
                        "test": preprocess_all(test, preprocess).numpy(), "labels": np.asarray(test.labels)}
    return _INPUTS[key]


def product_int8_options(validation: np.ndarray | None = None, qat: dict | None = None) -> Any:
    """The recipe's int8 options for `--target cpu` (compress/int8_inputs.int8_options, as `edgeclip build`)."""
    from edgeclip.compress.int8_inputs import int8_options
    from edgeclip.config import load_recipe
    from edgeclip.targets import load_target

    return int8_options(load_recipe(RECIPE).int8, validation, load_target("cpu"), qat)


# --- checkpoints --------------------------------------------------------------------------------

def classifier_variants(run: Path, work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """base (the run's student, read only), pruned30/50/70 and qat checkpoints (made when missing)."""
    from edgeclip.compress.qat import QatConfig
    from edgeclip.distill.compression import prune_checkpoint, qat_checkpoint
    from edgeclip.config import PruneConfig

    found = {"base": run / "student"}
    for ratio in PRUNE_RATIOS:
        out = work / f"student-pruned{round(ratio * 100)}"
        if not (out / "model.pt").is_file() and args.no_train:
            continue
        if not (out / "model.pt").is_file():
            epochs = recover_epochs(work.name, args)
            log(f"pruning {run.name} at {ratio} + {epochs} epochs of KD recovery")
            prune_checkpoint(run / "student", out, PruneConfig(ratio=ratio, recover_epochs=epochs),
                             resume=out.with_name(out.name + ".recovery").is_dir(), progress=not args.quiet)
        found[out.name.removeprefix("student-")] = out
    qat = work / "student-qat"
    if not (qat / "model.pt").is_file() and args.no_train:
        return found
    if not (qat / "model.pt").is_file():
        log(f"QAT + KD of {run.name} for {args.qat_epochs} epoch(s)")
        qat_checkpoint(run / "student", qat, QatConfig(epochs=args.qat_epochs), progress=not args.quiet)
    found["qat"] = qat
    return found


def recover_epochs(student: str, args: argparse.Namespace) -> int:
    """KD recovery epochs for `student`: its `--student-recover-epochs NAME=N`, else `--recover-epochs`."""
    for item in args.student_recover_epochs:
        name, _, epochs = item.partition("=")
        if name == student:
            return int(epochs)
    return args.recover_epochs


def zero_shot_variants(run: Path, work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """base (the DistillCLIP student) and its image tower pruned at `--zero-shot-prune` ratios."""
    from edgeclip.distill.compression import prune_checkpoint
    from edgeclip.config import PruneConfig

    found = {"base": run / "student"}
    for ratio in args.zero_shot_prune:
        out = work / f"student-pruned{round(ratio * 100)}"
        if not (out / "model.pt").is_file() and args.no_train:
            continue
        if not (out / "model.pt").is_file():
            log(f"pruning the DistillCLIP image tower at {ratio} + {args.zero_shot_recover_epochs} epoch(s) of recovery (self)")
            prune_checkpoint(run / "student", out, PruneConfig(ratio=ratio, recover_epochs=args.zero_shot_recover_epochs,
                                                               teacher="self"), data="cifar10", progress=not args.quiet)
        found[out.name.removeprefix("student-")] = out
    return found


def fused_zero_shot(checkpoint: Path, templates: list[str]) -> tuple[torch.nn.Module, Any]:
    """A dual-encoder checkpoint as it ships for zero-shot: image → 10 CIFAR logits (its own class embeddings)."""
    from edgeclip.data import open_image_dataset
    from edgeclip.exporters.dual import class_embeddings
    from edgeclip.exporters.towers import FusedZeroShotClassifier, zero_shot_classifier_spec
    from edgeclip.students.checkpoint import load_checkpoint

    model, spec, _ = load_checkpoint(checkpoint)
    names = list(open_image_dataset("cifar10", "test").class_names)
    scale = float(spec.extra.get("logit_scale") or model.logit_scale.exp().item())
    with torch.no_grad():
        embeddings = class_embeddings(model.eval(), int(spec.context_length or 77), names, templates)
    fused = FusedZeroShotClassifier(model, embeddings, scale).eval()
    fused_spec = zero_shot_classifier_spec(model, f"{spec.name}-zeroshot", names, spec.preprocess)
    fused_spec.extra["logit_scale"] = scale
    return fused, fused_spec


# --- artifacts ----------------------------------------------------------------------------------

def plan(variant: str) -> list[tuple[str, str]]:
    """(artifact label, row format) per checkpoint variant."""
    if variant == "base":
        return [("fp32", "fp32"), ("int8-ptq", "int8 PTQ"), ("int8", "int8 auto")]
    if variant == "qat":
        return [("int8", "int8 QAT")]
    return [("fp32", "fp32"), ("int8", "int8 auto")]


def export_variant(model: Any, spec: Any, backend: str, label: str, out: Path, inputs: dict[str, np.ndarray],
                   source: Path, qat: dict | None) -> Path:
    from edgeclip.exporters import export_model

    if (out / "manifest.json").is_file():
        return out
    log(f"exporting {out.parent.name}/{out.name}")
    options = None
    if label != "fp32":
        options = product_int8_options(inputs["validation"], qat)
        if label == "int8-ptq":
            options = dataclasses.replace(options, mixed=False, validation=None)
    export_model(model, spec, backend, "fp32" if label == "fp32" else "int8", out, calibration=inputs["calibration"],
                 parity_inputs=inputs["parity"], source_checkpoint=str(source), int8=options)
    return out


@dataclasses.dataclass
class Subject:
    """One model under test: its checkpoints, how to build each as it ships, and its teacher's accuracy."""

    name: str
    kind: str  # classifier | zero_shot
    variants: dict[str, Path]
    load: Callable[[Path], tuple[torch.nn.Module, Any]]
    teacher_accuracy: float
    teacher: str
    epochs: dict[str, Any]


def classifier_subject(run: Path, args: argparse.Namespace) -> Subject:
    from edgeclip.students.checkpoint import load_checkpoint

    result = json.loads((run / "result.json").read_text())
    name = result["student"]["name"]
    variants = classifier_variants(run, args.work / name, args)

    def load(path: Path) -> tuple[torch.nn.Module, Any]:
        model, spec, _ = load_checkpoint(path)
        return model.eval(), spec

    return Subject(name, "classifier", variants, load, result["metrics"]["teacher_accuracy"], result["teacher"]["name"],
                   {"kd_epochs": result["training"]["epochs"], "recover_epochs": recover_epochs(name, args),
                    "qat_epochs": args.qat_epochs})


def zero_shot_subject(run: Path, args: argparse.Namespace) -> Subject:
    from edgeclip.teacher.templates import get_templates

    result = json.loads((run / "result.json").read_text())
    templates = get_templates(result["recipe"]["data"]["templates"])
    variants = zero_shot_variants(run, args.work / "distillclip", args)
    metrics = result["metrics"]
    teacher_accuracy = metrics.get("teacher_zero_shot") or metrics.get("teacher_zero_shot_accuracy")
    return Subject(f"{result['recipe']['student']['name']} zero-shot", "zero_shot", variants,
                   lambda path: fused_zero_shot(path, templates), float(teacher_accuracy), str(result["recipe"]["teacher"]),
                   {"kd_epochs": result["recipe"]["distill"]["epochs"], "recover_epochs": args.zero_shot_recover_epochs,
                    "qat_epochs": None})


# --- measurement --------------------------------------------------------------------------------

def predictions(run: Callable[[np.ndarray], Any], images: np.ndarray) -> np.ndarray:
    """Top-1 class of every image, `EVAL_CHUNK` images per call (the last chunk may be smaller)."""
    return np.concatenate([np.asarray(run(images[i:i + EVAL_CHUNK])).argmax(1) for i in range(0, len(images), EVAL_CHUNK)])


def cached_predictions(cache: Path, source: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()` once per model: kept in `cache` (.npy) while it is newer than `source` (a manifest or
    model file), so a rerun that only re-times and re-judges does not evaluate 10,000 photos again."""
    if cache.is_file() and cache.stat().st_mtime >= source.stat().st_mtime:
        return np.load(cache, allow_pickle=False)
    predicted = compute()
    cache.parent.mkdir(parents=True, exist_ok=True)
    from edgeclip.io_utils import atomic_path

    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, predicted)
    return predicted


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"prediction arrays differ in shape: {a.shape} vs {b.shape}")
    return float((a == b).mean())


def measure_subject(subject: Subject, args: argparse.Namespace,
                    missing: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(checkpoint rows: the float PyTorch models; artifact rows: every export) with accuracy and agreement;
    with --no-new-exports, artifacts not exported yet are listed in `missing` instead."""
    from edgeclip.bench.flops import count_flops
    from edgeclip.manifest import read_manifest
    from edgeclip.runtimes import load_runtime
    from edgeclip.utils import count_params

    checkpoints, artifacts = [], []
    base_predictions = None
    for variant, path in subject.variants.items():
        model, spec = subject.load(path)
        inputs = cifar_inputs(spec.preprocess)
        label = subject.name.replace(" ", "-")

        @torch.no_grad()
        def float_predictions() -> np.ndarray:
            return predictions(lambda x: model(torch.from_numpy(x)).numpy(), inputs["test"])

        own = cached_predictions(args.work / "predictions" / f"{label}-{variant}-pytorch.npy", path / "model.pt", float_predictions)
        base_predictions = own if variant == "base" else base_predictions
        part = model.image_tower.clip.visual if subject.kind == "zero_shot" else model
        size = spec.preprocess.size
        record = json.loads((path / "compress.json").read_text()) if (path / "compress.json").is_file() else {}
        accuracy = float((own == inputs["labels"]).mean())
        checkpoints.append({"model": subject.name, "variant": variant, "checkpoint": str(path), "params": count_params(part),
                            "flops": count_flops(model, (torch.zeros(1, 3, size, size),)), "accuracy": accuracy,
                            "retention": accuracy / subject.teacher_accuracy,
                            "agreement_fp32": agreement(own, base_predictions), "compress": _compress_summary(record)})
        qat = record.get("qat")
        for backend in BACKENDS:
            for kind, row_format in plan(variant):
                out = args.work / "artifacts" / label / f"{variant}-{backend}-{kind}"
                if args.no_new_exports and not (out / "manifest.json").is_file():
                    missing.append({"model": subject.name, "variant": variant, "backend": backend, "format": row_format})
                    continue
                export_variant(model, spec, backend, kind, out, inputs, path, qat)
                manifest = read_manifest(out)
                predicted = cached_predictions(args.work / "predictions" / f"{label}-{out.name}.npy", out / "manifest.json",
                                               lambda: predictions(load_runtime(out, threads=args.threads).run, inputs["test"]))
                quantization = manifest.get("quantization") or {}
                artifacts.append({
                    "model": subject.name, "kind": subject.kind, "variant": variant, "format": row_format, "backend": backend,
                    "precision": manifest["precision"], "artifact": str(out), "status_at_export": manifest.get("status"),
                    "next_step": manifest.get("next_step"), "size_mb": manifest["size_bytes"] / 1e6,
                    "parity": {k: (manifest.get("parity") or {}).get(k) for k in ("passed", "top1_agreement", "num_inputs")},
                    "quantization": {k: quantization.get(k) for k in ("method", "weights", "float_layers", "validation", "speed_check")
                                     if k in quantization},
                    "test_images": int(len(predicted)), "accuracy": float((predicted == inputs["labels"]).mean()),
                    "retention": float((predicted == inputs["labels"]).mean()) / subject.teacher_accuracy,
                    "agreement_fp32": agreement(predicted, base_predictions), "agreement_own_float": agreement(predicted, own),
                    "params": checkpoints[-1]["params"], "flops": checkpoints[-1]["flops"], "_example": inputs["test"][:1]})
                log(f"{subject.name} {variant} {backend} {row_format}: accuracy {artifacts[-1]['accuracy']:.4f}, "
                    f"agreement with fp32 {artifacts[-1]['agreement_fp32']:.4f}")
    return checkpoints, artifacts


def _compress_summary(record: dict[str, Any]) -> dict[str, Any] | None:
    if "prune" in record:
        prune = record["prune"]
        recovery = prune.get("recovery") or {}
        return {"kind": "prune", "ratio": prune.get("settings", {}).get("ratio"), "teacher": prune.get("teacher"),
                "before_recovery": prune.get("before_recovery"), "recovery_epochs": recovery.get("epochs"),
                "seconds": prune.get("seconds")}
    if "qat" in record:
        qat = record["qat"]
        return {"kind": "qat", "epochs": (qat.get("config") or {}).get("epochs"), "teacher": qat.get("teacher"),
                "seconds": qat.get("seconds")}
    return None


def time_artifacts(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Per model and backend, all its artifacts timed round-robin in one run (batch 1, `--threads`, one
    real test photo): the rule compares int8 with fp32 of the same model and backend, and a short
    cycle of a few artifacts keeps the rounds close in time on a shared, loaded CPU."""
    from edgeclip.bench.harness import benchmark_interleaved
    from edgeclip.runtimes import load_runtime

    groups: dict[tuple[str, str], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault((row["model"], row["backend"]), []).append(index)
    for (model, backend), members in groups.items():
        runners = {str(i): load_runtime(rows[i]["artifact"], threads=args.threads).run for i in members}
        log(f"timing {model} {backend}: {len(runners)} artifacts interleaved ({args.threads} thread(s), batch 1)")
        stats = benchmark_interleaved(runners, {str(i): rows[i]["_example"] for i in members}, warmup=args.warmup,
                                      iterations=args.iterations, max_seconds=args.seconds * len(runners))
        for i in members:
            result = stats[str(i)]
            rows[i]["latency_ms"] = ({k: result.get(k) for k in ("p50", "p90", "iterations", "round_p50")}
                                     if "p50" in result else None)
            rows[i]["timing_error"] = result.get("error")
        del runners


# --- verdicts -----------------------------------------------------------------------------------

def judge_rows(rows: list[dict[str, Any]]) -> None:
    """Every int8 row gets the product's one ship rule (compress/ship_rule.int8_decision), as `edgeclip
    build` judges its candidates: an unpruned or QAT int8 artifact against the unpruned fp32 artifact in
    the same backend, with its agreement with the fp32 model on all 10,000 test photos; a pruned int8
    artifact against the fp32 artifact of the same pruned checkpoint, with its agreement with that
    pruned float model. Timings are this run's interleaved rounds on this CPU (the cpu target)."""
    from edgeclip.compress.int8_rule import REJECTED, REJECTED_NOTE
    from edgeclip.compress.ship_rule import int8_decision

    fp32 = {(r["model"], r["variant"], r["backend"]): r for r in rows if r["precision"] == "fp32"}
    for row in rows:
        if row["precision"] != "int8":
            continue
        compressed = row["variant"].startswith("pruned")
        twin = fp32.get((row["model"], row["variant"] if compressed else "base", row["backend"]))
        rejected = REJECTED_NOTE + str(row.get("next_step") or "") if row.get("status_at_export") == REJECTED else None
        decision = int8_decision(agreement=row["agreement_own_float" if compressed else "agreement_fp32"],
                                 images=row["test_images"], latency=row.get("latency_ms"),
                                 fp32_latency=twin.get("latency_ms") if twin else None, backend=row["backend"],
                                 rejected=rejected or row.get("timing_error"))
        row["ship_rule"] = {"ships": decision.ships, "reason": decision.reason, "int8_over_fp32": decision.latency_ratio,
                            "rounds": decision.rounds, "speed_compared": decision.speed_compared,
                            "against": f"{twin['variant']} fp32" if twin else None}


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and backend: the int8 artifact of the unpruned model that ships (the fastest the rule
    lets ship), or fp32 with the reason of the fastest int8 that lost only on speed, else of the most
    faithful one. `target_met` is the issue's target: an int8 ships (>= 99% agreement within the rule's
    sampling noise, on all 10,000 photos, and faster than fp32)."""
    found = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for backend in dict.fromkeys(r["backend"] for r in rows if r["model"] == model):
            mine = [r for r in rows if r["model"] == model and r["backend"] == backend and r["variant"] in ("base", "qat")]
            fp32 = next((r for r in mine if r["precision"] == "fp32"), None)
            int8 = [r for r in mine if r["precision"] == "int8" and "ship_rule" in r]
            if fp32 is None or not int8:
                continue
            shipping = [r for r in int8 if r["ship_rule"]["ships"]]
            speed_only = [r for r in int8 if r["ship_rule"]["speed_compared"]]
            if shipping or speed_only:
                chosen = min(shipping or speed_only, key=lambda r: r["latency_ms"]["p50"])
            else:
                chosen = max(int8, key=lambda r: r["agreement_fp32"])
            found.append({"model": model, "backend": backend, "ships": "int8" if shipping else "fp32", "format": chosen["format"],
                          "agreement_fp32": chosen["agreement_fp32"], "test_images": chosen["test_images"],
                          "int8_p50_ms": (chosen.get("latency_ms") or {}).get("p50"),
                          "fp32_p50_ms": (fp32.get("latency_ms") or {}).get("p50"),
                          "int8_over_fp32": chosen["ship_rule"]["int8_over_fp32"], "target_met": bool(shipping),
                          "why": f"{chosen['format']}: {chosen['ship_rule']['reason']}"})
    return found


def cpu_minutes() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage) / 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kd-runs", type=Path, nargs="*", default=[], help="finished `cifar10-kd` runs (student/ + teacher/)")
    parser.add_argument("--distillclip-run", type=Path, default=None, help="a finished `distillclip-cifar10` run")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-compression-cifar10"))
    parser.add_argument("--out", default="benchmarks/results/cifar10_compression")
    parser.add_argument("--recover-epochs", type=int, default=3, help="KD recovery epochs after pruning (product default 10)")
    parser.add_argument("--student-recover-epochs", nargs="*", default=[], metavar="NAME=N",
                        help="per-student recovery epochs, e.g. mobilenetv3_small=2")
    parser.add_argument("--qat-epochs", type=int, default=1, help="QAT + KD epochs (product default 4)")
    parser.add_argument("--zero-shot-prune", type=float, nargs="*", default=list(PRUNE_RATIOS))
    parser.add_argument("--zero-shot-recover-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per artifact (a group gets this × its artifacts)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no-new-exports", action="store_true", help="measure only the artifacts already exported "
                        "in --work; the others are listed as not exported in the result")
    parser.add_argument("--no-train", action="store_true", help="skip pruned/QAT checkpoints not made yet (export and "
                        "evaluate what exists; a run without it completes the set)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    subjects = [classifier_subject(run, args) for run in args.kd_runs]
    if args.distillclip_run is not None:
        subjects.append(zero_shot_subject(args.distillclip_run, args))
    checkpoints, rows, missing = [], [], []
    for subject in subjects:
        found, exported = measure_subject(subject, args, missing)
        checkpoints += found
        rows += exported
    time_artifacts(rows, args)
    judge_rows(rows)
    result = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python"] + sys.argv),
              "environment": _environment(args.threads), "threads": args.threads,
              "load_average_at_end": list(os.getloadavg()), "seconds": round(time.perf_counter() - started),
              "cpu_minutes_this_command": round(cpu_minutes(), 1), "int8_options": product_int8_options().describe(),
              "subjects": [{"name": s.name, "kind": s.kind, "teacher": s.teacher, "teacher_accuracy": s.teacher_accuracy,
                            **s.epochs} for s in subjects],
              "checkpoints": checkpoints, "not_exported": missing, "rows": [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]}
    result["int8_verdicts"] = verdicts(result["rows"])
    from edgeclip.io_utils import write_result_files

    write_result_files(Path(args.out), result, to_markdown(result))
    print(to_markdown(result))
    return 0


def _environment(threads: int) -> dict[str, Any]:
    from edgeclip.bench.environment import collect_environment

    return collect_environment(threads=threads)


if __name__ == "__main__":
    sys.exit(main())
