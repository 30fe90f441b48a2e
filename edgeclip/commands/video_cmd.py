"""`edgeclip video train|export`: temporal accident heads on frozen frame features (DESIGN §4.6)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeclip.cli import HelpFormatter
from edgeclip.commands import add_parser
from edgeclip.config import VideoConfig
from edgeclip.errors import UserError

EXAMPLES = """
  # the real clips beside the checkout, proxy teacher's image tower, EVL head, 5-fold CV by clip
  edgeclip video train --clips benchmarks/clips/dad-demo.txt --clips ../shared/data/dashcam-clips \\
      --encoder proxy-digits --head evl --out runs/accident-proxy
  # a distilled student's features; the light baseline head; export for OpenVINO too
  edgeclip video train --clips list.txt --encoder runs/r1/student --head mean-mlp --backend onnx,openvino
  # a real CLIP (the paper's setting) and its zero-shot prompts, no training
  edgeclip video train --clips list.txt --encoder ViT-B-32:/models/vitb32.safetensors --head zero-shot
  # an exported encoder through its runtime (what the device runs)
  edgeclip video train --clips list.txt --encoder runs/r1/artifacts/openvino-int8 --head evl --backend openvino --precision int8
  edgeclip video export --model runs/accident-proxy --backend openvino --precision int8
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "video", help="train and export temporal accident heads on dashcam clips",
        description=("Video accident recognition (paper 001 §3.3.5): frames letterboxed, encoded by a frozen image "
                     "encoder, a temporal head on windows of T frames. `train` cross-validates by clip, trains the "
                     "deployed head on every window and exports encoder + head for `edgeclip demo accident`."),
        examples=EXAMPLES)

    actions = parser.add_subparsers(dest="action", metavar="<action>")
    train = actions.add_parser("train", help="cross-validate and train a temporal head, export it",
                               formatter_class=HelpFormatter, epilog="examples:" + EXAMPLES)
    train.add_argument("--clips", action="append", required=True, metavar="LIST",
                       help="clip list (lines `clip_dir_or_video label [accident_frame]`) or a folder with labels.txt; repeatable")
    train.add_argument("--encoder", required=True, metavar="SPEC",
                       help="teacher spec (proxy-digits, ARCH:TAG, ARCH:/ckpt), student checkpoint dir, student name "
                            "(random weights), or exported artifact dir")
    v = VideoConfig()  # the flag defaults are the recipe `video:` defaults (one source)
    train.add_argument("--head", default=v.head, help="temporal head (edgeclip list heads)")
    train.add_argument("--head-param", action="append", default=[], metavar="KEY=VALUE", help="head option, e.g. width=64")
    train.add_argument("--out", help="run directory (default runs/video-<head>-<time>)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    train.add_argument("--frames", type=int, default=v.frames, help="frames per window (T)")
    train.add_argument("--stride", type=int, default=v.stride, help="frames between window frames (paper: 14); 0 with --span")
    train.add_argument("--span", type=int, default=v.span, help="with --stride 0: T frames evenly spaced over this many")
    train.add_argument("--fps", type=float, help="frame rate of frame folders (default 20, DAD's)")
    train.add_argument("--gap-s", type=float, default=v.gap_s, help="normal windows end at least this long before the onset")
    train.add_argument("--last-frames", type=int, default=v.last_frames, help="clips without an onset: accident within the last N frames")
    train.add_argument("--hop", type=int, default=v.hop, help="a labelled window ends every N frames")
    train.add_argument("--max-windows", type=int, default=v.max_windows, help="at most N windows per clip and class")
    train.add_argument("--epochs", type=int, default=v.epochs)
    train.add_argument("--batch-size", type=int, default=v.batch_size)
    train.add_argument("--accumulation", type=int, default=v.accumulation, help="gradient accumulation steps")
    train.add_argument("--lr", type=float, default=v.lr)
    train.add_argument("--weight-decay", type=float, default=v.weight_decay)
    train.add_argument("--folds", type=int, default=v.folds, help="k-fold cross-validation by clip (0 = none)")
    train.add_argument("--threshold", type=float, default=v.threshold, help="alert threshold on P(accident)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backend", default="onnx", help="export backends, comma-separated (none = no export)")
    train.add_argument("--precision", default="fp32", help="encoder precisions, comma-separated")
    train.set_defaults(func=run_train)
    export = actions.add_parser("export", help="export a trained run's encoder + head for another backend",
                                formatter_class=HelpFormatter, epilog="examples:" + EXAMPLES)
    export.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory of `edgeclip video train`")
    export.add_argument("--backend", default="onnx", help="backends, comma-separated")
    export.add_argument("--precision", default="fp32", help="encoder precisions, comma-separated")
    export.set_defaults(func=run_export)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]


def _head_params(items: list[str]) -> dict:
    import yaml

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--head-param '{item}' is not KEY=VALUE; write e.g. --head-param width=64")
        params[key.strip()] = yaml.safe_load(value)
    return params


def run_train(args: argparse.Namespace) -> int:
    import time

    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.video.clips import LabelProtocol
    from edgeclip.video.export import parse_variants
    from edgeclip.video.pipeline import train_video
    from edgeclip.video.sampling import WindowSampling
    from edgeclip.video.train import HeadTrainConfig

    if args.frames < 1 or args.hop < 1 or args.max_windows < 1 or args.gap_s < 0 or args.last_frames < 1:
        raise UserError("--frames, --hop, --max-windows and --last-frames must be >= 1 and --gap-s >= 0")
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps must be > 0, got {args.fps}")
    config = HeadTrainConfig(head=args.head, head_params=_head_params(args.head_param), epochs=args.epochs,
                             batch_size=args.batch_size, accumulation=args.accumulation, lr=args.lr,
                             weight_decay=args.weight_decay, folds=args.folds, threshold=args.threshold, seed=args.seed)
    config.validate()
    sampling = WindowSampling(frames=args.frames, stride=args.stride, span=args.span)
    protocol = LabelProtocol(gap_s=args.gap_s, last_frames=args.last_frames, hop=args.hop, max_windows=args.max_windows)
    variants = parse_variants(_split(args.backend), _split(args.precision) or ["fp32"])
    out = Path(args.out or f"runs/video-{args.head}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = train_video(args.clips, args.encoder, out, config=config, sampling=sampling, protocol=protocol,
                      fps=args.fps, variants=variants, resume=args.resume)
    print((run.run_dir / "result.md").read_text())
    print(f"run directory: {run.run_dir}")
    failed = [a for a in run.artifacts if a.manifest.get("parity", {}).get("passed") is False]
    for artifact in failed:
        print(f"parity against PyTorch FAILED for {artifact.path} (see its manifest.json)")
    return 1 if failed else 0


def run_export(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.video.pipeline import export_run

    artifacts = export_run(Path(args.model), _split(args.backend), _split(args.precision) or ["fp32"])
    for artifact in artifacts:
        print(f"{artifact.path}  parity: {artifact.manifest.get('parity', {}).get('passed')}")
    return 1 if any(a.manifest.get("parity", {}).get("passed") is False for a in artifacts) else 0
