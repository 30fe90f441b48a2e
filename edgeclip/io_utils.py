"""Atomic writes: nothing half-written is ever left looking complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeclip.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _clean_leftovers(path: Path) -> None:
    """Temp and set-aside siblings of `path` left by a killed process: restore a set-aside old
    directory if `path` itself is gone (the kill hit between the two renames), delete the rest."""
    for leftover in sorted(path.parent.glob(f".{path.name}.*.*")):
        parts = leftover.name[len(path.name) + 2:].split(".")
        if not parts[0].isdigit() or _pid_alive(int(parts[0])) or not leftover.suffix in (".tmp", ".old"):
            continue
        if leftover.suffix == ".old" and not path.exists():
            os.replace(leftover, path)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; it replaces `path` only if the block succeeds.

    The previous `path` is moved aside, the new one renamed into place, and only then the old one
    deleted, so at no moment is there neither. Temp names carry the PID, so leftovers of a killed
    run are recognised and cleaned by the next one instead of lingering beside the artifacts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if not path.exists():
            os.replace(tmp, path)
            return
        old = path.with_name(f".{path.name}.{os.getpid()}.{tmp.name.split('.')[-2]}.old")
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)  # the new one could not take its place: the old one goes back
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (indent 2, numpy scalars and paths converted)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def write_result_files(out: str | Path, data: Any, markdown: str) -> None:
    """A benchmark's `<out>.json` and `<out>.md`, each written atomically: a run killed while writing
    leaves the previous committed pair, never a truncated one. Values JSON cannot hold become strings."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def lenient(obj: Any) -> Any:
        try:
            return _json_default(obj)
        except TypeError:
            return str(obj)

    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=lenient) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_json_object(path: str | Path, what: str, fix: str) -> dict[str, Any]:
    """A JSON file that must hold an object; missing, unreadable, corrupt or another shape is a
    one-line UserError naming `what`, the file and `fix`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} {path} is missing; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{what} {path} is unreadable or not JSON ({type(exc).__name__}); {fix}") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} holds a JSON {type(data).__name__}, not an object; {fix}")
    return data


def read_text_file(path: str | Path, what: str) -> str:
    """A UTF-8 text file's content; unreadable, a folder or not UTF-8 is a one-line UserError naming `what`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} '{path}' does not exist or is not a file; fix the path")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} '{path}' is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{what} '{path}' cannot be read ({exc.strerror}); fix its permissions or the path") from None


def read_yaml_mapping(path: str | Path, what: str, keys_hint: str, loader: Any = None) -> dict[str, Any]:
    """A YAML file that must hold a mapping; bad YAML or another shape is a one-line UserError.
    `loader`: a yaml Loader class (default SafeLoader); only safe loaders belong here."""
    import yaml

    try:
        data = yaml.load(read_text_file(path, what), Loader=loader or yaml.SafeLoader) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{what} '{path}' is not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} '{path}' must be a YAML mapping ({keys_hint})")
    return data


def check_output_dir(path: str | Path, flag: str = "--out", *, replaced: bool = False) -> Path:
    """Fail before any work if `path` cannot become (or be written into as) an output directory:
    an existing file, a file on the way, or a place this process cannot create files in.

    `replaced`: the directory is swapped in by `atomic_dir`, whose temp sibling lives in its parent,
    so the parent must be writable too. Probing creates and removes one temp file: permission bits
    say nothing for root, read-only mounts or /proc.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is an existing file, not a directory; pass a directory path (new or existing)")
    probes = [path] + ([path.parent] if replaced else [])
    for probe in probes:
        existing = probe
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise UserError(f"{flag} {path} cannot be created: {existing} is a file; pass a path under a directory")
        try:
            fd, tmp = tempfile.mkstemp(prefix=".edgeclip-write-check.", dir=existing)
        except OSError as exc:
            raise UserError(f"{flag} {path} is not writable ({existing}: {exc.strerror}); pass a directory you can "
                            "write to") from None
        os.close(fd)
        os.unlink(tmp)
    return path


def load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Arrays of an .npz file without unpickling anything (allow_pickle=False): an object array or a
    file that is not an .npz is a one-line UserError naming `what`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} '{path}' does not exist or is not a file; fix the path")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with data:
            return {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        why = "it holds Python objects, which are never unpickled" if "allow_pickle" in str(exc) else \
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{what} '{path}' is not a readable .npz of numeric arrays ({why}); save it with "
                        "numpy.savez(images=..., labels=...)") from None


def safe_torch_load(path: str | Path, what: str, fix: str) -> Any:
    """`torch.load(weights_only=True)`: tensors, numbers, strings, lists, dicts (and the Counter
    inside LR-scheduler states) only, so opening a file never runs code from its pickle.

    Anything unreadable or unsafe is a one-line UserError naming `what`, the file and `fix`.
    """
    import collections

    import torch

    try:
        with torch.serialization.safe_globals([collections.Counter]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated or code-carrying pickles all mean "do not use"
        text = str(exc)
        # torch words both refusals "Weights only load failed"; a refused object names a GLOBAL, while
        # bytes that are no pickle at all ("Unsupported operand") or a cut zip are simply unreadable.
        if "GLOBAL" in text or "Unsupported global" in text:
            raise UserError(f"{what} '{path}' cannot be loaded safely (it holds objects other than tensors and plain "
                            f"data); {fix}") from None
        raise UserError(f"{what} '{path}' is not a readable checkpoint (corrupt, truncated or not a torch file: "
                        f"{type(exc).__name__}); {fix}") from None
