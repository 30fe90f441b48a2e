"""edgeclip's layering holds: no import cycle, no lower layer importing a higher one, and every
import inside a function says why it is there (docs/ARCHITECTURE.md "Layering").

The graph is read from the source with `ast` (tests/support/import_graph.py): imports at module
top, inside functions and under TYPE_CHECKING, relative ones resolved. Nothing is imported.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.import_graph import (
    LAZY_MARK,
    ImportGraph,
    climbs,
    find_cycle,
    layer_of,
    strongly_connected,
)

ROOT = Path(__file__).resolve().parent.parent

# Top to bottom; a module may import its own layer (the cycle check keeps that acyclic) and any layer
# below. The longest listed prefix decides a module's layer. docs/ARCHITECTURE.md shows this table.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry", ("edgeclip.__main__", "edgeclip.cli", "edgeclip.commands")),
    ("build", ("edgeclip.build",)),
    ("applications", ("edgeclip.video", "edgeclip.demo")),
    ("training", ("edgeclip.distill",)),
    ("evaluation", ("edgeclip.eval",)),
    ("benchmark", ("edgeclip.bench",)),
    ("deployment", ("edgeclip.exporters", "edgeclip.compress", "edgeclip.targets")),
    ("measurement", ("edgeclip.bench.latency", "edgeclip.bench.memory", "edgeclip.bench.flops", "edgeclip.bench.metrics",
                     "edgeclip.bench.environment", "edgeclip.compress.cpu", "edgeclip.exporters.tensorrt_support",
                     "edgeclip.exporters.tensorrt_support_table")),
    ("runtimes", ("edgeclip.runtimes",)),
    ("models", ("edgeclip.teacher", "edgeclip.students", "edgeclip.clip_models", "edgeclip.convnet_tower",
                "edgeclip.prompt_ensemble")),
    ("data", ("edgeclip.data",)),
    ("basics", ("edgeclip.backends", "edgeclip.manifest", "edgeclip.config", "edgeclip.registry", "edgeclip.errors",
                "edgeclip.io_utils", "edgeclip.paths", "edgeclip.utils", "edgeclip")),
]


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph(ROOT, ("edgeclip",))


def startup_path(graph: ImportGraph) -> set[str]:
    """The modules `edgeclip --help` loads: `python -m edgeclip` and every subcommand module (cli.py
    imports each `edgeclip.commands.<name>_cmd` by name to register its parser)."""
    roots = ["edgeclip.__main__", "edgeclip.cli", "edgeclip.commands"]
    roots += [name for name in graph.modules if name.startswith("edgeclip.commands.") and name.endswith("_cmd")]
    return graph.top_level_closure(*roots)[0]


def test_every_module_has_a_layer(graph: ImportGraph) -> None:
    unplaced = [name for name in graph.modules if layer_of(name, LAYERS) is None]
    assert not unplaced, f"add these modules to LAYERS (and docs/ARCHITECTURE.md): {unplaced}"


def test_architecture_doc_lists_the_same_layers() -> None:
    """docs/ARCHITECTURE.md's layer table is this one: same layers, same order, each member on its row."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = text.split("Layering (imports only go downwards", 1)[1].split("```", 2)[1]
    rows: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        if line and not line[0].isspace():
            current = line.split()[0]
            rows[current] = ""
        if current:
            rows[current] += line
    assert list(rows) == [name for name, _ in LAYERS]
    for name, members in LAYERS:
        for member in members:
            if member == "edgeclip":
                continue
            path = member.replace(".", "/").removeprefix("edgeclip/")
            token = f"{path}/" if (ROOT / "edgeclip" / path).is_dir() else f"{path}.py"
            assert token in rows[name], f"docs/ARCHITECTURE.md: {token} belongs on the '{name}' row"


def test_every_internal_import_names_a_module(graph: ImportGraph) -> None:
    missing = {name: info.missing for name, info in graph.modules.items() if info.missing}
    assert not missing, f"imports of edgeclip modules that do not exist (moved or renamed?): {missing}"


def test_every_imported_name_exists(graph: ImportGraph) -> None:
    """After a move, `from edgeclip.x import name` must still find `name` — in the package, the
    benchmarks and the tests (imports inside functions included)."""
    others = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    unknown = graph.unknown_names() + graph.unknown_names_in(others)
    assert not unknown, "imports of names that do not exist:\n" + "\n".join(unknown)


def test_no_import_cycles(graph: ImportGraph) -> None:
    cycles = strongly_connected(graph.edges())
    assert not cycles, (f"import cycle {' -> '.join(find_cycle(graph.edges()) or [])}; all cycles (module sets): "
                        f"{cycles}. Move the shared code down a layer instead of hiding the import in a function.")


def test_no_layer_imports_a_higher_one(graph: ImportGraph) -> None:
    found = climbs(graph.edges(runtime_only=False, implicit=False), LAYERS)
    assert not found, "imports that climb the layers:\n" + "\n".join(found)


