"""The demo loop: video → exported image encoder → exported temporal head → alerts.

For every decoded frame: letterbox (shrink + pad, never crop: the accident may be at the edge) to
the encoder's input, encode the frames a window needs, and every `hop` frames run the head on the
window of T frame features spaced `stride` apart that ends at the newest frame. An alert (time,
frame, probability) fires when P(accident) rises past the threshold. Writes `alerts.json` and an
annotated MP4 (frame + probability bar + ALERT banner); prints per-frame latency and end-to-end
FPS. A frame that cannot be decoded is skipped and counted; the window holds the newest earlier
frame in its place.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from .frames import InputError, open_source, preprocess_frame
from .models import Model, find_artifact, read_model_dir
from .output import VideoWriter, annotate


def window_offsets(frames: int, stride: int = 0, span: int = 0) -> list[int]:
    """How far back from the window's newest frame each of its T frames lies, oldest first.

    stride s: T frames s apart ([s(T-1), ..., s, 0]); span L (no stride): T frames evenly spaced
    over the last L frames, first and last included.
    """
    if frames < 1 or (stride < 1 and span < 1):
        raise InputError(f"a window needs frames >= 1 and a stride or span >= 1 (got {frames}, {stride}, {span})")
    if stride >= 1:
        return [stride * (frames - 1 - i) for i in range(frames)]
    if frames == 1:
        return [0]
    return [int(round((span - 1) * (frames - 1 - i) / (frames - 1))) for i in range(frames)]


class Windows:
    """Which frames to encode and when to run the head, for windows ending every `hop` frames."""

    def __init__(self, offsets: list[int], hop: int) -> None:
        if hop < 1:
            raise InputError(f"hop must be >= 1 frame, got {hop}")
        self.offsets, self.hop, self.span = list(offsets), hop, offsets[0] + 1

    def evaluates(self, t: int) -> bool:
        """A window ends at frame t: the stream is long enough and t is on the hop grid."""
        return t >= self.span - 1 and (t - (self.span - 1)) % self.hop == 0

    def needed(self, index: int) -> bool:
        return any(self.evaluates(index + o) for o in set(self.offsets))


def hold_lookup(features: dict, index: int):
    """Feature of frame `index`, or of the newest earlier frame when it was skipped (None if none)."""
    for candidate in range(index, index - 64, -1):
        if candidate in features:
            return features[candidate]
    return None


def percentiles(values: list) -> dict:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "count": 0}
    p50, p90, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(np.mean(values)), "count": len(values)}


def softmax_accident(logits: np.ndarray) -> float:
    """P(accident) from the head's two logits [normal, accident]."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    shifted = np.exp(logits - logits.max())
    return float(shifted[-1] / shifted.sum())


