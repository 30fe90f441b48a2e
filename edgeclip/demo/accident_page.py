"""The accident page: what `edgeclip demo accident` wrote (<out>/alerts.json + annotated.mp4), in the browser.

    GET  /                       static/accident.html (+ accident.js, demo.css)
    GET  /api/summary            the run's summary: P(accident) per window, threshold, alerts, latency
    GET  /media/annotated.mp4    the annotated video (byte ranges, so the browser can seek)

It reads the demo's own output files only — no model, no torch — so it serves on the device that
ran the demo as well as on the machine the output was copied to. Where they are at hand it also
says what is known about the clip (`clip_facts`): its labelled crash onset (from the model's
training record `windows.json`, or a `labels.txt` clip list beside the clip, as CCD ships), when
the first full window could be scored, and whether the model was trained on this very clip.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeclip.demo.server import DemoApp, Request, Response
from edgeclip.errors import UserError
from edgeclip.video.clips import read_clip_list

LABEL_LISTS = ("labels.txt",)  # clip lists beside a clip or one folder up (dashcam-clips/labels.txt → ccd/x.mp4)

# Keys the page needs; an alerts.json without them was not written by the demo (or by an older one).
REQUIRED_KEYS = ("threshold", "alerts", "probabilities", "latency_ms", "frames", "fps_source")
STAGES = ("per_frame", "decode", "preprocess", "encoder", "head", "output")


@dataclass
class AccidentOutput:
    out_dir: Path
    summary: dict[str, Any]
    video: Path | None  # the annotated MP4, when the run wrote one

    def page_data(self) -> dict[str, Any]:
        s = self.summary
        fps = float(s["fps_source"] or 0) or None
        return {
            "title": "edgeclip accident demo", "out_dir": str(self.out_dir),
            "source": Path(str(s.get("source", ""))).name, "model": Path(str(s.get("model", ""))).name,
            "backend": s.get("backend"), "encoder_artifact": Path(str(s.get("encoder_artifact", ""))).name,
            "threshold": float(s["threshold"]), "hop": s.get("hop"), "window": s.get("window"),
            "fps_source": fps, "frames": int(s["frames"]), "duration_s": int(s["frames"]) / fps if fps else None,
            "skipped_frames": s.get("skipped_frames", 0), "encoded_frames": s.get("encoded_frames"),
            "windows": s.get("windows"), "alerts": s["alerts"], "probabilities": s["probabilities"],
            "latency_ms": {k: s["latency_ms"][k] for k in STAGES if k in s["latency_ms"]},
            "per_frame_ms": s.get("per_frame_ms"),  # absent in outputs of demos before the page existed
            "end_to_end_fps": s.get("end_to_end_fps"), "measured_on": s.get("measured_on"),
            "video_url": "/media/annotated.mp4" if self.video is not None else None,
            "torch_loaded": "torch" in sys.modules,
            **clip_facts(s, fps),
        }


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).expanduser().resolve() if path else None
    except (OSError, RuntimeError, ValueError):
        return None


def _training_clips(model_dir: Path | None) -> dict[Path, dict[str, Any]]:
    """Clips the model was trained on (`edgeclip video train` writes them to <run>/windows.json)."""
    path = model_dir / "windows.json" if model_dir is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        clips = json.loads(path.read_text(encoding="utf-8")).get("clips") or []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}
    found = {}
    for clip in clips:
        resolved = _resolved(str(clip.get("path", ""))) if isinstance(clip, dict) else None
        if resolved is not None:
            found[resolved] = clip
    return found


def _listed_onset(clip: Path) -> tuple[int | None, str | None]:
    """(1-based onset frame, the list it came from) from a labels.txt beside the clip or one folder up."""
    for folder in (clip.parent, clip.parent.parent):
        for name in LABEL_LISTS:
            listing = folder / name
            if not listing.is_file():
                continue
            try:
                entries = read_clip_list(listing)
            except UserError:
                continue  # a list this page cannot read tells it nothing; the page still serves
            for entry in entries:
                if entry.path == clip:
                    return entry.accident_frame, str(listing)
    return None, None


def clip_facts(summary: dict[str, Any], fps: float | None) -> dict[str, Any]:
    """Crash onset, the first scorable moment and the training-clip caveat for the clip the demo ran on."""
    clip = _resolved(str(summary.get("source", "")))
    model_dir = _resolved(str(summary.get("model", "")))
    trained = _training_clips(model_dir)
    record = trained.get(clip) if clip is not None else None
    onset_frame, onset_from = (record.get("accident_frame"), "the model's training record (windows.json)") if record \
        else _listed_onset(clip) if clip is not None else (None, None)
    onset = None
    if isinstance(onset_frame, int) and onset_frame >= 1 and fps:
        onset = {"frame": onset_frame, "time_s": round((onset_frame - 1) / fps, 3), "from": onset_from}
    first = summary["probabilities"][0] if summary["probabilities"] else None
    window = summary.get("window") if isinstance(summary.get("window"), dict) else {}
    return {
        "onset": onset,
        "first_window": {"frame": first["frame"], "time_s": first["time_s"], "frames": window.get("length") or window.get("span")}
        if first else None,
        "trained_on_clip": record is not None,
        "training_clips": len(trained),
    }


def load_accident_output(out_dir: Path) -> AccidentOutput:
    """Read <out_dir>/alerts.json (and find annotated.mp4); every problem is a one-line UserError."""
    path = out_dir / "alerts.json"
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} does not exist; run `edgeclip demo accident --video X --model RUN_DIR --out {out_dir}` "
                        "first (or add --serve to that command)")
    if not path.is_file():
        raise UserError(f"{out_dir} has no alerts.json; pass the --out folder of an `edgeclip demo accident` run")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc.__class__.__name__}); run the demo again") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(summary, dict) or k not in summary]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; it was not written by `edgeclip demo accident` "
                        "(or by an older version): run the demo again")
    _check_probabilities(summary, path)
    video = out_dir / "annotated.mp4"
    return AccidentOutput(out_dir, summary, video if video.is_file() else None)


def _check_probabilities(summary: dict[str, Any], path: Path) -> None:
    for record in summary["probabilities"]:
        p = record.get("probability") if isinstance(record, dict) else None
        if not isinstance(p, (int, float)) or not math.isfinite(p) or not isinstance(record.get("time_s"), (int, float)):
            raise UserError(f"{path}: a window record {record!r} has no finite time_s/probability; run the demo again")


def build_app(output: AccidentOutput) -> DemoApp:
    app = DemoApp("edgeclip accident demo", "accident.html", max_body=0)
    data = output.page_data()

    @app.route("GET", "/api/info")  # the same everywhere: a test/health probe answers once the page is up
    def info(request: Request) -> Response:
        return Response.json({"title": data["title"], "torch_loaded": "torch" in sys.modules, "out_dir": data["out_dir"]})

    @app.route("GET", "/api/summary")
    def summary(request: Request) -> Response:
        return Response.json(data)

    @app.route("GET", "/media/annotated.mp4")
    def video(request: Request) -> Response:
        if output.video is None or not output.video.is_file():
            return Response.error("this run wrote no annotated video (--no-video)", 404)
        return Response.from_file(output.video, "video/mp4")

    return app
