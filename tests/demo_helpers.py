"""Shared set-up for the demo tests: a tiny DistillCLIP run directory, a torch-free server process, a browser."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# shared/ lies beside the checkout (as in test_data.py), or $EDGECLIP_SHARED_DATA names it (a worktree elsewhere);
# real-data tests skip where it is absent.
SHARED_DATA = Path(os.environ.get("EDGECLIP_SHARED_DATA") or REPO.parent / "shared" / "data")


def make_tiny_run(run_dir: Path, *, towers=("image", "text", "zeroshot"), teacher: bool = True) -> Path:
    """A DistillCLIP-shaped run: test_distillclip student exported (onnx fp32) + a tiny recorded CLIP teacher."""
    import torch

    from distillclip_helpers import tiny_teacher
    from edgeclip.data import open_image_dataset
    from edgeclip.data.sampling import sample_images
    from edgeclip.exporters.dual import export_dual_encoder
    from edgeclip.students.checkpoint import save_checkpoint
    from edgeclip.students.registry import create_student
    from edgeclip.teacher.templates import get_templates

    torch.manual_seed(0)
    model, spec = create_student("test_distillclip")
    # The tiny teacher stands in for the digits proxy (training the real one takes minutes): the student's
    # manifests record what a `distillclip-quickstart` run records, a proxy-digits teacher.
    spec.extra.update({"logit_scale": 50.0, "templates": "digits", "data": "digits", "teacher": "proxy-digits"})
    save_checkpoint(run_dir / "student", model, spec, student_name="test_distillclip")
    test = open_image_dataset("digits", "test")
    templates = get_templates("digits")
    import open_clip

    tokens = open_clip.SimpleTokenizer(context_length=int(spec.context_length))(
        [t.format(c) for c in DIGITS[:3] for t in templates]).numpy()
    export_dual_encoder(model.eval(), spec, "onnx", "fp32", run_dir / "artifacts", towers=towers, class_names=DIGITS,
                        templates=templates, parity_images=sample_images(test, spec.preprocess, 8), parity_tokens=tokens)
    if teacher:
        path = run_dir / "teacher" / "teacher.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        tiny_teacher(seed=1).save(path)
        (run_dir / "teacher" / "clip_teacher.json").write_text(json.dumps({"kind": "clip", "spec": str(path), "name": "tiny-teacher"}))
    return run_dir


def no_torch_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH that makes `import torch` fail (as tests/test_runner.py does) and finds this checkout's edgeclip."""
    blocker = tmp_path / "blocker"
    (blocker / "torch").mkdir(parents=True, exist_ok=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is not allowed in the demo server')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)]), "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m edgeclip demo ...` in a child process; the URL once it answers."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 90.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = cwd / f"server-{self.port}.log"
        self._log_handle = open(self.log, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "edgeclip", "demo", *args, "--port", str(self.port)],
                                        env=env, cwd=cwd, stdout=self._log_handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"demo server exited with {self.process.returncode}:\n{self.output()}")
            try:
                urllib.request.urlopen(self.url + "api/info", timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"demo server did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log_handle.flush()
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_handle.close()


def post_json(url: str, payload: dict, timeout: float = 60.0) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get_json(url: str, timeout: float = 30.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


# ---- a real browser ---------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900"]


def chromium_paths() -> tuple[str, str]:
    """(browser, driver) or skip with the reason."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("no chromium + chromedriver here (CI installs Debian's chromium and chromium-driver in .ci/run)")
    return browser, driver


def open_browser(profile: Path):
    """Headless Debian chromium driven by Selenium with an explicit chromedriver (Selenium Manager never runs)."""
    browser, driver = chromium_paths()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[all]')")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager may not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def requested_urls(driver) -> list[str]:
    """Every URL the page asked the network for (from chromium's DevTools performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def keep_screenshot(path: Path, name: str) -> None:
    """EDGECLIP_SCREENSHOTS=DIR keeps a page's screenshot there (docs/ holds the README's, written this way)."""
    target = os.environ.get("EDGECLIP_SCREENSHOTS")
    if target and path.is_file():
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
