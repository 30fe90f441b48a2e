"""`edgeclip build` for a dashcam accident recipe (`video.clips` set; DESIGN §4.6).

Steps: plan (target → backends × precisions) → train + cross-validate the temporal head on the
encoder's frame features and export encoder + head per planned variant (edgeclip/video/pipeline)
→ accuracy of each exported pipeline (the same CV by clip on features computed through that
artifact) → speed of the device demo per variant (edgeclip/video/accident_demo, here or with
--remote on the device: TensorRT engines are built there first) → report with the target's
budgets + the recipe's FPS budgets → verdict.

Report rows: one per exported encoder (+ its head). latency_ms = per-frame latency with every frame
encoded (decode + letterbox + encoder + head; the budget a live stream must meet), throughput =
decoded frames/s end to end at the model's hop, accuracy = pooled out-of-fold balanced accuracy
of windows, retention = against `video.teacher_encoder`'s PyTorch pipeline, or (without one)
against this encoder's unexported PyTorch pipeline.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from edgeclip.backends import get_backend
from edgeclip.bench.environment import collect_environment
from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.report_files import write_report
from edgeclip.bench.report_text import console_table
from edgeclip.bench.verdict import compute_verdict
from edgeclip.build.plan import export_plan
from edgeclip.build.result import BuildResult
from edgeclip.build.steps import log
from edgeclip.errors import UserError
from edgeclip.io_utils import check_output_dir
from edgeclip.manifest import read_manifest
from edgeclip.paths import default_run_dir
from edgeclip.targets import load_target, row_label
from edgeclip.video import accident_demo
from edgeclip.video.clips import LabelProtocol, read_clip_lists
from edgeclip.video.io import user_errors
from edgeclip.video.remote import demo_remote
from edgeclip.video.sampling import WindowSampling

# Shipped accident recipes name the repository's clip lists (benchmarks/clips/) and ../shared/data
# beside the checkout. `$EDGECLIP_ROOT` overrides this root (e.g. a wheel install, or a worktree
# whose ../shared is elsewhere).
REPO_ROOT = Path(__file__).resolve().parents[2]


def is_video_recipe(recipe: Any) -> bool:
    return bool(recipe.video.clips)


def data_roots(recipe: Any = None) -> list[Path]:
    """Where a relative recipe path is looked for, in order: the working directory, the recipe
    file's folder (a recipe given by path), then $EDGECLIP_ROOT or the checkout edgeclip runs from."""
    roots = [Path.cwd()]
    source = getattr(recipe, "source_dir", None)
    if source:
        roots.append(Path(source))
    roots.append(Path(os.environ.get("EDGECLIP_ROOT") or REPO_ROOT))
    return list(dict.fromkeys(roots))


def resolve_clips(paths: list[str], recipe: Any = None, key: str = "video.clips") -> list[str]:
    """Relative clip lists, tried from each of `data_roots`; one that is nowhere is a UserError
    naming the recipe key, the path and where it was looked for."""
    out = []
    roots = data_roots(recipe)
    for index, item in enumerate(paths):
        path = Path(item).expanduser()
        if not path.is_absolute():
            path = next((root / path for root in roots if (root / path).exists()), path)
        if not path.exists():
            where = f"{key}[{index}]" if key == "video.clips" else key  # a list key names its item
            looked = ", ".join(str(r) for r in roots) if not Path(item).expanduser().is_absolute() else "as given"
            raise UserError(f"recipe key {where}: '{item}' does not exist (looked in: {looked}); fix the path, or set "
                            "EDGECLIP_ROOT to the folder it is relative to")
        out.append(str(path))
    return out


