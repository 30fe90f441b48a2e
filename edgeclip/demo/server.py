"""A small HTTP server for the demo pages, on the standard library only (no torch, no web framework).

Pages register routes (`(method, path) -> handler(Request) -> Response`) and a static folder of
package data. The server:
- binds 127.0.0.1 unless told otherwise, and answers only requests whose Host header names the
  address it serves (a page on another site cannot reach a loopback demo via DNS rebinding);
- sends a Content-Security-Policy that allows only its own origin, so the pages cannot fetch
  anything from a CDN even by accident (tests check the browser made no other request);
- answers a POST only from its own page: an `Origin` (or `Sec-Fetch-Site`) of another site is refused
  (403) and the body must be `application/json` (415) — a form or `text/plain` POST from another site
  needs no CORS preflight, a JSON one does, and this server grants none;
- bounds its resources: at most `MAX_CONNECTIONS` connections at once (more get a 503 at once), a
  long accept queue (`request_queue_size`: bursts are queued, not reset), a socket timeout per
  request and a deadline for reading a body (a stalled upload frees its thread), and `max_body`;
- turns a handler's `PageError` into a JSON error the page shows, and any other exception into a 500
  with a generic line (details go to the server's log, never file-system paths to the client);
- serves files with byte ranges (browsers seek in a video with Range requests).
"""

from __future__ import annotations

import errno
import json
import mimetypes
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from edgeclip.errors import UserError

STATIC_DIR = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
# Over-limit uploads up to this size are read and dropped so the client sees the 413 message; beyond it the
# connection is closed unread (the client then sees a reset, but the server spends nothing on it).
DRAIN_LIMIT = 256 * 1024 * 1024
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
SOCKET_TIMEOUT_S = 30.0  # per blocking read/write of a request; a silent client is dropped after this
BODY_DEADLINE_S = 120.0  # a whole upload: a client trickling a byte now and then cannot hold a thread forever
MAX_CONNECTIONS = 64  # threads serving at once; beyond, a connection is answered 503 and closed
ACCEPT_QUEUE = 256  # listen() backlog: http.server's default of 5 reset 52 of 300 concurrent connections
MAX_STATIC_NAME = 200  # characters; longer names are not files of the static folder
POST_CONTENT_TYPE = "application/json"