def test_function_level_imports_say_why(graph: ImportGraph) -> None:
    """An import inside a function is only for a dependency the module must not load at import time
    (an optional backend, torch on the torch-free paths, anything `edgeclip --help` need not load): it
    carries `# lazy: <reason>` on its line or above it in its run of imports, and the reason must
    hold: the imported module loads a HEAVY package the importing module does not load already, or
    the importing module is one `edgeclip --help` loads and the import defers what start-up skips."""
    startup = startup_path(graph)
    unmarked, needless = [], []
    for imp in graph.function_imports():
        where = f"{graph.modules[imp.source].path.relative_to(ROOT)}:{imp.line} imports {imp.target}"
        if not graph.lazy_reason(imp):
            unmarked.append(where)
        elif not graph.defers_something(imp, startup):
            needless.append(where)
    assert not unmarked, (f"imports inside functions without a `{LAZY_MARK} <reason>` comment (move them to the "
                          f"module top, or say why they must wait):\n" + "\n".join(unmarked))
    assert not needless, ("lazy imports that load nothing heavy the module does not already load (move them to "
                          "the module top):\n" + "\n".join(needless))


def _synthetic(tmp_path: Path, files: dict[str, str]) -> ImportGraph:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ImportGraph(tmp_path, ("pkg",))


def test_checks_find_a_cycle_a_climb_and_an_unexplained_lazy_import(tmp_path: Path) -> None:
    """The checks above cannot pass vacuously: a small package with each fault is caught."""
    graph = _synthetic(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "from pkg.low import a\n",
        "pkg/low/a.py": "from . import b\n",                        # relative import, resolved
        "pkg/low/b.py": "def f():\n    from pkg.low.a import x\n",  # function-level: still an edge -> cycle a<->b
        "pkg/low/c.py": "import pkg.high.d\n",                      # climbs to the higher layer
        "pkg/high/__init__.py": "",
        "pkg/high/d.py": "import torch\n",
        "pkg/high/e.py": "def g():\n    # lazy: keeps torch out\n    import pkg.high.d\n\ndef h():\n    from pkg.low import c\n",
        "pkg/high/f.py": "import pkg.high.d\n",
        "pkg/high/g.py": "from pkg.low import b\n",                 # implicit edge: runs pkg/low/__init__.py
        "pkg/high/h.py": "def k():\n    from pkg.gone import x\n",   # a module that does not exist
        "pkg/heavy/__init__.py": "import torch\n",
        "pkg/heavy/light.py": "",
        "pkg/high/i.py": "def m():\n    from pkg.heavy.light import y\n",  # its package __init__ loads torch
    })
    layers = [("high", ("pkg.high",)), ("low", ("pkg.low", "pkg.heavy", "pkg"))]
    edges = graph.edges()
    assert strongly_connected(edges) == [["pkg.low.a", "pkg.low.b"]]
    assert find_cycle(edges) in (["pkg.low.a", "pkg.low.b", "pkg.low.a"], ["pkg.low.b", "pkg.low.a", "pkg.low.b"])
    assert climbs(graph.edges(implicit=False), layers) == ["pkg.low.c (low) -> pkg.high.d (high)"]
    assert "pkg.high" in edges["pkg.low.c"]  # the implicit edge: pkg/high/__init__.py runs first
    assert "pkg.low" in edges["pkg.high.g"]  # importing pkg.low.b from outside runs pkg/low/__init__.py
    lazy = {(imp.source, imp.target): graph.lazy_reason(imp) for imp in graph.function_imports()}
    assert lazy == {("pkg.low.b", "pkg.low.a"): "", ("pkg.high.e", "pkg.high.d"): "keeps torch out",
                    ("pkg.high.e", "pkg.low.c"): "", ("pkg.high.h", "pkg"): "", ("pkg.high.i", "pkg.heavy.light"): ""}
    assert graph.modules["pkg.high.h"].missing == ["pkg.gone (line 2)"]
    assert sorted(graph.unknown_names()) == ["b.py:2 (pkg.low.b) imports x from pkg.low.a",  # a binds no x
                                             "i.py:2 (pkg.high.i) imports y from pkg.heavy.light"]
    deferred = {(imp.source, imp.target): graph.defers_something(imp, set()) for imp in graph.function_imports()}
    assert deferred[("pkg.high.e", "pkg.high.d")] and deferred[("pkg.high.i", "pkg.heavy.light")]
    assert not deferred[("pkg.low.b", "pkg.low.a")]  # nothing heavy behind it: belongs at the top
    assert graph.top_level_third_party("pkg.low.c") == {"torch"}  # through pkg.high.d
    assert graph.top_level_third_party("pkg.high.e") == set()     # its imports are all inside functions
    # An edge inside the same layer that closes no cycle is allowed.
    assert not climbs({"pkg.high.f": {"pkg.high.d"}}, layers)
