"""edgeclip's internal import graph, read from the source with `ast` (nothing is imported).

Used by tests/test_layering.py. An edge is one module importing another, wherever the import sits:
at module top, inside a function, or under `if TYPE_CHECKING:` (kept apart: it never runs). Relative
imports are resolved; `from pkg import name` is an edge to `pkg.name` when that is a module, else to
`pkg`. Importing `a.b.c` from outside package `a.b` first runs `a.b/__init__.py`: that implicit
edge is in the graph too, so an acyclic graph means no import order can meet a half-initialised module.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Third-party packages worth a function-level import: optional extras (an export backend, video
# decoding) or slow ones that the torch-free paths (`edgeclip --help`, runtimes, demo pages) must not load.
HEAVY = frozenset({
    "torch", "torchvision", "open_clip", "timm", "torch_pruning", "safetensors", "huggingface_hub", "webdataset",
    "onnx", "onnxruntime", "onnxscript", "openvino", "nncf", "tensorrt", "cuda", "coremltools",
    "av", "cv2", "sklearn", "scipy", "matplotlib",
})
LAZY_MARK = "# lazy:"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    in_function: bool
    type_checking: bool
    implicit: bool = False  # a package __init__ run because a submodule was imported
    group_line: int = 0  # first line of the run of import statements this one belongs to


@dataclass
class ModuleInfo:
    name: str
    path: Path
    is_package: bool
    imports: list[Import] = field(default_factory=list)
    third_party: set[str] = field(default_factory=set)  # top-level, runtime
    missing: list[str] = field(default_factory=list)  # internal modules imported that do not exist
    names: set[str] = field(default_factory=set)  # what the module binds at top level
    lazy_attributes: bool = False  # defines a module __getattr__: any name may resolve
    from_names: list[tuple[str, str, int]] = field(default_factory=list)  # (module, name, line) it imports
    lines: list[str] = field(default_factory=list)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    def __init__(self, info: ModuleInfo, graph: ImportGraph) -> None:
        self.info, self.graph = info, graph
        self.function_depth = 0
        self.type_checking = 0

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.type_checking += 1
        for child in node.body:
            self.visit(child)
        self.type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def generic_visit(self, node: ast.AST) -> None:
        # Runs of consecutive import statements share one `# lazy:` comment above the first.
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                group = 0
                for child in value:
                    if isinstance(child, (ast.Import, ast.ImportFrom)):
                        group = group or child.lineno
                        self._record(child, group)
                    else:
                        group = 0
                        if isinstance(child, ast.AST):
                            self.visit(child)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def _record(self, node: ast.Import | ast.ImportFrom, group: int = 0) -> None:
        internal, external = self.graph.resolve(self.info, node)
        runtime_top = not self.function_depth and not self.type_checking
        if runtime_top:
            self.info.third_party.update(external)
        for target in internal:
            if target != self.info.name:
                self.info.imports.append(Import(self.info.name, target, node.lineno, self.function_depth > 0,
                                                self.type_checking > 0, group_line=group or node.lineno))

    visit_Import = _record
    visit_ImportFrom = _record


class ImportGraph:
    """Every module of the packages under `root` named in `packages` (e.g. ("edgeclip",))."""

    def __init__(self, root: Path, packages: tuple[str, ...]) -> None:
        self.root = root
        self.packages = packages
        self.modules: dict[str, ModuleInfo] = {}
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                name = module_name(path, root)
                self.modules[name] = ModuleInfo(name, path, path.name == "__init__.py")
        for info in self.modules.values():
            text = info.path.read_text(encoding="utf-8")
            info.lines = text.splitlines()
            tree = ast.parse(text, str(info.path))
            _Collector(info, self).visit(tree)
            info.names = _top_level_names(tree)
            info.lazy_attributes = "__getattr__" in info.names
            info.imports.extend(self._implicit(info))

    def _owner(self, name: str) -> str | None:
        while name and name not in self.modules:
            name = name.rpartition(".")[0]
        return name or None

    def resolve(self, info: ModuleInfo, node: ast.Import | ast.ImportFrom) -> tuple[list[str], set[str]]:
        """(internal modules the statement imports, third-party top-level names)."""
        internal: list[str] = []
        external: set[str] = set()
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in self.packages:
                    if alias.name not in self.modules:
                        info.missing.append(f"{alias.name} (line {node.lineno})")
                    owner = self._owner(alias.name)
                    if owner:
                        internal.append(owner)
                elif top not in sys.stdlib_module_names:
                    external.add(top)
            return internal, external
        if node.level:
            base = info.name if info.is_package else info.name.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        top = target.split(".")[0]
        if top not in self.packages:
            if top and top not in sys.stdlib_module_names and top != "__future__":
                external.add(top)
            return internal, external
        if target not in self.modules:
            info.missing.append(f"{target} (line {node.lineno})")
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            if alias.name != "*":
                info.from_names.append((target, alias.name, node.lineno))
            owner = submodule if submodule in self.modules else self._owner(target)
            if owner:
                internal.append(owner)
        return internal, external

    def _implicit(self, info: ModuleInfo) -> list[Import]:
        """Packages whose __init__ runs before an imported submodule: the target's ancestors that are
        not the importer's own (those are already being imported)."""
        return [Import(info.name, parent, imp.line, imp.in_function, imp.type_checking, True, imp.group_line)
                for imp in info.imports for parent in self.packages_run_first(imp)]

    def unknown_names(self) -> list[str]:
        """`from edgeclip.x import name` where x neither binds `name` nor has a submodule of that name."""
        found = []
        for info in self.modules.values():
            for module, name, line in info.from_names:
                target = self.modules.get(module)
                if target is None or target.lazy_attributes or f"{module}.{name}" in self.modules:
                    continue
                if name not in target.names:
                    found.append(f"{info.path.name}:{line} ({info.name}) imports {name} from {module}")
        return found

    def unknown_names_in(self, paths: list[Path]) -> list[str]:
        """The same check for other files (benchmarks, tests) importing from the package."""
        found = []
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if node.module.split(".")[0] not in self.packages:
                    continue
                target = self.modules.get(node.module)
                if target is None:
                    found.append(f"{path.name}:{node.lineno} imports from {node.module}, which does not exist")
                    continue
                for alias in node.names:
                    known = (alias.name in target.names or target.lazy_attributes or alias.name == "*"
                             or f"{node.module}.{alias.name}" in self.modules)
                    if not known:
                        found.append(f"{path.name}:{node.lineno} imports {alias.name} from {node.module}")
        return found

    def edges(self, *, runtime_only: bool = True, implicit: bool = True) -> dict[str, set[str]]:
        """{module: modules it imports}. `runtime_only` leaves out TYPE_CHECKING imports; `implicit=False`
        leaves out the package __init__s that run first (for layers: an __init__'s own imports are checked)."""
        graph: dict[str, set[str]] = {name: set() for name in self.modules}
        for info in self.modules.values():
            for imp in info.imports:
                if not (runtime_only and imp.type_checking) and (implicit or not imp.implicit):
                    graph[info.name].add(imp.target)
        return graph

    def top_level_closure(self, *names: str) -> tuple[set[str], set[str]]:
        """(internal modules, third-party packages) that importing `names` loads: their top-level imports,
        followed transitively (function-level and TYPE_CHECKING imports do not run at import)."""
        seen, stack, found = set(names), list(names), set()
        while stack:
            info = self.modules[stack.pop()]
            found |= info.third_party
            for imp in info.imports:
                if not imp.in_function and not imp.type_checking and imp.target not in seen:
                    seen.add(imp.target)
                    stack.append(imp.target)
        return seen, found

    def top_level_third_party(self, name: str) -> set[str]:
        """Third-party packages importing `name` loads."""
        return self.top_level_closure(name)[1]

    def packages_run_first(self, imp: Import) -> list[str]:
        """The package __init__s that importing `imp.target` from `imp.source` runs (its ancestors that
        are not the source's own)."""
        own = {imp.source.rsplit(".", n)[0] for n in range(imp.source.count(".") + 1)}
        parents, parent = [], imp.target.rpartition(".")[0]
        while parent:
            if parent not in own and parent in self.modules:
                parents.append(parent)
            parent = parent.rpartition(".")[0]
        return parents

    def defers_something(self, imp: Import, startup_path: set[str]) -> bool:
        """Whether the function-level `imp` keeps something out of its module's import: a HEAVY package,
        or, for a module on `startup_path` (the modules `edgeclip --help` loads), any module or package
        that start-up does not load anyway."""
        target_modules, target_packages = self.top_level_closure(imp.target, *self.packages_run_first(imp))
        if imp.source in startup_path:
            startup_packages = self.top_level_closure(*startup_path)[1]
            return bool(target_modules - startup_path or target_packages - startup_packages)
        return bool((target_packages - self.top_level_third_party(imp.source)) & HEAVY)

    def function_imports(self) -> list[Import]:
        """Runtime imports of internal modules inside functions, one per (statement, module)."""
        found = {(imp.source, imp.line, imp.target): imp for info in self.modules.values() for imp in info.imports
                 if imp.in_function and not imp.type_checking and not imp.implicit}
        return list(found.values())

    def lazy_reason(self, imp: Import) -> str:
        """The `# lazy: ...` comment on the import's line, or on a line above it within its run of import
        statements (or just above the run); '' if none."""
        lines = self.modules[imp.source].lines
        for number in range(imp.line, imp.group_line - 2, -1):
            text = lines[number - 1] if 0 < number <= len(lines) else ""
            if LAZY_MARK in text:
                return text.split(LAZY_MARK, 1)[1].strip()
        return ""


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds outside functions and classes: defs, classes, assignments and imports,
    inside if/try/with/for/while blocks too."""
    names: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
            continue
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
            targets = [node.target]
        elif isinstance(node, ast.With):
            targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        for block in ("body", "orelse", "finalbody"):
            stack.extend(getattr(node, block, []) if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)) else [])
        for handler in getattr(node, "handlers", []):
            stack.extend(handler.body)
    return names


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None. Iterative DFS (no recursion limit)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        iters = [iter(sorted(graph[start]))]
        state[start] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph[nxt])))
    return None


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles' module sets (Tarjan's strongly connected components of size > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in graph:
                continue
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]]) -> int | None:
    """Index of the layer whose longest listed prefix matches `module` (0 = top), None if unlisted."""
    best: tuple[int, int] | None = None
    for position, (_, members) in enumerate(layers):
        for member in members:
            if module == member or module.startswith(member + "."):
                if best is None or len(member) > best[1]:
                    best = (position, len(member))
    return None if best is None else best[0]


def climbs(graph: dict[str, set[str]], layers: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """Edges from a lower layer to a higher one, as 'a (layer) -> b (layer)'."""
    found = []
    for source in sorted(graph):
        low = layer_of(source, layers)
        for target in sorted(graph[source]):
            high = layer_of(target, layers)
            if low is not None and high is not None and high < low:
                found.append(f"{source} ({layers[low][0]}) -> {target} ({layers[high][0]})")
    return found
