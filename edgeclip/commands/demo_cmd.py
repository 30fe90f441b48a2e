"""`edgeclip demo accident`: the dashcam accident-recognition demo (arrives in a later release)."""

from __future__ import annotations

import argparse

from edgeclip.commands import add_parser
from edgeclip.errors import NotImplementedYet


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "demo", help="dashcam accident-recognition demo (not available yet)",
        description="Run a demo on a device. The accident-recognition demo (DESIGN §4.6) is not implemented yet.",
        examples="""
  edgeclip demo accident --clips ../shared/data/dad-demo   # not available yet: exits 2
""",
    )
    parser.add_argument("name", choices=["accident"], help="which demo")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedYet(
        "the accident-recognition demo is not implemented yet (video temporal head, DESIGN §4.6); "
        "use `edgeclip build` and `edgeclip bench` for now"
    )
