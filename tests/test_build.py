"""`edgeclip build` end to end on tiny inputs: a tiny CLIP teacher checkpoint, synthetic images,
a tiny student, ONNX Runtime + OpenVINO in fp32 and int8, a tiny speed-reference tower, report,
verdict and budgets; the Jetson build's TensorRT kits finished on a stand-in device; and (slow) the
real quickstart, whose student must actually learn."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from edgeclip.cli import main
from edgeclip.data.preprocess import Preprocess
from edgeclip.teacher import ClipTeacher

TINY_RECIPE = """
teacher: {teacher}
data: {{train: "synthetic:24", test: "synthetic:12", templates: plain, calibration_count: 32}}
student: {{name: test_resnet, image_size: 16}}
distill: {{epochs: 8, batch_size: 16, lr: 0.05, milestones: [6], head_epochs: 40, head_lr: 0.01, head_input: features}}
export: {{parity_samples: 60}}
bench: {{warmup: 1, iterations: 5, max_seconds: 1.0, throughput_batch: 4}}
"""


def tiny_tower(arch: str):
    """Stands in for the ViT-B/32 speed reference (same code path, seconds instead of minutes)."""
    from edgeclip.exporters.testing import tiny_clip
    from edgeclip.exporters.towers import ImageTower, image_tower_spec

    clip = tiny_clip()
    spec = image_tower_spec(clip, f"{arch} image tower (speed reference)")
    spec.extra["role"] = "speed_reference"
    return ImageTower(clip).eval(), spec


@pytest.fixture(autouse=True)
def _tiny_speed_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECLIP_CACHE", str(tmp_path / "cache"))  # never mix the tiny tower into a real cache
    monkeypatch.setattr("edgeclip.build.speed_reference.image_tower", tiny_tower)

TARGET = """
name: tiny-cpu
backends: [onnx, openvino]
precisions: [fp32, int8]
budgets: {{max_latency_ms: {latency}, max_memory_mb: 4096}}
"""


@pytest.fixture
def tiny_build_inputs(tmp_path, tiny_clip_config):
    torch.manual_seed(0)
    teacher = ClipTeacher.from_config("tiny-teacher", tiny_clip_config, Preprocess(size=16, resize_mode="stretch"))
    teacher.save(tmp_path / "teacher.pt")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.format(teacher=tmp_path / "teacher.pt"))
    return tmp_path, recipe


def test_build_writes_artifacts_report_and_checks_budgets(tiny_build_inputs, capsys) -> None:
    tmp_path, recipe = tiny_build_inputs
    target = tmp_path / "tiny-cpu.yaml"
    target.write_text(TARGET.format(latency=250))  # tiny models run in ~1 ms: this holds, 0.001 ms below does not
    out = tmp_path / "run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    for name in ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8"):
        manifest = json.loads((out / "artifacts" / name / "manifest.json").read_text())
        assert manifest["parity"]["status"] != "not_run"
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 2 and (out / "report.md").is_file() and (out / "report.html").is_file()
    roles = [row["role"] for row in report["rows"]]
    assert roles.count("teacher") == 1 and roles.count("student") == 4 and roles.count("speed_reference") == 4
    teacher = next(row for row in report["rows"] if row["role"] == "teacher")
    assert 0 <= teacher["accuracy"] <= 1 and teacher["flops"] > 0 and teacher["latency_ms"]["p50"] > 0
    for row in report["rows"]:
        if row["role"] == "student":
            assert row["status"] == "ok", row
            assert row["latency_ms"]["p50"] <= row["latency_ms"]["p90"] <= row["latency_ms"]["p99"]
            assert row["retention"] == pytest.approx(row["accuracy"] / teacher["accuracy"])
            assert row["agreement_teacher"] is not None and row["agreement_reference"] is not None
    # 2 budgets x each student that can ship (an int8 artifact rejected at export never ships, so its budgets
    # are not checked), each measured here and held (an empty list would pass all())
    shippable = [r for r in report["rows"] if r["role"] == "student" and "rejected at export" not in (r["notes"] or "")]
    assert shippable and len(report["budget_results"]) == 2 * len(shippable)
    assert all(b["passed"] is True for b in report["budget_results"])
    assert {b["row"] for b in report["budget_results"]} == {f"{r['name']} [{r['backend']}-{r['precision']}]" for r in shippable}
    assert "<img" in (out / "report.html").read_text()
    # × teacher: the speed reference of the same backend and precision over the row's p50.
    references = {(r["backend"], r["precision"]): r for r in report["rows"] if r["role"] == "speed_reference"}
    students = [r for r in report["rows"] if r["role"] == "student"]
    for row in students:
        reference = references[(row["backend"], row["precision"])]
        assert reference["accuracy"] is None and reference["status"] == "ok"
        assert row["speedup"] == pytest.approx(reference["latency_ms"]["p50"] / row["latency_ms"]["p50"])
    # The verdict recommends the fastest student that passed every check, and says why the others lost.
    # An int8 row that flips fp32 decisions or is not faster than fp32 loses for that (compress/ship_rule.py).
    verdict = report["verdict"]
    # int8 loses by the speed/agreement rule ("int8 ...") or because export already rejected it (compress/int8_rule.py).
    int8_lost = {o["row"] for o in verdict["others"] if o["why"].startswith(("int8 ", "rejected at export"))}
    eligible = [r for r in students if f"{r['name']} [{r['backend']}-{r['precision']}]" not in int8_lost]
    fastest = min(eligible, key=lambda r: r["latency_ms"]["p50"])
    # Candidates within 5% of the fastest (median over the interleaved rounds) tie: the more accurate, then
    # the smaller wins (bench/verdict.py), so the pick is the fastest or one of its ties.
    label = {id(r): f"{r['name']} [{r['backend']}-{r['precision']}]" for r in eligible}
    ties = {o["row"] for o in verdict["others"] if o["why"].startswith("ties with")}
    assert verdict["recommended"] == label[id(fastest)] or label[id(fastest)] in ties
    assert verdict["failed_checks"] == [] and len(verdict["others"]) == 3
    assert all("slower than" in o["why"] or o["row"] in int8_lost | ties for o in verdict["others"]), verdict["others"]
    assert "Choice rule:" in printed
    markdown = (out / "report.md").read_text()
    assert markdown.index("## Verdict") < markdown.index("## Results") and "Ship " in markdown
    _export_makes_int8_as_the_build_did(out, target, tmp_path / "exported")


def _export_makes_int8_as_the_build_did(run, target, exported) -> None:
    """`edgeclip export --precision int8` of the build's student writes the same `quantization` block
    as the build did for the same recipe (the run's recorded one) and target: one source of int8
    settings, calibration and validation images (compress/int8_inputs.py)."""
    for backend in ("onnx", "openvino"):
        main(["export", "--model", str(run / "student"), "--backend", backend, "--precision", "int8",
              "--target", str(target), "--out", str(exported / backend)])  # exit 1 = rejected, still written
        built = json.loads((run / "artifacts" / f"{backend}-int8" / "manifest.json").read_text())["quantization"]
        made = json.loads((exported / backend / "manifest.json").read_text())["quantization"]
        assert made["options"] == built["options"] and made["options"]["mode"] == "auto", backend
        assert made["options"]["target"] == "tiny-cpu" and made["options"]["validation_count"], backend
        # Same calibration/validation images, same search: the same result, not only the same settings
        # (what took how long aside).
        assert _untimed(made) == _untimed(built), backend


def _untimed(quantization):
    search = {k: v for k, v in (quantization.get("mixed_precision") or {}).items() if k != "seconds"}
    return {**{k: v for k, v in quantization.items() if k != "speed_check"}, "mixed_precision": search}


def test_build_exits_1_and_names_the_failing_budget(tiny_build_inputs, capsys) -> None:
    tmp_path, recipe = tiny_build_inputs
    target = tmp_path / "strict.yaml"
    target.write_text(TARGET.format(latency="0.001"))
    out = tmp_path / "strict-run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet",
                 "--set", "export.backends=[onnx]"])
    assert code == 1
    printed = capsys.readouterr().out
    assert "budget max_latency_ms" in printed
    report = json.loads((out / "report.json").read_text())
    assert any(b["name"] == "max_latency_ms" and b["passed"] is False for b in report["budget_results"])
    assert not (out / "artifacts" / "openvino-fp32").exists()  # the recipe narrowed the plan to onnx
    assert report["verdict"]["recommended"] is None and "budget max_latency_ms failed" in " ".join(report["verdict"]["failed_checks"])


def test_build_refuses_to_overwrite_a_finished_run(tiny_build_inputs, tmp_path) -> None:
    _, recipe = tiny_build_inputs
    out = tmp_path / "done"
    out.mkdir()
    (out / "report.json").write_text("{}")
    from edgeclip.build import build
    from edgeclip.config import load_recipe
    from edgeclip.errors import UserError

    with pytest.raises(UserError, match="already holds a finished build"):
        build(load_recipe(str(recipe)), "cpu", out_dir=out, progress=False)


def test_jetson_plan_comes_from_the_target_not_the_recipe():
    """The flagship command: the default recipe must not narrow the Jetson to onnx (it used to)."""
    from edgeclip.build import export_plan
    from edgeclip.config import load_recipe
    from edgeclip.targets import load_target

    plan = export_plan(load_target("jetson-orin-nano"), load_recipe("quickstart"))
    assert plan == [("tensorrt", "fp16"), ("tensorrt", "int8"), ("onnx", "fp16"), ("onnx", "int8")]
    narrowed = export_plan(load_target("jetson"), load_recipe("quickstart", ["export.backends=[onnx]"]))
    assert narrowed == [("onnx", "fp16"), ("onnx", "int8")]


JETSON_RECIPE_OVERRIDES = ["--set", "bench.memory=false", "--set", "bench.roof=false"]


def _local_device(monkeypatch):
    """ssh/scp replaced by local commands: the "device" is this machine, reached through the same flow."""
    from edgeclip.bench.remote import SshTransport

    transport = SshTransport(host="nvidia@orin", ssh=("bash", "-c"), copy=("cp", "-r"), dest_prefix="")
    monkeypatch.setattr(SshTransport, "for_host", classmethod(lambda cls, host, **kw: transport))


def test_jetson_build_without_remote_says_how_to_finish(tiny_build_inputs, capsys):
    tmp_path, recipe = tiny_build_inputs
    out = tmp_path / "jetson"
    code = main(["build", "--recipe", str(recipe), "--target", "jetson-orin-nano", "--out", str(out), "--quiet",
                 *JETSON_RECIPE_OVERRIDES])
    printed = capsys.readouterr().out
    assert code == 1, printed[-2000:]  # built, but nothing is verified on a Jetson yet
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == ["onnx-fp16", "onnx-int8", "tensorrt-fp16", "tensorrt-int8"]
    for name in ("tensorrt-fp16", "tensorrt-int8"):
        artifact = out / "artifacts" / name
        assert (artifact / "build_engine.sh").is_file() and (artifact / "reference" / "outputs.npy").is_file()
    report = json.loads((out / "report.json").read_text())
    # no student is deployable here (all need the device), so each of the 3 Jetson budgets is one "not measured"
    assert len(report["budget_results"]) == 3 and all(b["status"] == "not measured" for b in report["budget_results"])
    assert report["verdict"]["recommended"] is None and "--remote" in report["verdict"]["next_step"]
    assert "not verified here" in printed


def test_jetson_build_finishes_on_the_device(tiny_build_inputs, capsys, monkeypatch, fake_trtexec):
    from edgeclip.bench import remote

    tmp_path, recipe = tiny_build_inputs
    _local_device(monkeypatch)
    real_args = remote.runner_args  # the device's roof by the runner's method, at a size that takes milliseconds
    monkeypatch.setattr(remote, "runner_args", lambda *a, **kw: [*real_args(*a, **kw), "--roof-size", "64"])
    target = tmp_path / "orin.yaml"  # the Jetson profile with budgets this stand-in device can meet
    target.write_text("name: orin\narch: [aarch64]\nos: [linux]\nbackends: [tensorrt, onnx]\nprecisions: [fp16]\n"
                      "build_on_device: true\nbudgets: {max_latency_ms: 2000, max_memory_mb: 8192}\n")
    out = tmp_path / "orin-run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet",
                 "--remote", "nvidia@orin", "--remote-python", sys.executable, "--set", "bench.memory=false"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    manifest = json.loads((out / "artifacts" / "tensorrt-fp16" / "manifest.json").read_text())
    assert manifest["status"] == "ready" and "TensorRT engine" in manifest["parity"]["scope"]  # fetched back
    assert (out / "artifacts" / "tensorrt-fp16" / "model.engine").is_file()  # with the engine it names
    # The speed reference's engine was built in the run's private copy, never in the shared cache.
    assert (out / "speed-reference").is_dir()
    cached = [json.loads(m.read_text()) for m in (tmp_path / "cache" / "speed-reference").glob("*tensorrt*/manifest.json")]
    assert cached and all(m["status"] == "needs_target_build" for m in cached)
    report = json.loads((out / "report.json").read_text())
    assert report["environment"]["measured_on"] == "nvidia@orin"
    trt = next(r for r in report["rows"] if r["role"] == "student" and r["backend"] == "tensorrt")
    assert trt["status"] == "ok" and trt["notes"].startswith("measured on nvidia@orin") and trt["latency_ms"]["p50"] > 0
    # The speed columns of device rows: a GPU row says why it has no % of roof; the fp16 CPU row has no roof
    # of its precision on the device; the device's roof is in the environment. Each student was timed again
    # at the speed reference's input size there, or says why not (an engine is built for one size).
    assert trt["roof_why_not"] == "not measured for GPU (tensorrt) rows" and trt["roof_percent"] is None
    onnx_row = next(r for r in report["rows"] if r["role"] == "student" and r["backend"] == "onnx")
    assert onnx_row["roof_why_not"].startswith("no fp16 GEMM roof measured on device nvidia@orin")
    assert report["environment"]["roof"]["gemm"] == "64x64x64" and report["environment"]["roof"]["fp32"] > 0
    reference = next(r for r in report["rows"] if r["role"] == "speed_reference" and r["backend"] == "onnx")
    student_manifest = json.loads((out / "artifacts" / "onnx-fp16" / "manifest.json").read_text())
    equal = onnx_row["equal_resolution"]
    assert equal["input_size"] == 32 and equal["why_not"] is None and equal["latency_ms"]["iterations"] == 5
    assert equal["speedup"] == pytest.approx(reference["latency_ms"]["p50"] / equal["latency_ms"]["p50"])
    assert student_manifest["inputs"][0]["shape"][2:] == [16, 16]  # the student's own size: the column is not its native timing
    assert trt["equal_resolution"]["why_not"] == ("the tensorrt artifact is built for 16x16 only; export the student at "
                                                  "32x32 to time it there")
    assert report["budget_results"] and all(b["status"] == "pass" for b in report["budget_results"])
    assert report["verdict"]["recommended"] is not None


def test_jetson_build_engine_parity_failure_and_missing_tensorrt(tiny_build_inputs, capsys, monkeypatch, fake_trtexec):
    tmp_path, recipe = tiny_build_inputs
    _local_device(monkeypatch)
    target = tmp_path / "orin.yaml"
    target.write_text("name: orin\narch: [aarch64]\nbackends: [tensorrt]\nprecisions: [fp32]\nbudgets: {max_latency_ms: 2000}\n")
    monkeypatch.setenv("FAKE_TRTEXEC_CORRUPT", "1")
    out = tmp_path / "bad-engine"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet",
                 "--remote", "nvidia@orin", "--remote-python", sys.executable, *JETSON_RECIPE_OVERRIDES])
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    trt = next(r for r in report["rows"] if r["role"] == "student")
    assert trt["status"].startswith("failed: parity against PyTorch failed (TensorRT engine")
    # A device without TensorRT: one line, exit 2.
    monkeypatch.delenv("FAKE_TRTEXEC_CORRUPT")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    capsys.readouterr()
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(tmp_path / "no-trt"), "--quiet",
                 "--remote", "nvidia@orin", "--remote-python", sys.executable, *JETSON_RECIPE_OVERRIDES])
    err = capsys.readouterr().err
    assert code == 2 and "has no TensorRT" in err.splitlines()[-1]


def test_jetson_build_failed_engine_build_carries_trtexecs_error(tiny_build_inputs, capsys, monkeypatch, fake_trtexec):
    """trtexec fails on the device (the stand-in's fail-build mode): a failed row with its error lines in the
    report and the manifest, and exit 3 — not parity's 1, not a 'needs_target' that hides the cause."""
    tmp_path, recipe = tiny_build_inputs
    _local_device(monkeypatch)
    target = tmp_path / "orin.yaml"
    target.write_text("name: orin\narch: [aarch64]\nbackends: [tensorrt]\nprecisions: [fp32]\ntensorrt: '8.5'\n"
                      "budgets: {max_latency_ms: 2000}\n")
    monkeypatch.setenv("FAKE_TRTEXEC_FAIL_BUILD", "1")
    monkeypatch.setenv("FAKE_TRTEXEC_TENSORRT", "8.5")
    out = tmp_path / "no-engine"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet",
                 "--remote", "nvidia@orin", "--remote-python", sys.executable, *JETSON_RECIPE_OVERRIDES])
    printed = capsys.readouterr().out
    assert code == 3, printed[-3000:]
    report = json.loads((out / "report.json").read_text())
    trt = next(r for r in report["rows"] if r["role"] == "student")
    assert trt["status"].startswith("failed: engine build on nvidia@orin failed (trtexec): ") and "OutOfMemory" in trt["status"]
    assert "&&&& FAILED TensorRT.trtexec [TensorRT v8502]" in trt["notes"] and "TensorRT 8.5 compatibility: passed" in trt["notes"]
    manifest = json.loads((out / "artifacts" / "tensorrt-fp32" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["tensorrt_version"] == "8.5" and manifest["opset"] == 17
    assert any("OutOfMemory" in line for line in manifest["engine_build"]["error_lines"])
    assert "engine build on nvidia@orin failed" in (out / "report.md").read_text()


def test_unreachable_remote_is_one_line_exit_2(tiny_build_inputs, capsys, monkeypatch):
    from edgeclip.bench.remote import SshTransport

    tmp_path, recipe = tiny_build_inputs
    dead = SshTransport(host="pi@nowhere", ssh=("bash", "-c", "exit 255"), copy=("false",), dest_prefix="")
    monkeypatch.setattr(SshTransport, "for_host", classmethod(lambda cls, host, **kw: dead))
    code = main(["build", "--recipe", str(recipe), "--target", "raspberry-pi-5", "--out", str(tmp_path / "pi"), "--quiet",
                 "--remote", "pi@nowhere", *JETSON_RECIPE_OVERRIDES])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("edgeclip: error: cannot create the work dir on pi@nowhere")


@pytest.mark.slow
def test_quickstart_build_student_learns_and_meets_the_cpu_budgets(tmp_path, capsys, monkeypatch):
    """The README's quickstart as a test: the real proxy teacher, the real cpu profile budgets
    (p90 <= 100 ms, <= 1024 MB, retention >= 0.9) — a student that learned nothing fails it."""
    monkeypatch.setattr("edgeclip.build.speed_reference.image_tower", tiny_tower)
    out = tmp_path / "quickstart"
    code = main(["build", "--recipe", "quickstart", "--target", "cpu", "--out", str(out), "--quiet",
                 "--set", "bench.iterations=20"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    report = json.loads((out / "report.json").read_text())
    students = [r for r in report["rows"] if r["role"] == "student"]
    assert len(students) == 4 and all(r["retention"] >= 0.9 and r["accuracy"] >= 0.85 for r in students)
    # 3 cpu budgets x 4 students, all measured and held
    assert len(report["budget_results"]) == 12 and all(b["status"] == "pass" for b in report["budget_results"])


def test_build_with_fused_preprocessing_exports_frame_artifacts(tiny_build_inputs, capsys) -> None:
    """Recipe `export.fused_preprocess`: the build's artifacts take uint8 frames, parity runs on the test images
    as frames, and the accuracy the build's preprocessed .npz cannot give is a visible note, not a number."""
    tmp_path, recipe = tiny_build_inputs
    target = tmp_path / "tiny-cpu.yaml"
    target.write_text(TARGET.format(latency=250))
    out = tmp_path / "run"
    code = main(["build", "--recipe", str(recipe), "--target", str(target), "--out", str(out), "--quiet",
                 "--set", "export.fused_preprocess=48x64", "--set", "export.precisions=[fp32]",
                 "--set", "export.backends=[onnx]"])
    printed = capsys.readouterr().out
    manifest = json.loads((out / "artifacts" / "onnx-fp32" / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == ["batch", 48, 64, 3] and manifest["inputs"][0]["dtype"] == "uint8"
    assert manifest["parity"]["passed"] and manifest["parity"]["num_inputs"] == 60  # export.parity_samples, as unfused
    assert manifest["fused_preprocessing"]["classic_agreement"]["num_frames"] == 60
    report = json.loads((out / "report.json").read_text())
    student = next(r for r in report["rows"] if r["role"] == "student")
    assert student["latency_ms"]["p50"] > 0 and student["accuracy"] is None
    assert "accuracy not measured: the artifact takes uint8 frames" in student["notes"], (code, printed[-2000:])
