"""Target profiles (devices/*.yaml): what a device runs, and the budgets a build must meet there.

A profile names the backends in preference order, precisions, runtime threads, whether engines
must be built on the device (TensorRT), and budgets (max latency at batch 1, max memory, min
retention). `check_budgets` turns measured report rows into pass / fail / not measured.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping


from edgeclip.backends import BACKENDS, versioned_backends
from edgeclip.compress.int8_rule import REJECTED_NOTE
from edgeclip.errors import UserError, close_matches
from edgeclip.io_utils import read_yaml_mapping
from edgeclip.paths import devices_dir

EMBEDDING_KINDS = ("image_encoder", "text_encoder")  # rows without accuracy by design
# Budgets are checked against the p90 latency: a device that meets p50 but stutters on one frame
# in ten still drops frames in a live demo.
LATENCY_PERCENTILE = "p90"

_PROFILE_KEYS = {"name", "aliases", "description", "arch", "os", "backends", "precisions", "threads",
                 "build_on_device", "budgets", *(row.version_key for row in versioned_backends())}
_BUDGET_KEYS = {"max_latency_ms", "max_memory_mb", "min_retention"}


@dataclass(frozen=True)
class Budgets:
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    min_retention: float | None = None


@dataclass(frozen=True)
class Target:
    name: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    backends: tuple[str, ...] = ("onnx",)
    precisions: tuple[str, ...] = ("fp32",)
    threads: int = 0
    build_on_device: bool = False
    arch: tuple[str, ...] = ()  # empty = any CPU architecture
    os: tuple[str, ...] = ()  # empty = any OS (platform.system().lower())
    budgets: Budgets = field(default_factory=Budgets)
    path: str = ""
    # The TensorRT version on the device (8.5 | 8.6 | 10.3): what its kits are exported for and checked
    # against. None = edgeclip's default (exporters.tensorrt_support.DEFAULT_TENSORRT).
    tensorrt: str | None = None

    @property
    def measurable_here(self) -> bool:
        """Whether this machine *is* such a device: its arch/OS match and it can run the target's
        first-choice backend (a Raspberry Pi can run onnx, but it is not a Jetson). Budgets count only
        for measurements taken where this holds, or on the device itself (--remote)."""
        return platform_matches(self) and backend_available(self.backends[0])

    @property
    def local_backends(self) -> list[str]:
        """The target's backends this machine can run, in preference order."""
        return [b for b in self.backends if backend_available(b)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(aliases=list(self.aliases), backends=list(self.backends), precisions=list(self.precisions),
                    arch=list(self.arch), os=list(self.os), measurable_here=self.measurable_here)
        return data


@dataclass(frozen=True)
class BudgetResult:
    """One budget checked against one row. `passed` is None when the row lacks the measurement."""

    name: str  # max_latency_ms | max_memory_mb | min_retention
    limit: float
    measured: float | None
    passed: bool | None
    row: str = ""  # the row the measurement comes from ("" when no row could be checked)

    @property
    def status(self) -> str:
        return "not measured" if self.passed is None else ("pass" if self.passed else "fail")

    def describe(self) -> str:
        op = ">=" if self.name.startswith("min_") else "<="
        measured = "not measured" if self.measured is None else f"{self.measured:.4g}"
        where = f" ({self.row})" if self.row else ""
        return f"{self.name}{where}: {measured} (limit {op} {self.limit:g}) -> {self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "row": self.row, "limit": self.limit, "measured": self.measured,
                "passed": self.passed, "status": self.status}


def backend_available(backend: str) -> bool:
    """Whether this machine can run `backend` artifacts (the backend table decides)."""
    return backend in BACKENDS and BACKENDS.get(backend).can_run_here


def platform_matches(target: Target, machine: str | None = None, system: str | None = None) -> bool:
    machine = (machine or platform.machine()).lower()
    system = (system or platform.system()).lower()
    return (not target.arch or machine in target.arch) and (not target.os or system in target.os)


def _profile_paths() -> list[Path]:
    root = devices_dir()
    return sorted(root.glob("*.yaml")) if root.is_dir() else []