class PageError(Exception):
    """Bad input from the page: the message is shown on the page as is (HTTP 400 unless `status` says)."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = int(status)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Any
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PageError(f"the request body is not JSON ({exc.__class__.__name__}); reload the page") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # served with byte ranges instead of `body`
    ranged: bool = False  # `body` too is served with byte ranges (media held in memory)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> "Response":
        return cls(status, json.dumps(data, allow_nan=False).encode("utf-8"))

    @classmethod
    def error(cls, message: str, status: int = HTTPStatus.BAD_REQUEST) -> "Response":
        return cls.json({"error": message}, status)

    @classmethod
    def from_file(cls, path: Path, content_type: str | None = None) -> "Response":
        kind = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(200, content_type=kind, file=path)


Handler = Callable[[Request], Response]


class DemoApp:
    """Routes + a static folder; `serve(...)` runs it."""

    def __init__(self, title: str, index: str, *, max_body: int = 16 * 1024 * 1024, body_expansion: float = 1.0) -> None:
        self.title = title
        self.index = index  # the static file served at /
        self.max_body = max_body
        # Request bytes per byte of the user's file (4/3 for base64 uploads): error messages speak of the file.
        self.body_expansion = body_expansion
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def add(handler: Handler) -> Handler:
            if path.endswith("/"):
                self.prefix_routes.append((method, path, handler))
            else:
                self.routes[(method, path)] = handler
            return handler
        return add

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path in ("/", "/index.html"):
            return static_file(self.index)
        if request.method == "GET" and request.path.startswith("/static/"):
            return static_file(request.path[len("/static/"):])
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            handler = next((h for m, p, h in self.prefix_routes if m == request.method and request.path.startswith(p)), None)
        if handler is None:
            known = any(p == request.path for _, p in self.routes) or any(request.path.startswith(p) for _, p, _ in self.prefix_routes)
            if known:
                return Response.error(f"{request.method} is not allowed on {request.path}", HTTPStatus.METHOD_NOT_ALLOWED)
            return Response.error(f"no page at {request.path}; open / instead", HTTPStatus.NOT_FOUND)
        return handler(request)


def static_file(name: str) -> Response:
    """A file of the package's static folder; anything outside it (../, absolute paths, NUL bytes, names
    the file system refuses) is not found, with a message that names no path of this machine."""
    not_found = Response.error("no such file here; open / instead", HTTPStatus.NOT_FOUND)
    wanted = urllib.parse.unquote(name)
    if not wanted or len(wanted) > MAX_STATIC_NAME or "\x00" in wanted:
        return not_found
    try:
        path = (STATIC_DIR / wanted).resolve()
        if STATIC_DIR not in path.parents or not path.is_file():
            return not_found
    except (OSError, ValueError):  # "File name too long", odd encodings: still just not a file here
        return not_found
    return Response.from_file(path)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=a-b` range, or None when it cannot be served."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].strip().partition("-")
    try:
        if first == "":  # suffix range: the last N bytes
            count = int(last)
            return (max(0, size - count), size - 1) if count > 0 and size else None
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    return (start, end) if 0 <= start <= end else None


def make_handler(app: DemoApp, allowed_hosts: set[str], verbose: bool) -> type[BaseHTTPRequestHandler]:
    class DemoRequestHandler(BaseHTTPRequestHandler):
        server_version = "edgeclip-demo"
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT_S  # StreamRequestHandler sets it on the connection's socket

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
            if verbose:
                sys.stderr.write(f"[edgeclip demo] {self.address_string()} {format % args}\n")

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._dispatch("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._dispatch("GET", head=True)

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def _dispatch(self, method: str, head: bool = False) -> None:
            try:
                response = self._respond(method)
            except PageError as exc:
                response = Response.error(str(exc), exc.status)
            except UserError as exc:
                response = Response.error(str(exc), HTTPStatus.BAD_REQUEST)
            except TimeoutError:  # the client stopped sending (socket timeout or the body deadline)
                self.close_connection = True
                response = Response.error("the upload took too long and was dropped; try again",
                                          HTTPStatus.REQUEST_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a bug in one request must not stop the demo
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                sys.stderr.write(f"[edgeclip demo] error on {self.path[:200]}: {type(exc).__name__}: {first}\n")
                # The exception's text can hold paths of this machine: the client gets its type only.
                response = Response.error(f"the server failed on this request ({type(exc).__name__}); it keeps "
                                          "serving, try another input (details are in the server's log)",
                                          HTTPStatus.INTERNAL_SERVER_ERROR)
            try:
                self._send(response, head)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away (e.g. it stopped a video download)

        def _respond(self, method: str) -> Response:
            host = (self.headers.get("Host") or "").strip().lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in allowed_hosts:
                return Response.error(f"host {host!r} is not served here; open http://127.0.0.1:<port>/",
                                      HTTPStatus.MISDIRECTED_REQUEST)
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            body = b""
            if method == "POST":
                self._check_post_origin(host)
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0:
                    raise PageError("the request has no valid Content-Length", HTTPStatus.LENGTH_REQUIRED)
                if length > app.max_body:
                    self.close_connection = True  # the unread body must not be parsed as the next request
                    if length <= DRAIN_LIMIT:
                        self._discard(length)  # a client that sends its whole body before reading gets the message
                    raise PageError(f"the file is about {length / app.body_expansion / 1e6:.1f} MB; this page takes at most "
                                    f"{app.max_body / app.body_expansion / 1e6:.0f} MB — pick a smaller image",
                                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                body = self._read_body(length)
            return app.handle(Request(method, url.path, query, self.headers, body))

        def _check_post_origin(self, host: str) -> None:
            """Only this server's own page may POST: a page on another site can send a form or text/plain
            POST without asking (no CORS preflight), so such requests are refused before any work."""
            origin = (self.headers.get("Origin") or "").strip().lower()
            if origin and urllib.parse.urlsplit(origin).netloc != host:  # "null" (a sandboxed frame) included
                self.close_connection = True  # its body is not read
                raise PageError(f"a page of {origin[:100]} may not use this demo; open it at http://{host}/",
                                HTTPStatus.FORBIDDEN)
            if (self.headers.get("Sec-Fetch-Site") or "same-origin").lower() not in ("same-origin", "none"):
                self.close_connection = True
                raise PageError("a page of another site may not use this demo; open it directly", HTTPStatus.FORBIDDEN)
            kind = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if kind != POST_CONTENT_TYPE:
                self.close_connection = True
                raise PageError(f"this demo takes {POST_CONTENT_TYPE} POSTs, not {kind or 'a body without a type'}; "
                                "use the page", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)

        def _read_body(self, length: int) -> bytes:
            """The body, read in chunks under the socket timeout and an overall deadline."""
            deadline = time.monotonic() + BODY_DEADLINE_S
            chunks, left = [], length
            while left > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("body deadline")
                chunk = self.rfile.read1(min(left, 1 << 20))
                if not chunk:
                    raise PageError("the upload ended early; pick the file again")
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)

        def _discard(self, length: int) -> None:
            """Read and drop an over-limit body (under the same deadline as a body that is kept)."""
            deadline = time.monotonic() + BODY_DEADLINE_S
            left = length
            while left > 0 and time.monotonic() < deadline:
                try:
                    chunk = self.rfile.read1(min(left, 1 << 20))
                except TimeoutError:
                    return  # the 413 is still sent; the connection is closed after it
                if not chunk:
                    break
                left -= len(chunk)

        def _send(self, response: Response, head: bool) -> None:
            start, end, total = 0, None, None
            if response.ranged and response.file is None and response.status == HTTPStatus.OK:
                byte_range = _parse_range(self.headers.get("Range") or "", len(response.body))
                response.headers["Accept-Ranges"] = "bytes"
                if byte_range is not None:
                    start, end = byte_range
                    response.headers["Content-Range"] = f"bytes {start}-{end}/{len(response.body)}"
                    response.status, response.body = HTTPStatus.PARTIAL_CONTENT, response.body[start:end + 1]
            if response.file is not None:
                total = response.file.stat().st_size
                wanted = self.headers.get("Range")
                byte_range = _parse_range(wanted, total) if wanted else None
                if wanted and byte_range is None:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if byte_range is not None:
                    start, end = byte_range
                    response.status = HTTPStatus.PARTIAL_CONTENT
                    response.headers["Content-Range"] = f"bytes {start}-{end}/{total}"
                length = (end if end is not None else total - 1) - start + 1
            else:
                length = len(response.body)
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type + ("; charset=utf-8" if response.content_type.startswith(
                ("text/", "application/json", "application/javascript")) else ""))
            self.send_header("Content-Length", str(length))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "no-store")
            if response.file is not None:
                self.send_header("Accept-Ranges", "bytes")
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            if response.file is None:
                self.wfile.write(response.body)
                return
            with open(response.file, "rb") as handle:
                handle.seek(start)
                left = length
                while left > 0:
                    chunk = handle.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)

    return DemoRequestHandler


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a second demo on a busy port must fail, not share it
    request_queue_size = ACCEPT_QUEUE

    def server_activate(self) -> None:
        self._connection_slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, at most MAX_CONNECTIONS at once: beyond, a 503 at once (no thread)."""
        if not self._connection_slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 57\r\nConnection: close\r\n\r\n"
                                b'{"error": "the demo is busy; try again in a few seconds"}')
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_slots.release()


