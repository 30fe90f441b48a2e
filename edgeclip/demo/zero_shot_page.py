"""The zero-shot page: routes over `ZeroShotModel`s (student, and the teacher when exported).

    GET  /                      static/zero_shot.html (+ zero_shot.js, demo.css)
    GET  /api/info              models, what they know (`knowledge.py`), default classes, limits,
                                examples (true label, each model's top-1; the first is one both get right)
    GET  /api/examples/<name>   an example image
    POST /api/classify          {"image": data URL, "classes": "a, b, c"} → top-5 per model + latency,
                                and a note when typed names lie outside a proxy teacher's domain

Bad input (not an image, no classes, too many classes, oversized upload) is answered with
{"error": "..."} (HTTP 4xx), which the page shows; the server keeps serving. Uploads are decoded
and classified at most DECODE_SLOTS at a time, so concurrent large uploads cannot pile up memory.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeclip.demo.examples import Example, default_shared_data, load_examples
from edgeclip.demo.knowledge import examples_note, known_domain, measure_examples, outside_domain
from edgeclip.demo.server import DemoApp, PageError, Request, Response
from edgeclip.demo.teacher_towers import has_teacher_towers, teacher_record_path, teacher_towers_dir
from edgeclip.demo.zero_shot import ZeroShotModel, decode_image, find_zero_shot_model, list_artifacts, parse_class_names
from edgeclip.errors import UserError

DEFAULT_MAX_CLASSES = 100
DECODE_SLOTS = 2  # uploads decoded + classified at once (each may hold ~100 MB of pixels while it runs)
SLOT_WAIT_S = 60.0


@dataclass
class ZeroShotDemo:
    student: ZeroShotModel
    teacher: ZeroShotModel | None = None
    teacher_note: str = ""
    default_classes: list[str] = field(default_factory=list)
    max_classes: int = DEFAULT_MAX_CLASSES
    examples: dict[str, Example] = field(default_factory=dict)
    model_dir: str = ""
    knows: dict[str, Any] = field(default_factory=dict)
    example_order: list[dict[str, Any]] = field(default_factory=list)  # measured at start-up (`prepare`)
    _slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(DECODE_SLOTS))
    # The pixels are decoded and classified on DECODE_SLOTS long-lived threads, not on each request's thread:
    # glibc keeps a malloc arena per thread that touched big buffers, so RSS grew with the number of request
    # threads although only 2 decoded at once (measured here, 23.96 MP PNG uploads to a digits run: peak RSS
    # 0.52 GB for 2 concurrent, 1.17 GB for 16; on two worker threads 0.56 GB for 2, 0.58 GB for 16).
    _workers: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(DECODE_SLOTS, "edgeclip-decode"))

    def prepare(self) -> "ZeroShotDemo":
        """What the models know, and the examples classified by each model (first: one both get right)."""
        self.knows = known_domain(self.student, self.teacher, self.default_classes)
        models = {"student": self.student, **({"teacher": self.teacher} if self.teacher is not None else {})}
        self.example_order = measure_examples(self.examples, models, self.knows["classes"])
        return self

    def info(self) -> dict[str, Any]:
        return {
            "title": "edgeclip zero-shot demo", "model_dir": self.model_dir,
            "student": self.student.describe(), "teacher": self.teacher.describe() if self.teacher else None,
            "teacher_note": self.teacher_note, "default_classes": self.default_classes, "max_classes": self.max_classes,
            "torch_loaded": "torch" in sys.modules,  # the page runs on exported artifacts only
            "knows": self.knows, "examples": self.example_order, "examples_note": examples_note(self.example_order),
        }

    def classify(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise PageError("the request must be a JSON object with 'image' and 'classes'; reload the page")
        fixed = self.student.mode == "fused"
        if fixed:
            names, duplicates = list(self.student.fused_classes or []), []
        else:
            names, duplicates = parse_class_names(payload.get("classes", ""), self.max_classes)
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            raise PageError("the demo is busy with other uploads; try again in a moment", 503)
        try:  # decoding happens inside the slot: the pixels of at most DECODE_SLOTS uploads are in memory
            result = self._workers.submit(self._decode_and_classify, payload.get("image"), names).result()
        finally:
            self._slots.release()
        return {"classes": names, "duplicates_ignored": duplicates, "fixed_classes": fixed,
                "outside_domain": None if fixed else outside_domain(names, self.knows, self.student.templates), **result}

    def _decode_and_classify(self, data_url: Any, names: list[str]) -> dict[str, Any]:
        image = decode_image(data_url)
        result = {"image": {"width": image.width, "height": image.height}, "student": self.student.classify(image, names)}
        if self.teacher is not None:
            result["teacher"] = self.teacher.classify(image, names)
        return result


def build_app(demo: ZeroShotDemo, *, max_upload_mb: float = 16.0) -> DemoApp:
    # base64 makes an upload 4/3 larger; the limit is on the file the user picked.
    app = DemoApp("edgeclip zero-shot demo", "zero_shot.html", max_body=int(max_upload_mb * 1e6 * 4 / 3) + 4096,
                  body_expansion=4 / 3)

    @app.route("GET", "/api/info")
    def info(request: Request) -> Response:
        return Response.json(demo.info())

    @app.route("GET", "/api/examples/")
    def example(request: Request) -> Response:
        name = request.path[len("/api/examples/"):]
        found = demo.examples.get(name)
        if found is None:
            return Response.error(f"no example named {name!r}", 404)
        return Response(200, found.data, found.content_type, ranged=True)

    @app.route("POST", "/api/classify")
    def classify(request: Request) -> Response:
        return Response.json(demo.classify(request.json()))

    return app


def teacher_for(run_dir: Path, backend: str, *, threads: int, prepare: bool) -> tuple[ZeroShotModel | None, str]:
    """The teacher's exported towers (exported once in a child process with torch when `prepare`), or a note why not."""
    import importlib.util
    import subprocess

    if not teacher_record_path(run_dir).is_file():
        return None, f"no teacher recorded in {run_dir} (teacher/clip_teacher.json); the student is shown alone"
    if not has_teacher_towers(run_dir, backend) and prepare:
        if importlib.util.find_spec("torch") is None:
            return None, ("the teacher's towers are not exported and torch is not installed here; run "
                          f"`edgeclip demo zero-shot --model {run_dir}` once where torch is, then copy the run")
        print(f"exporting the teacher's image and text towers to {teacher_towers_dir(run_dir)} (once; torch runs in a "
              "child process, the page itself does not import it)", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "edgeclip.demo.teacher_towers", str(run_dir), "--backend", backend],
                              capture_output=True, text=True)
        if done.returncode != 0:
            lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
            return None, f"exporting the teacher's towers failed: {lines[-1][:300]}"
    if not has_teacher_towers(run_dir, backend):
        return None, (f"the teacher's towers are not exported for {backend}; start the demo without --teacher none "
                      "where torch is installed to export them")
    try:
        return find_zero_shot_model(teacher_towers_dir(run_dir), backend=backend, precision="fp32", role="teacher",
                                    threads=threads), ""
    except UserError as exc:
        return None, f"the teacher's exported towers cannot be opened: {exc}"


