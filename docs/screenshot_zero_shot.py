"""Screenshot of the zero-shot page on a trained DistillCLIP run (the README's docs/demo_zero_shot.png).

Usage:
    edgeclip distill --recipe distillclip-digits --out runs/distillclip-digits       # or an earlier run
    edgeclip export --model runs/distillclip-digits --tower all --backend onnx --precision fp32
    python docs/screenshot_zero_shot.py --model runs/distillclip-digits --out docs/demo_zero_shot.png [--first-example]

Starts `edgeclip demo zero-shot` on a free local port, uploads a held-out test digit shipped with the
page in headless Debian chromium (Selenium + chromedriver), types the ten digit names, classifies,
and saves the window. What the page shows is the exported student's and teacher's real answer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="DistillCLIP run directory with exported towers")
    parser.add_argument("--image", default="", help="image to upload (default: the shipped test digit seven)")
    parser.add_argument("--first-example", action="store_true",
                        help="click the page's first example instead (the one both models classify right, when any is)")
    parser.add_argument("--out", default="docs/demo_zero_shot.png")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from edgeclip.demo.examples import EXAMPLES_DIR

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        print("error: needs chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    image = Path(args.image) if args.image else EXAMPLES_DIR / "digit-seven-test5.png"
    if not image.is_file():
        print(f"error: no image at {image}; pass --image PATH", file=sys.stderr)
        return 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "edgeclip", "demo", "zero-shot", "--model", args.model,
                               "--port", str(port), "--threads", "1"])
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):  # the first start exports the teacher's towers once
            try:
                urllib.request.urlopen(url + "api/info", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None:  # the demo printed its one-line error
                    return server.returncode or 1
                time.sleep(0.5)
        os.environ["SE_OFFLINE"] = "true"
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                     f"--user-data-dir={tempfile.mkdtemp()}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            driver.get(url)
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.state") == "ready")
            if args.first_example:  # its true label is shown; each model's top-1 is marked right or wrong
                driver.find_elements("css selector", "#examples .example")[0].click()
                requests = 1
            else:
                driver.find_element("id", "file").send_keys(str(image.resolve()))
                classes = driver.find_element("id", "classes")
                classes.clear()
                classes.send_keys(", ".join(DIGITS))
                driver.find_element("id", "classify").click()
                requests = 2
            WebDriverWait(driver, 120).until(
                lambda d: int(d.execute_script("return document.body.dataset.requests || 0")) >= requests
                and d.execute_script("return document.body.dataset.state") in ("done", "error"))
            time.sleep(1)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
            top = driver.find_element("css selector", "#student-top li").text
            print(f"wrote {args.out}; student top-1: {top}")
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
