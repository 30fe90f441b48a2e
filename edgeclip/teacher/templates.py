"""Prompt template sets for zero-shot heads.

A template is a format string with one `{}` slot for the class name. Class names come from the
data, renamed by the recipe's `data.classname_map` where given (data/class_match.py).
"""

from __future__ import annotations

from pathlib import Path

from edgeclip.data.captions import CIFAR_TEMPLATES, DIGITS_TEMPLATES
from edgeclip.errors import UserError, unknown_name_error
from edgeclip.io_utils import read_text_file


def _openai_imagenet() -> list[str]:
    # open_clip ships OpenAI's 80 ImageNet templates as lambdas; turn them into format strings.
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]


def _simple_imagenet() -> list[str]:
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    return [template("{}") for template in SIMPLE_IMAGENET_TEMPLATES]


TEMPLATE_SETS = {
    "openai_imagenet": _openai_imagenet,
    "simple_imagenet": _simple_imagenet,
    "cifar": lambda: list(CIFAR_TEMPLATES),
    "digits": lambda: list(DIGITS_TEMPLATES),
    "plain": lambda: ["{}"],
}


def get_templates(name: str) -> list[str]:
    """A named template set, or templates read from a text file (one per line, each with `{}`)."""
    path = Path(name)
    if path.suffix == ".txt" and path.is_file():
        templates = [line.strip() for line in read_text_file(path, "template file").splitlines() if line.strip()]
        bad = [t for t in templates if "{}" not in t]
        if bad:
            raise UserError(f"template '{bad[0]}' in {path} has no '{{}}' slot for the class name; add one")
        return templates
    if name not in TEMPLATE_SETS:
        raise unknown_name_error("template set", name, TEMPLATE_SETS, "or pass a .txt file with one template per line")
    return TEMPLATE_SETS[name]()
