"""Zero-shot classification with exported models only (numpy, Pillow and the runtime; no torch).

A `ZeroShotModel` is what one column of the page runs: an exported image tower plus either the
exported text tower (typed class names are turned into prompts with the tokenizer shipped inside
the text artifact and embedded: prompt ensemble, as `edgeclip`'s zero-shot head and the device
runner do) or a fused zero-shot artifact (image → logits over the classes baked in at export).

`find_zero_shot_model(dir, backend, precision, role)` picks the artifacts from a run directory
(`<run>/artifacts/<backend>-<precision>-{image,text,zeroshot}`, as `edgeclip build` and
`edgeclip export --tower all` write them) by reading their manifests.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeclip.backends import cpu_backends
from edgeclip.demo.server import PageError
from edgeclip.errors import UserError
from edgeclip.paths import runner_module
from edgeclip.prompt_ensemble import class_embeddings_numpy
from edgeclip.runtimes import load_runtime

BACKEND_ORDER = tuple(cpu_backends())  # runnable here without a device; preference when --backend is not given
PRECISION_ORDER = ("fp32", "fp16", "int8")
# Checked from the header, before decoding. A 39.7-megapixel PNG of 170 KB cost ~300 MB to decode; 24 MP
# (a 6000x4000 camera photo) costs at most ~100 MB, and the page decodes only DECODE_SLOTS at once.
MAX_IMAGE_PIXELS = 24_000_000
MAX_NAME_CHARS = 100
TOP_K = 5


def device_tokenizer_module() -> ModuleType:
    """devices/runner/clip_tokenizer.py: the standard-library CLIP tokenizer the device runner uses."""
    return runner_module("clip_tokenizer.py")


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


@dataclass
class ArtifactInfo:
    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))

    @property
    def key(self) -> tuple[str, str]:
        return str(self.manifest.get("backend")), str(self.manifest.get("precision"))


def list_artifacts(directory: Path) -> list[ArtifactInfo]:
    """Artifacts (folders with a manifest.json) in `directory` or its `artifacts/` folder.

    Hidden folders are skipped: `atomic_dir` builds an artifact in `.<name>.<pid>.*.tmp` and a killed
    export leaves one behind whose manifest may already say "ready" — it is not a finished artifact."""
    root = directory / "artifacts" if (directory / "artifacts").is_dir() else directory
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []:
        manifest_path = child / "manifest.json"
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # a broken artifact is not a candidate; the others still are
            if isinstance(manifest, dict):  # a manifest that is a list or a number is not one either
                found.append(ArtifactInfo(child, manifest))
    return found


def _ranked(keys: Sequence[tuple[str, str]], backend: str | None, precision: str | None) -> list[tuple[str, str]]:
    def rank(key: tuple[str, str]) -> tuple[int, int]:
        b, p = key
        return (BACKEND_ORDER.index(b) if b in BACKEND_ORDER else len(BACKEND_ORDER),
                PRECISION_ORDER.index(p) if p in PRECISION_ORDER else len(PRECISION_ORDER))
    return sorted((k for k in set(keys) if (backend is None or k[0] == backend) and (precision is None or k[1] == precision)),
                  key=rank)


@dataclass
class ZeroShotModel:
    """One column of the page: an image tower with a text tower, or a fused zero-shot artifact."""

    role: str  # "student" | "teacher"
    name: str
    backend: str
    precision: str
    image: Any  # edgeclip.runtimes.base.Runtime
    image_dir: Path
    text: Any = None
    text_dir: Path | None = None
    fused_classes: list[str] | None = None
    templates: list[str] = field(default_factory=lambda: ["{}"])
    domain: dict[str, Any] | None = None  # the manifest's `domain` (teacher, data, templates, proxy); None: older export
    logit_scale: float = 100.0
    tokenizer: Any = None
    _cache: "OrderedDict[tuple[str, ...], np.ndarray]" = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def mode(self) -> str:
        return "text" if self.text is not None else "fused"

    def describe(self) -> dict[str, Any]:
        manifests = [self.image.manifest] + ([self.text.manifest] if self.text is not None else [])
        parity = [m.get("parity", {}).get("passed") for m in manifests]
        return {"role": self.role, "name": self.name, "backend": self.backend, "precision": self.precision,
                "mode": self.mode, "image_artifact": str(self.image_dir), "text_artifact": str(self.text_dir or ""),
                "classes": self.fused_classes, "templates": self.templates if self.mode == "text" else None,
                # Each tower's manifest counts the whole dual encoder it was cut from: the model's count, once.
                "logit_scale": self.logit_scale, "params": max(int(m.get("params") or 0) for m in manifests),
                "domain": self.domain,
                "size_mb": round(sum(int(m.get("size_bytes") or 0) for m in manifests) / 1e6, 3),
                "parity": "passed" if all(p is True for p in parity) else "not checked" if None in parity else "FAILED"}

    def class_embeddings(self, names: Sequence[str]) -> tuple[np.ndarray, float | None]:
        """(C, D) prompt-ensemble embeddings and the ms it took (None when cached)."""
        key = tuple(names)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], None

        start = time.perf_counter()
        rows = class_embeddings_numpy(lambda prompts: self.text.run(np.asarray(self.tokenizer(prompts), dtype=np.int64)),
                                      names, self.templates)
        elapsed = (time.perf_counter() - start) * 1e3
        self._cache[key] = rows
        while len(self._cache) > 16:
            self._cache.popitem(last=False)
        return rows, elapsed

    def classify(self, image: Image.Image, names: Sequence[str]) -> dict[str, Any]:
        """Top-5 classes with probabilities and the latency of each step (ms)."""
        with self._lock:  # one inference at a time per model: latencies are not of overlapping calls
            text_ms = None
            if self.mode == "text":
                embeddings, text_ms = self.class_embeddings(names)
                classes = list(names)
            else:
                classes = list(self.fused_classes or [])
            start = time.perf_counter()
            batch = self.image.preprocess(image)[None]
            preprocess_ms = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            output = self.image.run(batch)[0]
            image_ms = (time.perf_counter() - start) * 1e3
        logits = self.logit_scale * normalize(output) @ embeddings.T if self.mode == "text" else output
        probabilities = softmax(logits)
        order = np.argsort(-probabilities, kind="stable")[:TOP_K]
        return {"top": [{"class": classes[i], "probability": float(probabilities[i])} for i in order],
                "classes": len(classes),
                "latency_ms": {"preprocess": preprocess_ms, "image": image_ms, "text": text_ms,
                               "text_cached": self.mode == "text" and text_ms is None,
                               "prompts": len(classes) * len(self.templates) if self.mode == "text" else 0}}


def _open(info: ArtifactInfo, threads: int) -> Any:
    return load_runtime(info.path, threads)


def _base_name(manifest: dict[str, Any]) -> str:
    name = str(manifest.get("name", "model"))
    for suffix in ("-image", "-text", "-zeroshot"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_zero_shot_model(directory: str | Path, *, backend: str | None = None, precision: str | None = None,
                         role: str = "student", threads: int = 0) -> ZeroShotModel:
    """The exported zero-shot model in `directory` (a run dir or an artifacts dir), torch-free.

    Prefers image + text towers (class names typed at run time) over a fused artifact (its shipped
    classes). A directory with neither → UserError naming what is there and how to export the rest.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"model directory {directory} does not exist; pass --model RUN_DIR (a run of "
                        "`edgeclip build --recipe distillclip-quickstart`, or a folder of exported artifacts)")
    artifacts = [a for a in list_artifacts(directory) if a.manifest.get("status", "ready") == "ready"]
    fix = (f"export them with `edgeclip export --model {directory}/student --tower all --backend onnx` "
           "(or build with `edgeclip build --recipe distillclip-quickstart`)")
    if not artifacts:
        raise UserError(f"{directory} has no exported artifacts ready to run here; {fix}")
    by_key: dict[tuple[str, str], dict[str, ArtifactInfo]] = {}
    for art in artifacts:
        by_key.setdefault(art.key, {})[art.kind] = art
    candidates = _ranked(list(by_key), backend, precision)
    if not candidates:
        there = ", ".join(sorted({f"{b}-{p}" for b, p in by_key}))
        wanted = "-".join(x for x in (backend, precision) if x)
        raise UserError(f"{directory} has no {wanted} artifacts (there: {there}); pass --backend/--precision "
                        f"from those, or export {wanted}")
    usable = [k for k in candidates if {"image_encoder", "text_encoder"} <= set(by_key[k])] or \
             [k for k in candidates if "zero_shot_classifier" in by_key[k]]
    if not usable:
        kinds = ", ".join(sorted(f"{a.path.name} ({a.kind})" for a in artifacts))
        raise UserError(f"{directory} has no text tower or fused zero-shot artifact to classify with (found: {kinds}); {fix}")
    key = usable[0]
    group = by_key[key]
    if {"image_encoder", "text_encoder"} <= set(group):
        image_info, text_info = group["image_encoder"], group["text_encoder"]
        tokenizer_record = _tokenizer_record(text_info)
        tokenizer = device_tokenizer_module().ClipTokenizer(str(text_info.path / tokenizer_record["vocab_file"]),
                                                           int(tokenizer_record["context_length"]))
        extra = image_info.manifest.get("spec", {}).get("extra", {}) or {}
        return ZeroShotModel(role, _base_name(image_info.manifest), key[0], key[1], _open(image_info, threads), image_info.path,
                             text=_open(text_info, threads), text_dir=text_info.path, tokenizer=tokenizer,
                             templates=list(tokenizer_record.get("templates") or ["{}"]),
                             domain=_domain(image_info, text_info),
                             logit_scale=float(extra.get("logit_scale") or 100.0))
    fused = group["zero_shot_classifier"]
    classes = list(fused.manifest.get("class_names") or [])
    if not classes:
        raise UserError(f"{fused.path} is a fused zero-shot artifact without class names in its manifest; re-export it")
    extra = fused.manifest.get("spec", {}).get("extra", {}) or {}
    return ZeroShotModel(role, _base_name(fused.manifest), key[0], key[1], _open(fused, threads), fused.path,
                         fused_classes=classes, domain=_domain(fused), logit_scale=float(extra.get("logit_scale") or 100.0))