def video_settings(recipe: Any) -> tuple[Any, Any, Any]:
    # lazy: defers torch
    from edgeclip.video.train import HeadTrainConfig

    v = recipe.video
    config = HeadTrainConfig.from_recipe(v, recipe.seed)
    config.validate()
    if v.folds < 2:
        raise UserError("video.folds must be >= 2 for a build: accuracy and retention come from cross-validation by clip")
    protocol = LabelProtocol(gap_s=v.gap_s, last_frames=v.last_frames, hop=v.hop, max_windows=v.max_windows)
    return config, WindowSampling(frames=v.frames, stride=v.stride, span=v.span), protocol


def pipeline_accuracy(clips: list[str], encoder_spec: str, config: Any, sampling: Any, protocol: Any, fps: float | None,
                      work: Path) -> dict[str, Any]:
    """Pooled out-of-fold metrics of the windows with this encoder's features (same folds and seed)."""
    # lazy: defers torch
    from edgeclip.video.dataset import build_dataset
    from edgeclip.video.features import load_encoder
    from edgeclip.video.train import cross_validate

    encoder = load_encoder(encoder_spec)
    dataset = build_dataset(clips, encoder, sampling, protocol, fps=fps, progress=False)
    return cross_validate(dataset, config, work, encoder=encoder, progress=False)["pooled"]


def bench_video(recipe: Any, clips: list[str]) -> Path:
    if recipe.video.bench_video:
        return Path(resolve_clips([recipe.video.bench_video], recipe, "video.bench_video")[0])
    entries = read_clip_lists(clips)
    videos = [e.path for e in entries if e.path.is_file()]
    return videos[0] if videos else entries[0].path


def time_variant(run_dir: Path, encoder_dir: Path, video: Path, recipe: Any, remote: str | None,
                 remote_python: str) -> list[dict[str, Any]]:
    """Two demo runs: the model's hop, then every frame encoded (no annotated video)."""
    backend, precision = encoder_dir.name.split("-")[1:]
    source = {"frames" if video.is_dir() else "video": str(video)}
    summaries = []
    for hop in (None, 1):
        if remote:
            args = ["--no-video", "--max-frames", str(recipe.video.bench_frames), *(["--hop", str(hop)] if hop else [])]
            summaries.append(demo_remote(remote, run_dir, backend=backend, precision=precision, python=remote_python,
                                         out_dir=run_dir / "demo" / encoder_dir.name, runner_args=args, **source))
        else:
            with user_errors():
                summaries.append(accident_demo.run_demo(str(run_dir), backend=backend, precision=precision, hop=hop,
                                                 out_dir=str(run_dir / "demo" / encoder_dir.name), write_video=False,
                                                 max_frames=recipe.video.bench_frames, log=lambda m: None, **source))
    return summaries


def variant_row(run_dir: Path, encoder_dir: Path, accuracy: dict[str, Any] | None, summaries: list[dict[str, Any]] | None,
                status: str, frames: int) -> ReportRow:
    manifest = read_manifest(encoder_dir)
    head_dirs = sorted((run_dir / "artifacts").glob(f"head-{manifest['backend']}-*"))
    head = read_manifest(head_dirs[0]) if head_dirs else {}
    size = (manifest.get("size_bytes") or 0) + (head.get("size_bytes") or 0)
    row = ReportRow(name=f"{manifest.get('name')}+{head.get('name', 'head')}", role="student",
                    backend=manifest["backend"], precision=manifest["precision"],
                    params=(manifest.get("params") or 0) + (head.get("params") or 0) or None,
                    flops=manifest.get("flops"), size_mb=size / 1e6 if size else None, status=status,
                    accuracy=None if accuracy is None else accuracy["balanced_accuracy"])
    if (manifest.get("parity") or {}).get("passed") is False or (head.get("parity") or {}).get("passed") is False:
        row.status = "failed: parity against PyTorch failed at export (see the artifacts' manifest.json)"
    if summaries:
        model_hop, every = summaries
        row.latency_ms = {k: every["latency_ms"]["per_frame"][k] for k in ("p50", "p90", "p99", "mean")}
        row.throughput = model_hop["end_to_end_fps"]
        encoder_ms, head_ms = every["latency_ms"]["encoder"]["p50"], every["latency_ms"]["head"]["p50"]
        row.notes = (f"demo on {Path(every['source']).name}, {every['frames']} frames: {model_hop['end_to_end_fps']:.1f} FPS at "
                     f"hop {model_hop['hop']} ({model_hop['encoded_frames']} frames encoded), {every['end_to_end_fps']:.1f} "
                     f"FPS with every frame encoded; encoder p50 {encoder_ms:.2f} ms/frame, head p50 {head_ms:.2f} ms/window, "
                     f"clip latency {frames * encoder_ms + head_ms:.1f} ms ({frames} frames encoded + head)")
        if accuracy is not None:
            row.notes += f"; ROC-AUC {accuracy['roc_auc']:.3f}, accuracy {accuracy['accuracy']:.3f}"
    return row


