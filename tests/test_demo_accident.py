"""`edgeclip demo accident --serve`: the demo's output on a real dashcam clip, in headless Chromium, without torch.

The encoder is the tiny random test student and the head is trained for seconds on four real CCD
clips, so the probabilities mean little; the tests check that the page shows what alerts.json says
(timeline, threshold, alert times, latency, the annotated video), not accuracy.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from demo_helpers import SHARED_DATA, ServerProcess, get_json, keep_screenshot, no_torch_env, open_browser, requested_urls
from edgeclip.cli import main

CCD = SHARED_DATA / "dashcam-clips" / "ccd"
CLIP = CCD / "000082.mp4"  # a CCD crash clip: 50 frames at 10 fps, onset at frame 37
TRAIN_CLIPS = (("000082.mp4", "1 37"), ("000431.mp4", "1 44"), ("000002.mp4", "0"), ("000003.mp4", "0"))


@pytest.fixture(scope="module")
def accident_model(tmp_path_factory) -> Path:
    if not CLIP.is_file():
        pytest.skip(f"no real dashcam clips at {CCD} (shared/data beside the checkout)")
    root = tmp_path_factory.mktemp("accident")
    listing = root / "clips.txt"
    listing.write_text("".join(f"{CCD / name} {label}\n" for name, label in TRAIN_CLIPS))
    out = root / "model"
    assert main(["video", "train", "--clips", str(listing), "--encoder", "test_distillclip", "--head", "evl",
                 "--frames", "4", "--stride", "2", "--gap-s", "0.5", "--epochs", "150", "--folds", "0",
                 "--out", str(out), "--backend", "onnx"]) == 0
    return out


@pytest.fixture(scope="module")
def served(accident_model, tmp_path_factory):
    """One child process that cannot import torch: runs the demo on the real clip, then serves its output."""
    work = tmp_path_factory.mktemp("accident-server")
    out = work / "demo-out"
    process = ServerProcess(["accident", "--video", str(CLIP), "--model", str(accident_model), "--out", str(out),
                             "--serve"], no_torch_env(work), work, timeout=180)
    yield process, out
    process.stop()


def test_page_shows_timeline_alerts_latency_and_video_in_chromium(served, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    server, out = served
    summary = json.loads((out / "alerts.json").read_text())
    assert summary["frames"] == 50 and summary["alerts"], "the tiny model raised no alert on the crash clip"
    assert "ALERT at" in server.output() and "wrote" in server.output()
    driver = open_browser(tmp_path / "profile")
    try:
        driver.get(server.url)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.state") in ("ready", "error"))
        assert driver.execute_script("return document.body.dataset.state") == "ready", driver.find_element("id", "message").text
        # The timeline: one point per window, the threshold line at the threshold, one mark per alert.
        points = driver.find_element("id", "prob-line").get_attribute("points").split()
        assert len(points) == summary["windows"] == len(summary["probabilities"])
        assert len(driver.find_elements("css selector", "#timeline circle.window")) == summary["windows"]
        line = driver.find_element("id", "threshold-line")  # chart: y in [0, 1] drawn from 226 px (0) up to 14 px (1)
        assert float(line.get_attribute("y1")) == float(line.get_attribute("y2")) == pytest.approx(226 - 212 * summary["threshold"])
        assert f"alert threshold {summary['threshold']}" in driver.find_element("id", "timeline").text
        marks = driver.find_elements("css selector", "#timeline g.alert-mark")
        assert [float(m.get_attribute("data-time")) for m in marks] == [a["time_s"] for a in summary["alerts"]]
        first_alert = summary["alerts"][0]
        assert f"ALERT {first_alert['time_s']:.2f} s" in driver.find_element("id", "timeline").text
        listed = driver.find_elements("css selector", "#alerts li.alert-time")
        assert listed[0].text.startswith(f"{first_alert['time_s']:.2f} s (frame {first_alert['frame']})")
        # Latency: the table from the summary's percentiles, one bar per frame.
        row = driver.find_element("css selector", "#latency-table tr[data-stage=per_frame]")
        assert f"{summary['latency_ms']['per_frame']['p50']:.1f} ms" in row.text
        assert len(driver.find_elements("css selector", "#frame-latency rect.frame-bar")) == summary["frames"] == 50
        assert "FPS end to end" in driver.find_element("id", "fps-tag").text
        # What is known about the clip: its labelled onset (frame 37 at 10 fps: 3.6 s), the span before the first
        # full window (nothing scored there), and that the model was trained on this very clip.
        onset = driver.find_element("id", "onset-mark")
        assert float(onset.get_attribute("data-time")) == pytest.approx(3.6) and "crash onset 3.60 s" in onset.text
        assert driver.find_element("id", "onset-note").text.startswith(
            "Labelled crash onset: 3.60 s (frame 37, from the model's training record (windows.json))")
        first = summary["probabilities"][0]
        shade = driver.find_element("id", "unscored")  # chart: x from 72 px (0 s) to 984 px (5 s)
        assert float(shade.get_attribute("width")) == pytest.approx(912 * first["time_s"] / 5.0, abs=0.5)
        assert "no score before the first full window" in driver.find_element("id", "timeline").text
        assert driver.find_element("id", "window-note").text.startswith(
            f"Nothing can be scored before the first full window: the head needs {summary['window']['length']} frames, "
            f"so the first score is at {first['time_s']:.2f} s (frame {first['frame']})")
        trained = driver.find_element("id", "trained-note")
        assert trained.is_displayed() and trained.text.startswith("Caveat: the model was trained on this clip")
        # The annotated video plays in the browser (H.264 from PyAV) and clicking an alert seeks to it.
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.video") is not None)
        assert driver.execute_script("return document.body.dataset.video") == "ready", driver.find_element("id", "video-message").text
        assert driver.execute_script("return document.getElementById('video').duration") == pytest.approx(5.0, abs=0.2)
        listed[0].find_element("tag name", "a").click()
        WebDriverWait(driver, 10).until(lambda d: abs(d.execute_script("return document.getElementById('video').currentTime")
                                                      - first_alert["time_s"]) < 0.5)
        driver.execute_script("document.getElementById('video').pause()")
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(
            "const v = document.getElementById('video'); return !v.seeking && v.readyState >= 2"))
        driver.set_window_size(1280, driver.execute_script("return document.body.scrollHeight") + 140)  # the whole page
        driver.save_screenshot(str(tmp_path / "accident.png"))
        urls = requested_urls(driver)
    finally:
        driver.quit()
    assert any(u.endswith("/media/annotated.mp4") for u in urls)
    foreign = [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:")) and not u.startswith(server.url)]
    assert foreign == [], f"the page fetched something from elsewhere: {foreign}"
    keep_screenshot(tmp_path / "accident.png", "demo_accident.png")


def test_summary_and_video_over_http_without_torch(served):
    server, out = served
    data = get_json(server.url + "api/summary")
    summary = json.loads((out / "alerts.json").read_text())
    assert data["torch_loaded"] is False and data["source"] == CLIP.name
    assert data["alerts"] == summary["alerts"] and data["probabilities"] == summary["probabilities"]
    assert data["duration_s"] == pytest.approx(5.0) and len(data["per_frame_ms"]) == 50
    request = urllib.request.Request(server.url + "media/annotated.mp4", headers={"Range": "bytes=4-11"})
    with urllib.request.urlopen(request, timeout=10) as response:  # browsers seek with byte ranges
        assert response.status == 206 and response.read() == (out / "annotated.mp4").read_bytes()[4:12]
        assert response.headers["Content-Type"] == "video/mp4"


def test_an_output_without_video_serves_its_timeline(served, tmp_path):
    from edgeclip.demo.accident_page import build_app, load_accident_output
    from edgeclip.demo.server import bind, serve_bound, url_of

    _, out = served
    copy = tmp_path / "no-video"
    copy.mkdir()
    shutil.copy(out / "alerts.json", copy / "alerts.json")
    server = bind("127.0.0.1", 0)
    stop = threading.Event()
    threading.Thread(target=serve_bound, args=(server, build_app(load_accident_output(copy))),
                     kwargs={"ready": lambda u: None, "stop": stop}, daemon=True).start()
    try:
        url = url_of(server)
        assert get_json(url + "api/summary")["video_url"] is None
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(url + "media/annotated.mp4", timeout=10)
        assert error.value.code == 404 and "--no-video" in json.loads(error.value.read())["error"]
    finally:
        stop.set()


def test_bad_input_is_one_line_exit_2(served, accident_model, tmp_path, capsys):
    _, out = served
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "alerts.json").write_text("{not json")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "alerts.json").write_text(json.dumps({"alerts": []}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cases = [
            (["--out", str(tmp_path / "missing"), "--serve"], "does not exist; run `edgeclip demo accident"),
            (["--out", str(tmp_path), "--serve"], "has no alerts.json"),
            (["--out", str(broken), "--serve"], "is not readable JSON"),
            (["--out", str(foreign), "--serve"], "lacks threshold"),
            (["--out", str(out), "--serve", "--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
            # the port is checked before the clip is processed: nothing is written to --out
            (["--video", str(CLIP), "--model", str(accident_model), "--out", str(tmp_path / "o"), "--serve", "--port", str(port)],
             "is in use"),
            ([], "pass --video FILE or --frames DIR"),
            (["--video", str(CLIP)], "--model RUN_DIR is required"),
        ]
        for args, words in cases:
            capsys.readouterr()
            assert main(["demo", "accident", *args]) == 2, args
            err = capsys.readouterr().err.strip()
            assert words in err and err.startswith("edgeclip: error:") and "\n" not in err, err
    assert not (tmp_path / "o").exists()



@pytest.mark.parametrize("clip, onset", [("ccd/000838.mp4", 32), ("normal/udacity_test_video.mp4", None)])
def test_clips_the_model_never_saw_get_their_onset_from_labels_txt_and_no_caveat(accident_model, tmp_path, clip, onset):
    """A CCD crash clip outside the training list: onset from dashcam-clips/labels.txt; a normal clip: no onset."""
    from edgeclip.demo.accident_page import load_accident_output
    from edgeclip.video.accident_demo.runner import run_demo

    run_demo(str(accident_model), video=str(CCD.parent / clip), out_dir=str(tmp_path / "out"), write_video=False,
             threads=1, log=lambda message: None)
    data = load_accident_output(tmp_path / "out").page_data()
    assert data["trained_on_clip"] is False and data["training_clips"] == len(TRAIN_CLIPS)
    if onset is None:
        assert data["onset"] is None
    else:
        found = dict(data["onset"])
        # The same file, however the path to shared/ is spelled (a symlinked shared/ resolves elsewhere).
        assert Path(found.pop("from")).resolve() == (SHARED_DATA / "dashcam-clips" / "labels.txt").resolve()
        assert found == {"frame": onset, "time_s": pytest.approx((onset - 1) / data["fps_source"])}
    assert data["first_window"]["frame"] == data["probabilities"][0]["frame"] > 1