def _parse_profile(path: Path) -> Target:
    data = read_yaml_mapping(path, "target profile", "name, backends, budgets, ...")
    unknown = set(data) - _PROFILE_KEYS
    if unknown:
        raise UserError(f"target profile '{path}' has unknown keys {sorted(unknown)}; valid keys: {sorted(_PROFILE_KEYS)}")
    budgets = data.get("budgets") or {}
    if not isinstance(budgets, dict) or set(budgets) - _BUDGET_KEYS:
        raise UserError(f"target profile '{path}': budgets must be a mapping with keys among {sorted(_BUDGET_KEYS)}")
    for key, value in budgets.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"target profile '{path}': budgets.{key} must be a number, got {value!r}")

    backends = tuple(str(b) for b in _as_list(data.get("backends", ["onnx"])))
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        raise UserError(f"target profile '{path}': unknown backend(s) {bad}; use some of {BACKENDS.names()}")

    def lower_list(key: str) -> tuple[str, ...]:
        return tuple(str(v).lower() for v in _as_list(data.get(key, [])))

    pinned: dict[str, str] = {}  # e.g. `tensorrt: 8.5`: the runtime version the target's artifacts are written for
    for row in versioned_backends():
        if data.get(row.version_key) is not None:
            try:
                pinned[row.version_key] = row.parse_version(data[row.version_key])
            except UserError as exc:
                raise UserError(f"target profile '{path}': {exc}") from None
    try:
        return Target(
            name=str(data.get("name") or path.stem),
            description=str(data.get("description", "")),
            aliases=tuple(str(a) for a in _as_list(data.get("aliases", []))),
            backends=backends,
            precisions=tuple(str(p) for p in _as_list(data.get("precisions", ["fp32"]))),
            threads=int(data.get("threads", 0)),
            build_on_device=bool(data.get("build_on_device", False)),
            arch=lower_list("arch"),
            os=lower_list("os"),
            budgets=Budgets(**{k: (float(v) if v is not None else None) for k, v in budgets.items()}),
            path=str(path),
            **pinned,
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"target profile '{path}' has a bad value ({exc}); fix the file") from None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def list_targets() -> list[Target]:
    """Every profile in the devices directory, sorted by name."""
    return sorted((_parse_profile(p) for p in _profile_paths()), key=lambda t: t.name)


def load_target(name: str) -> Target:
    """A profile by name or alias (case-insensitive), or a path to a YAML profile."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"target profile '{path}' does not exist; pass a shipped target name (edgeclip list targets) or an existing YAML file")
        return _parse_profile(path)
    targets = list_targets()
    wanted = name.lower()
    for target in targets:
        if wanted == target.name.lower() or wanted in (a.lower() for a in target.aliases):
            return target
    # Hints come from names and aliases; the listing shows profile names only, so none is cut off.
    hints = close_matches(name, [t.name for t in targets] + [a for t in targets for a in t.aliases])
    did = ("; did you mean " + " or ".join(f"'{h}'" for h in hints) + "?") if hints else ""
    raise UserError(f"unknown target '{name}'{did} (known: {', '.join(t.name for t in targets) or 'none'}); "
                    f"see `edgeclip list targets` or add a profile to {devices_dir()}")


def with_overrides(target: Target, overrides: Any) -> Target:
    """The profile with a recipe's `target:` section applied (`--set target.tensorrt=8.5`)."""
    import dataclasses

    for row in versioned_backends():
        wanted = str(getattr(overrides, row.version_key, "") or "").strip()
        if not wanted:
            continue
        version = row.parse_version(wanted)  # unknown version -> one-line UserError naming the known ones
        if row.name not in target.backends:
            having = [t.name for t in list_targets() if row.name in t.backends]
            raise UserError(f"target {target.name} has no {row.name} backend, so target.{row.version_key}={wanted} has "
                            f"nothing to apply to; drop the --set or pick a target with it (e.g. --target {having[0]})"
                            if having else f"target {target.name} has no {row.name} backend; drop the --set")
        target = dataclasses.replace(target, **{row.version_key: version})
    return target


def _row_get(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)


def row_label(row: Any) -> str:
    """`name [backend-precision]`: rows of one model differ only by backend and precision."""
    name = str(_row_get(row, "name") or "")
    backend, precision = _row_get(row, "backend"), _row_get(row, "precision")
    return f"{name} [{backend}-{precision}]" if backend else name


def _measurement(row: Any, budget: str) -> float | None:
    if budget == "max_latency_ms":
        latency = _row_get(row, "latency_ms") or {}
        return latency.get(LATENCY_PERCENTILE) if isinstance(latency, Mapping) else None
    if budget == "max_memory_mb":
        return _row_get(row, "peak_mem_mb")
    return _row_get(row, "retention")


def check_budgets(target: Target, rows: Iterable[Any]) -> list[BudgetResult]:
    """Check every budget of `target` against every deployable row (not teacher/reference rows).

    A missing measurement is "not measured" (passed=None), never a pass. With no deployable row,
    each budget yields one "not measured" result so the report still shows it. An artifact rejected
    at export (int8 that changes decisions) never ships: its row already shows the rejection, and
    a budget it misses says nothing about what the build ships, so it is not checked.
    """
    deployable = [r for r in rows if _row_get(r, "role") == "student"
                  and str(_row_get(r, "status") or "ok") == "ok"
                  and REJECTED_NOTE not in str(_row_get(r, "notes") or "")]
    results: list[BudgetResult] = []
    for budget in ("max_latency_ms", "max_memory_mb", "min_retention"):
        limit = getattr(target.budgets, budget)
        if limit is None:
            continue
        rows_for = deployable
        if budget == "min_retention":  # a tower outputs embeddings: retention is its fused classifier's
            rows_for = [r for r in deployable if _row_get(r, "kind") not in EMBEDDING_KINDS]
        if not rows_for:
            results.append(BudgetResult(budget, limit, None, None))
        for row in rows_for:
            measured = _measurement(row, budget)
            if measured is None:
                passed = None
            elif budget.startswith("min_"):
                passed = measured >= limit
            else:
                passed = measured <= limit
            results.append(BudgetResult(budget, limit, None if measured is None else float(measured), passed,
                                        row_label(row)))
    return results
