#!/usr/bin/env python3
"""Dashcam accident demo on the device: video → exported image encoder → exported temporal head → alerts.

Standalone on purpose: Python 3.9+, numpy, Pillow, PyAV (or OpenCV) and the artifacts' runtime
(onnxruntime, openvino or tensorrt) — never torch, never edgeclip. Copy this one file and a model
directory (written by `edgeclip video train` / `edgeclip video export`) to a Jetson, a Raspberry Pi
or an Intel box and run

    python3 accident_runner.py --model accident-model --video drive.mp4 --backend onnx --out demo-out

`edgeclip demo accident` runs exactly this code (imported as `edgeclip.video.accident_runner`),
here or, with `--remote user@host`, on the device over ssh.

For every decoded frame: letterbox (shrink + pad, never crop: the accident may be at the edge) to
the encoder's input, encode the frames a window needs, and every `hop` frames run the head on the
window of T frame features spaced `stride` apart that ends at the newest frame. An alert (time,
frame, probability) fires when the accident probability rises past the threshold. Writes
`alerts.json` and an annotated MP4 (frame + probability bar + ALERT banner); prints per-frame
latency and end-to-end FPS. A frame that cannot be decoded is skipped and counted; the window then
holds the newest earlier frame in its place.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

MODEL_FILE = "accident_model.json"
MODEL_FORMAT = "edgeclip-accident-model"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FOLDER_FPS = 20.0  # frame folders carry no rate; DAD clips are 100 frames at 20 fps


class InputError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2."""


# -- frames -----------------------------------------------------------------------------------
class FolderSource:
    """A folder of frame images in file-name order; frame i is the i-th image (0-based)."""

    def __init__(self, path: str, fps: float | None = None) -> None:
        self.path, self.name = path, os.path.basename(os.path.normpath(path))
        self.files = sorted(f for f in glob.glob(os.path.join(path, "*"))
                            if f.lower().endswith(IMAGE_SUFFIXES) and not os.path.basename(f).startswith("."))
        if not self.files:
            raise InputError(f"frame folder {path} holds no images ({'/'.join(IMAGE_SUFFIXES)}); pass a folder of frames")
        self.fps = float(fps or FOLDER_FPS)
        self.num_frames = len(self.files)
        self.skipped: list[dict] = []

    def frames(self, wanted=None):
        """(index, time_s, RGB PIL image) per readable frame; `wanted(i)` False → not even read."""
        from PIL import Image

        for index, file in enumerate(self.files):
            if wanted is not None and not wanted(index):
                continue
            try:
                with Image.open(file) as image:
                    image.load()
                    rgb = image.convert("RGB")
            except (OSError, ValueError, SyntaxError) as exc:
                self.skipped.append({"frame": index + 1, "reason": f"{os.path.basename(file)}: {exc}"})
                continue
            yield index, index / self.fps, rgb


class VideoSource:
    """A video file decoded with PyAV (OpenCV when PyAV is missing); frame index from its timestamp."""

    def __init__(self, path: str, fps: float | None = None) -> None:
        self.path, self.name = path, os.path.basename(path)
        if not os.path.isfile(path):
            raise InputError(f"video {path} does not exist; check the path")
        self.skipped: list[dict] = []
        try:
            import av  # noqa: F401
            self.decoder = "pyav"
        except ImportError:
            self.decoder = "opencv"
        self.fps, self.num_frames = self._probe(fps)

    def _probe(self, fps: float | None) -> tuple[float, int | None]:
        if self.decoder == "opencv":
            import cv2

            capture = cv2.VideoCapture(self.path)
            ok = capture.isOpened()
            rate, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
            if not ok:
                raise InputError(f"video {self.path} cannot be opened (corrupt or unsupported); check the file")
            return float(fps or rate or 25.0), count or None
        import av

        try:
            with av.open(self.path) as container:
                if not container.streams.video:
                    raise InputError(f"{self.path} has no video stream; pass a dashcam video")
                stream = container.streams.video[0]
                rate = float(stream.average_rate or stream.guessed_rate or 0) or None
                return float(fps or rate or 25.0), int(stream.frames) or None
        except av.error.FFmpegError as exc:
            raise InputError(f"video {self.path} cannot be opened ({exc.__class__.__name__}: {exc}); "
                             "the file is corrupt or not a video") from None

    def frames(self, wanted=None):
        yield from (self._opencv_frames(wanted) if self.decoder == "opencv" else self._pyav_frames(wanted))

    def _pyav_frames(self, wanted):
        import av

        with av.open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            base, start = stream.time_base, stream.start_time or 0
            position = 0
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:  # one bad packet: skip it, count it, keep going
                    self.skipped.append({"frame": position + 1, "reason": f"{exc.__class__.__name__}: {exc}"})
                    position += 1
                    continue
                for frame in decoded:
                    if frame.pts is not None and base is not None:
                        position = max(position, int(round(float((frame.pts - start) * base) * self.fps)))
                    index, position = position, position + 1
                    if wanted is None or wanted(index):
                        yield index, index / self.fps, frame.to_image()

    def _opencv_frames(self, wanted):
        import cv2
        from PIL import Image

        capture = cv2.VideoCapture(self.path)
        index = 0
        while True:
            ok = capture.grab()
            if not ok:
                break
            if wanted is None or wanted(index):
                ok, bgr = capture.retrieve()
                if not ok:
                    self.skipped.append({"frame": index + 1, "reason": "OpenCV could not decode the frame"})
                else:
                    yield index, index / self.fps, Image.fromarray(bgr[:, :, ::-1])
            index += 1
        capture.release()