def run_demo(model_dir: str, *, video: str | None = None, frames: str | None = None, backend: str = "onnx",
             precision: str | None = None, out_dir: str = "accident-demo", threshold: float | None = None,
             hop: int | None = None, threads: int = 0, write_video: bool = True, max_frames: int = 0,
             fps: float | None = None, providers: str = "CPUExecutionProvider", log=None) -> dict:
    """Run the demo over one stream; writes `<out_dir>/alerts.json` (+ annotated.mp4), returns the summary."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    config = read_model_dir(model_dir)
    window = config["window"]
    offsets = window_offsets(int(window["frames"]), int(window.get("stride") or 0), int(window.get("span") or 0))
    hop = int(hop) if hop is not None else int(window.get("hop") or window.get("stride") or 1)
    windows = Windows(offsets, hop)
    threshold = float(config.get("threshold", 0.5) if threshold is None else threshold)
    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold must lie in (0, 1), got {threshold}")
    if fps is not None and fps <= 0:  # a negative rate would date alerts before the stream started
        raise InputError(f"frame rate must be > 0, got {fps}; pass the stream's frames per second or leave --fps out")
    prep = config["encoder"]["preprocessing"]
    if int(prep.get("size", 0)) <= 0:
        raise InputError(f"{model_dir}: encoder frame size {prep.get('size')} is not positive; re-export the model")
    source = open_source(video, frames, fps)  # bad path / corrupt video: InputError before models load
    if source.num_frames is not None and source.num_frames < windows.span:
        raise InputError(f"{source.path} has {source.num_frames} frames, fewer than the model's window of "
                         f"{windows.span} frames; use a longer clip")
    encoder_dir = find_artifact(model_dir, config, "encoder", backend, precision)
    head_dir = find_artifact(model_dir, config, "head", backend, None)
    encoder, head = Model(encoder_dir, threads, providers), Model(head_dir, threads, providers)
    os.makedirs(out_dir, exist_ok=True)
    writer = VideoWriter(os.path.join(out_dir, "annotated.mp4"), source.fps) if write_video else None

    try:
        count, wall, per_frame, stage, windows_out, alerts = _stream(
            source, windows, offsets, prep, encoder, head, writer, threshold, max_frames, log)
    except BaseException:
        if writer is not None:  # nothing half-written may look like a result
            writer.abort()
        raise
    if count == 0 or (not windows_out and not max_frames):
        if writer is not None:
            writer.abort()
        if count == 0:
            raise InputError(f"no frame of {source.path} could be decoded ({len(source.skipped)} unreadable); check the file")
        raise InputError(f"{source.path} has {count} readable frames, fewer than the model's window of {windows.span} "
                         "frames; use a longer clip")
    video_path = writer.close() if writer is not None else None
    summary = {
        "source": source.path, "model": model_dir, "backend": backend, "encoder_artifact": encoder_dir,
        "head_artifact": head_dir, "threshold": threshold, "hop": hop, "window": {**window, "offsets": offsets},
        "fps_source": source.fps, "frames": count, "skipped_frames": len(source.skipped), "skipped": source.skipped[:50],
        "encoded_frames": len(stage["encoder"]), "windows": len(windows_out),
        "latency_ms": {"per_frame": percentiles(per_frame), **{name: percentiles(v) for name, v in stage.items()}},
        "per_frame_ms": [round(v, 3) for v in per_frame],  # the latency plot of `edgeclip demo accident --serve`
        "end_to_end_fps": count / wall if wall > 0 else None, "wall_s": wall,
        "alerts": alerts, "probabilities": windows_out, "annotated_video": video_path,
    }
    tmp = os.path.join(out_dir, ".alerts.json.part")
    with open(tmp, "w") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(tmp, os.path.join(out_dir, "alerts.json"))
    return summary


def _stream(source, windows: Windows, offsets: list[int], prep: dict, encoder: Model, head: Model, writer,
            threshold: float, max_frames: int, log) -> tuple:
    """The per-frame loop: decode, encode the frames windows need, run the head, alert, annotate."""
    features, windows_out, alerts = {}, [], []
    stage = {"decode": [], "preprocess": [], "encoder": [], "head": [], "output": []}
    per_frame, count, above, probability = [], 0, False, None
    started = mark = time.perf_counter()
    for index, time_s, image in source.frames():
        now = time.perf_counter()
        stage["decode"].append((now - mark) * 1e3)
        if windows.needed(index):
            batch = preprocess_frame(image, prep)[None]
            encoded_at = time.perf_counter()
            stage["preprocess"].append((encoded_at - now) * 1e3)
            feature = np.asarray(encoder.run(batch), dtype=np.float32).reshape(-1)
            features[index] = feature / max(float(np.linalg.norm(feature)), 1e-12)  # as in training (features.py)
            stage["encoder"].append((time.perf_counter() - encoded_at) * 1e3)
            for old in [k for k in features if k < index - windows.span - 64]:
                del features[old]
        if windows.evaluates(index):
            stack = [hold_lookup(features, index - offset) for offset in offsets]
            if all(f is not None for f in stack):
                head_at = time.perf_counter()
                probability = softmax_accident(head.run(np.stack(stack)[None].astype(np.float32)))
                stage["head"].append((time.perf_counter() - head_at) * 1e3)
                record = {"frame": index + 1, "time_s": round(time_s, 3), "probability": round(probability, 4)}
                windows_out.append(record)
                if probability >= threshold and not above:
                    alerts.append(record)
                    log(f"ALERT at {time_s:.2f} s (frame {index + 1}): accident probability {probability:.2f}")
                above = probability >= threshold
        if writer is not None:
            output_at = time.perf_counter()
            writer.write(annotate(image, probability, threshold, f"frame {index + 1}  t={time_s:.2f}s"))
            stage["output"].append((time.perf_counter() - output_at) * 1e3)
        mark = time.perf_counter()
        per_frame.append((mark - now) * 1e3 + stage["decode"][-1])
        count += 1
        if max_frames and count >= max_frames:
            break
    return count, time.perf_counter() - started, per_frame, stage, windows_out, alerts


def _mean(stats: dict) -> str:
    return "-" if stats["mean"] is None else f"{stats['mean']:.2f}"


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="accident_demo", description="Dashcam accident demo on this device (exported encoder + temporal head; no torch).",
        epilog="example: python3 -m accident_demo --model accident-model --video drive.mp4 --backend onnx --out demo")
    parser.add_argument("--model", required=True, help="model directory (accident_model.json + artifacts/)")
    parser.add_argument("--video", help="video file (mp4, ...)")
    parser.add_argument("--frames", help="folder of frame images, in file-name order")
    # No fixed choices: the model directory says which backends it was exported for (find_artifact lists them).
    parser.add_argument("--backend", default="onnx", help="backend of the exported artifacts to run (artifacts/encoder-<backend>-*)")
    parser.add_argument("--precision", help="encoder precision (default: fp32 if exported, else the one there is)")
    parser.add_argument("--out", default="accident-demo", help="output folder for alerts.json and annotated.mp4")
    parser.add_argument("--threshold", type=float, help="alert threshold on P(accident) (default: the model's)")
    parser.add_argument("--hop", type=int, help="run the head every N frames (default: the window stride)")
    parser.add_argument("--fps", type=float, help="frame rate of a frame folder (default 20) or override the video's")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (0 = runtime default)")
    parser.add_argument("--providers", default="CPUExecutionProvider", help="onnxruntime providers in order")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = whole stream)")
    parser.add_argument("--no-video", action="store_true", help="skip the annotated MP4")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line on stdout")
    args = parser.parse_args(argv)
    try:
        summary = run_demo(args.model, video=args.video, frames=args.frames, backend=args.backend,
                           precision=args.precision, out_dir=args.out, threshold=args.threshold, hop=args.hop,
                           threads=args.threads, write_video=not args.no_video, max_frames=args.max_frames,
                           fps=args.fps, providers=args.providers)
    except InputError as exc:
        print(f"accident_demo: error: {exc}", file=sys.stderr)
        return 2
    print(describe(summary), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0


def describe(summary: dict) -> str:
    lat = summary["latency_ms"]
    return (f"{summary['frames']} frames ({summary['skipped_frames']} unreadable, skipped), {summary['encoded_frames']} "
            f"encoded, {summary['windows']} windows, {len(summary['alerts'])} alert(s); per-frame latency p50 "
            f"{lat['per_frame']['p50']:.1f} ms p90 {lat['per_frame']['p90']:.1f} ms (encoder {_mean(lat['encoder'])} "
            f"ms/frame encoded, head {_mean(lat['head'])} ms/window); end-to-end {summary['end_to_end_fps']:.1f} FPS")


if __name__ == "__main__":
    sys.exit(main())
