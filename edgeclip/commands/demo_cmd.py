"""`edgeclip demo accident`: the dashcam accident-recognition demo (DESIGN §4.6) from exported models."""

from __future__ import annotations

import argparse

from edgeclip.commands import add_parser

EXAMPLES = """
  edgeclip demo accident --video drive.mp4 --model runs/accident-proxy
  edgeclip demo accident --frames ../shared/data/dad-demo/000478 --model runs/accident-proxy --backend openvino
  edgeclip demo accident --video drive.mp4 --model runs/accident-proxy --hop 1 --no-video   # every frame encoded
  edgeclip demo accident --video drive.mp4 --model runs/accident-proxy --remote pi@raspberrypi.local
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "demo", help="dashcam accident-recognition demo (exported encoder + temporal head)",
        description=("Run a sliding window over a dashcam video (or a folder of frames): letterbox each frame, encode "
                     "it with the exported image encoder, run the exported temporal head on the window of frame "
                     "features, and raise an alert (time, frame, probability) when P(accident) passes the threshold. "
                     "Writes <out>/alerts.json and <out>/annotated.mp4 (frame + probability bar + ALERT banner) and "
                     "prints per-frame latency and end-to-end FPS. It runs the edgeclip/video/accident_demo package — "
                     "numpy, Pillow, PyAV/OpenCV and the runtime only, no torch — here or, with --remote, on the device."),
        examples=EXAMPLES)
    parser.add_argument("name", choices=["accident"], help="which demo")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="dashcam video file (mp4, ...)")
    source.add_argument("--frames", help="folder of frame images in file-name order")
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory of `edgeclip video train`")
    parser.add_argument("--backend", default="onnx", choices=["onnx", "openvino", "tensorrt"])
    parser.add_argument("--precision", help="encoder precision (default: fp32 if exported, else the one there is)")
    parser.add_argument("--out", default="accident-demo", help="output folder")
    parser.add_argument("--threshold", type=float, help="alert threshold on P(accident) (default: the model's)")
    parser.add_argument("--hop", type=int, help="run the head every N frames (default: the window stride; 1 = every frame)")
    parser.add_argument("--fps", type=float, help="frame rate of a frame folder (default 20)")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (0 = runtime default)")
    parser.add_argument("--providers", default="CPUExecutionProvider",
                        help="onnxruntime execution providers in order, e.g. TensorrtExecutionProvider,CUDAExecutionProvider,"
                             "CPUExecutionProvider on a Jetson")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = whole stream)")
    parser.add_argument("--no-video", action="store_true", help="skip the annotated MP4")
    parser.add_argument("--remote", metavar="USER@HOST", help="run on this device over ssh (python3 + numpy, Pillow, PyAV, runtime)")
    parser.add_argument("--remote-python", default="python3", help="Python interpreter on the device")
    parser.set_defaults(func=run)


def _runner_args(args: argparse.Namespace) -> list[str]:
    out = []
    for flag, value in (("--threshold", args.threshold), ("--hop", args.hop), ("--fps", args.fps),
                        ("--threads", args.threads or None), ("--max-frames", args.max_frames or None),
                        ("--providers", args.providers if args.providers != "CPUExecutionProvider" else None)):
        if value is not None:
            out += [flag, str(value)]
    return out + (["--no-video"] if args.no_video else [])


def run(args: argparse.Namespace) -> int:
    from edgeclip.errors import UserError

    for name in ("hop", "max_frames", "threads"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "hop" else 0):
            raise UserError(f"--{name.replace('_', '-')} must be >= {1 if name == 'hop' else 0}, got {value}")
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps must be > 0, got {args.fps}; pass the stream's frames per second or leave it out")
    if args.remote:
        from edgeclip.video.remote import demo_remote

        summary = demo_remote(args.remote, args.model, video=args.video, frames=args.frames, backend=args.backend,
                              precision=args.precision, out_dir=args.out, runner_args=_runner_args(args),
                              python=args.remote_python)
    else:
        from edgeclip.video import accident_demo as device
        from edgeclip.video.io import user_errors

        with user_errors():
            summary = device.run_demo(args.model, video=args.video, frames=args.frames, backend=args.backend,
                                      precision=args.precision, out_dir=args.out, threshold=args.threshold,
                                      hop=args.hop, threads=args.threads, write_video=not args.no_video,
                                      max_frames=args.max_frames, fps=args.fps, providers=args.providers)
    print(format_summary(summary, args.out))
    return 0


def format_summary(summary: dict, out: str) -> str:
    latency = summary["latency_ms"]
    where = f" on {summary['measured_on']}" if summary.get("measured_on") else ""
    lines = [f"accident demo{where}: {summary['frames']} frames, {summary['skipped_frames']} unreadable (skipped), "
             f"{summary['encoded_frames']} encoded, {summary['windows']} windows, hop {summary['hop']}"]
    for alert in summary["alerts"]:
        lines.append(f"  ALERT at {alert['time_s']:.2f} s (frame {alert['frame']}): P(accident) {alert['probability']:.2f}")
    if not summary["alerts"]:
        lines.append(f"  no alert (threshold {summary['threshold']})")
    lines.append(f"per-frame latency: p50 {latency['per_frame']['p50']:.1f} ms, p90 {latency['per_frame']['p90']:.1f} ms "
                 f"(decode {latency['decode']['mean']:.1f}, encoder {_ms(latency['encoder'])}/encoded frame, "
                 f"head {_ms(latency['head'])}/window); end-to-end {summary['end_to_end_fps']:.1f} FPS")
    lines.append(f"wrote {out}/alerts.json" + (f" and {summary['annotated_video']}" if summary.get("annotated_video") else ""))
    return "\n".join(lines)


def _ms(stats: dict) -> str:
    return "-" if stats.get("mean") is None else f"{stats['mean']:.2f} ms"
