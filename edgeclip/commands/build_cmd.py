"""`edgeclip build --recipe R --target T`: the one command from a teacher to a measured artifact."""

from __future__ import annotations

import argparse

from edgeclip.commands import add_parser, add_recipe_arguments, recipe_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "build", help="distill, export, benchmark and report for a target device",
        description=(
            "Teacher -> student (the recipe's distillation method) -> export per the target's backends and precisions "
            "-> parity check on real images -> benchmark beside the teacher architecture -> report.json/md/html with a "
            "verdict -> budgets. With --remote, TensorRT engines are built and checked on the device and everything is "
            "measured there. Exit 0 only when every artifact succeeded and every budget of the target was measured on "
            "the target and held; 1 when a check failed or could not be verified here (the report names the command "
            "that finishes it); 2 on bad input; 3 when a TensorRT engine could not be built (its TensorRT would refuse "
            "the kit's ONNX, or trtexec failed on the device: the report row carries the error)."
        ),
        examples="""
  edgeclip build --recipe quickstart --target cpu                 # offline, ~3 min on 2 idle cores
  edgeclip build --recipe quickstart --target jetson              # TensorRT kits + onnx fallback, not verified yet (exit 1)
  edgeclip build --recipe quickstart --target jetson --remote nvidia@orin.local   # engines built, checked, measured there
  edgeclip build --recipe digits-kd --target cpu --student runs/x/student   # KD continues from a trained student
  edgeclip build --recipe quickstart --target cpu --set distill.epochs=3 --out runs/try
  edgeclip build --recipe cifar10-kd --target cpu --latency-budget 0.2 \
      --set search.students=[resnet18_w8,repvgg_a0_w8] --set search.prune_ratios=[0,0.5]   # fastest-enough, most accurate
""",
    )
    add_recipe_arguments(parser)
    parser.add_argument("--target", required=True, help="target profile or alias (edgeclip list targets)")
    parser.add_argument("--teacher", help="override the recipe's teacher: ARCH:TAG, ARCH:PATH, PATH or proxy-digits")
    parser.add_argument("--student", help="a student name (edgeclip list students), or a trained student checkpoint dir "
                        "to start from (KD still runs for distill.epochs; there is no skip-training mode yet)")
    parser.add_argument("--latency-budget", type=float, metavar="MS",
                        help="pick the student (search.students x search.image_sizes x search.prune_ratios) that meets "
                             "this p50 latency (ms, batch 1, on the target's backend) with the best retention; the "
                             "report gets the latency-vs-retention table and pareto.png (recipe: search.latency_budget_ms)")
    parser.add_argument("--out", help="run directory (default runs/<recipe>-<target>-<time>)")
    parser.add_argument("--remote", metavar="USER@HOST",
                        help="finish and measure on this device over SSH (key login; python3 + numpy + the runtime there)")
    parser.add_argument("--remote-python", default="python3", help="Python interpreter on the device (e.g. a venv's python)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it
    from edgeclip.build import build

    from edgeclip.bench.verdict import verdict_sentence

    result = build(recipe_from_args(args), args.target, out_dir=args.out, progress=not args.quiet,
                   remote=args.remote, remote_python=args.remote_python)
    print(f"\nreport: {result.report_paths['html']}")
    print(verdict_sentence(result.report.verdict))
    problems = [f"{row.label}: {row.status}" for row in result.failed_rows]
    problems += [f"budget {b['name']} ({b['row']}): measured {b['measured']:.4g}, limit {b['limit']:g}" for b in result.failed_budgets]
    unverified = [f"{row.label}: {row.status}" for row in result.unverified_rows]
    unverified += [f"budget {b['name']}: not measured on the target" for b in result.unmeasured_budgets]
    if problems:
        print("build did not meet its target:\n  " + "\n  ".join(problems))
    if unverified:
        print("not verified here (see the verdict's next step):\n  " + "\n  ".join(unverified))
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.remote import EXIT_NO_ENGINE, no_engine

    if any(no_engine(row.status) for row in result.failed_rows):
        return EXIT_NO_ENGINE  # a TensorRT engine could not be built: not the same as a parity failure (1)
    return 1 if problems or unverified else 0
