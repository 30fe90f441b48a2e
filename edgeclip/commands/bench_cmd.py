"""`edgeclip bench`: measure exported artifacts here or on a device, write the report, check budgets."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from typing import Any

import numpy as np

from edgeclip.commands import add_parser
from edgeclip.config import BenchConfig
from edgeclip.errors import UserError
from edgeclip.io_utils import check_output_dir

EXAMPLES = """
  edgeclip bench --artifact runs/r1/artifacts/onnx-fp32 --artifact runs/r1/artifacts/onnx-int8 --data digits
  edgeclip bench --artifact runs/r1/artifacts/openvino-int8 --target intel-cpu --data eval.npz
  edgeclip bench --artifact runs/r1/artifacts/onnx-int8 --target rpi5 --remote pi@raspberrypi.local --data digits
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "bench", help="benchmark exported artifacts: latency, memory, accuracy, budgets",
        description=("Benchmark artifacts (interleaved, batch-1 latency p50/p90/p99, throughput, peak memory in a fresh "
                     "process, accuracy/agreement with --data) and write report.json/.md/.html. With --target, check "
                     "its budgets (exit 1 when one fails); with --remote, run the standalone runner on the device "
                     "over SSH (TensorRT engines are built there first; exit 3 when one could not be built, with "
                     "trtexec's error in the report)."),
        examples=EXAMPLES)
    parser.add_argument("--artifact", action="append", required=True, metavar="DIR",
                        help="artifact directory from `edgeclip export` (repeatable)")
    parser.add_argument("--target", help="target profile name or alias (edgeclip list targets) or YAML path")
    parser.add_argument("--remote", metavar="USER@HOST", help="run on this device over SSH (key login, python3 + numpy + runtime there)")
    parser.add_argument("--remote-python", default="python3", help="Python interpreter on the device (e.g. a venv's python)")
    parser.add_argument("--data", help="labelled evaluation data: dataset spec (digits, a folder) or .npz with images, labels[, teacher_logits]")
    parser.add_argument("--split", default="test", help="split of a dataset spec to evaluate on")
    parser.add_argument("--class-map", default=None, metavar="MAP",
                        help="folder name -> class name when the data's folders are named otherwise than the model's "
                             "classes: 'a=b,c=d' or a YAML/JSON file (classes are matched by name)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate on the first N images only (0 = all)")
    parser.add_argument("--teacher-accuracy", type=float, help="teacher accuracy on the same data, for retention")
    parser.add_argument("--out", help="report directory (default: the run directory holding the artifacts)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100, help="timed iterations per backend")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="time cap per backend and measurement")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: the target's, else runtime default)")
    parser.add_argument("--throughput-batch", type=int, default=16, help="batch for images/s (0 = skip)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-artifact peak-memory subprocess")
    parser.add_argument("--no-roof", action="store_true",
                        help="skip achieved GFLOP/s and %% of the GEMM roof (here: measured once per machine, then cached; "
                             "with --remote: the device's, measured by the runner once per run)")
    parser.set_defaults(func=run)


def default_out_dir(artifacts: list[Path]) -> Path:
    """`<run>/` for artifacts at `<run>/artifacts/<backend-precision>`, else the artifacts' parent."""
    runs = {(a.resolve().parent.parent if a.resolve().parent.name == "artifacts" else a.resolve().parent) for a in artifacts}
    if len(runs) != 1:
        raise UserError(f"the artifacts come from {len(runs)} different run directories; pass --out DIR for the report")
    return runs.pop()


