"""The device's pure-Python CLIP tokenizer gives open_clip's SimpleTokenizer ids for plain text."""

from __future__ import annotations

import importlib.util
import random
import string
from pathlib import Path

import pytest

RUNNER_DIR = Path(__file__).resolve().parent.parent / "devices" / "runner"


def load_device_tokenizer():
    spec = importlib.util.spec_from_file_location("clip_tokenizer", RUNNER_DIR / "clip_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXED = [
    "a photo of the digit seven.", "a handwritten 7", "the number 3, written by hand.", "an 8x8 picture of the number 12.",
    "A Photo Of A CAT!!", "it's a dog's life; they're here, we've won, I'm sure, you'll see, he'd go",
    "Saint Bernard, a type of dog", "Model T, automobile, car", "café crème brûlée", "naïve façade — résumé",
    "  lots   of\twhitespace\n here ", "snake_case and kebab-case and CamelCase", "e-mail: someone@example.com",
    "price: $19.99 (20% off!)", "x² + y² = z²", "½ cup of Ⅻ", "<start_of_text> hello <end_of_text>",
    "&amp; html &lt;escaped&gt; &amp;amp;", "supercalifragilisticexpialidocious " * 12, "", "'", "'''s", "emoji 🐶🚗",
    "日本語のテキスト", "Ελληνικά κείμενα", "mixed123abc456", "...?!", "o'clock 'tis", "München Straße",
]


def random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + " .,;:!?'\"-()&/" + "éèàüöç"
    words = ["photo", "digit", "seven", "dog", "a", "the", "of", "blurry", "it's", "car", "zero", "number", "x", "2026"]
    texts = []
    for _ in range(count):
        if rng.random() < 0.5:
            texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 20))))
        else:
            texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))))
    return texts


@pytest.mark.parametrize("context", [77, 16])
def test_ids_equal_open_clip(context: int) -> None:
    import open_clip
    from open_clip.tokenizer import default_bpe

    device = load_device_tokenizer().ClipTokenizer(default_bpe(), context_length=context)
    reference = open_clip.SimpleTokenizer(context_length=context)
    texts = FIXED + random_texts(400)
    expected = reference(texts).tolist()
    got = device(texts)
    mismatches = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
    assert not mismatches, mismatches[:3]


def test_runner_tokenizer_uses_only_the_standard_library() -> None:
    import ast

    tree = ast.parse((RUNNER_DIR / "clip_tokenizer.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"gzip", "html", "unicodedata", "functools", "typing"}, imported
