"""One module per CLI subcommand: `register(subparsers)` adds the parser and sets `func`."""

from __future__ import annotations

import argparse

from edgeclip.cli import HelpFormatter
from edgeclip.config import load_recipe


def add_parser(subparsers: argparse._SubParsersAction, name: str, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand parser with a description and an examples block in its --help."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples.strip("\n") + "\n",
        formatter_class=HelpFormatter,
    )


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="quickstart", help="shipped recipe name (edgeclip list recipes) or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set distill.epochs=5 (repeatable)")


def recipe_from_args(args: argparse.Namespace):  # -> edgeclip.config.Recipe
    """The recipe with every CLI flag a subcommand defines folded in as `--set` overrides, so flags
    and recipe values are validated the same way. Flags a subcommand does not define are ignored."""
    from pathlib import Path

    # lazy: `edgeclip --help` does not load it

    overrides = list(getattr(args, "overrides", []))
    value = lambda name: getattr(args, name, None)  # noqa: E731 - subcommands define different flags
    if value("teacher"):
        overrides.append(f"teacher={value('teacher')}")
    if value("method"):
        overrides.append(f"distill.method={value('method')}")
    if value("student"):
        # A trained checkpoint directory is a starting point; anything else names a registered student.
        key = "student.checkpoint" if Path(value("student")).is_dir() else "student.name"
        overrides.append(f"{key}={value('student')}")
    if value("data"):
        overrides += [f"data.train={value('data')}", f"data.test={value('data')}"]
    if value("test_data"):
        overrides.append(f"data.test={value('test_data')}")
    if value("shots") is not None:
        overrides.append(f"data.shots={value('shots')}")
    if value("epochs") is not None:
        overrides.append(f"distill.epochs={value('epochs')}")
    if value("scratch"):
        overrides.append("distill.scratch_baseline=true")
    if value("pairs"):
        overrides.append(f"data.pairs={value('pairs')}")
    if value("latency_budget") is not None:
        overrides.append(f"search.latency_budget_ms={value('latency_budget')}")
    if value("text_init"):
        overrides.append(f"distill.text_init={value('text_init')}")
    return load_recipe(getattr(args, "recipe", ""), overrides)
