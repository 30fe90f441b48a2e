"""Files a careless or hostile user hands edgeclip: the fixtures of tests/test_bad_inputs.py.

`make_bad_input_world(root)` writes them all under `root` and returns {placeholder: path}; the
fuzz table refers to them as `{name}`. Everything is tiny (a 3-class ONNX MLP, the registered test
students) so the whole table runs in seconds.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np


class Trap:
    """Unpickling this calls os.system: what an untrusted checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny_onnx_artifact(directory: Path, *, precision: str = "fp32", quantized: bool = False) -> Path:
    """A 3-class ONNX MLP artifact (8x8 images) in the exporters' manifest format. `quantized`: the
    model is dynamically quantized to int8 whatever `precision` the manifest claims."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3)).eval()
    directory.mkdir(parents=True)
    model_file = directory / "model.onnx"
    torch.onnx.export(model, (torch.zeros(2, 3, 8, 8),), str(model_file), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = directory / "fp32.onnx"
        model_file.rename(fp32)
        quantize_dynamic(str(fp32), str(model_file), weight_type=QuantType.QInt8, op_types_to_quantize=["Gemm", "MatMul"])
        fp32.unlink()
    manifest = {
        "schema_version": 1, "name": "tiny", "kind": "classifier", "backend": "onnx", "precision": precision,
        "runtime_module": "onnxruntime", "status": "ready", "model_file": "model.onnx",
        "size_bytes": model_file.stat().st_size,
        "inputs": [{"name": "image", "shape": ["batch", 3, 8, 8], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": ["batch", 3], "dtype": "float32"}],
        "preprocessing": {"size": 8}, "class_names": ["a", "b", "c"], "parity": {"status": "ran", "passed": True},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def make_bad_input_world(root: Path) -> dict[str, str]:
    import torch

    from edgeclip.students.checkpoint import save_checkpoint
    from edgeclip.students.registry import create_student

    root.mkdir(parents=True, exist_ok=True)
    p: dict[str, Path] = {"root": root, "missing": root / "does-not-exist", "marker": root / "pwned"}

    def text(name: str, content: str | bytes) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        p[Path(name).stem.replace("-", "_").replace(".", "_")] = path

    text("file.txt", "I am a file, not a directory\n")
    text("nonutf8.txt", b"zero\n\xff\xfe\xfa one\n")
    text("nonutf8.yaml", b"name: x\n\xff\xfe: 1\n")
    text("empty.yaml", "")
    text("comments-only.yaml", "# nothing but a comment\n")
    text("list.yaml", "- teacher\n- student\n")
    text("bad.yaml", "teacher: [proxy-digits\n")
    text("unknown-key.yaml", "distill:\n  epoch: 3\n")
    text("bad-type.yaml", "distill:\n  epochs: many\n")
    text("classes-both.txt", "cat\ndog\n")
    text("clips-bad-line.txt", "clip_without_label\n")
    text("missing-clips.yaml", "video:\n  clips: [nowhere.txt]\n")
    # A pickle named .npz: np.load would need allow_pickle=True to open it.
    (root / "fake.npz").write_bytes(pickle.dumps({"images": np.zeros((2, 3, 8, 8))}))
    p["fake_npz"] = root / "fake.npz"
    np.savez(root / "nolabels.npz", images=np.zeros((2, 3, 8, 8), np.float32))
    p["nolabels_npz"] = root / "nolabels.npz"
    np.savez(root / "badshape.npz", images=np.zeros((2, 8), np.float32), labels=np.zeros(3, np.int64))
    p["badshape_npz"] = root / "badshape.npz"
    np.save(root / "array.npy", np.zeros(3))
    (root / "array.npy").rename(root / "array.npz")
    p["array_npz"] = root / "array.npz"

    # Artifacts: a good one, one whose model is int8 under an fp32 label, one labelled int8 that is not.
    p["tiny"] = tiny_onnx_artifact(root / "run" / "artifacts" / "onnx-fp32")
    p["int8_as_fp32"] = tiny_onnx_artifact(root / "mislabelled" / "artifacts" / "onnx-fp32", quantized=True)
    p["fp32_as_int8"] = tiny_onnx_artifact(root / "mislabelled2" / "artifacts" / "onnx-int8", precision="int8")
    for name, content in (("list-manifest", "[1, 2]"), ("corrupt-manifest", "{not json"),
                          ("keyless-manifest", '{"schema_version": 1}')):
        artifact = root / name / "artifacts" / "onnx-fp32"
        artifact.mkdir(parents=True)
        (artifact / "manifest.json").write_text(content)
        p[name.replace("-", "_")] = root / name
        p[name.replace("-", "_") + "_artifact"] = artifact
    # A killed export's leftover: a hidden temp sibling whose manifest already says ready.
    hidden = root / "killed" / "artifacts" / ".onnx-fp32.12345.abc.tmp"
    tiny_onnx_artifact(hidden)
    p["killed"] = root / "killed"

    # Checkpoints: a real tiny classifier and dual encoder, and booby-trapped ones.
    torch.manual_seed(0)
    model, spec = create_student("test_resnet", class_names=[str(i) for i in range(10)], image_size=16)
    save_checkpoint(root / "student", model, spec, student_name="test_resnet")
    p["student"] = root / "student"
    model, spec = create_student("test_distillclip")
    spec.extra.update({"logit_scale": 50.0, "templates": "digits", "data": "digits"})
    save_checkpoint(root / "dual" / "student", model, spec, student_name="test_distillclip")
    p["dual"] = root / "dual" / "student"
    trapped = root / "trapped-student"
    trapped.mkdir()
    (trapped / "spec.json").write_text((root / "student" / "spec.json").read_text())
    torch.save({"format": "edgeclip-student", "state_dict": {}, "payload": Trap(str(p["marker"]))}, trapped / "model.pt")
    p["trapped_student"] = trapped
    nospec = root / "student-without-spec"
    nospec.mkdir()
    (nospec / "model.pt").write_bytes((root / "student" / "model.pt").read_bytes())
    p["nospec"] = nospec
    list_teacher = root / "list-teacher"
    list_teacher.mkdir()
    (list_teacher / "teacher.json").write_text("[]")
    p["list_teacher"] = list_teacher
    cnn_teacher = root / "trapped-cnn-teacher"
    cnn_teacher.mkdir()
    (cnn_teacher / "teacher.json").write_text(json.dumps({
        "kind": "cnn_ce", "arch": "resnet10", "width": 0.25, "class_names": [str(i) for i in range(10)],
        "preprocess": {"size": 16}}))
    torch.save({"payload": Trap(str(p["marker"]))}, cnn_teacher / "model.pt")
    p["trapped_cnn_teacher"] = cnn_teacher
    torch.save({"payload": Trap(str(p["marker"]))}, root / "trapped-teacher.pt")
    p["trapped_teacher"] = root / "trapped-teacher.pt"
    return {key: str(value) for key, value in p.items()}
