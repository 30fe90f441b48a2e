"""The demo server under hostile input, against 127.0.0.1 only, bounded in connections and seconds.

No model is needed: a small app with one POST route stands in for the pages (the zero-shot page's
own limits — pixel cap before decoding, decode slots — are checked at the bottom).
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

from edgeclip.demo import server as demo_server
from edgeclip.demo.server import STATIC_DIR, DemoApp, PageError, Response, bind, serve_bound, url_of


@pytest.fixture
def served(monkeypatch):
    """An app that echoes POSTed JSON, served in this process; limits lowered so the test runs in seconds."""
    monkeypatch.setattr(demo_server, "SOCKET_TIMEOUT_S", 1.0)
    monkeypatch.setattr(demo_server, "MAX_CONNECTIONS", 3)
    app = DemoApp("test demo", "zero_shot.html", max_body=1000)
    app.route("POST", "/api/echo")(lambda request: Response.json({"got": request.json()}))
    server = bind("127.0.0.1", 0)
    stop = threading.Event()
    thread = threading.Thread(target=serve_bound, args=(server, app), kwargs={"ready": lambda u: None, "stop": stop},
                              daemon=True)
    thread.start()
    yield url_of(server), server
    stop.set()
    thread.join(10)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def read_all(connection: socket.socket) -> str:
    """Everything the server sends until it closes the connection (headers and body may come apart)."""
    chunks = []
    while chunk := connection.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_posts_only_from_its_own_page_and_only_json(served):
    url, server = served
    port = server.server_address[1]
    body = b'{"a": 1}'
    json_type = {"Content-Type": "application/json"}
    cases = [  # (headers, status, words in the error)
        ({**json_type, "Origin": f"http://127.0.0.1:{port}"}, 200, None),
        (json_type, 200, None),  # curl and scripts send no Origin
        ({**json_type, "Origin": "http://evil.example"}, 403, "may not use this demo"),
        ({**json_type, "Origin": f"http://127.0.0.1:{port + 1}"}, 403, "may not use this demo"),  # another local site
        ({**json_type, "Origin": "null"}, 403, "may not use this demo"),  # a sandboxed frame of any site
        ({**json_type, "Sec-Fetch-Site": "cross-site"}, 403, "another site"),
        ({"Content-Type": "text/plain", "Origin": f"http://127.0.0.1:{port}"}, 415, "application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({}, 415, "application/json"),
    ]
    for headers, status, words in cases:
        code, answer = post(url + "api/echo", body, headers)
        assert code == status, (headers, code, answer)
        assert answer == {"got": {"a": 1}} if words is None else words in answer["error"]


def test_error_pages_name_no_path_of_this_machine(served):
    url, _ = served
    for path in ("static/%00", "static/a%00.js", "static/" + "a" * 5000, "static/" + "%2e%2e/" * 40 + "etc/passwd",
                 "static/..%2f..%2fserver.py", "static/"):
        code, text = get(url + path)
        assert code == 404, (path[:40], code)
        assert json.loads(text) == {"error": "no such file here; open / instead"}
        assert str(STATIC_DIR) not in text and "/work" not in text
    assert get(url + "static/demo.css")[0] == 200


def test_a_crashing_handler_answers_500_without_its_exception_text(capsys):
    def broken(request):
        raise OSError(f"[Errno 36] File name too long: '{STATIC_DIR}/xyz'")

    app = DemoApp("t", "zero_shot.html")
    app.route("GET", "/boom")(broken)
    server = bind("127.0.0.1", 0)
    stop = threading.Event()
    threading.Thread(target=serve_bound, args=(server, app), kwargs={"ready": lambda u: None, "stop": stop},
                     daemon=True).start()
    try:
        code, text = get(url_of(server) + "boom")
    finally:
        stop.set()
    assert code == 500 and "OSError" in text and str(STATIC_DIR) not in text and "keeps serving" in text
    assert str(STATIC_DIR) in capsys.readouterr().err  # the details go to the server's own log


def test_a_stalled_upload_is_dropped_and_frees_its_connection(served):
    url, server = served
    started = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=10) as stalled:
        stalled.sendall(b"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 900\r\n\r\n{\"a\": ")  # promises 900 bytes, sends 6, then nothing
        answer = read_all(stalled)
    assert answer.startswith("HTTP/1.1 408") and "took too long" in answer
    assert time.monotonic() - started < 8  # SOCKET_TIMEOUT_S is 1 s here (30 s by default)
    with socket.create_connection(server.server_address[:2], timeout=10) as silent:  # not even a request line
        assert silent.recv(4096) == b""  # closed by the server once its timeout passed
    assert get(url + "static/demo.css")[0] == 200


def test_connections_beyond_the_cap_get_503_at_once_and_bursts_are_queued(served):
    url, server = served
    address = server.server_address[:2]
    holders = [socket.create_connection(address, timeout=10) for _ in range(3)]  # MAX_CONNECTIONS is 3 here
    try:
        time.sleep(0.3)
        with socket.create_connection(address, timeout=10) as extra:
            extra.sendall(b"GET /static/demo.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = read_all(extra)
        assert answer.startswith("HTTP/1.1 503") and "busy" in answer
    finally:
        for holder in holders:
            holder.close()
    assert server.request_queue_size >= 128  # http.server's 5 reset 52 of 300 concurrent connections
    time.sleep(0.3)
    results: list[int] = []

    def fetch() -> None:
        try:
            results.append(get(url + "static/demo.css")[0])
        except OSError:
            results.append(-1)  # a reset: what the larger accept queue prevents

    threads = [threading.Thread(target=fetch) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 40 and -1 not in results and set(results) <= {200, 503}, results


# ---- the zero-shot page's own limits ---------------------------------------------------------

def test_pixel_count_is_checked_from_the_header_before_decoding(monkeypatch):
    from PIL import PngImagePlugin

    from edgeclip.demo.zero_shot import MAX_IMAGE_PIXELS, decode_image

    big = Image.new("1", (6000, 4100))  # 24.6 MP: a few KB as a PNG, ~74 MB once decoded to RGB
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    assert 6000 * 4100 > MAX_IMAGE_PIXELS and len(buffer.getvalue()) < 200_000

    def no_decoding(self):
        raise AssertionError("the image was decoded before its pixel count was checked")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    with pytest.raises(PageError, match="6000x4100 pixels; this page takes up to 24 megapixels"):
        decode_image("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())


def test_uploads_wait_for_a_decode_slot_and_are_refused_when_none_frees(monkeypatch):
    from edgeclip.demo import zero_shot_page
    from edgeclip.demo.zero_shot_page import DECODE_SLOTS, ZeroShotDemo

    class Unused:
        mode = "text"

        def classify(self, image, names):
            raise AssertionError("no slot was free: nothing may be decoded or classified")

    monkeypatch.setattr(zero_shot_page, "SLOT_WAIT_S", 0.2)
    demo = ZeroShotDemo(Unused())
    assert DECODE_SLOTS == 2
    for _ in range(DECODE_SLOTS):
        assert demo._slots.acquire(blocking=False)  # two uploads are being decoded
    with pytest.raises(PageError, match="busy") as error:
        demo.classify({"image": "data:image/png;base64,AAAA", "classes": "a, b"})
    assert error.value.status == 503


def test_uploads_are_decoded_on_the_two_long_lived_worker_threads(monkeypatch):
    """Not on each request's thread: glibc keeps a malloc arena per thread that held big pixel buffers."""
    from edgeclip.demo import zero_shot_page
    from edgeclip.demo.zero_shot_page import ZeroShotDemo

    seen: list[str] = []

    class Model:
        mode = "text"
        templates = ["{}"]

        def classify(self, image, names):
            seen.append(threading.current_thread().name)
            return {"top": [{"class": names[0], "probability": 1.0}]}

    monkeypatch.setattr(zero_shot_page, "decode_image", lambda data_url: Image.new("RGB", (4, 4)))
    demo = ZeroShotDemo(Model())
    threads = [threading.Thread(target=demo.classify, args=({"image": "x", "classes": "a, b"},)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == 6 and len(set(seen)) <= 2 and all(name.startswith("edgeclip-decode") for name in seen), seen