def _check_args(args: argparse.Namespace) -> None:
    for name in ("warmup", "limit", "throughput_batch"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.iterations < 1 or args.max_seconds <= 0:
        raise UserError("--iterations must be >= 1 and --max-seconds > 0")
    if args.teacher_accuracy is not None and not 0 < args.teacher_accuracy <= 1:
        raise UserError(f"--teacher-accuracy is a fraction in (0, 1], got {args.teacher_accuracy}")


def run(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.environment import collect_environment
    from edgeclip.bench.memory import MEMORY_METHOD
    from edgeclip.bench.report import Report
    from edgeclip.bench.report_files import write_report
    from edgeclip.bench.report_text import console_table
    from edgeclip.manifest import read_manifest
    from edgeclip.targets import BudgetResult, load_target

    _check_args(args)
    target = load_target(args.target) if args.target else None  # unknown target -> UserError before any work
    artifacts = [Path(a) for a in args.artifact]
    manifests = [read_manifest(a) for a in artifacts]  # missing / corrupt -> UserError
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.model_precision import check_model_precision

    for artifact, manifest in zip(artifacts, manifests):  # the row's label must be what the model is
        check_model_precision(artifact, manifest)
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.harness import check_eval_classes
    from edgeclip.data.class_match import parse_class_map

    class_map = parse_class_map(args.class_map)
    check_eval_classes(args.data, args.split, manifests, class_map)  # class names by name, before any measurement
    out_dir = check_output_dir(args.out) if args.out else check_output_dir(default_out_dir(artifacts), "report directory")
    threads = args.threads if args.threads is not None else (target.threads if target else 0)
    notes = [f"latency: batch 1, {args.warmup} warm-up + up to {args.iterations} timed calls per backend, backends "
             "interleaved round-robin in one process (runtimes share the cores, as on a device running several "
             "models); p50/p90/p99 in ms", MEMORY_METHOD,
             "retention = accuracy / teacher accuracy on the same images; agreement = top-1 match rate"]

    # lazy: `edgeclip --help` does not load it

    config = BenchConfig(warmup=args.warmup, iterations=args.iterations, max_seconds=args.max_seconds,
                         throughput_batch=args.throughput_batch, threads=threads, memory=not args.no_memory,
                         roof=not args.no_roof)
    if args.remote:
        rows, environment = _bench_remote(args, artifacts, manifests, config)
        environment = {"measured_on": args.remote, **environment}
    else:
        # lazy: `edgeclip --help` does not load it
        from edgeclip.bench.harness import bench_artifacts

        rows = bench_artifacts(artifacts, config, data=args.data, split=args.split, limit=args.limit,
                               teacher_accuracy=args.teacher_accuracy, class_map=class_map)
        environment = collect_environment(threads)

    report = Report(rows, environment=environment, notes=notes)
    if target is not None:
        on_target = bool(args.remote) or target.measurable_here
        if not on_target:
            report.notes.append(f"measured on this machine, not on {target.name}: budgets are not measured; "
                                f"run with --remote user@<{target.name}> or on the device")
        for row in rows:
            if row.role == "student" and row.backend not in target.backends:
                row.notes = "; ".join(filter(None, [row.notes, f"{row.backend} is not a backend of target {target.name}"]))
        report.apply_target(target, measured_on_target=on_target)
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.verdict import compute_verdict, verdict_sentence

    report.fill_retention()
    # What to ship among the benched artifacts, and what their accuracy means (quality warnings).
    report.verdict = compute_verdict(report)
    inputs_png = None
    if args.data and not args.remote:
        # lazy: `edgeclip --help` does not load it
        from edgeclip.bench.report_inputs import preview_for_artifact

        inputs_png = next((png for png in (preview_for_artifact(args.data, m, split=args.split, class_map=class_map)
                                           for m in manifests) if png), None)
    paths = write_report(report, out_dir, inputs_png=inputs_png)

    print(console_table(report))
    for result in report.budget_results:
        print("budget " + BudgetResult(**{k: result[k] for k in ("name", "limit", "measured", "passed", "row")}).describe())
    print(verdict_sentence(report.verdict))
    print(f"report: {paths['json']} (+ report.md, report.html)")
    failed_rows = [r for r in report.rows if r.status.startswith("failed")]
    if failed_rows or report.failed_budgets:
        what = [f"{len(failed_rows)} failed row(s)"] if failed_rows else []
        what += [f"{len(report.failed_budgets)} failed budget(s)"] if report.failed_budgets else []
        print("edgeclip bench: " + ", ".join(what))
        # lazy: `edgeclip --help` does not load it
        from edgeclip.bench.remote import EXIT_NO_ENGINE, no_engine

        return EXIT_NO_ENGINE if any(no_engine(r.status) for r in failed_rows) else 1
    return 0


def _bench_remote(args: argparse.Namespace, artifacts: list[Path], manifests: list[dict], config: Any
                  ) -> tuple[list, dict]:
    """Finish (TensorRT engines) and measure on the device; a dataset spec is preprocessed here into an .npz first."""
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.remote import finish_on_device

    with tempfile.TemporaryDirectory(prefix="edgeclip-bench-") as tmp:
        data_file = _data_npz(args, manifests, Path(tmp)) if args.data else None
        return finish_on_device(artifacts, args.remote, data=data_file, config=config, python=args.remote_python,
                                teacher_accuracy=args.teacher_accuracy)


def _data_npz(args: argparse.Namespace, manifests: list[dict], tmp: Path) -> Path:
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.harness import load_eval_data
    from edgeclip.data.preprocess import Preprocess

    if str(args.data).endswith(".npz") and not args.limit:
        return Path(args.data)
    preprocessings = {str(sorted(m["preprocessing"].items())) for m in manifests}
    if len(preprocessings) != 1:
        raise UserError("the artifacts preprocess differently; bench them remotely one preprocessing at a time, or pass an .npz")
    # lazy: `edgeclip --help` does not load it
    from edgeclip.data.class_match import parse_class_map

    data = load_eval_data(args.data, Preprocess.from_dict(manifests[0]["preprocessing"]), split=args.split, limit=args.limit,
                          class_names=manifests[0].get("class_names") or None, class_map=parse_class_map(args.class_map))
    path = tmp / "eval.npz"
    arrays = {"images": data.images, "labels": data.labels}
    if data.teacher_logits is not None:
        arrays["teacher_logits"] = data.teacher_logits
    np.savez(path, **arrays)
    return path