def open_source(video: str | None = None, frames: str | None = None, fps: float | None = None):
    """The stream to run on: a video file or a folder of frames (exactly one)."""
    if bool(video) == bool(frames):
        raise InputError("pass exactly one of --video FILE or --frames DIR")
    if frames:
        if not os.path.isdir(frames):
            raise InputError(f"frame folder {frames} does not exist; pass a folder of frame images")
        return FolderSource(frames, fps)
    return VideoSource(video, fps)


# -- preprocessing: the same arithmetic as edgeclip.data.preprocess.Preprocess (letterbox) ------
def letterbox(image, size: int, pad_value=(0, 0, 0), interpolation: str = "bicubic"):
    """Shrink the long side to `size` keeping the aspect ratio, pad to a centred square. Never crops."""
    from PIL import Image

    if size <= 0:
        raise InputError(f"frame size must be positive, got {size}; fix the encoder's preprocessing size")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputError(f"frame of size {width}x{height} cannot be letterboxed; the video stream is broken")
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
    canvas = Image.new("RGB", (size, size), tuple(pad_value))
    canvas.paste(image.resize((new_w, new_h), resample), ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def preprocess_frame(image, prep: dict) -> np.ndarray:
    """RGB PIL frame → float32 (3, S, S): letterbox, scale to [0,1], normalize by mean/std."""
    boxed = letterbox(image.convert("RGB"), int(prep["size"]), tuple(prep.get("pad_value", (0, 0, 0))),
                      prep.get("interpolation", "bicubic"))
    array = np.asarray(boxed, dtype=np.float32) / 255.0
    array = (array - np.asarray(prep["mean"], np.float32)) / np.asarray(prep["std"], np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


# -- windows ------------------------------------------------------------------------------------
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


# -- runtimes -----------------------------------------------------------------------------------
class Model:
    """One exported artifact (manifest.json + model file) run with its backend's runtime."""

    def __init__(self, artifact_dir: str, threads: int = 0, providers: str = "CPUExecutionProvider") -> None:
        path = os.path.join(artifact_dir, "manifest.json")
        if not os.path.isfile(path):
            raise InputError(f"{artifact_dir} has no manifest.json; copy the whole artifact directory")
        with open(path) as handle:
            self.manifest = json.load(handle)
        self.backend = self.manifest["backend"]
        self.input_name = self.manifest["inputs"][0]["name"]
        model_file = self.manifest.get("engine_file") if self.backend == "tensorrt" else self.manifest["model_file"]
        model_path = os.path.join(artifact_dir, model_file or "model.engine")
        if not os.path.isfile(model_path):
            hint = ("build the engine on this device first (export/tensorrt/build_engine.sh)" if self.backend == "tensorrt"
                    else "re-export it")
            raise InputError(f"model file {model_path} is missing; {hint}")
        try:
            if self.backend == "onnx":
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                wanted = [p.strip() for p in providers.split(",") if p.strip()]
                chosen = [p for p in wanted if p in ort.get_available_providers()] or ["CPUExecutionProvider"]
                self.session = ort.InferenceSession(model_path, options, providers=chosen)
                self.run = lambda x: self.session.run(None, {self.input_name: x})[0]
            elif self.backend == "openvino":
                import openvino as ov

                config = {"INFERENCE_NUM_THREADS": threads} if threads > 0 else {}
                hint = (self.manifest.get("runtime_hints") or {}).get("openvino_inference_precision")
                if hint:
                    config["INFERENCE_PRECISION_HINT"] = hint
                compiled = ov.Core().compile_model(model_path, "CPU", config)
                request, output = compiled.create_infer_request(), compiled.outputs[0]
                self.run = lambda x: np.array(request.infer({0: x})[output])
            elif self.backend == "tensorrt":
                self.run = _tensorrt_runner(model_path, self.input_name, self.manifest["outputs"][0]["name"])
            else:
                raise InputError(f"{artifact_dir} is a {self.backend} artifact; the device demo runs onnx, openvino or tensorrt")
        except ImportError as exc:
            raise InputError(f"the {self.backend} runtime is not installed here ({exc}); install it to run {artifact_dir}") from None


def _tensorrt_runner(engine_path: str, input_name: str, output_name: str):
    """A TensorRT 10 engine on the GPU with cuda-python buffers (no torch)."""
    import tensorrt as trt

    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart

    def check(result):
        error = result[0] if isinstance(result, tuple) else result
        if int(error) != 0:
            raise RuntimeError(f"CUDA error {error}")
        return result[1] if isinstance(result, tuple) and len(result) > 1 else None

    with open(engine_path, "rb") as handle:
        engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(handle.read())
    if engine is None:
        raise InputError(f"TensorRT cannot load {engine_path}; it was built for another GPU or TensorRT version: rebuild it here")
    context, stream = engine.create_execution_context(), check(cudart.cudaStreamCreate())

    def run(batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        context.set_input_shape(input_name, batch.shape)
        out = np.empty(tuple(context.get_tensor_shape(output_name)), dtype=np.float32)
        d_in, d_out = check(cudart.cudaMalloc(batch.nbytes)), check(cudart.cudaMalloc(out.nbytes))
        try:
            check(cudart.cudaMemcpyAsync(d_in, batch.ctypes.data, batch.nbytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
            context.set_tensor_address(input_name, int(d_in))
            context.set_tensor_address(output_name, int(d_out))
            if not context.execute_async_v3(stream):
                raise RuntimeError("TensorRT execution failed")
            check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
            check(cudart.cudaStreamSynchronize(stream))
        finally:
            cudart.cudaFree(d_in)
            cudart.cudaFree(d_out)
        return out

    return run


# -- the model directory --------------------------------------------------------------------------
def read_model_dir(model_dir: str) -> dict:
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isdir(model_dir):
        raise InputError(f"model directory {model_dir} does not exist; pass the run directory of `edgeclip video train`")
    if not os.path.isfile(path):
        raise InputError(f"{model_dir} has no temporal head ({MODEL_FILE} is missing); train one with "
                         f"`edgeclip video train --clips LIST --encoder SPEC --out {model_dir}`")
    try:
        with open(path) as handle:
            config = json.load(handle)
    except ValueError as exc:
        raise InputError(f"{path} is corrupt ({exc}); re-run `edgeclip video export`") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise InputError(f"{path} is not an edgeclip accident model; re-run `edgeclip video export`")
    return config


def find_artifact(model_dir: str, config: dict, part: str, backend: str, precision: str | None) -> str:
    """`artifacts/<part>-<backend>-<precision>`; precision None → fp32 if present, else the only one."""
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(model_dir, "artifacts", f"{part}-{backend}-*"))
                   if os.path.isfile(os.path.join(p, "manifest.json")))
    wanted = [f"{part}-{backend}-{precision}"] if precision else [f"{part}-{backend}-fp32", *found[:1]]
    for name in wanted:
        if name in found:
            return os.path.join(model_dir, "artifacts", name)
    what = "temporal head" if part == "head" else "image encoder"
    have = ", ".join(found) or "none"
    raise InputError(f"{model_dir} has no exported {what} for {backend}{'-' + precision if precision else ''} "
                     f"(found: {have}); run `edgeclip video export --model {model_dir} --backend {backend}`")


# -- output: annotated video ------------------------------------------------------------------------
def annotate(image, probability: float | None, threshold: float, label: str):
    """Frame + probability bar (top) + ALERT banner while the probability is at or above the threshold."""
    from PIL import ImageDraw

    image = image.copy()
    draw = ImageDraw.Draw(image)
    width, height = image.size
    bar = max(12, height // 24)
    draw.rectangle([0, 0, width, bar], fill=(30, 30, 30))
    if probability is not None:
        alert = probability >= threshold
        color = (220, 30, 30) if alert else (40, 180, 60)
        draw.rectangle([0, 0, int(width * probability), bar], fill=color)
        mark = int(width * threshold)
        draw.line([mark, 0, mark, bar], fill=(255, 255, 255), width=2)
        if alert:
            draw.rectangle([0, height - 3 * bar, width, height], fill=(200, 0, 0))
            draw.text((10, height - 2.5 * bar), f"ALERT  accident probability {probability:.2f}", fill=(255, 255, 255))
    draw.text((6, bar + 4), label, fill=(255, 255, 0))
    return image


class VideoWriter:
    """MP4 with PyAV (H.264 ultrafast, else MPEG-4 part 2), else OpenCV; written to a temp name, renamed at close."""

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.tmp, self.fps = path, path + ".part.mp4", fps
        self.container = self.stream = self.cv_writer = None

    def _open(self, width: int, height: int) -> None:
        try:
            import av

            self.container = av.open(self.tmp, "w")
            for codec, options in (("libx264", {"preset": "ultrafast"}), ("mpeg4", {})):
                if codec in av.codecs_available:
                    break
            self.stream = self.container.add_stream(codec, rate=int(round(self.fps)) or 25, options=options)
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        except ImportError:
            import cv2

            self.cv_writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))

    def write(self, image) -> None:
        width, height = image.size
        if width % 2 or height % 2:  # yuv420p needs even sizes
            image = image.crop((0, 0, width - width % 2, height - height % 2))
        if self.container is None and self.cv_writer is None:
            self._open(*image.size)
        array = np.asarray(image.convert("RGB"))
        if self.cv_writer is not None:
            self.cv_writer.write(np.ascontiguousarray(array[:, :, ::-1]))
            return
        import av

        for packet in self.stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> str | None:
        if self.cv_writer is not None:
            self.cv_writer.release()
        elif self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
        else:
            return None
        os.replace(self.tmp, self.path)
        return self.path


# -- the demo loop ----------------------------------------------------------------------------------
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
    hop = int(hop or window.get("hop") or window.get("stride") or 1)
    windows = Windows(offsets, hop)
    threshold = float(config.get("threshold", 0.5) if threshold is None else threshold)
    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold must lie in (0, 1), got {threshold}")
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
            features[index] = np.asarray(encoder.run(batch), dtype=np.float32).reshape(-1)
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
    wall = time.perf_counter() - started
    video_path = writer.close() if writer is not None else None
    if count == 0:
        raise InputError(f"no frame of {source.path} could be decoded ({len(source.skipped)} skipped); check the file")
    summary = {
        "source": source.path, "model": model_dir, "backend": backend, "encoder_artifact": encoder_dir,
        "head_artifact": head_dir, "threshold": threshold, "hop": hop, "window": {**window, "offsets": offsets},
        "fps_source": source.fps, "frames": count, "skipped_frames": len(source.skipped), "skipped": source.skipped[:50],
        "encoded_frames": len(stage["encoder"]), "windows": len(windows_out),
        "latency_ms": {"per_frame": percentiles(per_frame), **{name: percentiles(v) for name, v in stage.items()}},
        "end_to_end_fps": count / wall if wall > 0 else None, "wall_s": wall,
        "alerts": alerts, "probabilities": windows_out, "annotated_video": video_path,
    }
    tmp = os.path.join(out_dir, ".alerts.json.part")
    with open(tmp, "w") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(tmp, os.path.join(out_dir, "alerts.json"))
    lat = summary["latency_ms"]
    log(f"{count} frames ({len(source.skipped)} unreadable, skipped), {summary['encoded_frames']} encoded, "
        f"{len(windows_out)} windows, {len(alerts)} alert(s); per-frame latency p50 {lat['per_frame']['p50']:.1f} ms "
        f"p90 {lat['per_frame']['p90']:.1f} ms (encoder {_mean(lat['encoder'])} ms/frame encoded, head "
        f"{_mean(lat['head'])} ms/window); end-to-end {summary['end_to_end_fps']:.1f} FPS")
    return summary


def _mean(stats: dict) -> str:
    return "-" if stats["mean"] is None else f"{stats['mean']:.2f}"


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Dashcam accident demo on this device (exported encoder + temporal head; no torch).",
        epilog="example: python3 accident_runner.py --model accident-model --video drive.mp4 --backend onnx --out demo")
    parser.add_argument("--model", required=True, help="model directory (accident_model.json + artifacts/)")
    parser.add_argument("--video", help="video file (mp4, ...)")
    parser.add_argument("--frames", help="folder of frame images, in file-name order")
    parser.add_argument("--backend", default="onnx", choices=["onnx", "openvino", "tensorrt"])
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
        print(f"accident_runner: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
