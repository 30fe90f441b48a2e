"""The annotated MP4: frame + P(accident) bar + ALERT banner. Torch-free; part of the device demo package."""

from __future__ import annotations

import os

import numpy as np


def annotate(image, probability: float | None, threshold: float, label: str):
    """Frame + probability bar (top) + ALERT banner while the probability is at or above the threshold.

    Everything is drawn in the top of the frame: a browser's (or phone's) player draws its controls
    over the bottom, where an ALERT banner used to be hidden while the video played."""
    from PIL import ImageDraw, ImageFont

    image = image.copy()
    draw = ImageDraw.Draw(image)
    width, height = image.size
    bar = max(12, height // 24)
    try:
        font = ImageFont.load_default(size=max(12, height // 24))
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        font = ImageFont.load_default()
    draw.rectangle([0, 0, width, bar], fill=(30, 30, 30))
    if probability is not None:
        alert = probability >= threshold
        color = (220, 30, 30) if alert else (40, 180, 60)
        draw.rectangle([0, 0, int(width * probability), bar], fill=color)
        mark = int(width * threshold)
        draw.line([mark, 0, mark, bar], fill=(255, 255, 255), width=2)
    label_top = bar + 4
    if probability is not None:
        if alert:  # right under the bar; the frame's label moves below the banner
            draw.rectangle([0, bar, width, 3 * bar], fill=(200, 0, 0))
            draw.text((10, bar + bar // 2), f"ALERT  accident probability {probability:.2f}", fill=(255, 255, 255),
                      font=font)
            label_top = 3 * bar + 4
        label = f"{label}  P(accident) {probability:.2f}"
    draw.text((6, label_top), label, fill=(255, 255, 0), font=font)
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

    def abort(self) -> None:
        """Drop a half-written video: nothing incomplete may look like a result."""
        try:
            self.close(rename=False)
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)

    def close(self, rename: bool = True) -> str | None:
        if self.cv_writer is not None:
            self.cv_writer.release()
        elif self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
        else:
            return None
        if rename:
            os.replace(self.tmp, self.path)
        return self.path