def fps_budgets(rows: list[ReportRow], recipe: Any, every_frame_fps: dict[str, float], measured: bool) -> list[dict[str, Any]]:
    """The recipe's FPS budgets per deployable row (not measured off the target: never a pass)."""
    out = []
    for row in rows:
        if row.role != "student" or not row.ok:
            continue
        label = row_label(row)
        for name, limit, value in (("min_fps", recipe.video.min_fps, row.throughput),
                                   ("min_fps_every_frame", recipe.video.min_fps_every_frame, every_frame_fps.get(label))):
            passed = None if not measured or value is None else bool(value >= limit)
            out.append({"name": name, "row": label, "limit": float(limit), "measured": value if measured else None,
                        "passed": passed, "status": {True: "pass", False: "fail", None: "not measured"}[passed]})
    return out


def build_accident(recipe: Any, target_name: str, *, out_dir: str | Path | None = None, progress: bool = True,
                   remote: str | None = None, remote_python: str = "python3") -> Any:
    # lazy: defers torch
    from edgeclip.video.pipeline import train_video

    started = time.perf_counter()
    target = load_target(target_name)
    exports = export_plan(target, recipe)
    config, sampling, protocol = video_settings(recipe)
    clips = resolve_clips(recipe.video.clips, recipe)
    read_clip_lists(clips)  # a bad list fails now, before training
    run_dir = Path(out_dir) if out_dir else default_run_dir(recipe.name, target.name)
    check_output_dir(run_dir, "run directory")  # a default runs/ in an unwritable cwd fails now, not after training
    if (run_dir / "report.json").exists():
        raise UserError(f"{run_dir} already holds a finished build; pass another --out or remove it")
    fps = recipe.video.fps or None
    log(f"run directory {run_dir}; target {target.name}; encoder {recipe.video.encoder}, head {recipe.video.head}; "
        f"plan {', '.join(f'{b}-{p}' for b, p in exports)}")
    run = train_video(clips, recipe.video.encoder, run_dir, config=config, sampling=sampling, protocol=protocol,
                      fps=fps, variants=exports, progress=progress)
    rows: list[ReportRow] = []
    reference = run.metrics["cross_validation"]["pooled"]
    reference_row = ReportRow(name=f"{run.metrics['encoder']['name']}+{recipe.video.head}", role="reference",
                              backend="torch", precision="fp32", accuracy=reference["balanced_accuracy"],
                              notes="unexported PyTorch pipeline, same windows and folds")
    rows.append(reference_row)
    if recipe.video.teacher_encoder:
        log(f"reference pipeline with the teacher encoder {recipe.video.teacher_encoder}")
        teacher = pipeline_accuracy(clips, recipe.video.teacher_encoder, config, sampling, protocol, fps,
                                    run_dir / "teacher-cv")
        rows.append(ReportRow(name=f"{recipe.video.teacher_encoder}+{recipe.video.head}", role="teacher", backend="torch",
                              precision="fp32", accuracy=teacher["balanced_accuracy"], retention=1.0,
                              notes="teacher-encoder pipeline (PyTorch), same windows and folds"))
    video = bench_video(recipe, clips)
    on_target = bool(remote) or target.measurable_here
    every_frame_fps: dict[str, float] = {}
    for encoder_dir in sorted((run_dir / "artifacts").glob("encoder-*")):
        backend = encoder_dir.name.split("-")[1]
        manifest = (encoder_dir / "manifest.json").read_text()
        needs_build = '"needs_target_build"' in manifest
        status, summaries, accuracy = "ok", None, None
        if not remote and (needs_build or not get_backend(backend).can_run_here):
            status = (f"needs_target: build and time it on the device: edgeclip build --recipe {recipe.name} "
                      f"--target {target.name} --remote user@<{target.name}>")
        else:
            log(f"timing the demo with {encoder_dir.name}{' on ' + remote if remote else ''}")
            summaries = time_variant(run_dir, encoder_dir, video, recipe, remote, remote_python)
        if get_backend(backend).can_run_here and not needs_build:
            log(f"accuracy of the {encoder_dir.name} pipeline (CV by clip)")
            accuracy = pipeline_accuracy(clips, str(encoder_dir), config, sampling, protocol, fps,
                                         run_dir / "variant-cv" / encoder_dir.name)
        rows.append(variant_row(run_dir, encoder_dir, accuracy, summaries, status, sampling.frames))
        if summaries:
            every_frame_fps[row_label(rows[-1])] = summaries[1]["end_to_end_fps"]
    if not recipe.video.teacher_encoder:
        for row in rows:
            if row.role == "student" and row.accuracy is not None and reference_row.accuracy:
                row.retention = row.accuracy / reference_row.accuracy
    return _report(recipe, target, run_dir, rows, every_frame_fps, on_target, time.perf_counter() - started, run)


