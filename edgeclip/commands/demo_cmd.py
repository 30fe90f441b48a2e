"""`edgeclip demo zero-shot|accident`: pages a person opens in a browser (edgeclip/demo/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeclip.commands import add_parser
from edgeclip.errors import NotImplementedYet

ZERO_SHOT_EXAMPLES = """
  edgeclip demo zero-shot --model runs/distillclip-quickstart-cpu        # then open http://127.0.0.1:7860/
  edgeclip demo zero-shot --model runs/<id> --backend openvino --port 8000
  edgeclip demo zero-shot --model runs/<id>/artifacts --teacher none     # a folder of exported artifacts, student only
  edgeclip demo zero-shot --model runs/<id> --host 0.0.0.0               # reachable from other machines: your choice
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "demo", help="demos in the browser: zero-shot classification, dashcam accidents",
        description="Pages a person opens in a browser to try exported models. They run the exported artifacts with "
                    "their runtime only (no PyTorch) and listen on 127.0.0.1 unless --host says otherwise.",
        examples=ZERO_SHOT_EXAMPLES + "  edgeclip demo accident ...                                  # not available yet\n",
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
    zero.add_argument("--backend", choices=["onnx", "openvino"], help="runtime (default: onnx if exported, else openvino)")
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
    accident = add_parser(demos, "accident", help="dashcam accident recognition (not available yet)",
                          description="The accident-recognition demo (DESIGN §4.6) is not implemented yet.",
                          examples="  edgeclip demo accident   # not available yet: exits 2\n")
    accident.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    accident.set_defaults(func=run_accident)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_zero_shot(args: argparse.Namespace) -> int:
    from edgeclip.demo.server import bind, serve_bound
    from edgeclip.demo.zero_shot_page import build_app, make_demo
    from edgeclip.errors import UserError

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


def run_accident(args: argparse.Namespace) -> int:
    raise NotImplementedYet(
        "the accident-recognition demo is not implemented yet (video temporal head, DESIGN §4.6); "
        "use `edgeclip build` and `edgeclip bench` for now"
    )
