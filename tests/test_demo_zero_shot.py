"""`edgeclip demo zero-shot`: the page in a real browser, on exported artifacts only (torch blocked), and bad input."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo_helpers import (DIGITS, REPO, SHARED_DATA, ServerProcess, get_json, keep_screenshot, make_tiny_run, no_torch_env,
                          open_browser, post_json, requested_urls)
from edgeclip.cli import main
from edgeclip.demo.examples import EXAMPLES_DIR

SEVEN = EXAMPLES_DIR / "digit-seven-test5.png"


def data_url(path: Path, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny DistillCLIP run; its teacher's towers are exported the way the CLI does it (child process with torch)."""
    from edgeclip.demo.zero_shot_page import teacher_for

    run = make_tiny_run(tmp_path_factory.mktemp("demo") / "run")
    teacher, note = teacher_for(run, "onnx", threads=1, prepare=True)
    assert teacher is not None, note
    assert (run / "demo" / "teacher" / "onnx-fp32-text" / "tokenizer.json").is_file()
    return run


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    """The demo in a child process that cannot import torch."""
    work = tmp_path_factory.mktemp("server")
    process = ServerProcess(["zero-shot", "--model", str(run_dir), "--threads", "1"], no_torch_env(work), work)
    yield process
    process.stop()


def expected_top(run_dir: Path, role: str, image_path: Path, names: list[str]) -> list[dict]:
    from edgeclip.demo.zero_shot import find_zero_shot_model

    directory = run_dir if role == "student" else run_dir / "demo" / "teacher"
    model = find_zero_shot_model(directory, role=role)
    with Image.open(image_path) as image:
        return model.classify(image.convert("RGB"), names)["top"]


def wait_for_requests(driver, count: int, timeout: float = 60.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: int(d.execute_script("return document.body.dataset.requests || 0")) >= count)


def shown_top(driver, role: str) -> list[tuple[str, str, float]]:
    items = driver.find_elements("css selector", f"#{role}-top li")
    return [(li.find_element("css selector", ".name").text, li.find_element("css selector", ".prob").text,
             float(li.get_attribute("data-probability"))) for li in items]


