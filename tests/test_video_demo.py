"""`edgeclip video train|export` and `edgeclip demo accident` end to end on tiny synthetic videos.

The encoder is the tiny random DistillCLIP test student (32×32): it knows nothing, so these tests
check behaviour (files, counts, parity between the PyTorch and the device pipeline, errors), not
accuracy.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeclip.cli import main
from edgeclip.video import accident_demo as device
from edgeclip.video.synthetic import write_clip, write_frame_folder

PACKAGE = Path(device.__file__).parent
TRAIN = ["--encoder", "test_distillclip", "--frames", "4", "--stride", "2", "--gap-s", "0.5", "--epochs", "2",
         "--folds", "2"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    lines = []
    for i in range(3):
        write_clip(root / f"crash{i}.mp4", frames=30, accident_frame=18)
        lines.append(f"crash{i}.mp4 1 19")
    for i in range(2):
        write_clip(root / f"normal{i}.mp4", frames=30)
        lines.append(f"normal{i}.mp4 0")
    write_frame_folder(root / "dad-like", frames=24, accident_frame=20)  # DAD style: accident in the last frames
    lines.append("dad-like 1")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def model_dir(clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "accident"
    assert main(["video", "train", "--clips", str(clips / "list.txt"), *TRAIN, "--out", str(out),
                 "--backend", "onnx,openvino"]) == 0
    return out


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_a_deployable_model(model_dir):
    config = json.loads((model_dir / device.MODEL_FILE).read_text())
    assert config["window"] == {"frames": 4, "stride": 2, "span": 0, "length": 7, "hop": 2}
    assert config["encoder"]["preprocessing"]["resize_mode"] == "letterbox"
    names = sorted(p.name for p in (model_dir / "artifacts").iterdir())
    assert names == ["encoder-onnx-fp32", "encoder-openvino-fp32", "head-onnx-fp32", "head-openvino-fp32"]
    for name in names:
        assert json.loads((model_dir / "artifacts" / name / "manifest.json").read_text())["parity"]["passed"] is True
    metrics = json.loads((model_dir / "metrics.json").read_text())
    cv = metrics["cross_validation"]
    assert cv["by"] == "clip" and cv["folds"] == 2
    fold_clips = [set(f["clips"]) for f in cv["per_fold"]]
    assert not fold_clips[0] & fold_clips[1] and len(fold_clips[0] | fold_clips[1]) == 6
    assert metrics["data"]["counts"]["accident"] > 0 and metrics["data"]["counts"]["normal"] > 0
    assert "labelled protocol" in (model_dir / "result.md").read_text()


def test_rerun_needs_resume_and_resume_reuses_finished_folds(clips, model_dir, capsys):
    code, _, err = run_cli(["video", "train", "--clips", str(clips / "list.txt"), *TRAIN, "--out", str(model_dir)], capsys)
    assert code == 2 and "pass --resume" in err
    before = (model_dir / "folds" / "fold-0.json").stat().st_mtime_ns
    code, _, err = run_cli(["video", "train", "--clips", str(clips / "list.txt"), *TRAIN, "--out", str(model_dir),
                            "--resume", "--backend", "onnx"], capsys)
    assert code == 0 and (model_dir / "folds" / "fold-0.json").stat().st_mtime_ns == before
    code, _, err = run_cli(["video", "train", "--clips", str(clips / "list.txt"), *TRAIN[:-1], "3", "--out",
                            str(model_dir), "--resume"], capsys)
    assert code == 2 and "other settings" in err


def test_demo_matches_the_pytorch_pipeline(clips, model_dir, tmp_path, capsys):
    import torch

    from edgeclip.video.features import load_encoder
    from edgeclip.video.heads import load_head
    from edgeclip.video.io import read_frames

    out = tmp_path / "out"
    code, stdout, _ = run_cli(["demo", "accident", "--video", str(clips / "crash0.mp4"), "--model", str(model_dir),
                               "--out", str(out)], capsys)
    assert code == 0 and "end-to-end" in stdout and "FPS" in stdout
    summary = json.loads((out / "alerts.json").read_text())
    assert summary["frames"] == 30 and summary["skipped_frames"] == 0
    assert summary["encoded_frames"] == 15 and summary["windows"] == 12  # hop 2: windows end at 6, 8, ..., 28
    # The same windows through PyTorch: the encoder and head the artifacts were exported from.
    encoder, (head, _) = load_encoder("test_distillclip"), load_head(model_dir / "head.pt")
    frames = read_frames(clips / "crash0.mp4", list(range(30)))
    feats = encoder.encode(np.stack([encoder.preprocess(frames[i]) for i in range(30)]))
    for record in summary["probabilities"]:
        end = record["frame"] - 1
        window = torch.from_numpy(feats[[end - 6, end - 4, end - 2, end]][None])
        expected = torch.softmax(head(window), dim=-1)[0, 1].item()
        assert record["probability"] == pytest.approx(expected, abs=2e-3)
    alerts = summary["alerts"]
    above = [r for r in summary["probabilities"] if r["probability"] >= summary["threshold"]]
    assert (len(alerts) > 0) == (len(above) > 0)
    import av

    with av.open(str(out / "annotated.mp4")) as video:
        decoded = list(video.decode(video=0))
    assert len(decoded) == 30 and decoded[0].width == 64
    assert not list(out.glob("*.part*"))


def test_demo_every_frame_with_openvino_and_a_frame_folder(clips, model_dir, tmp_path, capsys):
    folder = write_frame_folder(tmp_path / "frames", frames=16)
    (folder / "009.png").write_bytes(b"broken")
    out = tmp_path / "out"
    code, stdout, _ = run_cli(["demo", "accident", "--frames", str(folder), "--model", str(model_dir), "--backend",
                               "openvino", "--hop", "1", "--no-video", "--out", str(out)], capsys)
    assert code == 0
    summary = json.loads((out / "alerts.json").read_text())
    assert summary["frames"] == 15 and summary["skipped_frames"] == 1 and summary["skipped"][0]["frame"] == 9
    # A window ends at every decoded frame from index 6 on (9 of them: frame 9 is unreadable, later windows hold frame 8)
    assert summary["encoded_frames"] == 15 and summary["windows"] == 9
    assert summary["annotated_video"] is None and not (out / "annotated.mp4").exists()
    assert "1 unreadable (skipped)" in stdout


def test_demo_bad_input_is_one_line_exit_2(clips, model_dir, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00garbage" * 50)
    short = write_clip(tmp_path / "short.mp4", frames=5)  # the window spans 7 frames
    no_head = tmp_path / "no-head"
    shutil.copytree(model_dir / "artifacts", no_head / "artifacts")
    zero = tmp_path / "zero"
    shutil.copytree(model_dir, zero)
    config = json.loads((zero / device.MODEL_FILE).read_text())
    config["encoder"]["preprocessing"]["size"] = 0
    (zero / device.MODEL_FILE).write_text(json.dumps(config))
    video = str(clips / "crash0.mp4")
    cases = {
        "missing.mp4 does not exist": ["--video", str(tmp_path / "missing.mp4"), "--model", str(model_dir)],
        "corrupt.mp4 cannot be opened": ["--video", str(corrupt), "--model", str(model_dir)],
        "fewer than the model's window of 7": ["--video", str(short), "--model", str(model_dir)],
        "has no temporal head": ["--video", video, "--model", str(no_head)],
        "frame size 0 is not positive": ["--video", video, "--model", str(zero)],
        "no exported image encoder for tensorrt": ["--video", video, "--model", str(model_dir), "--backend", "tensorrt"],
        "--hop must be >= 1": ["--video", video, "--model", str(model_dir), "--hop", "0"],
        "--fps must be > 0": ["--video", video, "--model", str(model_dir), "--fps", "-5"],
    }
    for message, args in cases.items():
        code, _, err = run_cli(["demo", "accident", *args, "--out", str(tmp_path / "o")], capsys)
        assert code == 2, message
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o" / "alerts.json").exists() and not list((tmp_path / "o").glob("*.mp4*"))
    # The device runner refuses a rate that is not positive too (the standalone path, without the CLI's check).
    with pytest.raises(device.InputError, match="frame rate must be > 0"):
        device.run_demo(str(model_dir), video=video, fps=0.0, out_dir=str(tmp_path / "o"))


def test_train_bad_input_is_one_line_exit_2(clips, tmp_path, capsys):
    unknown = tmp_path / "unknown.txt"
    unknown.write_text(f"{clips / 'crash0.mp4'} 1 19\n{clips / 'normal0.mp4'} sideways\n")
    short_list = tmp_path / "short.txt"
    write_clip(tmp_path / "short.mp4", frames=5)
    short_list.write_text(f"{clips / 'crash0.mp4'} 1 19\nshort.mp4 0\n")
    listing = str(clips / "list.txt")
    cases = {
        "unknown.txt:2: unknown label 'sideways'": ["--clips", str(unknown), *TRAIN],
        "has 5 frames, shorter than the window of 7": ["--clips", str(short_list), *TRAIN],
        "frames must be >= 1": ["--clips", listing, *TRAIN, "--frames", "0"],
        "unknown temporal head 'lstm'": ["--clips", listing, *TRAIN, "--head", "lstm"],
        "unknown encoder 'no_such_tower'": ["--clips", listing, "--encoder", "no_such_tower", "--frames", "4"],
    }
    for message, args in cases.items():
        code, _, err = run_cli(["video", "train", *args, "--out", str(tmp_path / "run")], capsys)
        assert code == 2, message
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_artifact_encoder_and_video_export(clips, model_dir, tmp_path, capsys):
    artifact = model_dir / "artifacts" / "encoder-onnx-fp32"
    out = tmp_path / "from-artifact"
    code, _, _ = run_cli(["video", "train", "--clips", str(clips / "list.txt"), "--encoder", str(artifact), "--head",
                          "mean-mlp", *TRAIN[2:], "--out", str(out)], capsys)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["encoder"]["kind"] == "artifact"
    # The deployed encoder is that very artifact, copied.
    assert (out / "artifacts" / "encoder-onnx-fp32" / "model.onnx").read_bytes() == (artifact / "model.onnx").read_bytes()
    code, _, err = run_cli(["video", "export", "--model", str(out), "--backend", "openvino"], capsys)
    assert code == 2 and "cannot be re-exported to openvino-fp32" in err
    code, stdout, _ = run_cli(["video", "export", "--model", str(model_dir), "--backend", "onnx", "--precision", "fp16"],
                              capsys)
    assert code == 0 and "encoder-onnx-fp16" in stdout and (model_dir / "artifacts" / "encoder-onnx-fp16").is_dir()
    code, _, err = run_cli(["video", "export", "--model", str(tmp_path), "--backend", "onnx"], capsys)
    assert code == 2 and "no trained temporal head" in err
    assert f"--out {tmp_path}`" in err and "{run_dir}" not in err  # the fix names the directory given


def test_device_package_needs_no_torch_or_edgeclip(model_dir, clips, tmp_path, no_torch_env):
    # runtime/ (the device runtime layer, a link to devices/runner/) is checked in test_runner.py
    allowed = {"__future__", "argparse", "glob", "importlib", "json", "os", "sys", "time", "types", "numpy", "PIL", "av",
               "cv2", "onnxruntime", "openvino", "tensorrt", "cuda"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        assert imported <= allowed, (path.name, imported - allowed)
    device_dir = tmp_path / "device"
    shutil.copytree(PACKAGE, device_dir / "accident_demo", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "accident_demo", "--model", str(model_dir), "--video",
                             str(clips / "normal0.mp4"), "--out", "out", "--json"], cwd=device_dir, env=no_torch_env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 30 and (device_dir / "out" / "annotated.mp4").is_file()
    bad = subprocess.run([sys.executable, "-m", "accident_demo", "--model", str(tmp_path), "--video", "x.mp4"],
                         cwd=device_dir, env=no_torch_env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("accident_demo: error:")


def test_remote_demo_over_injected_ssh(model_dir, clips, tmp_path, monkeypatch, no_torch_env):
    from edgeclip.bench.remote import SshTransport
    from edgeclip.errors import UserError
    from edgeclip.video.remote import demo_remote

    monkeypatch.setenv("PYTHONPATH", no_torch_env["PYTHONPATH"])  # the "device" has no torch or edgeclip
    transport = SshTransport(host="pi@device", ssh=("bash", "-c"), copy=("cp", "-r"), dest_prefix="")
    remote_dir = tmp_path / "device-work"
    summary = demo_remote("pi@device", model_dir, video=str(clips / "crash1.mp4"), out_dir=tmp_path / "out",
                          python=sys.executable, remote_dir=str(remote_dir), transport=transport)
    assert summary["measured_on"] == "pi@device" and summary["frames"] == 30
    assert (tmp_path / "out" / "alerts.json").is_file() and (tmp_path / "out" / "annotated.mp4").is_file()
    assert not remote_dir.exists()  # cleaned up on the device
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match="has no temporal head"):  # checked here, before anything is copied
        demo_remote("pi@device", tmp_path / "nothing", video=str(clips / "crash1.mp4"), python=sys.executable,
                    remote_dir=str(remote_dir), transport=transport)
    short = write_clip(tmp_path / "short.mp4", frames=5)
    with pytest.raises(UserError, match="on pi@device: .*fewer than the model's window"):  # the device's own error
        demo_remote("pi@device", model_dir, video=str(short), out_dir=tmp_path / "out2", python=sys.executable,
                    remote_dir=str(remote_dir), transport=transport)
    assert not remote_dir.exists()


def test_remote_demo_builds_tensorrt_engines_on_the_device_first(model_dir, clips, tmp_path, monkeypatch, fake_trtexec,
                                                                  capsys):
    from edgeclip.bench.remote import SshTransport
    from edgeclip.errors import UserError
    from edgeclip.video.remote import demo_remote

    trt_model = tmp_path / "trt-model"
    shutil.copytree(model_dir, trt_model)
    code, _, _ = run_cli(["video", "export", "--model", str(trt_model), "--backend", "tensorrt"], capsys)
    assert code == 0
    for part in ("encoder", "head"):
        assert json.loads((trt_model / "artifacts" / f"{part}-tensorrt-fp32" / "manifest.json").read_text())["status"] \
            == "needs_target_build"
    log = tmp_path / "trtexec.log"
    monkeypatch.setenv("FAKE_TRTEXEC_LOG", str(log))
    transport = SshTransport(host="jetson", ssh=("bash", "-c"), copy=("cp", "-r"), dest_prefix="")
    # The stand-in device has trtexec but no TensorRT Python runtime: both engines are built and checked
    # there, then the demo says what is missing.
    with pytest.raises(UserError, match="on jetson: the tensorrt runtime is not installed here"):
        demo_remote("jetson", trt_model, video=str(clips / "crash0.mp4"), backend="tensorrt", python=sys.executable,
                    remote_dir=str(tmp_path / "device-work"), transport=transport, out_dir=tmp_path / "out")
    built = [line for line in log.read_text().splitlines() if "--saveEngine" in line]
    assert len(built) == 2 and any("4x" in line for line in built)  # the head's (batch)x4x<dim> input profile
    assert not (tmp_path / "device-work").exists()
