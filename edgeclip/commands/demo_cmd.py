"""`edgeclip demo zero-shot|accident`: pages a person opens in a browser (edgeclip/demo/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeclip.backends import cpu_backends, device_backends
from edgeclip.commands import add_parser
from edgeclip.errors import UserError

ZERO_SHOT_EXAMPLES = """
  edgeclip demo zero-shot --model runs/distillclip-quickstart-cpu        # then open http://127.0.0.1:7860/
  edgeclip demo zero-shot --model runs/<id> --backend openvino --port 8000
  edgeclip demo zero-shot --model runs/<id>/artifacts --teacher none     # a folder of exported artifacts, student only
  edgeclip demo zero-shot --model runs/<id> --host 0.0.0.0               # reachable from other machines: your choice
"""
ACCIDENT_EXAMPLES = """
  edgeclip demo accident --video drive.mp4 --model runs/accident-proxy
  edgeclip demo accident --frames ../shared/data/dad-demo/000478 --model runs/accident-proxy --backend openvino
  edgeclip demo accident --video drive.mp4 --model runs/accident-proxy --hop 1 --no-video   # every frame encoded
  edgeclip demo accident --video drive.mp4 --model runs/accident-proxy --remote pi@raspberrypi.local
  edgeclip demo accident --video drive.mp4 --model runs/accident-proxy --serve   # then open http://127.0.0.1:7861/
  edgeclip demo accident --out accident-demo --serve                             # show an earlier run's output
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "demo", help="demos in the browser: zero-shot classification, dashcam accidents",
        description="Pages a person opens in a browser to try exported models. They run the exported artifacts with "
                    "their runtime only (no PyTorch) and listen on 127.0.0.1 unless --host says otherwise.",
        examples=ZERO_SHOT_EXAMPLES + ACCIDENT_EXAMPLES,
    )
    demos = parser.add_subparsers(dest="demo", metavar="<demo>")
    zero = add_parser(
        demos, "zero-shot", help="classify an image against class names you type (student vs teacher)",
        description="Serve a page that classifies an uploaded image against class names typed on the page: the "
                    "exported student's image tower + text tower (the tokenizer shipped inside the text artifact "
                    "embeds the typed names), or its fused zero-shot artifact (its shipped classes), with the "
                    "teacher's top-5 beside it when the run has a CLIP teacher (its towers are exported once, in a "
                    "child process, so the serving process never imports torch). Shows top-5 classes with "
                    "probabilities and the per-image latency of each model.",
        examples=ZERO_SHOT_EXAMPLES)
    zero.add_argument("--model", required=True, metavar="RUN_DIR",
                      help="run directory (artifacts/<backend>-<precision>-{image,text,zeroshot}) or a folder of artifacts")
    zero.add_argument("--backend", choices=cpu_backends(),
                      help=f"runtime (default: the first exported of {', '.join(cpu_backends())})")
    zero.add_argument("--precision", choices=["fp32", "fp16", "int8"], help="artifact precision (default: fp32 if exported)")
    zero.add_argument("--teacher", default="auto", metavar="auto|none|DIR",
                      help="auto: the run's CLIP teacher (exported once for the page); none: student only; DIR: exported teacher towers")
    zero.add_argument("--port", type=int, default=7860, help="TCP port (0 = any free port)")
    zero.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes the page to your network)")
    zero.add_argument("--threads", type=int, default=0, help="runtime threads (0 = runtime default)")
    zero.add_argument("--max-classes", type=int, default=100, help="most class names one request may embed")
    zero.add_argument("--max-upload-mb", type=float, default=16.0, help="largest image file accepted")
    zero.add_argument("--examples-data", metavar="DIR",
                      help="shared data folder with dad-demo/ for the dashcam examples (default: shared/data beside the checkout)")
    zero.add_argument("--verbose", action="store_true", help="log every request to stderr")
    zero.set_defaults(func=run_zero_shot)
    accident = add_parser(
        demos, "accident", help="dashcam accident recognition (exported encoder + temporal head); --serve shows it in the browser",
        description=("Run a sliding window over a dashcam video (or a folder of frames): letterbox each frame, encode "
                     "it with the exported image encoder, run the exported temporal head on the window of frame "
                     "features, and raise an alert (time, frame, probability) when P(accident) passes the threshold. "
                     "Writes <out>/alerts.json and <out>/annotated.mp4 (frame + probability bar + ALERT banner) and "
                     "prints per-frame latency and end-to-end FPS. It runs the edgeclip/video/accident_demo package — "
                     "numpy, Pillow, PyAV/OpenCV and the runtime only, no torch — here or, with --remote, on the device. "
                     "--serve then shows <out> in the browser: the annotated video, the P(accident) timeline with the "
                     "threshold and the alert times, per-frame latency (without --video/--frames it serves an existing <out>)."),
        examples=ACCIDENT_EXAMPLES)
    source = accident.add_mutually_exclusive_group()
    source.add_argument("--video", help="dashcam video file (mp4, ...)")
    source.add_argument("--frames", help="folder of frame images in file-name order")
    accident.add_argument("--model", metavar="RUN_DIR", help="run directory of `edgeclip video train`")
    accident.add_argument("--backend", default="onnx", choices=device_backends())
    accident.add_argument("--precision", help="encoder precision (default: fp32 if exported, else the one there is)")
    accident.add_argument("--out", default="accident-demo", help="output folder")
    accident.add_argument("--threshold", type=float, help="alert threshold on P(accident) (default: the model's)")
    accident.add_argument("--hop", type=int, help="run the head every N frames (default: the window stride; 1 = every frame)")
    accident.add_argument("--fps", type=float, help="frame rate of a frame folder (default 20)")
    accident.add_argument("--threads", type=int, default=0, help="runtime threads (0 = runtime default)")
    accident.add_argument("--providers", default="CPUExecutionProvider",
                        help="onnxruntime execution providers in order, e.g. TensorrtExecutionProvider,CUDAExecutionProvider,"
                             "CPUExecutionProvider on a Jetson")
    accident.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = whole stream)")
    accident.add_argument("--no-video", action="store_true", help="skip the annotated MP4")
    accident.add_argument("--remote", metavar="USER@HOST", help="run on this device over ssh (python3 + numpy, Pillow, PyAV, runtime)")
    accident.add_argument("--remote-python", default="python3", help="Python interpreter on the device")
    accident.add_argument("--serve", action="store_true",
                          help="then serve <out> as a page: annotated video, P(accident) timeline, alerts, latency")
    accident.add_argument("--port", type=int, default=7861, help="TCP port for --serve (0 = any free port)")
    accident.add_argument("--host", default="127.0.0.1", help="address --serve listens on (0.0.0.0 exposes it to your network)")
    accident.add_argument("--verbose", action="store_true", help="with --serve: log every request to stderr")
    accident.set_defaults(func=run_accident)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_zero_shot(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it
    from edgeclip.demo.server import bind, serve_bound
    from edgeclip.demo.zero_shot_page import build_app, make_demo

    if args.max_upload_mb <= 0:
        raise UserError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    # Bind before loading models: a port in use is reported at once, not after a teacher export.
    server = bind(args.host, args.port, args.verbose)
    try:
        demo = make_demo(args.model, backend=args.backend, precision=args.precision, teacher=args.teacher,
                         threads=args.threads, max_classes=args.max_classes,
                         examples_data=Path(args.examples_data) if args.examples_data else None)
        if demo.teacher_note:
            print(f"note: {demo.teacher_note}", flush=True)
        serve_bound(server, build_app(demo, max_upload_mb=args.max_upload_mb))
    finally:
        server.server_close()
    return 0


def _runner_args(args: argparse.Namespace) -> list[str]:
    out = []
    for flag, value in (("--threshold", args.threshold), ("--hop", args.hop), ("--fps", args.fps),
                        ("--threads", args.threads or None), ("--max-frames", args.max_frames or None),
                        ("--providers", args.providers if args.providers != "CPUExecutionProvider" else None)):
        if value is not None:
            out += [flag, str(value)]
    return out + (["--no-video"] if args.no_video else [])


def run_accident(args: argparse.Namespace) -> int:
    if args.video is None and args.frames is None:
        if not args.serve:
            raise UserError("pass --video FILE or --frames DIR (and --model RUN_DIR); or --serve to show an earlier --out")
        return serve_accident(args)
    if args.model is None:
        raise UserError("--model RUN_DIR is required with --video/--frames (the run directory of `edgeclip video train`)")
    if not args.serve:
        return run(args)
    # lazy: `edgeclip --help` does not load it
    from edgeclip.demo.server import bind

    server = bind(args.host, args.port, args.verbose)  # a busy port is reported before the video is processed
    try:
        run(args)
        return serve_accident(args, server)
    finally:
        server.server_close()


def serve_accident(args: argparse.Namespace, server=None) -> int:
    """Serve <out> (alerts.json + annotated.mp4) as a page until Ctrl-C."""
    # lazy: `edgeclip --help` does not load it
    from edgeclip.demo.accident_page import build_app, load_accident_output
    from edgeclip.demo.server import bind, serve_bound

    output = load_accident_output(Path(args.out))  # a missing or broken alerts.json: one line, before binding
    server = server or bind(args.host, args.port, args.verbose)
    try:
        serve_bound(server, build_app(output))
    finally:
        server.server_close()
    return 0


def run(args: argparse.Namespace) -> int:
    for name in ("hop", "max_frames", "threads"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "hop" else 0):
            raise UserError(f"--{name.replace('_', '-')} must be >= {1 if name == 'hop' else 0}, got {value}")
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps must be > 0, got {args.fps}; pass the stream's frames per second or leave it out")
    if args.remote:
        # lazy: `edgeclip --help` does not load it
        from edgeclip.video.remote import demo_remote

        summary = demo_remote(args.remote, args.model, video=args.video, frames=args.frames, backend=args.backend,
                              precision=args.precision, out_dir=args.out, runner_args=_runner_args(args),
                              python=args.remote_python)
    else:
        # lazy: `edgeclip --help` does not load it
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
