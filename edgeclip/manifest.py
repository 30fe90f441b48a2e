"""Artifact manifest: what an exported model is, how to feed it, and whether it matched PyTorch.

Torch-free: runtimes on the device read manifests with numpy + the backend's runtime only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edgeclip.backends import backend_tools
from edgeclip.errors import UserError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "backend", "precision", "kind", "model_file", "inputs", "outputs", "preprocessing")

# Distribution names whose versions go into every manifest (missing ones are recorded as None);
# the backends' come from the backend table.
_TOOLS = ("edgeclip", "torch", "open_clip_torch", "numpy", *backend_tools())


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for dist in _TOOLS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def read_manifest(artifact_dir: str | Path) -> dict[str, Any]:
    """Load and validate `<artifact_dir>/manifest.json`; every problem is a UserError naming path and fix."""
    artifact_dir = Path(artifact_dir)
    if not artifact_dir.is_dir():
        raise UserError(f"artifact directory {artifact_dir} does not exist; run `edgeclip export` first or fix the path")
    path = artifact_dir / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"{path} is missing, so {artifact_dir} is not a finished artifact; re-run `edgeclip export`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is corrupt ({exc.__class__.__name__}: {exc}); re-run `edgeclip export`") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path} is not a JSON object; re-run `edgeclip export`")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; re-run `edgeclip export` with this edgeclip version")
    if manifest["schema_version"] > SCHEMA_VERSION:
        raise UserError(
            f"{path} has schema_version {manifest['schema_version']} but this edgeclip reads up to {SCHEMA_VERSION}; "
            "upgrade edgeclip"
        )
    return manifest


@dataclass
class Artifact:
    """An exported model on disk. `ok` is False when parity against PyTorch failed."""

    path: Path
    manifest: dict[str, Any]

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest["model_file"]

    @property
    def status(self) -> str:
        return self.manifest.get("status", "ready")

    @property
    def parity(self) -> dict[str, Any]:
        return self.manifest.get("parity", {})

    @property
    def parity_passed(self) -> bool | None:
        """True/False when parity ran; None when it could not run here (not_run / skipped)."""
        return self.parity.get("passed")

    @property
    def ok(self) -> bool:
        """False when parity failed, the artifact was rejected (compress/int8_rule.py) or failed otherwise
        (e.g. its TensorRT would refuse it)."""
        return self.parity_passed is not False and self.status not in ("rejected", "failed")

    def summary(self) -> str:
        parity = self.parity
        if parity.get("status") == "ran":
            verdict = "passed" if parity["passed"] else "FAILED"
            detail = f"max|Δ|={parity['max_abs_diff']:.3g}, cosine={parity['mean_cosine']:.5f}"
            if parity.get("top1_agreement") is not None:
                detail += f", top-1 agreement={parity['top1_agreement']:.3f}"
            text = f"parity {verdict} ({detail}, n={parity['num_inputs']})"
        else:  # a check that did not run must never read like one that passed
            text = f"parity NOT VERIFIED ({parity.get('status', 'not_run')}: {parity.get('reason', '')})"
        if self.status != "ready":
            text += f"; status {self.status}: {self.manifest.get('next_step', '')}"
        return text