def _domain(*infos: ArtifactInfo) -> dict[str, Any] | None:
    """The first well-formed `domain` record of the artifacts' manifests (exports before it have none)."""
    for info in infos:
        domain = info.manifest.get("domain")
        if isinstance(domain, dict):
            return domain
    return None


def _tokenizer_record(text: ArtifactInfo) -> dict[str, Any]:
    path = text.path / "tokenizer.json"
    try:
        record = json.loads(path.read_text())
        if not (text.path / record["vocab_file"]).is_file():
            raise FileNotFoundError(record["vocab_file"])
        return record
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise UserError(f"text tower {text.path} lacks its tokenizer ({exc}); re-export it with "
                        "`edgeclip export --tower text` (it ships tokenizer.json and the BPE vocabulary)") from None


# ---- page input -----------------------------------------------------------------------------

def parse_class_names(text: Any, max_classes: int) -> tuple[list[str], list[str]]:
    """Names typed on the page (commas or new lines) → (names, duplicates dropped). Bad input → PageError."""
    if not isinstance(text, str):
        raise PageError("class names must be text, e.g. 'cat, dog, car'")
    names: list[str] = []
    duplicates: list[str] = []
    for raw in text.replace("\n", ",").split(","):
        name = " ".join(raw.split())
        if not name:
            continue
        if len(name) > MAX_NAME_CHARS:
            raise PageError(f"class name '{name[:40]}…' is {len(name)} characters long; keep each name under "
                            f"{MAX_NAME_CHARS} (separate names with commas)")
        (duplicates if name in names else names).append(name)
    if not names:
        raise PageError("the class list is empty: type class names separated by commas, e.g. 'zero, one, two' or "
                        "'cat, dog, car'")
    if len(names) == 1:
        raise PageError(f"only one class name ('{names[0]}'): zero-shot picks among at least two; add more, separated by commas")
    if len(names) > max_classes:
        raise PageError(f"{len(names)} class names: this page embeds at most {max_classes} per request (each runs through "
                        f"the text tower once per prompt template); give fewer names, or start the demo with "
                        f"--max-classes {len(names)}")
    return names, duplicates


