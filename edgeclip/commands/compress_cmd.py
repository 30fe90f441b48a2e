"""`edgeclip compress prune|qat|int8`: structured pruning + KD recovery, QAT + KD, int8 with sensitivity search."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgeclip.backends import get_backend, int8_backends
from edgeclip.commands import add_parser
from edgeclip.commands.export_inputs import (
    DEFAULT_DATA,
    checkpoint_recipe,
    int8_inputs_for,
    model_for_export,
    resolve_counts,
    sample_data_images,
)
from edgeclip.config import PRUNE_IMPORTANCE, DataConfig, ExportConfig, Int8Config, PruneConfig
from edgeclip.errors import UserError

EXAMPLES = """
  edgeclip compress prune --model runs/abc/student --ratio 0.5 --recover-epochs 10
  edgeclip compress prune --model runs/abc/distillclip --ratio 0.3 --head-ratio 0.5 --recover-epochs 2 --teacher self
  edgeclip compress qat --model runs/abc/student --epochs 4
  edgeclip compress int8 --model runs/abc/student --backend onnx --calibration-method percentile
  edgeclip compress int8 --model runs/abc/student --backend openvino --ignored-scope /conv_stem/Conv
  edgeclip export --model runs/abc/student-pruned50 --backend onnx --precision int8   # a pruned student exports like any other
"""

PRUNE_EXAMPLES = """
  edgeclip compress prune --model runs/abc/student --ratio 0.5 --recover-epochs 10
  edgeclip compress prune --model runs/abc/student --ratio 0.3 --round-to 8 --out runs/abc/student-p30
  edgeclip compress prune --model runs/abc/distillclip --ratio 0.3 --head-ratio 0.5 --teacher self
  edgeclip compress prune --model runs/abc/student --ratio 0.5 --out runs/abc/p50 --resume   # continue an interrupted recovery
"""

QAT_EXAMPLES = """
  edgeclip compress qat --model runs/abc/student --epochs 4
  edgeclip compress qat --model runs/abc/student --epochs 6 --self-weight 1.0 --hard-labels fp32   # keep the fp32 decisions
  edgeclip export --model runs/abc/student-qat --backend onnx --precision int8
"""

INT8_EXAMPLES = """
  edgeclip compress int8 --model runs/abc/student --backend onnx
  edgeclip compress int8 --model runs/abc/student --backend onnx --calibration-method entropy --no-mixed
  edgeclip compress int8 --model runs/abc/student --backend openvino --target-agreement 0.995 --max-float-fraction 0.5
  edgeclip compress int8 --model runs/abc/student --backend onnx --ignored-scope /conv_stem/Conv --ignored-scope /classifier/Gemm
  edgeclip compress int8 --model runs/abc/student --backend onnx --mode classic   # the fixed methods of `edgeclip export`