def bind(host: str = "127.0.0.1", port: int = 7860, verbose: bool = False) -> DemoServer:
    """A bound server, not yet serving (attach a page with `serve_bound`). A port in use → UserError.

    Binding first lets the CLI report a busy port at once, before it spends time opening models.
    """
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a TCP port; pass 1-65535 (or 0 for any free port)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("DemoServer", (DemoServer,), {"address_family": family})
    try:
        server = server_class((host, port), BaseHTTPRequestHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use (another demo or server?); pass a free --port "
                            "(or --port 0 to take any free one)") from None
        if exc.errno == errno.EACCES:
            raise UserError(f"no permission to listen on port {port}; pass --port 1024 or higher") from None
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass --host 127.0.0.1 "
                        "or an address of this machine") from None
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def allowed_hosts(host: str) -> set[str]:
    """Host header names accepted. Bound to loopback: loopback names only (a web page elsewhere cannot
    reach the demo by pointing its own domain at 127.0.0.1); bound elsewhere: the user chose to expose it."""
    if host in LOOPBACK_NAMES or host.startswith("127."):
        return LOOPBACK_NAMES | {host.lower()}
    return _AnyHost()


class _AnyHost(set):
    def __contains__(self, item: object) -> bool:
        return True


def url_of(server: DemoServer) -> str:
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"


def serve_bound(server: DemoServer, app: DemoApp, *, ready: Callable[[str], None] | None = None,
                stop: threading.Event | None = None) -> None:
    """Serve `app` on a bound server until Ctrl-C (or until `stop` is set); closes the socket at the end."""
    host = server.server_address[0]
    server.RequestHandlerClass = make_handler(app, allowed_hosts(host), getattr(server, "verbose", False))
    url = url_of(server)
    (ready or (lambda u: print(f"{app.title}: serving on {u} (Ctrl-C to stop)", flush=True)))(url)
    if stop is not None:
        threading.Thread(target=lambda: (stop.wait(), server.shutdown()), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print(f"{app.title}: stopped", file=sys.stderr)
    finally:
        server.server_close()


def serve(app: DemoApp, host: str = "127.0.0.1", port: int = 7860, *, verbose: bool = False,
          ready: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> None:
    """Bind, say where, serve until Ctrl-C (or `stop` is set)."""
    serve_bound(bind(host, port, verbose), app, ready=ready, stop=stop)


# JS modules need their own type; some systems' mime tables lack .mjs/.webm/.svg.
for _ext, _type in ((".js", "application/javascript"), (".mjs", "application/javascript"), (".css", "text/css"),
                    (".svg", "image/svg+xml"), (".webm", "video/webm"), (".mp4", "video/mp4"), (".json", "application/json")):
    mimetypes.add_type(_type, _ext)
