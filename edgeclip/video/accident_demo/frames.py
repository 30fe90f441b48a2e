"""Frames from a video file (PyAV, else OpenCV) or a folder of images, and the letterbox preprocessing.

Torch-free and edgeclip-free (numpy + Pillow + PyAV/OpenCV): part of the device demo package.
"""

from __future__ import annotations

import glob
import os

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FOLDER_FPS = 20.0  # frame folders carry no rate; DAD clips are 100 frames at 20 fps


class InputError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2."""


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
        self.last_index = -1

    def frames(self, wanted=None):
        """(index, time_s, RGB PIL image) per readable frame; `wanted(i)` False → not even read."""
        from PIL import Image

        for index, file in enumerate(self.files):
            self.last_index = index
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
        self.last_index = -1  # of the newest frame decoded so far
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
        """Frame index from the timestamp, so a frame the decoder drops or fails on leaves a gap that is counted."""
        import av

        with av.open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            base, start = stream.time_base, stream.start_time or 0
            position, error = 0, None  # next expected index; why the last packet failed
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:  # one bad packet: skip it, count it, keep going
                    error = f"{exc.__class__.__name__}: {exc}"
                    continue
                for frame in decoded:
                    index = position
                    if frame.pts is not None and base is not None:
                        index = max(position, int(round(float((frame.pts - start) * base) * self.fps)))
                    for missing in range(position, index):
                        self.skipped.append({"frame": missing + 1, "reason": error or "missing: the decoder dropped it"})
                    error, position, self.last_index = None, index + 1, index
                    if wanted is None or wanted(index):
                        yield index, index / self.fps, frame.to_image()
            if error:
                self.skipped.append({"frame": position + 1, "reason": error})

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
            self.last_index = index
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
    """RGB PIL frame → float32 (3, S, S): letterbox, scale to [0,1], normalize by mean/std. An encoder
    with fused preprocessing (`fused_frame` [H, W]) does that in its graph: it gets the uint8 (H, W, 3)
    frame, stretched to its size only when the stream's frames differ (PIL bilinear, as edgeclip does)."""
    frame = prep.get("fused_frame")
    if frame:
        image = image.convert("RGB")
        if image.size != (int(frame[1]), int(frame[0])):
            from PIL import Image

            image = image.resize((int(frame[1]), int(frame[0])), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)
    boxed = letterbox(image.convert("RGB"), int(prep["size"]), tuple(prep.get("pad_value", (0, 0, 0))),
                      prep.get("interpolation", "bicubic"))
    array = np.asarray(boxed, dtype=np.float32) / 255.0
    array = (array - np.asarray(prep["mean"], np.float32)) / np.asarray(prep["std"], np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
