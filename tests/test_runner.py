"""The standalone on-device runner (no torch, no edgeclip) and the SSH flow with injected local commands."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeclip.bench.memory import RUNNER_PATH
from edgeclip.bench.remote import SshTransport, bench_remote
from edgeclip.bench.report import Report, ReportRow
from edgeclip.bench.report_schema import report_problems
from edgeclip.errors import UserError

TIMING_ARGS = ["--warmup", "1", "--iterations", "5", "--max-seconds", "2", "--throughput-batch", "4"]
RUNTIME_ARGS = [*TIMING_ARGS, "--no-roof"]  # the roof has its own tests below
ROOF_SIZE_ARGS = ["--roof-size", "64"]  # the runner's roof method at a size that takes milliseconds


pytestmark = pytest.mark.usefixtures("private_cache")


def make_artifact(directory: Path, *, batch: int | str = "batch", seed: int = 0, name: str = "tiny",
                  status: str = "ready", size: int = 8, fixed_size: bool = False, role: str = "student",
                  tensorrt: bool = False) -> Path:
    """A tiny classifier artifact: conv + global pool (runs at any input size) or flatten + linear
    (`fixed_size`: one size only); `tensorrt`: a built (fake) TensorRT engine of it, as the kit leaves one."""
    torch.manual_seed(seed)
    if fixed_size:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, 3)).eval()
    else:
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                    torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    directory.mkdir(parents=True)
    dynamic = {} if isinstance(batch, int) else {"image": {0: "batch"}, "logits": {0: "batch"}}
    example = torch.zeros(batch if isinstance(batch, int) else 2, 3, size, size)
    torch.onnx.export(model, (example,), str(directory / "model.onnx"), input_names=["image"], output_names=["logits"],
                      dynamic_axes=dynamic, dynamo=False)
    manifest = {"schema_version": 1, "name": name, "kind": "classifier", "backend": "onnx", "precision": "fp32",
                "runtime_module": "onnxruntime", "role": role, "flops": 2 * 4 * 27 * (size - 2) ** 2,
                "status": status, "next_step": "build the engine on the device", "model_file": "model.onnx",
                "inputs": [{"name": "image", "shape": [batch, 3, size, size], "dtype": "float32"}],
                "outputs": [{"name": "logits", "shape": [batch, 3], "dtype": "float32"}],
                "preprocessing": {"size": size}, "class_names": ["a", "b", "c"], "parity": {"passed": True}}
    if tensorrt:  # tests/support/fake_trtexec.py's engine: a marker line + the ONNX
        (directory / "model.engine").write_bytes(b"FAKETRT\n" + (directory / "model.onnx").read_bytes())
        manifest.update(backend="tensorrt", runtime_module="tensorrt", engine_file="model.engine")
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def eval_npz(path: Path, n: int = 10) -> Path:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, n)
    np.savez(path, images=rng.standard_normal((n, 3, 8, 8)).astype(np.float32), labels=labels,
             teacher_logits=np.eye(3)[labels])
    return path


def expected_accuracy(artifact: Path, data: Path) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    npz = np.load(data)
    fixed = session.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) else len(npz["labels"])
    preds = []
    for i in range(0, len(npz["labels"]), step):
        chunk = npz["images"][i:i + step]
        if len(chunk) < step:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
        preds.append(session.run(None, {"image": chunk})[0][: len(npz["labels"]) - i].argmax(1))
    return float((np.concatenate(preds) == npz["labels"]).mean())


def run_runner(args: list[str], env: dict) -> list[dict]:
    result = subprocess.run([sys.executable, str(RUNNER_PATH), *args], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def rows_are_valid(rows: list[dict]) -> list[str]:
    return report_problems(Report([ReportRow.from_dict(r) for r in rows]).to_dict() | {"rows": rows})


def test_runner_imports_nothing_but_stdlib_numpy_and_runtimes():
    """The runner and its runtime layer (artifact_runtime.py + runtime_<module>.py), roof and equal-size
    helpers ship to the device as files."""
    runner_dir = RUNNER_PATH.parent
    helpers = [runner_dir / name for name in ("artifact_runtime.py", "gemm_roof.py", "equal_size.py", "onnx_proto.py")]
    for path in [RUNNER_PATH, *helpers, *sorted(runner_dir.glob("runtime_*.py"))]:
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= {"__future__", "argparse", "importlib", "json", "os", "platform", "resource", "shutil",
                            "subprocess", "sys", "tempfile", "time", "types", "typing", "numpy", "onnxruntime", "openvino",
                            "tensorrt", "cuda",  # never `onnx`: onnx_proto.py writes the ONNX bytes the device needs
                            "zero_shot"}, path.name  # the runner folder's own zero-shot module (stdlib + numpy)


def test_runner_benchmarks_and_evaluates_without_torch(tmp_path, no_torch_env):
    artifact = make_artifact(tmp_path / "onnx-fp32")
    data = eval_npz(tmp_path / "eval.npz")
    lines = run_runner([str(artifact), "--data", str(data), "--environment", *RUNTIME_ARGS], no_torch_env)
    environment, row = lines[0]["environment"], lines[1]
    assert environment["arch"] and "onnxruntime" in environment["versions"]
    assert rows_are_valid([row]) == []
    assert row["status"] == "ok" and row["name"] == "tiny" and row["latency_ms"]["iterations"] == 5
    assert row["latency_ms"]["p50"] <= row["latency_ms"]["p90"] <= row["latency_ms"]["p99"]
    assert row["throughput"] > 0 and row["size_mb"] > 0
    # The peak is clamped at 0, so ">= 0" could never fail: check the arithmetic the note records instead.
    peak, baseline = (float(x) for x in re.search(r"peak RSS ([\d.]+) MiB minus baseline ([\d.]+) MiB", row["notes"]).groups())
    assert peak >= baseline > 0 and row["peak_mem_mb"] == pytest.approx(max(0.0, peak - baseline), abs=0.1)
    accuracy = expected_accuracy(artifact, data)
    assert row["accuracy"] == pytest.approx(accuracy)
    assert row["agreement_teacher"] == pytest.approx(accuracy)  # teacher logits are one-hot labels
    assert row["retention"] == pytest.approx(accuracy)  # teacher accuracy 1.0


def test_runner_isolates_artifacts_and_reports_broken_ones(tmp_path, no_torch_env):
    fixed = make_artifact(tmp_path / "fixed", batch=4, seed=1, name="fixed")  # static batch 4: evaluation pads
    pending = make_artifact(tmp_path / "trt", status="needs_target_build")
    broken = make_artifact(tmp_path / "broken", name="broken")
    (broken / "model.onnx").write_bytes(b"garbage")
    data = eval_npz(tmp_path / "eval.npz")
    rows = run_runner([str(fixed), str(pending), str(broken), str(tmp_path / "missing"), "--data", str(data),
                       *RUNTIME_ARGS], no_torch_env)
    assert len(rows) == 4 and rows_are_valid(rows) == []
    assert rows[0]["status"] == "ok" and rows[0]["accuracy"] == pytest.approx(expected_accuracy(fixed, data))
    assert rows[1]["status"] == "needs_target: build the engine on the device"
    assert rows[2]["status"].startswith("failed:") and rows[2]["name"] == "broken"
    assert rows[3]["status"].startswith("failed: no manifest.json")


def local_transport() -> SshTransport:
    """Stands in for ssh/scp: `bash -c <command>` runs the remote command, `cp -r` copies."""
    return SshTransport(host="pi@device", ssh=("bash", "-c"), copy=("cp", "-r"), dest_prefix="")


def test_remote_flow_with_local_commands(tmp_path, monkeypatch, no_torch_env):
    monkeypatch.setenv("PYTHONPATH", no_torch_env["PYTHONPATH"])  # the "device" has no torch either
    first = make_artifact(tmp_path / "run" / "artifacts" / "onnx-fp32")
    second = make_artifact(tmp_path / "other" / "artifacts" / "onnx-fp32", seed=2)  # same dir name: no collision
    remote_dir = tmp_path / "device-work"
    rows, environment = bench_remote([first, second], "pi@device", data=eval_npz(tmp_path / "eval.npz"),
                                     remote_dir=str(remote_dir), python=sys.executable, runner_args=RUNTIME_ARGS,
                                     transport=local_transport())
    assert len(rows) == 2 and rows_are_valid(rows) == []
    assert all(r["status"] == "ok" and r["accuracy"] is not None for r in rows)
    assert all(r["notes"].startswith("measured on pi@device") for r in rows)
    assert environment["cores"] >= 1
    assert not remote_dir.exists()  # cleaned up on the device


def test_remote_ssh_failure_names_host_and_fix(tmp_path):
    artifact = make_artifact(tmp_path / "onnx-fp32")
    refused = SshTransport(host="pi@nowhere", dest_prefix="", copy=("cp", "-r"),
                           ssh=("bash", "-c", "echo 'ssh: connect to host nowhere port 22: Connection refused' >&2; exit 255"))
    with pytest.raises(UserError, match=r"pi@nowhere.*Connection refused.*ssh-copy-id pi@nowhere"):
        bench_remote([artifact], "pi@nowhere", transport=refused, remote_dir=str(tmp_path / "w"))


def test_remote_missing_python_and_missing_artifact(tmp_path):
    artifact = make_artifact(tmp_path / "onnx-fp32")
    with pytest.raises(UserError, match="'python-does-not-exist' was not found on pi@device"):
        bench_remote([artifact], "pi@device", transport=local_transport(), remote_dir=str(tmp_path / "w"),
                     python="python-does-not-exist")
    with pytest.raises(UserError, match="no manifest.json"):
        bench_remote([tmp_path / "nothing"], "pi@device", transport=local_transport())


def test_default_transport_uses_batch_mode_and_timeout():
    transport = SshTransport.for_host("pi@rpi5", connect_timeout=7)
    assert transport.ssh[0] == "ssh" and transport.ssh[-1] == "pi@rpi5"
    assert "BatchMode=yes" in transport.ssh and "ConnectTimeout=7" in transport.ssh
    assert transport.copy[0] == "scp" and "BatchMode=yes" in transport.copy and transport.dest_prefix == "pi@rpi5:"


def test_bench_command_remote_merges_device_rows(tmp_path, monkeypatch, no_torch_env):
    import argparse

    from edgeclip.commands import bench_cmd

    monkeypatch.setenv("PYTHONPATH", no_torch_env["PYTHONPATH"])
    monkeypatch.setattr(SshTransport, "for_host", classmethod(lambda cls, host, **kw: local_transport()))
    artifact = make_artifact(tmp_path / "run" / "artifacts" / "onnx-fp32")
    profile = tmp_path / "board.yaml"  # a device this machine is not: only --remote can measure its budgets
    profile.write_text("name: board\narch: [riscv64]\nbackends: [onnx]\nbudgets: {max_latency_ms: 10000}\n")
    parser = argparse.ArgumentParser()
    bench_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--artifact", str(artifact), "--remote", "pi@device", "--remote-python",
                              sys.executable, "--target", str(profile), "--data", str(eval_npz(tmp_path / "e.npz")),
                              *RUNTIME_ARGS])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["environment"]["measured_on"] == "pi@device"
    assert report["rows"][0]["notes"].startswith("measured on pi@device")
    assert [b["status"] for b in report["budget_results"]] == ["pass"]  # measured on the device, so checked
    assert report["rows"][0]["roof_percent"] is None and "roof" not in report["environment"]  # --no-roof reached the device


# ---- the device's GEMM roof and the equal-resolution column (devices/runner/gemm_roof.py, equal_size.py) ------

def test_runner_measures_the_roof_and_times_students_at_the_equal_size(tmp_path, no_torch_env, fake_trtexec):
    convnet = make_artifact(tmp_path / "convnet", name="convnet")  # conv + global pool: runs at 16x16 too
    flat = make_artifact(tmp_path / "flat", name="flat", fixed_size=True)  # flatten + linear: 8x8 only
    same = make_artifact(tmp_path / "same", name="same", size=16)  # already at the teacher's size
    reference = make_artifact(tmp_path / "vit", name="vit", size=16, role="speed_reference")
    engine = make_artifact(tmp_path / "trt", name="trt", tensorrt=True)  # timed by (fake) trtexec: a GPU row
    lines = run_runner([str(convnet), str(flat), str(same), str(reference), str(engine), "--equal-size", "16", "--in-process",
                        "--trtexec", str(fake_trtexec / "trtexec"), *TIMING_ARGS, "--throughput-batch", "0", *ROOF_SIZE_ARGS],
                       no_torch_env)
    rows, roof = {line["name"]: line for line in lines if "name" in line}, lines[-1]["roof"]
    assert len(rows) == 5 and rows_are_valid(list(rows.values())) == []
    equal = rows["convnet"]["equal_resolution"]
    assert equal["input_size"] == 16 and equal["why_not"] is None and equal["latency_ms"]["iterations"] == 5
    assert equal["latency_ms"]["p50"] > 0 and equal["latency_ms"] != rows["convnet"]["latency_ms"]
    assert rows["flat"]["equal_resolution"]["latency_ms"] is None
    assert rows["flat"]["equal_resolution"]["why_not"].startswith("fixed-size model: runs only at 8x8")
    assert rows["same"]["equal_resolution"]["latency_ms"] == rows["same"]["latency_ms"]  # its own timing
    assert rows["vit"]["equal_resolution"] is None  # the reference is not re-timed against itself
    assert rows["trt"]["status"] == "ok" and rows["trt"]["roof_why_not"] == "not measured for GPU (tensorrt) rows"
    assert rows["trt"]["equal_resolution"]["why_not"] == ("the tensorrt artifact is built for 8x8 only; export the student "
                                                          "at 16x16 to time it there")
    assert all(rows[name]["roof_why_not"] is None for name in ("convnet", "flat", "same", "vit"))  # CPU rows
    # The roof: measured once, after the artifacts, by the method bench/roof.py uses here.
    assert roof["gemm"] == "64x64x64" and roof["threads"] == 0 and roof["clock"] == "wall"
    assert set(roof["by_library"]["fp32"]) >= {"numpy", "onnxruntime"}, roof["errors"]
    assert roof["fp32"] == max(roof["by_library"]["fp32"].values()) > 0
    assert roof["int8"] == max(roof["by_library"]["int8"].values()) > 0 and "onnxruntime MatMulInteger u8s8" in roof["by_library"]["int8"]


def _roof_at_test_size(monkeypatch) -> None:
    """Runs through remote.runner_args (the build's and bench's command line) measure a 64² roof."""
    from edgeclip.bench import remote

    real = remote.runner_args
    monkeypatch.setattr(remote, "runner_args", lambda *a, **kw: [*real(*a, **kw), *ROOF_SIZE_ARGS])


def test_device_rows_carry_the_devices_roof_and_equal_resolution_speedups(tmp_path, monkeypatch, no_torch_env, fake_trtexec):
    from edgeclip.bench.remote import finish_on_device
    from edgeclip.bench.report_html import render_html
    from edgeclip.bench.report_text import TABLE_HEADER, render_markdown, table_cells
    from edgeclip.config import BenchConfig

    monkeypatch.setenv("PYTHONPATH", no_torch_env["PYTHONPATH"])  # the "device" has no torch either
    _roof_at_test_size(monkeypatch)
    artifacts = [make_artifact(tmp_path / "a" / "convnet", name="convnet"),
                 make_artifact(tmp_path / "a" / "vit", name="vit", size=16, role="speed_reference"),
                 make_artifact(tmp_path / "a" / "trt", name="trt", tensorrt=True)]
    config = BenchConfig(warmup=1, iterations=5, max_seconds=2, throughput_batch=0, threads=1)
    rows, environment = finish_on_device(artifacts, "pi@device", data=None, config=config, python=sys.executable,
                                         transport=local_transport())
    report = Report(rows, environment=environment)
    report.fill_speedups()
    assert report_problems(report.to_dict()) == []
    convnet, vit, trt = report.rows
    roof = environment["roof"]
    assert roof["measured_on"] == "pi@device" and roof["threads"] == 1 and roof["clock"] == "process CPU time"
    # % of the device's roof, exactly as local rows carry it, marked as the device's.
    assert convnet.roof_gflops == roof["fp32"] and convnet.roof_source == "device pi@device, 64x64x64 GEMM"
    assert convnet.achieved_gflops == pytest.approx(convnet.flops / (convnet.latency_ms["p50"] / 1000) / 1e9)
    assert convnet.roof_percent == pytest.approx(100 * convnet.achieved_gflops / roof["fp32"])
    # Timed on the device at the speed reference's size; the speedup filled as for local rows.
    equal = convnet.equal_resolution
    assert equal["input_size"] == 16 and equal["latency_ms"]["iterations"] == 5
    assert equal["speedup"] == pytest.approx(vit.latency_ms["p50"] / equal["latency_ms"]["p50"])
    assert convnet.speedup == pytest.approx(vit.latency_ms["p50"] / convnet.latency_ms["p50"])
    # A GPU row: its GFLOP/s, no % of a CPU roof, and the reason in the row and the rendered report.
    assert trt.achieved_gflops > 0 and trt.roof_percent is None and trt.roof_source is None
    assert trt.roof_why_not == "not measured for GPU (tensorrt) rows"
    cells = dict(zip(TABLE_HEADER, table_cells(convnet)))
    assert cells["GFLOP/s (% roof)"] == f"{convnet.achieved_gflops:.3g} ({convnet.roof_percent:.0f}%)"
    assert cells["× teacher (at teacher size)"] == f"{convnet.speedup:.1f}x ({equal['speedup']:.1f}x @16)"
    assert dict(zip(TABLE_HEADER, table_cells(trt)))["GFLOP/s (% roof)"].endswith(" (n/a)")
    markdown = render_markdown(report)
    print("\n".join(line for line in markdown.splitlines() if line.startswith("| convnet") or "roof" in line))
    assert f"device pi@device, 64x64x64 GEMM: fp32 {roof['fp32']:.0f} GFLOP/s" in markdown
    assert "- trt [tensorrt-fp32] — roof: not measured for GPU (tensorrt) rows" in markdown
    assert "64x64x64 GEMM, 1 thread(s), process CPU time clock" in markdown
    assert "roof: not measured for GPU (tensorrt) rows" in render_html(report)


def test_bench_remote_no_roof_and_a_device_without_a_roof_library(tmp_path, monkeypatch, no_torch_env):
    """--no-roof reaches the device (no roof line, no % anywhere); a roof that measured nothing for a
    precision says why in the row instead of a %."""
    from edgeclip.bench.remote import finish_on_device, parse_runner_output
    from edgeclip.bench.roof import apply_roof
    from edgeclip.config import BenchConfig

    monkeypatch.setenv("PYTHONPATH", no_torch_env["PYTHONPATH"])
    artifact = make_artifact(tmp_path / "a" / "convnet", name="convnet")
    config = BenchConfig(warmup=1, iterations=3, max_seconds=2, throughput_batch=0, threads=1, roof=False)
    rows, environment = finish_on_device([artifact], "pi@device", data=None, config=config, python=sys.executable,
                                         transport=local_transport())
    assert "roof" not in environment and rows[0].achieved_gflops is None and rows[0].roof_why_not is None
    row = json.dumps({"name": "a0-convnet", "role": "student", "backend": "onnx", "precision": "fp32", "flops": 10 ** 6,
                      "latency_ms": {"p50": 1.0, "p90": 1.0, "p99": 1.0}, "status": "ok", "notes": ""})
    no_ort = json.dumps({"roof": {"gemm": "1024x1024x1024", "fp32": 9.5, "int8": None, "by_library": {"fp32": {"numpy": 9.5}},
                                  "errors": {"int8 onnxruntime MatMulInteger u8s8": "ModuleNotFoundError: No module named 'onnxruntime'"}}})
    parsed, environment = parse_runner_output(f"{row}\n{no_ort}\n", ["a0-convnet"], [artifact], "pi@device")
    int8 = ReportRow.from_dict({**parsed[0], "precision": "int8"})
    apply_roof([int8], environment["roof"], machine="device pi@device")
    assert int8.roof_percent is None and int8.achieved_gflops == pytest.approx(1.0)
    assert int8.roof_why_not == ("no int8 GEMM roof measured on device pi@device (onnxruntime MatMulInteger u8s8: "
                                 "ModuleNotFoundError: No module named 'onnxruntime')")
