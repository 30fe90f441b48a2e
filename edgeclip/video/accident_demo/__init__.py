"""The dashcam accident demo as it runs on the device: torch-free, edgeclip-free.

Needs Python 3.8+ (tests/test_device_python38.py), numpy, Pillow, PyAV (or OpenCV) and the artifacts' runtime (onnxruntime,
openvino, or tensorrt + cuda-python). Copy this folder and a model directory (written by
`edgeclip video train` / `edgeclip video export`) to a Jetson, a Raspberry Pi or an Intel box:

    scp -r edgeclip/video/accident_demo runs/accident-proxy pi@raspberrypi.local:demo/
    ssh pi@raspberrypi.local 'cd demo && python3 -m accident_demo --model accident-proxy --video drive.mp4'

`edgeclip demo accident` runs exactly this code, here or (`--remote user@host`) on the device.
Modules: frames (decode + letterbox), models (the model directory; artifacts run with the device
runtime layer in `runtime/`, a link to edgeclip's devices/runner/ that copies carry as files), output
(annotated MP4), runner (sliding window, alerts, latency; the command line).
"""

from .frames import FOLDER_FPS, IMAGE_SUFFIXES, FolderSource, InputError, VideoSource, letterbox, open_source, preprocess_frame
from .models import MODEL_FILE, MODEL_FORMAT, Model, find_artifact, read_model_dir
from .output import VideoWriter, annotate
from .runner import Windows, hold_lookup, main, run_demo, softmax_accident, window_offsets

__all__ = ["FOLDER_FPS", "IMAGE_SUFFIXES", "MODEL_FILE", "MODEL_FORMAT", "FolderSource", "InputError", "Model",
           "VideoSource", "VideoWriter", "Windows", "annotate", "find_artifact", "hold_lookup", "letterbox", "main",
           "open_source", "preprocess_frame", "read_model_dir", "run_demo", "softmax_accident", "window_offsets"]
