"""`edgeclip export`: a student checkpoint → one backend/precision artifact with a parity check."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path


from edgeclip.backends import BACKENDS, get_backend, versioned_backends
from edgeclip.commands import add_parser
from edgeclip.commands.export_inputs import (
    DEFAULT_DATA,
    checkpoint_recipe,
    int8_inputs_for,
    model_for_export,
    resolve_counts,
    sample_data_images,
    text_inputs,
    text_needs_calibration,
)
from edgeclip.config import DataConfig, ExportConfig
from edgeclip.errors import UserError
from edgeclip.io_utils import check_output_dir

EXAMPLES = """
  edgeclip export --model runs/abc123/student --backend onnx --precision fp32
  edgeclip export --model runs/abc123/student --backend onnx --precision int8 --calibration digits --calibration-count 256
  edgeclip export --model runs/abc123/student --backend onnx --precision int8 --target raspberry-pi-5   # int8 for its arm64 CPU
  edgeclip export --model runs/abc123/student --backend openvino --precision int8 --calibration data/my_images
  edgeclip export --model runs/abc123/student --backend tensorrt --precision fp16   # then build_engine.sh on the Jetson
  edgeclip export --model runs/abc123/student --backend tensorrt --precision int8 --tensorrt 8.5   # JetPack 5.1
  edgeclip export --model runs/abc123/distillclip --tower text --backend onnx --precision int8
  edgeclip export --model runs/abc123/student --tower fused --classes zero,one,two --backend openvino --precision int8
  edgeclip export --model runs/abc123/student --tower all --backend onnx --precision fp32   # image, text (+tokenizer), fused
  edgeclip export --model runs/abc123/student --backend openvino --fused-preprocess 720x1280   # takes raw uint8 720p frames
  edgeclip list backends
