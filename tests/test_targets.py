"""Target profiles: shipped profiles, aliases, unknown names, budget checks."""

from __future__ import annotations

import importlib.util

import pytest

from edgeclip.errors import UserError
from edgeclip.targets import Budgets, Target, check_budgets, list_targets, load_target, platform_matches

SHIPPED = {"cpu", "intel-cpu", "jetson-orin-nano", "jetson-agx-orin", "raspberry-pi-5", "apple"}


pytestmark = pytest.mark.usefixtures("private_cache")


def test_all_shipped_profiles_load_with_budgets():
    targets = {t.name: t for t in list_targets()}
    assert SHIPPED <= set(targets)
    for target in targets.values():
        assert target.backends and target.precisions
        assert None not in (target.budgets.max_latency_ms, target.budgets.max_memory_mb, target.budgets.min_retention)
    assert targets["jetson-orin-nano"].build_on_device and targets["jetson-orin-nano"].backends[0] == "tensorrt"
    assert "onnx" in targets["jetson-orin-nano"].backends  # fallback
    assert targets["intel-cpu"].backends[0] == "openvino" and "int8" in targets["intel-cpu"].precisions
    assert targets["raspberry-pi-5"].threads == 4 and targets["raspberry-pi-5"].precisions[0] == "int8"
    assert targets["apple"].backends == ("coreml",)
    assert targets["cpu"].backends == ("onnx", "openvino")


@pytest.mark.parametrize("alias, name", [("jetson", "jetson-orin-nano"), ("rpi5", "raspberry-pi-5"),
                                         ("raspberry-pi", "raspberry-pi-5"), ("mac", "apple"), ("coreml", "apple"),
                                         ("JETSON-AGX-ORIN", "jetson-agx-orin"), ("cpu", "cpu")])
def test_aliases_resolve(alias, name):
    assert load_target(alias).name == name


def test_unknown_target_lists_known_and_close_match():
    with pytest.raises(UserError) as info:
        load_target("jetson-nano")
    message = str(info.value)
    assert "unknown target 'jetson-nano'" in message and "did you mean" in message
    assert all(name in message for name in SHIPPED)
    assert "\n" not in message


def test_measurable_here_derives_from_platform_and_first_backend():
    assert load_target("cpu").measurable_here  # onnxruntime is installed in the dev environment
    rpi = load_target("rpi5")
    assert platform_matches(rpi, machine="aarch64", system="Linux")
    assert not platform_matches(rpi, machine="x86_64", system="Linux")
    assert not platform_matches(load_target("apple"), machine="arm64", system="Linux")
    if importlib.util.find_spec("tensorrt") is None:  # TensorRT needs its library (and a GPU)
        assert not Target("trt-only", backends=("tensorrt",)).measurable_here
        assert load_target("jetson").local_backends == ["onnx"]
        # Running onnx is not enough to be a Jetson: its first choice (TensorRT) decides.
        assert not Target("jetson-like", backends=("tensorrt", "onnx")).measurable_here


def test_profile_from_path_and_bad_profiles(tmp_path, monkeypatch):
    good = tmp_path / "lab.yaml"
    good.write_text("name: lab\naliases: [bench-box]\nbackends: [onnx]\nbudgets: {max_latency_ms: 5}\n")
    assert load_target(str(good)).budgets == Budgets(max_latency_ms=5.0)
    monkeypatch.setenv("EDGECLIP_DEVICES", str(tmp_path))
    assert load_target("bench-box").name == "lab"  # EDGECLIP_DEVICES points at another profile folder
    for text, complaint in [("name: x\nbakends: [onnx]\n", "unknown keys"),
                            ("name: x\nbackends: [tflite]\n", "unknown backend"),
                            ("name: x\nbudgets: {max_latency_ms: fast}\n", "must be a number"),
                            ("name: x\nbackends: [onnx\n", "not valid YAML")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(UserError, match=complaint):
            load_target(str(bad))
    with pytest.raises(UserError, match="does not exist"):
        load_target(str(tmp_path / "missing.yaml"))


TARGET = Target("t", budgets=Budgets(max_latency_ms=10.0, max_memory_mb=100.0, min_retention=0.9))


def row(name, p90=None, mem=None, retention=None, role="student", status="ok"):
    latency = None if p90 is None else {"p50": p90 / 2, "p90": p90, "p99": p90 * 2}
    return {"name": name, "backend": "onnx", "precision": "int8", "role": role, "status": status,
            "latency_ms": latency, "peak_mem_mb": mem, "retention": retention}


def test_budgets_pass_fail_and_not_measured():
    results = check_budgets(TARGET, [row("fast", p90=5.0, mem=50.0, retention=0.95),
                                     row("slow", p90=12.0, mem=150.0, retention=0.85),
                                     row("unknown")])
    by = {(r.name, r.row.split()[0]): r for r in results}
    assert by[("max_latency_ms", "fast")].passed is True and by[("max_latency_ms", "fast")].measured == 5.0
    assert by[("max_latency_ms", "slow")].passed is False  # p90 is what is checked
    assert by[("max_memory_mb", "slow")].status == "fail" and by[("min_retention", "slow")].status == "fail"
    assert by[("min_retention", "fast")].status == "pass"
    for budget in ("max_latency_ms", "max_memory_mb", "min_retention"):
        missing = by[(budget, "unknown")]
        assert missing.passed is None and missing.status == "not measured"  # never a silent pass
    assert "not measured" in by[("min_retention", "unknown")].describe()


def test_budgets_skip_teacher_and_failed_rows_and_report_unmeasured():
    results = check_budgets(TARGET, [row("teacher", p90=500.0, role="teacher"),
                                     row("broken", status="failed: boom")])
    assert [r.status for r in results] == ["not measured"] * 3 and all(r.row == "" for r in results)
    assert check_budgets(Target("none"), [row("a", p90=1.0)]) == []  # no budgets set, nothing to check


def test_budgets_skip_artifacts_rejected_at_export():
    # A rejected int8 artifact never ships: its row shows the rejection, its missed budget does not fail the build.
    rejected = {**row("int8", p90=5.0, mem=50.0, retention=0.85), "notes": "rejected at export: int8 changes decisions"}
    shipped = row("fp32", p90=6.0, mem=50.0, retention=0.93)
    results = check_budgets(TARGET, [rejected, shipped])
    assert {r.row.split()[0] for r in results} == {"fp32"} and all(r.passed for r in results)
    # With only the rejected row, every budget is "not measured", never a pass.
    assert [r.status for r in check_budgets(TARGET, [rejected])] == ["not measured"] * 3
