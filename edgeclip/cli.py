"""`edgeclip` command line: parses arguments and hands them to edgeclip.commands.<subcommand>.

No logic lives here. Each module in edgeclip/commands/ defines `register(subparsers)`, which adds
its parser (with help and examples) and sets `func(args) -> int` as the default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing

# Before torch (and its OpenMP runtime) is imported by any subcommand: OpenMP threads that busy-wait
# between parallel regions collapse when the cores are shared (a training step: 1.90 s with the default
# policy vs 0.14 s passive on a loaded 2-core machine, benchmarks/results/threading.md). A value the
# user set is kept; waiting passively changes no numerics, so training stays deterministic.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from edgeclip import __version__
from edgeclip.errors import UserError
from edgeclip.io_utils import check_output_dir

# Order is the order of `edgeclip --help`.
SUBCOMMANDS = ["build", "distill", "eval", "export", "compress", "bench", "list", "video", "demo"]

EPILOG = """examples:
  edgeclip list students
  edgeclip build --recipe quickstart --target cpu
  edgeclip distill --recipe digits-kd --student resnet18_w8 --shots 10
  edgeclip export --model runs/<id>/student --backend onnx --precision int8
  edgeclip compress prune --model runs/<id>/student --ratio 0.5 --recover-epochs 10
  edgeclip bench --artifact runs/<id>/artifacts/onnx-int8 --target cpu
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps example blocks as written and shows defaults."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: a usage error is one line, `edgeclip: error: ...`,
    naming where to look, and exit 2 (argparse's own prints the whole usage block first).
    Subcommand parsers inherit this class through `add_subparsers`."""

    def error(self, message: str) -> "typing.NoReturn":
        print(f"edgeclip: error: {self.prog}: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="edgeclip",
        description="Distill CLIP into small models for edge devices, export them, and measure what they keep.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgeclip {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in SUBCOMMANDS:
        importlib.import_module(f"edgeclip.commands.{name}_cmd").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Usage errors: ArgumentParser.error prints one line and exits 2 (SystemExit, as argparse does).
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "out", None):  # an --out that cannot be written fails now, not after the work
            check_output_dir(args.out, "--out", replaced=getattr(args, "out_replaced", False))
        if getattr(args, "remote", None) is not None:  # a host starting with '-' would become an ssh option
            # lazy: `edgeclip --help` does not load it
            from edgeclip.bench.remote import check_remote_host

            check_remote_host(args.remote)
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"edgeclip: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeclip: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