def make_demo(model_dir: str | Path, *, backend: str | None = None, precision: str | None = None, teacher: str = "auto",
              threads: int = 0, max_classes: int = DEFAULT_MAX_CLASSES, examples_data: Path | None = None) -> ZeroShotDemo:
    """Open the student (and teacher) artifacts of `model_dir`; every bad input is a one-line UserError."""
    if max_classes < 2:
        raise UserError(f"--max-classes {max_classes} is too small; zero-shot needs at least 2 classes")
    run_dir = Path(model_dir)
    student = find_zero_shot_model(run_dir, backend=backend, precision=precision, role="student", threads=threads)
    owner = run_dir.parent if run_dir.name == "artifacts" else run_dir
    if teacher == "none":
        chosen, note = None, "teacher not shown (--teacher none)"
    elif teacher == "auto":
        chosen, note = teacher_for(owner, student.backend, threads=threads, prepare=True)
    else:
        chosen, note = find_zero_shot_model(teacher, backend=student.backend, role="teacher", threads=threads), ""
    defaults = student.fused_classes or _default_classes(owner)
    return ZeroShotDemo(student, chosen, note, defaults, max_classes,
                        load_examples(examples_data if examples_data is not None else default_shared_data()),
                        str(run_dir)).prepare()


def _default_classes(run_dir: Path) -> list[str]:
    """The classes the run was evaluated on (a fused artifact's names), else the digits."""
    for artifact in list_artifacts(run_dir):
        names = artifact.manifest.get("class_names") if artifact.kind == "zero_shot_classifier" else None
        if isinstance(names, list) and names:
            return [str(n) for n in names]
    return ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
