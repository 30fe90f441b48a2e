"""One module per CLI subcommand: `register(subparsers)` adds the parser and sets `func`."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, name: str, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand parser with a description and an examples block in its --help."""
    from edgeclip.cli import HelpFormatter

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
