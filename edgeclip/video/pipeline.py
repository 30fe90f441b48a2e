"""`edgeclip video train` end to end: clips → features → cross-validated head → deployable model directory."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeclip.errors import UserError
from edgeclip.io_utils import read_json, write_json
from edgeclip.video import accident_demo as device
from edgeclip.video.clips import LabelProtocol, read_clip_lists
from edgeclip.video.dataset import WindowDataset, build_dataset
from edgeclip.video.export import export_accident_model, parse_variants
from edgeclip.video.features import FrameEncoder, load_encoder
from edgeclip.video.heads import load_head, save_head
from edgeclip.video.io import read_frames
from edgeclip.video.sampling import WindowSampling
from edgeclip.video.train import HeadTrainConfig, fit_and_evaluate

CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.json"


@dataclass
class VideoRun:
    run_dir: Path
    metrics: dict[str, Any]
    artifacts: list[Any]


def real_frames(dataset: WindowDataset, encoder: FrameEncoder, count: int = 64) -> np.ndarray:
    """Letterboxed frames spread over every clip: calibration for int8 and parity inputs for export."""
    per_clip = max(1, count // len(dataset.infos))
    batch = []
    for info in dataset.infos:
        indices = sorted({int(round(i * (info.num_frames - 1) / max(1, per_clip - 1))) for i in range(per_clip)})
        frames = read_frames(info.path, indices, info.fps)
        batch.extend(encoder.preprocess(frames[i]) for i in indices)
    return np.stack(batch[:count]).astype(np.float32)


def train_video(clip_lists: list[str], encoder_spec: str, out_dir: str | Path, *, config: HeadTrainConfig,
                sampling: WindowSampling, protocol: LabelProtocol, fps: float | None = None,
                variants: list[tuple[str, str]] | None = None, resume: bool = False, progress: bool = True,
                encoder: FrameEncoder | None = None) -> VideoRun:
    """Train + cross-validate a temporal head, save it, export encoder and head for the demo."""
    config.validate()
    run_dir = Path(out_dir)
    settings = {"clips": [str(Path(c).resolve()) for c in clip_lists], "encoder": encoder_spec,
                "config": dataclasses.asdict(config), "sampling": sampling.to_dict(),
                "protocol": dataclasses.asdict(protocol), "fps": fps}
    if (run_dir / CONFIG_FILE).is_file():
        previous = read_json(run_dir / CONFIG_FILE)
        if not resume:
            raise UserError(f"{run_dir} already holds a video run; pass --resume to continue it or --out NEW_DIR")
        if previous != settings:
            raise UserError(f"{run_dir} was started with other settings ({CONFIG_FILE}); resume with the same "
                            "arguments or start a new --out")
    elif resume and run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"--resume: {run_dir} holds no video run ({CONFIG_FILE} is missing); drop --resume")
    read_clip_lists(clip_lists)  # a bad list fails now, not after the encoder loads (a proxy trains on first use)
    encoder = encoder or load_encoder(encoder_spec)
    dataset = build_dataset(clip_lists, encoder, sampling, protocol, fps=fps, progress=progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, settings)
    write_json(run_dir / "windows.json", dataset.describe())
    head, results = fit_and_evaluate(dataset, config, run_dir, encoder=encoder, progress=progress)
    save_head(run_dir / "head.pt", head, config.head, sampling.frames, encoder.embed_dim, config.head_params)
    artifacts = []
    if variants:
        artifacts = export_accident_model(
            run_dir, encoder, head, config.head, config.head_params, sampling, config.threshold, protocol.describe(),
            variants, real_frames(dataset, encoder), dataset.window_features()[:64],
            fps=fps or device.FOLDER_FPS)
    metrics = {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "encoder": encoder.describe(), "head": config.head, "config": dataclasses.asdict(config),
        "data": dataset.describe(), **results,
        "artifacts": [{"path": str(a.path), "backend": a.backend, "precision": a.precision,
                       "parity": a.manifest.get("parity", {}).get("passed")} for a in artifacts],
    }
    write_json(run_dir / METRICS_FILE, metrics)
    (run_dir / "result.md").write_text(result_markdown(metrics))
    return VideoRun(run_dir, metrics, artifacts)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def result_markdown(metrics: dict[str, Any]) -> str:
    encoder, data, cv = metrics["encoder"], metrics["data"], metrics.get("cross_validation")
    lines = [f"# Video accident head: {metrics['head']} on {encoder['name']}", "",
             f"- encoder: `{encoder['spec']}` ({encoder['kind']}, {encoder['embed_dim']}-d); it knows: {encoder['knows']}",
             f"- frames letterboxed to {encoder['preprocessing']['size']}² (never centre-cropped)",
             f"- window: {data['sampling']['frames']} frames, stride {data['sampling']['stride']} "
             f"({data['sampling']['length']} frames long)",
             f"- labelled protocol: {data['protocol']}",
             f"- windows: {data['counts']['windows']} ({data['counts']['accident']} accident, {data['counts']['normal']} normal) "
             f"from {data['counts']['clips']} clips", ""]
    if cv:
        pooled, alerts = cv["pooled"], cv["alerts"]
        lines += [f"## {cv['folds']}-fold cross-validation by clip (out-of-fold, pooled)", "",
                  "| accuracy | balanced acc. | ROC-AUC | AP | clips detected | normal clips w/o alert | mean time-to-accident |",
                  "|---|---|---|---|---|---|---|",
                  f"| {_fmt(pooled['accuracy'])} | {_fmt(pooled['balanced_accuracy'])} | {_fmt(pooled['roc_auc'])} | "
                  f"{_fmt(pooled['average_precision'])} | {alerts['detected']}/{alerts['positive_clips']} | "
                  f"{alerts['normal_clips_without_alert']}/{alerts['normal_clips']} | "
                  f"{_fmt(alerts['time_to_accident_s']['mean'])} s |", ""]
        lines += ["| fold | clips | windows | accuracy | ROC-AUC |", "|---|---|---|---|---|"]
        lines += [f"| {f['fold']} | {', '.join(f['clips'])} | {f['windows']} | {_fmt(f['accuracy'])} | {_fmt(f['roc_auc'])} |"
                  for f in cv["per_fold"]]
        lines.append("")
    lines += [f"Fit on all windows (training data, optimistic): accuracy {_fmt(metrics['train_fit']['accuracy'])}, "
              f"ROC-AUC {_fmt(metrics['train_fit']['roc_auc'])}.", ""]
    if metrics["artifacts"]:
        lines += ["Artifacts: " + ", ".join(f"{Path(a['path']).name} (parity {a['parity']})" for a in metrics["artifacts"]), ""]
    return "\n".join(lines)


def export_run(run_dir: Path, backends: list[str], precisions: list[str]) -> list[Any]:
    """Export a finished run's encoder (each backend × precision) and head again, e.g. for another device."""
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / "head.pt").is_file():
        raise UserError(f"{run_dir} has no trained temporal head ({CONFIG_FILE} / head.pt missing); "
                        f"train one with `edgeclip video train --out {run_dir}`")
    variants = parse_variants(backends, precisions)
    settings = read_json(run_dir / CONFIG_FILE)
    head, info = load_head(run_dir / "head.pt")
    encoder = load_encoder(settings["encoder"])
    sampling = WindowSampling.from_dict(settings["sampling"])
    protocol = LabelProtocol(**settings["protocol"])
    dataset = build_dataset(settings["clips"], encoder, sampling, protocol, fps=settings.get("fps"), progress=False)
    return export_accident_model(run_dir, encoder, head, info["name"], info.get("params", {}), sampling,
                                 float(settings["config"]["threshold"]), protocol.describe(), variants,
                                 real_frames(dataset, encoder), dataset.window_features()[:64],
                                 fps=settings.get("fps") or device.FOLDER_FPS)