"""

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "export", help="export a student to ONNX/OpenVINO/CoreML/TensorRT with a parity check",
        description=(
            "Export a student checkpoint to one backend and precision. Writes <out>/model files + manifest.json "
            "(preprocessing, shapes, quantization method, tool versions) and checks the artifact against the "
            "PyTorch model on real images. Exit 0: parity passed (or cannot run on this OS); 1: parity failed or "
            "int8 rejected (top-1 agreement with fp32 below 0.99 beyond sampling noise: the one int8 rule of compress "
            "int8 and build; the artifact is written with status: rejected, never ready); 2: bad input; 3: a TensorRT "
            "kit its TensorRT would refuse (the manifest's tensorrt_compatibility names each node). int8 is made as "
            "`edgeclip build` makes it, from the recipe the checkpoint was trained with (its run's result.json; "
            "--recipe to choose another): its int8: settings, data.calibration_count calibration images, "
            "int8.validation_count disjoint train images for the mixed-precision search, export.parity_samples "
            "test images for parity (compress/int8_inputs.py)."
        ),
        examples=EXAMPLES,
    )
    parser.add_argument("--model", required=True, help="student checkpoint directory (model.pt + spec.json)")
    # onnx by default: it runs on every OS offline, and the README's `--tower all` line omits it.
    parser.add_argument("--backend", default="onnx", help=f"{' | '.join(BACKENDS.names())} (edgeclip list backends)")
    parser.add_argument("--precision", default="fp32", help="fp32 | fp16 | int8 (what the backend supports)")
    parser.add_argument("--calibration", metavar="DATA", default=None,
                        help="image data for int8 calibration and parity: digits, synthetic[:N] or a folder "
                             "(default: the data recorded with the checkpoint, else digits)")
    parser.add_argument("--recipe", default=None,
                        help="recipe whose int8:, data.calibration_count, export: and seed this export follows "
                             "(default: the one recorded with the checkpoint's run, else the recipe defaults)")
    parser.add_argument("--target", default=None,
                        help="target profile an int8 artifact is made for: its CPU architecture picks the int8 "
                             "format, and int8 is timed against fp32 only where this machine is that target "
                             "(default: this machine; edgeclip list targets)")
    parser.add_argument("--calibration-count", type=int, default=None, metavar="N",
                        help="calibration images (train split) for static int8 (default: the recipe's "
                             f"data.calibration_count, {DataConfig().calibration_count})")
    parser.add_argument("--parity-count", type=int, default=None, metavar="N",
                        help=f"real images (test split) compared against PyTorch (default: the recipe's "
                             f"export.parity_samples, {ExportConfig().parity_samples})")
    parser.add_argument("--tower", choices=["image", "text", "fused", "all"], default="image",
                        help="dual encoders: image tower, text tower (ships its tokenizer), fused zero-shot classifier "
                             "(image tower + baked class embeddings -> logits), or all three (ignored for classifiers)")
    parser.add_argument("--classes", default=None,
                        help="fused classifier: class names 'a,b,c' or @file (one per line); default: the data's classes")
    parser.add_argument("--templates", default=None,
                        help="fused classifier / tokenizer: prompt template set (digits, cifar, openai_imagenet, plain or a .txt)")
    parser.add_argument("--opset", type=int, default=None,
                        help=f"ONNX opset (≥ 16; default: the recipe's export.opset, {ExportConfig().opset}); TensorRT "
                             "kits use at most what --tensorrt parses (17 for 8.x)")
    parser.add_argument("--tensorrt", default=None, metavar="VERSION",
                        help="--backend tensorrt: the device's TensorRT, 8.5 (JetPack 5.1.x), 8.6 (JetPack 6.0, default) "
                             "or 10.3 (JetPack 6.1/6.2); the kit is written for it and checked against its ONNX parser")
    parser.add_argument("--fused-preprocess", default=None, metavar="HxW",
                        help="frame size the camera/decoder produces, height x width (e.g. 720x1280): the artifact then "
                             "takes raw uint8 RGB frames (1,H,W,3) and does resize (box pre-filter + bilinear), /255 "
                             "and mean/std in its graph; parity runs on real images stretched to that frame size; "
                             "fp32/fp16 only (int8 calibrates on preprocessed floats)")
    parser.add_argument("--out", default=None,
                        help="artifact directory (default: <model>/../artifacts/<backend>-<precision>)")
    parser.set_defaults(func=run, out_replaced=True)  # the artifact is swapped in from a temp sibling


def _fused_frame(args: argparse.Namespace) -> tuple[int, int] | None:
    """--fused-preprocess HxW → (height, width); refuses int8 (calibration feeds preprocessed floats)."""
    if args.fused_preprocess is None:
        return None
    # lazy: `edgeclip --help` does not load it (edgeclip.data)
    from edgeclip.data.preprocess import parse_frame_size

    try:
        frame = parse_frame_size(args.fused_preprocess)
    except ValueError as exc:
        raise UserError(f"--fused-preprocess: {exc}") from None
    if args.precision == "int8":
        raise UserError("--fused-preprocess with --precision int8 is not supported: int8 calibrates on preprocessed "
                        "float tensors; export fp32/fp16 with --fused-preprocess, or int8 without it")
    return frame


def fused_summary(manifest: dict) -> str:
    """One line: frame size, in-graph resize and what it changes against the host's PIL path."""
    record = manifest.get("fused_preprocessing") or {}
    classic = record.get("classic_agreement") or {}
    height, width = record.get("frame", ["?", "?"])
    agreement = (f"top-1 agreement {classic['top1_agreement']:.3f}, " if classic.get("top1_agreement") is not None else "")
    measured = (f"{agreement}mean cosine {classic['mean_cosine']:.4f} against {classic['against']} on "
                f"{classic['num_frames']} frames" if classic else "not compared with the classic path (parity did not run)")
    return f"fused preprocessing: takes uint8 {height}x{width} RGB frames, resizes in the graph ({record.get('resize')}); {measured}"