def test_page_classifies_an_uploaded_digit_in_chromium_without_torch(server, run_dir, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    info = get_json(server.url + "api/info")
    assert info["torch_loaded"] is False and info["student"]["mode"] == "text" and info["teacher"]["name"] == "tiny-teacher"
    driver = open_browser(tmp_path / "profile")
    try:
        driver.get(server.url)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.state") == "ready")
        assert len(driver.find_elements("css selector", "#examples .example")) >= 5  # the shipped digits
        driver.find_element("id", "file").send_keys(str(SEVEN))
        wait_for_requests(driver, 1)  # picking a file classifies it at once
        classes = driver.find_element("id", "classes")
        classes.clear()
        classes.send_keys(", ".join(DIGITS))
        driver.find_element("id", "classify").click()
        wait_for_requests(driver, 2)
        assert driver.find_element("id", "message").text == ""
        for role in ("student", "teacher"):
            want = expected_top(run_dir, role, SEVEN, DIGITS)
            shown = shown_top(driver, role)
            assert [name for name, _, _ in shown] == [row["class"] for row in want]
            assert shown[0][1] == f"{100 * want[0]['probability']:.1f}%"
            assert shown[0][2] == pytest.approx(want[0]["probability"], abs=1e-6)
            latency = driver.find_element("id", f"{role}-latency")
            assert "image tower" in latency.text and float(latency.get_attribute("data-image-ms")) > 0
        # 10 names x 6 templates; the same names as the first request, so their embeddings come from the cache
        assert "class embeddings cached (60 prompts)" in driver.find_element("id", "student-latency").text
        driver.save_screenshot(str(tmp_path / "zero_shot.png"))
        urls = requested_urls(driver)
    finally:
        driver.quit()
    assert any(u.endswith("/api/classify") for u in urls)
    # chrome:// are the browser's own pages (its new-tab page before navigation); every network URL must be ours.
    foreign = [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:")) and not u.startswith(server.url)]
    assert foreign == [], f"the page fetched something from elsewhere: {foreign}"
    keep_screenshot(tmp_path / "zero_shot.png", "demo_zero_shot_tiny.png")


def test_bad_input_shows_a_message_on_the_page_and_the_server_keeps_serving(server, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("these are notes, not pixels\n")
    driver = open_browser(tmp_path / "profile")
    try:
        driver.get(server.url)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.state") == "ready")
        driver.find_element("id", "file").send_keys(str(not_an_image))
        wait_for_requests(driver, 1)
        assert "is not an image this page can read" in driver.find_element("id", "message").text
        driver.find_element("id", "file").send_keys(str(SEVEN))
        wait_for_requests(driver, 2)
        assert driver.find_element("id", "message").text == ""
        driver.find_element("id", "classes").clear()
        driver.find_element("id", "classify").click()
        wait_for_requests(driver, 3)
        assert "the class list is empty" in driver.find_element("id", "message").text
        driver.execute_script("document.getElementById('classes').value = arguments[0]",
                              ", ".join(f"class {i}" for i in range(1000)))
        driver.find_element("id", "classify").click()
        wait_for_requests(driver, 4)
        assert "1000 class names" in driver.find_element("id", "message").text
        driver.execute_script("document.getElementById('classes').value = 'seven, one, seven, eight'")
        driver.find_element("id", "classify").click()
        wait_for_requests(driver, 5)
        assert "Ignored repeated names: seven" in driver.find_element("id", "message").text
        assert len(shown_top(driver, "student")) == 3
        driver.save_screenshot(str(tmp_path / "zero_shot_error.png"))
    finally:
        driver.quit()


def test_bad_requests_get_readable_errors_over_http(server):
    url = server.url + "api/classify"
    good = {"image": data_url(SEVEN), "classes": "zero, one, seven"}
    cases = [
        ({"image": data_url(REPO / "README.md", "text/plain"), "classes": "a, b"}, 400, "is not an image this page can read"),
        ({"image": "data:image/png;base64,%%%", "classes": "a, b"}, 400, "not base64"),
        ({"image": data_url(SEVEN)[:-41], "classes": "a, b"}, 400, "not base64"),  # a length base64 cannot have
        ({"image": data_url(SEVEN)[:-40], "classes": "a, b"}, 400, "damaged"),  # valid base64 of a cut-off PNG
        ({"image": "", "classes": "a, b"}, 400, "no image"),
        ({**good, "classes": " , ,\n"}, 400, "the class list is empty"),
        ({**good, "classes": "only"}, 400, "only one class name"),
        ({**good, "classes": ",".join(f"c{i}" for i in range(1000))}, 400, "1000 class names"),
        ({**good, "classes": "x" * 300 + ", y"}, 400, "characters long"),
        ({**good, "classes": ["a", "b"]}, 400, "class names must be text"),
    ]
    for payload, status, words in cases:
        code, body = post_json(url, payload)
        assert code == status and words in body["error"], (payload.get("classes"), code, body)
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    damaged = "data:image/png;base64," + base64.b64encode(buffer.getvalue()[:300]).decode()
    code, body = post_json(url, {**good, "image": damaged})
    assert code == 400 and "damaged" in body["error"], body
    # Not JSON at all, and a body over the limit.
    request = urllib.request.Request(url, b"{not json", {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30)
    assert error.value.code == 400 and "not JSON" in json.loads(error.value.read())["error"]
    code, body = post_json(url, {**good, "image": "data:image/png;base64," + "A" * 23_000_000})
    assert code == 413 and "at most 16 MB" in body["error"]
    # Still serving, and still right.
    code, body = post_json(url, good)
    assert code == 200 and len(body["student"]["top"]) == 3


def test_server_refuses_foreign_hosts_and_paths_outside_its_folder(server):
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert b'src="/static/zero_shot.js"' in response.read()
    for path, code in (("static/..%2f..%2fcli.py", 404), ("static/../server.py", 404), ("nowhere", 404)):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.url + path, timeout=10)
        assert error.value.code == code
    request = urllib.request.Request(server.url + "api/info", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as error:  # DNS rebinding: a loopback demo answers loopback names only
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 421
    request = urllib.request.Request(server.url + "api/examples/digit-seven-test5.png", headers={"Range": "bytes=0-7"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206 and response.read() == SEVEN.read_bytes()[:8]


def test_cli_errors_are_one_line_with_exit_2(run_dir, tmp_path, capsys):
    only_image = tmp_path / "only-image" / "artifacts"
    only_image.mkdir(parents=True)
    shutil.copytree(run_dir / "artifacts" / "onnx-fp32-image", only_image / "onnx-fp32-image")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cases = [
            (["--model", str(only_image.parent), "--port", "0"], "no text tower or fused zero-shot artifact"),
            (["--model", str(tmp_path / "missing"), "--port", "0"], "does not exist"),
            (["--model", str(tmp_path), "--port", "0"], "has no exported artifacts"),
            (["--model", str(run_dir), "--backend", "openvino", "--port", "0"], "has no openvino artifacts (there: onnx-fp32)"),
            (["--model", str(run_dir), "--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
            (["--model", str(run_dir), "--port", "70000"], "is not a TCP port"),
            (["--model", str(run_dir), "--port", "0", "--max-classes", "1"], "--max-classes 1 is too small"),
        ]
        for args, words in cases:
            capsys.readouterr()
            assert main(["demo", "zero-shot", *args, "--teacher", "none"]) == 2, args
            err = capsys.readouterr().err.strip()
            assert words in err and err.startswith("edgeclip: error:") and "\n" not in err, err


def serve_in_thread(demo):
    """The page in this process on a free port; returns (url, stop)."""
    from edgeclip.demo.server import bind, serve_bound, url_of
    from edgeclip.demo.zero_shot_page import build_app

    server = bind("127.0.0.1", 0)
    stop = threading.Event()
    thread = threading.Thread(target=serve_bound, args=(server, build_app(demo)), kwargs={"ready": lambda u: None, "stop": stop},
                              daemon=True)
    thread.start()
    return url_of(server), stop


def test_a_fused_artifact_alone_classifies_its_shipped_classes(run_dir, tmp_path):
    from edgeclip.demo.zero_shot_page import make_demo

    fused_only = tmp_path / "fused" / "artifacts"
    fused_only.mkdir(parents=True)
    shutil.copytree(run_dir / "artifacts" / "onnx-fp32-zeroshot", fused_only / "onnx-fp32-zeroshot")
    demo = make_demo(fused_only, teacher=str(run_dir / "demo" / "teacher"), threads=1, examples_data=tmp_path / "none")
    assert demo.student.mode == "fused" and demo.default_classes == DIGITS
    url, stop = serve_in_thread(demo)
    try:
        info = get_json(url + "api/info")
        assert info["student"]["classes"] == DIGITS and [e["name"] for e in info["examples"]][0].startswith("digit-")
        code, body = post_json(url + "api/classify", {"image": data_url(SEVEN), "classes": "cat, dog"})
        assert code == 200 and body["fixed_classes"] and body["classes"] == DIGITS
        # The fused artifact's logits over its baked classes give the same ranking as its image + text towers.
        want = expected_top(run_dir, "student", SEVEN, DIGITS)
        assert [r["class"] for r in body["student"]["top"]] == [r["class"] for r in want]
        np.testing.assert_allclose([r["probability"] for r in body["student"]["top"]], [r["probability"] for r in want], atol=1e-4)
        assert body["teacher"]["classes"] == 10  # the teacher ranks the same shipped classes
    finally:
        stop.set()


def test_class_names_parse_like_a_person_types_them():
    from edgeclip.demo.server import PageError
    from edgeclip.demo.zero_shot import parse_class_names

    assert parse_class_names(" cat ,dog\n  red   car,,cat ", 10) == (["cat", "dog", "red car"], ["cat"])
    with pytest.raises(PageError, match="at most 3"):
        parse_class_names("a, b, c, d", 3)


def test_shipped_digits_are_real_held_out_test_digits():
    from edgeclip.demo.examples import digit_examples, digit_test_images

    shipped = {e.label: e for e in digit_examples()}
    real = digit_test_images()
    assert set(shipped) == set(real) and len(shipped) == 5
    for label, (index, image) in real.items():
        path = EXAMPLES_DIR / f"digit-{label}-test{index}.png"
        with Image.open(path) as png:
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), np.asarray(image.convert("RGB")))
    # No dashcam frame is shipped: DAD's PROVENANCE.md says "do not redistribute".
    assert not [p for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".mp4")]


def test_dashcam_examples_come_from_shared_data_at_run_time():
    from edgeclip.demo.examples import DASHCAM_SIZE, dashcam_examples

    assert dashcam_examples(None) == []
    if not (SHARED_DATA / "dad-demo").is_dir():
        pytest.skip(f"no real dashcam data at {SHARED_DATA / 'dad-demo'}")
    frames = dashcam_examples(SHARED_DATA)
    assert len(frames) == 2
    for example in frames:
        import io

        with Image.open(io.BytesIO(example.data)) as image:
            assert image.format == "JPEG" and image.size == DASHCAM_SIZE

