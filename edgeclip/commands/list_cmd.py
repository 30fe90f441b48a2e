"""`edgeclip list recipes|targets|students|backends|teachers|datasets|losses|methods|heads|generators`."""

from __future__ import annotations

import argparse

from edgeclip.backends import list_backends
from edgeclip.commands import add_parser
from edgeclip.config import list_recipes

KINDS = ["recipes", "targets", "students", "backends", "teachers", "datasets", "losses", "methods", "heads", "generators"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "list", help="list recipes, targets, students, backends, teachers, datasets, losses, methods or generators",
        description="List what edgeclip knows about.",
        examples="""
  edgeclip list students     # every student with its parameter count
  edgeclip list targets      # device profiles and their budgets
  edgeclip list backends     # export formats, precisions, and whether they run here
""",
    )
    parser.add_argument("kind", choices=KINDS, help="what to list")
    parser.set_defaults(func=run)


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _rows(kind: str) -> tuple[list[str], list[list[object]]]:
    if kind == "recipes":
        # lazy: `edgeclip --help` does not load it

        return ["recipe", "description"], [list(r) for r in list_recipes()]
    if kind == "students":
        # lazy: `edgeclip --help` does not load it
        from edgeclip.students import list_students

        return ["student", "kind", "params", "description"], [
            [s["name"], s["kind"], f"{s['params'] / 1e6:.2f}M" if s["params"] >= 1e5 else f"{s['params']:,}", s.get("description", "")]
            for s in list_students()
        ]
    if kind == "targets":
        # lazy: `edgeclip --help` does not load it
        from edgeclip.targets import list_targets

        return ["target", "aliases", "backends", "precision", "measurable here", "budgets"], [
            [t.name, ", ".join(t.aliases), ", ".join(t.backends), ", ".join(t.precisions),
             "yes" if t.measurable_here else "no (measure on the device)",
             ", ".join(f"{k}={v}" for k, v in vars(t.budgets).items() if v is not None)]
            for t in list_targets()
        ]
    if kind == "backends":
        # lazy: `edgeclip --help` does not load it

        return ["backend", "precisions", "file", "runs here", "notes"], [
            [b["name"], ", ".join(b["precisions"]), b["suffix"], "yes" if b["runs_here"] else "no", b.get("notes", "")]
            for b in list_backends()
        ]
    if kind == "losses":
        # lazy: `edgeclip --help` does not load it (torch)
        from edgeclip.distill.losses import list_losses

        return ["loss term", "needs teacher", "reads", "params", "description"], [
            [r["name"], "yes" if r["needs_teacher"] else "no", ", ".join(r["inputs"]), ", ".join(r["params"]), r["description"]]
            for r in list_losses()
        ]
    if kind == "methods":
        # lazy: `edgeclip --help` does not load it
        from edgeclip.distill.methods import DISTILL_METHODS

        return ["method", "paper", "description"], [[m.name, m.paper, m.description] for _, m in DISTILL_METHODS.items()]
    if kind == "heads":  # temporal heads of the video accident pipeline (edgeclip video train --head)
        # lazy: `edgeclip --help` does not load it (torch)
        from edgeclip.video.heads import list_heads

        return ["head", "trained", "needs text tower", "description"], [
            [h["name"], "yes" if h["trainable"] else "no", "yes" if h["needs_text_tower"] else "no", h["description"]]
            for h in list_heads()
        ]
    if kind == "generators":
        # lazy: `edgeclip --help` does not load it (torch)
        from edgeclip.distill.datafree.generators import list_generators

        return ["image generator", "description"], [[name, description] for name, description in list_generators()]
    if kind == "teachers":
        # lazy: `edgeclip --help` does not load it (torch)
        from edgeclip.teacher import PROXY_DESCRIPTIONS, PROXY_TEACHERS

        rows = [[name, PROXY_DESCRIPTIONS.get(name, "proxy teacher")] for name in PROXY_TEACHERS.names()]
        rows.append(["ARCH:TAG", "open_clip architecture + pretrained tag, e.g. ViT-B-32:openai (needs the hub or a cached copy)"])
        rows.append(["ARCH:PATH", "open_clip architecture + local checkpoint, e.g. ViT-B-32:/models/vitb32.safetensors"])
        rows.append(["ARCH:random", "random weights (latency/size only)"])
        rows.append(["PATH", "an edgeclip teacher checkpoint (.pt written by edgeclip)"])
        return ["teacher", "description"], rows
    # lazy: `edgeclip --help` does not load it
    from edgeclip.data import list_datasets

    rows = [[name, description] for name, description in list_datasets()]
    rows.append(["PATH", "a folder of class folders (optionally with train/ and test/)"])
    return ["dataset", "description"], rows


def run(args: argparse.Namespace) -> int:
    headers, rows = _rows(args.kind)
    print(format_table(headers, rows))
    return 0