def _report(recipe: Any, target: Any, run_dir: Path, rows: list[ReportRow], every_frame_fps: dict[str, float],
            on_target: bool, seconds: float, run: Any) -> Any:
    data = run.metrics["data"]
    notes = [f"recipe {recipe.name}: video accident recognition, encoder {recipe.video.encoder} "
             f"(knows: {run.metrics['encoder']['knows']}), head {recipe.video.head}",
             f"labelled protocol: {data['protocol']}; {data['counts']['windows']} windows "
             f"({data['counts']['accident']} accident) from {data['counts']['clips']} clips",
             f"accuracy = pooled out-of-fold balanced accuracy of windows, {recipe.video.folds}-fold CV by clip; retention "
             + ("against the teacher-encoder pipeline" if recipe.video.teacher_encoder
                else "against this encoder's unexported PyTorch pipeline (no video.teacher_encoder)"),
             "latency = per-frame latency with every frame encoded (decode + letterbox + encoder + head); throughput = "
             f"decoded frames/s at the model's hop; FPS budgets from the recipe: min_fps {recipe.video.min_fps}, "
             f"min_fps_every_frame {recipe.video.min_fps_every_frame}",
             f"build took {seconds:.0f} s"]
    next_step = "" if on_target else (f"this machine is not a {target.name}: finish on the device with `edgeclip build "
                                      f"--recipe {recipe.name} --target {target.name} --remote user@<{target.name}>`")
    if next_step:
        notes.append(next_step)
    report = Report(rows=rows, environment=collect_environment(threads=target.threads), run_id=run_dir.name, notes=notes)
    report.apply_target(target, measured_on_target=on_target)
    report.budget_results += fps_budgets(rows, recipe, every_frame_fps, on_target)
    report.verdict = compute_verdict(report, next_step)
    paths = write_report(report, run_dir)
    print(console_table(report))
    return BuildResult(run_dir=run_dir, report=report, report_paths=paths, artifacts=[a.path for a in run.artifacts])


__all__ = ["build_accident", "is_video_recipe"]