def decode_image(data_url: Any) -> Image.Image:
    """A `data:<type>;base64,...` upload → RGB PIL image. Anything that is not a readable image → PageError."""
    if not isinstance(data_url, str) or not data_url:
        raise PageError("no image: drop an image on the page, pick a file, or click an example")
    payload = data_url.split(",", 1)[1] if data_url.startswith("data:") and "," in data_url else data_url
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PageError("the upload is not base64 image data; pick the file again") from None
    if not raw:
        raise PageError("the uploaded file is empty; pick an image file (PNG, JPEG, BMP, GIF, WebP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise PageError(f"the image is {image.width}x{image.height} pixels; this page takes up to "
                                f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels — resize it first")
            image.seek(0)  # animated GIF/WebP: the first frame
            image.load()
    except PageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        head = raw[:12]
        shown = head.decode("ascii", "replace") if all(32 <= b < 127 for b in head) else head.hex(" ")
        detail = "too many pixels" if "ecompression" in type(exc).__name__ else f"starts with {shown!r}"
        raise PageError(f"the upload ({len(raw)} bytes, {detail}) is not an image this page can read; "
                        "pick a PNG, JPEG, BMP, GIF or WebP file") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt image data
        raise PageError(f"the image file is damaged ({str(exc).splitlines()[0][:120]}); pick another file") from None
    return image.convert("RGB")
