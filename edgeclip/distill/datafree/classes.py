"""The class list of a data-free run: from `--classes "a,b,c"` or `--classes-file F`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeclip.errors import UserError


def parse_class_list(text: str) -> list[str]:
    """'zero, one,two' → ['zero', 'one', 'two'] (empty entries are kept, so they can be refused)."""
    return [part.strip() for part in text.split(",")] if text.strip() else []


def read_classes_file(path: str | Path) -> list[str]:
    """One class name per line; blank lines and lines starting with '#' are skipped."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"classes file '{path}' is a folder; pass a text file with one class name per line")
    if not path.is_file():
        raise UserError(f"classes file '{path}' does not exist; pass a text file with one class name per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"classes file '{path}' is not UTF-8 text; write one class name per line") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def check_class_names(names: Sequence[str], where: str) -> list[str]:
    names = [str(n).strip() for n in names]
    if not names:
        raise UserError(f"no class names ({where}); pass --classes \"cat,dog\" or --classes-file FILE")
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise UserError(f"class name {empty[0]} of {len(names)} is empty ({where}); remove the extra comma or blank entry")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"class list has duplicates {duplicates} ({where}); give every class one unique name")
    if len(names) < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {names} ({where}); add class names")
    return names


def resolve_class_names(classes: Sequence[str], classes_file: str) -> list[str]:
    """The recipe's `datafree.classes` or `datafree.classes_file` (not both), checked."""
    if classes and classes_file:
        raise UserError("give the classes either as a list (--classes / datafree.classes) or as a file "
                        "(--classes-file / datafree.classes_file), not both")
    if classes_file:
        return check_class_names(read_classes_file(classes_file), f"from {classes_file}")
    return check_class_names(list(classes), "datafree.classes")
