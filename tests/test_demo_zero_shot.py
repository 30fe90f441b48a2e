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


def ready_page(url: str, profile: Path):
    """Chromium on the page, once it has loaded the models' information (the caller quits it)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser(profile)
    try:
        driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.state") == "ready")
    except BaseException:
        driver.quit()
        raise
    return driver


def shown_top(driver, role: str) -> list[tuple[str, str, float]]:
    items = driver.find_elements("css selector", f"#{role}-top li")
    return [(li.find_element("css selector", ".name").text, li.find_element("css selector", ".prob").text,
             float(li.get_attribute("data-probability"))) for li in items]


def test_page_classifies_an_uploaded_digit_in_chromium_without_torch(server, run_dir, tmp_path):
    info = get_json(server.url + "api/info")
    assert info["torch_loaded"] is False and info["student"]["mode"] == "text" and info["teacher"]["name"] == "tiny-teacher"
    driver = ready_page(server.url, tmp_path / "profile")
    try:
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
        urls = requested_urls(driver)
    finally:
        driver.quit()
    assert any(u.endswith("/api/classify") for u in urls)
    # chrome:// are the browser's own pages (its new-tab page before navigation); every network URL must be ours.
    foreign = [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:")) and not u.startswith(server.url)]
    assert foreign == [], f"the page fetched something from elsewhere: {foreign}"


def test_page_says_what_the_models_know_and_examples_carry_their_true_label(server, run_dir, tmp_path):
    from edgeclip.students.registry import create_student
    from edgeclip.utils import count_params

    info = get_json(server.url + "api/info")
    params = count_params(create_student("test_distillclip")[0])
    assert info["student"]["params"] == params  # the model's count once, not image + text tower (each the whole model)
    order = info["examples"]
    assert [e["name"] for e in order][:5] == [e["name"] for e in order if e["label"]]  # labelled (measured) first
    assert all(set(e["top1"]) == {"student", "teacher"} for e in order if e["label"])
    # Measured, not hand-picked: the examples are sorted by how many models classify them right.
    assert [-sum(e["correct"].values()) for e in order] == sorted(-sum(e["correct"].values()) for e in order)
    driver = ready_page(server.url, tmp_path / "profile")
    try:
        knows = driver.find_element("id", "knows")
        assert knows.is_displayed() and "proxy" in knows.get_attribute("class")
        assert knows.text.startswith("This proxy teacher (proxy-digits) only knows handwritten digits")
        assert "zero, one, two, three, four, five, six, seven, eight, nine" in knows.text
        about = driver.find_element("id", "student-about").text
        assert f"{params / 1e6:.2f} M params (whole model)" in about and f"{2 * params / 1e6:.2f} M" not in about
        shelf = driver.find_elements("css selector", "#examples .example")
        assert [b.get_attribute("data-name") for b in shelf] == [e["name"] for e in order]
        assert [b.find_element("css selector", ".example-label").text for b in shelf][:5] == [e["label"] for e in order[:5]]
        assert driver.find_element("id", "examples-note").text.startswith(
            ("None of the 5 labelled examples", "1 of 5", "2 of 5", "3 of 5", "4 of 5", "5 of 5"))
        shelf[0].click()  # the first example: its true label is shown, each top-1 marked right or wrong
        wait_for_requests(driver, 1)
        first = order[0]
        assert driver.find_element("id", "truth").text.startswith(f"True label: {first['label']}")
        for role in ("student", "teacher"):
            top = driver.find_element("css selector", f"#{role}-top li")
            assert top.get_attribute("data-class") == first["top1"][role]  # the page shows what was measured
            assert ("right" if first["correct"][role] else "wrong") in top.get_attribute("class").split()
        driver.save_screenshot(str(tmp_path / "zero_shot.png"))
        # Names outside the proxy's digits are said to be so, with the prompt they really became.
        driver.execute_script("document.getElementById('classes').value = 'seven, car, red_truck'")
        driver.find_element("id", "classify").click()
        wait_for_requests(driver, 2)
        message = driver.find_element("id", "message")
        assert "warn" in message.get_attribute("class").split()
        assert "“car”, “red_truck” are outside what this proxy teacher knows" in message.text
        assert "“car” was prompted as “a photo of the digit car.”" in message.text
        assert len(shown_top(driver, "student")) == 3
    finally:
        driver.quit()
    keep_screenshot(tmp_path / "zero_shot.png", "demo_zero_shot_tiny.png")


def test_an_error_clears_the_previous_results_and_shows_at_the_top(server, tmp_path):
    driver = ready_page(server.url, tmp_path / "profile")
    try:
        driver.find_element("id", "file").send_keys(str(SEVEN))
        wait_for_requests(driver, 1)
        assert len(shown_top(driver, "student")) == 5 and len(shown_top(driver, "teacher")) == 5
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # as after reading the results
        driver.execute_script("document.getElementById('classes').value = 'only'")
        driver.find_element("id", "classify").click()
        wait_for_requests(driver, 2)
        message = driver.find_element("id", "message")
        assert "only one class name" in message.text and message.is_displayed()
        assert shown_top(driver, "student") == [] and shown_top(driver, "teacher") == []  # nothing stale stays
        assert driver.find_element("id", "student-latency").text == ""
        box = driver.execute_script("const r = document.getElementById('message').getBoundingClientRect();"
                                    "return [r.top, r.bottom, window.innerWidth, window.innerHeight];")
        assert box[2] == 1280 and 0 <= box[0] and box[1] <= box[3], box  # in view in the 1280x900 window
        assert box[3] <= 900
    finally:
        driver.quit()


def test_bad_input_shows_a_message_on_the_page_and_the_server_keeps_serving(server, tmp_path):
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("these are notes, not pixels\n")
    driver = ready_page(server.url, tmp_path / "profile")
    try:
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



# ---- one prompt ensemble everywhere (issue 18) -----------------------------------------------

def test_prompt_ensemble_numpy_and_torch_forms_agree_and_read_underscores_as_spaces():
    """The runner's numpy definition and edgeclip's torch form build the same prompts and the same embeddings."""
    import torch

    from edgeclip.prompt_ensemble import class_embeddings_numpy, class_embeddings_torch, class_prompts, runner_module

    vocabulary = {}
    table = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)

    def bag_of_words(prompts: list[str]) -> np.ndarray:  # a deterministic stand-in for a text tower
        rows = np.zeros((len(prompts), 8), np.float32)
        for i, prompt in enumerate(prompts):
            for word in prompt.lower().replace(".", " ").split():
                rows[i] += table[vocabulary.setdefault(word, len(vocabulary) % 64)]
        return rows

    names = ["golden_retriever", "golden retriever", "sea_lion", "  spaced   out_name "]
    templates = ["a photo of a {}.", "{}", "a blurry photo of the {}."]
    assert class_prompts(names, templates)[0] == ["a photo of a golden retriever.", "golden retriever",
                                                  "a blurry photo of the golden retriever."]
    assert class_prompts(names, templates)[3][1] == "spaced out name"
    as_numpy = class_embeddings_numpy(bag_of_words, names, templates, batch_size=4)  # batches cut across classes
    as_torch = class_embeddings_torch(lambda p: torch.from_numpy(bag_of_words(p)), names, templates, batch_size=5)
    np.testing.assert_allclose(as_numpy, as_torch.numpy(), atol=1e-6)
    np.testing.assert_allclose(as_numpy[0], as_numpy[1], atol=1e-7)  # "_" is a space everywhere
    np.testing.assert_allclose(np.linalg.norm(as_numpy, axis=1), 1.0, atol=1e-6)
    assert runner_module().__file__.endswith("devices/runner/prompt_ensemble.py")


def test_export_demo_and_device_runner_embed_class_names_alike(run_dir):
    """Torch export (exporters/dual.py), the demo (ONNX text tower, numpy) and the device runner agree, `_` included."""
    import importlib
    import sys

    from edgeclip.demo.zero_shot import find_zero_shot_model
    from edgeclip.exporters.dual import class_embeddings
    from edgeclip.paths import data_dir
    from edgeclip.students.checkpoint import load_checkpoint

    names = ["sea_lion", "sea lion", "zero", "traffic_light"]
    student = find_zero_shot_model(run_dir, threads=1)
    demo_rows, _ = student.class_embeddings(names)
    model, spec = load_checkpoint(run_dir / "student")[:2]
    torch_rows = class_embeddings(model, int(spec.context_length), names, student.templates).numpy()
    np.testing.assert_allclose(demo_rows, torch_rows, atol=2e-5)
    np.testing.assert_allclose(demo_rows[0], demo_rows[1], atol=1e-6)
    runner_dir = str(data_dir() / "devices" / "runner")
    sys.path.insert(0, runner_dir)
    try:
        runner_zero_shot = importlib.import_module("zero_shot")
        device_rows = runner_zero_shot.text_class_embeddings(student.text, str(student.text_dir), names)
    finally:
        sys.path.remove(runner_dir)
        sys.modules.pop("zero_shot", None)
    np.testing.assert_allclose(device_rows, demo_rows, atol=1e-6)


# ---- what the page says the models know --------------------------------------------------------

def test_manifests_record_the_runs_domain_and_the_page_says_what_a_proxy_knows(run_dir):
    from edgeclip.demo.knowledge import known_domain, outside_domain
    from edgeclip.demo.zero_shot import find_zero_shot_model
    from edgeclip.teacher.templates import DIGITS_TEMPLATES

    for tower in ("image", "text", "zeroshot"):
        domain = json.loads((run_dir / "artifacts" / f"onnx-fp32-{tower}" / "manifest.json").read_text())["domain"]
        assert domain["templates"] == DIGITS_TEMPLATES and domain["template_set"] == "digits" and domain["data"] == "digits"
        assert domain["proxy"]["name"] == "proxy-digits" and domain["proxy"]["classes"] == DIGITS
    student = find_zero_shot_model(run_dir, threads=1)
    knows = known_domain(student, None, ["a", "b"])
    assert knows["classes"] == DIGITS  # the proxy's training classes, not whatever the defaults are
    assert knows["summary"].startswith("This proxy teacher (proxy-digits) only knows handwritten digits")
    assert "zero, one, two, three, four, five, six, seven, eight, nine" in knows["summary"]
    assert outside_domain(["seven", "Nine", "3"], knows, student.templates) is None  # its captions used numerals too
    note = outside_domain(["seven", "car", "red_truck"], knows, student.templates)
    assert note["names"] == ["car", "red_truck"] and note["prompt"] == "a photo of the digit car."
    assert "“car” was prompted as “a photo of the digit car.”" in note["note"]


class _StubModel:
    """A model whose top-1 is fixed per example image size (the examples below differ in width)."""

    mode = "text"
    fused_classes = None

    def __init__(self, answers: dict[int, str]) -> None:
        self.answers = answers

    def classify(self, image, names):
        return {"top": [{"class": self.answers[image.width], "probability": 1.0}]}


def test_the_first_example_is_one_every_model_gets_right_by_measurement():
    import io

    from edgeclip.demo.examples import Example
    from edgeclip.demo.knowledge import examples_note, measure_examples

    def png(width: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (width, 4)).save(buffer, "PNG")
        return buffer.getvalue()

    examples = {name: Example(name, name, label, "image/png", png(width)) for name, label, width in
                (("a", "one", 1), ("b", "two", 2), ("c", None, 3), ("d", "three", 4), ("e", "four", 5))}
    student = _StubModel({1: "seven", 2: "two", 4: "three", 5: "four"})
    teacher = _StubModel({1: "one", 2: "zero", 4: "three", 5: "four"})
    classes = ["one", "two", "three", "four", "seven", "zero"]
    order = measure_examples(examples, {"student": student, "teacher": teacher}, classes)
    assert [r["name"] for r in order] == ["d", "e", "a", "b", "c"]  # both right, then one right (kept in order), unlabelled
    assert order[0]["all_correct"] and order[0]["top1"] == {"student": "three", "teacher": "three"}
    assert order[2]["correct"] == {"student": False, "teacher": True} and order[-1]["top1"] == {}
    assert examples_note(order).startswith("2 of 4 labelled examples are classified correctly by every model")
    nobody = measure_examples(examples, {"student": _StubModel({1: "x", 2: "x", 4: "x", 5: "x"})}, classes)
    assert [r["name"] for r in nobody] == ["a", "b", "d", "e", "c"] and "None of the 4" in examples_note(nobody)
