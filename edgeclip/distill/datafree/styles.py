"""The Mix-Prompt style dictionary: load it, drop test-domain words, validate.

The shipped dictionary is `edgeclip/data/styles.yaml` (paper 002 Table 8); users point
`datafree.styles_file` at their own copy. Its `test_domains` map names word lists that must not
steer synthesis (the paper leaves PACS's domain names out of the dictionary so the student is
tested on styles it was never prompted with); `datafree.exclude_domains` selects which lists apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from edgeclip.errors import UserError, unknown_name_error

SHIPPED_STYLES = Path(__file__).resolve().parents[2] / "data" / "styles.yaml"


@dataclass(frozen=True)
class StyleDictionary:
    styles: list[str]
    test_domains: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""


def load_styles(path: str | Path = "") -> StyleDictionary:
    """Read a style dictionary (YAML mapping with `styles: [...]`, optional `test_domains: {name: [...]}`).

    Anything that does not parse or has another shape is a one-line UserError naming the file.
    """
    import yaml

    source = Path(path).expanduser() if path else SHIPPED_STYLES
    fix = "fix it or drop datafree.styles_file to use the shipped dictionary"
    if not source.is_file():
        raise UserError(f"style dictionary '{source}' does not exist; check the path or drop --styles to use the shipped one")
    try:
        data = yaml.safe_load(source.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"style dictionary '{source}' is not valid YAML ({first}); {fix}") from None
    if not isinstance(data, dict) or "styles" not in data:
        raise UserError(f"style dictionary '{source}' must be a YAML mapping with a 'styles' list; {fix}")
    styles = data["styles"]
    if not isinstance(styles, list) or not styles or not all(isinstance(s, str) and s.strip() for s in styles):
        raise UserError(f"'styles' in '{source}' must be a non-empty list of non-empty strings; {fix}")
    domains = data.get("test_domains") or {}
    if not isinstance(domains, dict) or not all(
            isinstance(words, list) and all(isinstance(w, str) and w.strip() for w in words) for words in domains.values()):
        raise UserError(f"'test_domains' in '{source}' must map names to lists of words; {fix}")
    stripped = [s.strip() for s in styles]
    duplicates = sorted({s for s in stripped if stripped.count(s) > 1})
    if duplicates:
        raise UserError(f"style dictionary '{source}' lists {duplicates} more than once; keep one of each")
    return StyleDictionary(stripped, {str(k): [w.strip() for w in v] for k, v in domains.items()}, str(source))


def contains_word(style: str, word: str) -> bool:
    """Whole-word, case-insensitive: 'photo' hits 'old photo' but not 'photorealism'."""
    return re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", style.lower()) is not None


def exclude_domain_words(dictionary: StyleDictionary, domains: Sequence[str]) -> tuple[list[str], list[str]]:
    """(kept styles, dropped styles) after removing every style naming a word of `domains`."""
    words: list[str] = []
    for name in domains:
        if name not in dictionary.test_domains:
            raise unknown_name_error("test domain", name, dictionary.test_domains,
                                     f"name a test_domains entry of {dictionary.source or 'the style dictionary'}")
        words += dictionary.test_domains[name]
    kept = [s for s in dictionary.styles if not any(contains_word(s, w) for w in words)]
    dropped = [s for s in dictionary.styles if s not in kept]
    return kept, dropped


def styles_for(styles_file: str, exclude_domains: Sequence[str], minimum: int = 2) -> tuple[list[str], list[str], str]:
    """(styles to sample from, dropped styles, source) for a recipe; Mix-Prompt needs `minimum` styles."""
    dictionary = load_styles(styles_file)
    kept, dropped = exclude_domain_words(dictionary, exclude_domains)
    if len(kept) < minimum:
        raise UserError(f"only {len(kept)} style(s) left in '{dictionary.source}' after excluding {list(exclude_domains)}; "
                        f"Mix-Prompt mixes {minimum} different styles — add styles or exclude fewer domains")
    return kept, dropped, dictionary.source