"""


PRUNE = PruneConfig()  # the flag defaults are the recipe's `prune:` defaults
INT8 = Int8Config()  # shown in --help; unset int8 flags take the recipe's values (see run_int8)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "compress", help="prune (+KD recovery), QAT + KD, or int8 with a sensitivity search",
        description=("Compress a student checkpoint. `prune` and `qat` write a new student checkpoint directory that "
                     "`edgeclip export` takes; `int8` writes an int8 artifact with the calibration, mixed precision and "
                     "speed check recorded in its manifest. Bad input: one line, exit 2, nothing written."),
        examples=EXAMPLES,
    )
    actions = parser.add_subparsers(dest="action", metavar="<action>")
    _register_prune(actions)
    _register_qat(actions)
    _register_int8(actions)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="student checkpoint directory (model.pt + spec.json)")
    parser.add_argument("--data", default=None, help="image data for recovery/QAT and evaluation (default: the data recorded with the checkpoint, else digits)")
    parser.add_argument("--teacher", default="", help="KD teacher: a saved teacher dir, 'self' (the uncompressed student); default: <model>/../teacher if present, else self")
    parser.add_argument("--out", default=None, help="output checkpoint directory (default: next to --model)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _register_prune(actions: argparse._SubParsersAction) -> None:
    parser = add_parser(actions, "prune", help="structured pruning (channels / heads / MLP width) + KD recovery",
                        description=("Remove a fraction of channels (CNNs) or MLP hidden units and attention heads (ViT image "
                                     "towers) with torch-pruning, then recover accuracy with KD. Writes a student checkpoint "
                                     "whose pruned shapes are recorded as data, so `edgeclip export` rebuilds it."),
                        examples=PRUNE_EXAMPLES)
    _common(parser)
    parser.add_argument("--ratio", type=float, required=True, help="fraction of channels / MLP units removed, in (0, 1)")
    parser.add_argument("--head-ratio", type=float, default=None, help="ViT: fraction of attention heads removed (default: --ratio)")
    parser.add_argument("--recover-epochs", type=int, default=PRUNE.recover_epochs, help="KD recovery epochs after pruning (0 = none)")
    parser.add_argument("--lr", type=float, default=PRUNE.recover_lr, help="recovery learning rate (SGD; towers use AdamW at lr/100)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--importance", default=PRUNE.importance, help=f"channel importance: {' | '.join(PRUNE_IMPORTANCE)}")
    parser.add_argument("--round-to", type=int, default=PRUNE.round_to, help="keep channel counts multiples of this")
    parser.add_argument("--ignore", action="append", default=[], metavar="LAYER", help="module path never pruned (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted recovery (<out>.recovery/last.pt)")
    parser.set_defaults(func=run_prune)


def _register_qat(actions: argparse._SubParsersAction) -> None:
    parser = add_parser(actions, "qat", help="quantization-aware KD fine-tune (simulated int8) of a classifier",
                        description=("Fine-tune a classifier under simulated int8 (per-channel int8 weights, uint8 activations) "
                                     "with KD from the teacher mixed with the fp32 student's own outputs. Writes the QAT-tuned "
                                     "float checkpoint; export it with --precision int8 (its manifest records the QAT)."),
                        examples=QAT_EXAMPLES)
    _common(parser)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--self-weight", type=float, default=0.5, help="share of the fp32 student in the KD target (0 = teacher only)")
    parser.add_argument("--kd-weight", type=float, default=0.9, help="KD vs cross-entropy weight")
    parser.add_argument("--hard-labels", default="truth", help="cross-entropy labels: truth | fp32 (the fp32 student's decisions)")
    parser.add_argument("--uint8-weights", action="store_true", help="simulate U8U8 (x86 without VNNI) instead of int8 weights")
    parser.set_defaults(func=run_qat)


def _register_int8(actions: argparse._SubParsersAction) -> None:
    parser = add_parser(actions, "int8", help="int8 artifact with calibration choice, mixed precision and a speed check",
                        description=("Export an int8 artifact with the auto int8 pipeline: this CPU's weight type, the chosen "
                                     "calibration, per-layer sensitivity → the fewest layers in float that keep top-1 agreement "
                                     "with fp32 at the target on validation images (train split, not calibration, not test), "
                                     "and fp32 vs int8 timed on this CPU. The int8 rule (same as export and build): int8 is "
                                     "kept only when its top-1 agreement with fp32 on the held-out parity images is at "
                                     "least 0.99 (rejected when below it beyond sampling noise: 95 percent upper bound < 0.99). "
                                     "Exit 1 when int8 is rejected (its artifact is written with status: rejected, never "
                                     "ready, and the fp32 command to ship instead is printed), when parity fails, or when "
                                     "int8 is not faster here."),
                        examples=INT8_EXAMPLES)
    # Unset flags take the recipe's values (--recipe, else the checkpoint's run's recipe, else the
    # recipe defaults: config.Int8Config / DataConfig / ExportConfig), exactly as `export` and `build`.
    parser.add_argument("--model", required=True, help="student checkpoint directory")
    parser.add_argument("--backend", default="onnx", help=" | ".join(int8_backends()))
    parser.add_argument("--recipe", default=None,
                        help="recipe whose int8: settings, data.calibration_count, export.parity_samples and seed are the "
                             "defaults here (default: the one recorded with the checkpoint's run, else the recipe defaults)")
    parser.add_argument("--target", default=None, help="target profile the artifact is made for (default: this machine)")
    parser.add_argument("--mode", default=None, help=f"auto | classic (the fixed methods); default {INT8.mode}")
    parser.add_argument("--data", default=None, help="calibration/validation/parity images (default: the checkpoint's data, else digits)")
    parser.add_argument("--calibration-method", default=None,
                        help="auto (each backend's default: onnxruntime min-max, NNCF its own estimators) | minmax | entropy | "
                             f"percentile; default {INT8.calibration_method}")
    parser.add_argument("--percentile", type=float, default=None, help=f"default {INT8.percentile}")
    parser.add_argument("--calibration-count", type=int, default=None, help=f"default: data.calibration_count ({DataConfig().calibration_count})")
    parser.add_argument("--validation-count", type=int, default=None, help=f"default: int8.validation_count ({INT8.validation_count})")
    parser.add_argument("--parity-count", type=int, default=None, help=f"default: export.parity_samples ({ExportConfig().parity_samples})")
    parser.add_argument("--weights", default=None, help=f"onnxruntime static int8 weights: auto | int8 | uint8; default {INT8.weights}")
    parser.add_argument("--ignored-scope", action="append", default=None, metavar="LAYER", help="layer kept in float (graph node name; repeatable)")
    parser.add_argument("--no-mixed", action="store_true", help="skip the sensitivity search")
    parser.add_argument("--target-agreement", type=float, default=None,
                        help=f"on the validation images (the bar on held-out images is 0.99); default {INT8.target_agreement}")
    parser.add_argument("--max-float-fraction", type=float, default=None, help=f"default {INT8.max_float_fraction}")
    parser.add_argument("--smoothquant-alpha", type=float, default=None, help="ViTs: SmoothQuant before quantizing")
    parser.add_argument("--tower", choices=["image", "text"], default="image")
    parser.add_argument("--out", default=None, help="artifact directory (default: <model>/../artifacts/<backend>-int8-<mode>)")
    parser.set_defaults(func=run_int8)


def _default_out(model_dir: Path, suffix: str) -> Path:
    return model_dir.with_name(model_dir.name + suffix)


def _require_model(path: str) -> Path:
    model_dir = Path(path)
    if not model_dir.exists():
        raise UserError(f"model checkpoint {model_dir} does not exist; pass a directory written by `edgeclip distill`")
    return model_dir


def run_prune(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.distill.compression import prune_checkpoint

    settings = PruneConfig(ratio=args.ratio, head_ratio=args.head_ratio, importance=args.importance, round_to=args.round_to,
                           ignore=list(args.ignore), recover_epochs=args.recover_epochs, recover_lr=args.lr,
                           teacher=args.teacher)
    settings.check()  # before anything is loaded
    model_dir = _require_model(args.model)
    out = Path(args.out) if args.out else _default_out(model_dir, f"-pruned{round(args.ratio * 100)}")
    record = prune_checkpoint(model_dir, out, settings, batch_size=args.batch_size, data=args.data, resume=args.resume,
                              progress=not args.quiet)
    _print_summary("pruned", out, record)
    print(f"params {record['params_before']:,} -> {record['params_after']:,} ({record['params_kept']:.2f} kept); "
          f"next: edgeclip export --model {out} --backend onnx")
    return 0


def run_qat(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.compress.qat import QatConfig
    from edgeclip.distill.compression import qat_checkpoint

    config = QatConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, self_weight=args.self_weight,
                       kd_weight=args.kd_weight, hard_labels=args.hard_labels, symmetric_weights=not args.uint8_weights)
    config.check()
    model_dir = _require_model(args.model)
    out = Path(args.out) if args.out else _default_out(model_dir, "-qat")
    record = qat_checkpoint(model_dir, out, config, teacher=args.teacher, data=args.data, progress=not args.quiet)
    _print_summary("QAT-tuned", out, record)
    print(f"next: edgeclip export --model {out} --backend onnx --precision int8")
    return 0


def _print_summary(what: str, out: Path, record: dict[str, Any]) -> None:
    after = record.get("after") or {}
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in after.items() if v is not None}
    print(f"{what} student: {out}  (KD teacher: {record.get('teacher')})")
    print(f"test: {json.dumps(shown)}")


def run_int8(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    import dataclasses

    from edgeclip.exporters.export import export_model
    from edgeclip.students.checkpoint import load_checkpoint
    from edgeclip.targets import load_target

    get_backend(args.backend).check_precision("int8")
    model_dir = _require_model(args.model)
    recipe = checkpoint_recipe(model_dir, args.recipe)
    resolve_counts(args, recipe)
    flags = {"mode": args.mode, "calibration_method": args.calibration_method, "percentile": args.percentile,
             "weights": args.weights, "ignored_scope": args.ignored_scope, "validation_count": args.validation_count,
             "target_agreement": args.target_agreement, "max_float_fraction": args.max_float_fraction,
             "smoothquant_alpha": args.smoothquant_alpha, "mixed": False if args.no_mixed else None}
    settings = dataclasses.replace(recipe.int8, **{k: v for k, v in flags.items() if v is not None})
    settings.check()  # before the model is loaded
    target = load_target(args.target) if args.target else None
    model, spec, info = load_checkpoint(model_dir)
    model, spec, suffix = model_for_export(model, spec, args.tower)
    if spec.kind == "text_encoder":
        raise UserError("compress int8 is for image models; export text towers with `edgeclip export --tower text --precision int8`")
    recorded = (info or {}).get("extra", {}) or {}
    data = args.data or recorded.get("data") or spec.extra.get("data") or DEFAULT_DATA
    calibration, options = int8_inputs_for(data, spec.preprocess, recipe, settings, args.calibration_count, target, model_dir,
                                           data_given=bool(args.data))
    if settings.mode != "classic" and settings.mixed and options.validation is None:
        raise UserError(f"data '{data}' has too few train images for calibration and validation; pass --no-mixed or more images")
    parity = sample_data_images(data, "test", args.parity_count, spec.preprocess, recipe.seed)
    out = Path(args.out) if args.out else model_dir.parent / "artifacts" / f"{args.backend}-int8-{settings.mode}{suffix}"
    artifact = export_model(model, spec, args.backend, "int8", out, calibration=calibration, parity_inputs=parity,
                            source_checkpoint=str(model_dir), int8=options)
    quant = artifact.manifest["quantization"]
    print(f"artifact: {artifact.path} (method {quant.get('method')}, {len(quant.get('float_layers') or [])} layers in float)")
    validation_record = quant.get("validation") or {}
    if validation_record:
        print(f"validation ({validation_record['count']} train images): {validation_record['metric']} "
              f"{validation_record['value']:.4f} (target {validation_record['target']}, met: {validation_record['target_met']})")
    speed = quant.get("speed_check") or {}
    if speed.get("measured"):
        print(f"speed on this CPU: fp32 {speed['fp32_p50_ms']:.3f} ms, int8 {speed['int8_p50_ms']:.3f} ms "
              f"(int8/fp32 {speed['int8_over_fp32']:.2f}, median of {speed.get('rounds', 1)} interleaved rounds)"
              f"{'' if speed['int8_faster'] else ' — int8 is not at least ' + format(speed.get('min_gain', 0), '.0%') + ' faster: keep fp32 here'}")
    print(f"parity on {len(parity)} real test images: {artifact.summary()}")
    if artifact.status == "rejected":
        print(f"edgeclip compress int8: int8 rejected — {artifact.manifest.get('next_step')}")
        return 1
    return 0 if artifact.ok and speed.get("int8_faster", True) else 1