def run(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.exporters.export import export_model
    from edgeclip.students.checkpoint import load_checkpoint
    from edgeclip.students.spec import IMAGE_KINDS
    from edgeclip.targets import load_target

    get_backend(args.backend).check_precision(args.precision)  # fail fast, before loading anything
    if args.tensorrt is not None:
        row = get_backend(args.backend)
        if row.version_key is None:  # only a backend whose artifacts are written for one runtime version takes it
            pinned = " or ".join(r.name for r in versioned_backends())
            raise UserError(f"--tensorrt applies to --backend {pinned}, not {args.backend}; drop it or export with --backend {pinned}")
        args.tensorrt = row.parse_version(args.tensorrt)
    frame = _fused_frame(args)  # a malformed frame size fails before anything loads
    model_dir = Path(args.model)
    if not model_dir.exists():
        raise UserError(f"model checkpoint {model_dir} does not exist; pass a directory written by `edgeclip distill`")
    recipe = checkpoint_recipe(model_dir, args.recipe)
    resolve_counts(args, recipe)
    target = load_target(args.target) if args.target else None
    model, spec, info = load_checkpoint(model_dir)
    recorded = (info or {}).get("extra", {}) or {}
    data = args.calibration or recorded.get("data") or spec.extra.get("data") or DEFAULT_DATA
    if spec.kind == "dual_encoder":
        # lazy: `edgeclip --help` does not load it
        from edgeclip.commands.export_dual import run_dual_export

        return run_dual_export(args, model, spec, model_dir, data, frame)
    model, spec, suffix = model_for_export(model, spec, args.tower)
    if frame is not None and spec.kind not in IMAGE_KINDS:
        raise UserError(f"--fused-preprocess needs an image model, but '{spec.name}' is a {spec.kind}; drop --fused-preprocess")
    if frame is not None:
        # lazy: `edgeclip --help` does not load it (edgeclip.data)
        from edgeclip.data.preprocess import frame_geometry

        try:
            frame_geometry(spec.preprocess, frame)  # a frame the model's resize would enlarge fails before any export work
        except ValueError as exc:
            raise UserError(str(exc)) from None

    int8 = None  # text towers: the backend's own int8 method, as in the build
    if spec.kind == "text_encoder":
        tokens = text_inputs(data, int(spec.context_length or 77))
        # Text int8 is dynamic / weight-only where the backend's int8 recipe allows it; a static recipe
        # (TensorRT's explicit QDQ) needs calibration, and the prompts double as that.
        calibration, parity_inputs = (tokens if text_needs_calibration(args.backend, args.precision) else None), tokens
    else:
        calibration = None
        if args.precision == "int8":
            calibration, int8 = int8_inputs_for(data, spec.preprocess, recipe, recipe.int8, args.calibration_count,
                                                target, model_dir, data_given=bool(args.calibration))
        # Fused: the data's images become frames of the artifact's size (stretched on the host, PIL bilinear).
        parity_preprocess = replace(spec.preprocess, fused_frame=frame) if frame is not None else spec.preprocess
        parity_inputs = sample_data_images(data, "test", args.parity_count, parity_preprocess, recipe.seed)

    out_dir = Path(args.out) if args.out else model_dir.parent / "artifacts" / f"{args.backend}-{args.precision}{suffix}"
    check_output_dir(out_dir, "artifact directory", replaced=True)  # before calibration, export and parity
    artifact = export_model(
        model, spec, args.backend, args.precision, out_dir,
        calibration=calibration, parity_inputs=parity_inputs, source_checkpoint=str(model_dir), opset=args.opset,
        tensorrt=args.tensorrt if args.tensorrt is not None else (target.tensorrt if target is not None else None), int8=int8,
        fused_preprocess=frame,
    )
    quant = artifact.manifest.get("quantization", {}).get("method", "none")
    print(f"artifact: {artifact.path} ({artifact.backend} {artifact.precision}, int8 method: {quant})")
    print(f"parity on {len(parity_inputs)} real inputs from '{data}': {artifact.summary()}")
    if frame is not None:
        print(fused_summary(artifact.manifest))
    if artifact.status == "failed":  # e.g. its TensorRT would refuse the kit: no engine can be built (exit 3)
        # lazy: `edgeclip --help` does not load it
        from edgeclip.bench.remote import EXIT_NO_ENGINE

        return EXIT_NO_ENGINE
    return 0 if artifact.ok else 1
