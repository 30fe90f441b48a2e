"""CLIP's byte-level BPE tokenizer in pure Python (standard library only; Python 3.8+).

Reproduces open_clip's `SimpleTokenizer` token ids (clean="lower", no reduction) for plain text,
so a device can turn new class names into prompts for an exported text tower without torch,
ftfy or regex. "Plain text" = text that ftfy's `fix_text` leaves unchanged (anything that is not
mojibake, HTML-escaped twice, or using curly quotes/ligatures/full-width forms); the text is NFC
normalised and HTML-unescaped here as open_clip does. The vocabulary is open_clip's
`bpe_simple_vocab_16e6.txt.gz`, shipped inside the text-tower artifact.

    tokenizer = ClipTokenizer("bpe_simple_vocab_16e6.txt.gz", context_length=77)
    ids = tokenizer(["a photo of a cat.", "a photo of a dog."])   # list of lists, padded with 0
"""

import gzip
import html
import unicodedata
from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

SPECIAL_TOKENS = ("<start_of_text>", "<end_of_text>")
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable-unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _kind(char: str) -> str:
    """'L' (unicode letter), 'N' (unicode number), 'S' (whitespace) or 'O' (anything else)."""
    if char.isspace():
        return "S"
    category = unicodedata.category(char)
    return category[0] if category[0] in ("L", "N") else "O"


def pre_tokenize(text: str) -> List[str]:
    """open_clip's regex `<sot>|<eot>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+`, by hand.

    Alternatives are tried in that order at each position; positions where none matches
    (whitespace) are skipped, as `re.findall` does.
    """
    tokens, i, n = [], 0, len(text)
    while i < n:
        matched = next((s for s in SPECIAL_TOKENS if text.startswith(s, i)), None) or \
            next((c for c in CONTRACTIONS if text.startswith(c, i)), None)
        if matched:
            tokens.append(matched)
            i += len(matched)
            continue
        kind = _kind(text[i])
        if kind == "S":
            i += 1
            continue
        if kind == "N":
            tokens.append(text[i])
            i += 1
            continue
        j = i + 1
        if kind == "L":
            while j < n and _kind(text[j]) == "L":
                j += 1
        else:  # a run of neither space, letter nor number
            while j < n and _kind(text[j]) == "O":
                j += 1
        tokens.append(text[i:j])
        i = j
    return tokens


def clean(text: str) -> str:
    """open_clip's `_clean_lower` without ftfy: NFC, HTML-unescape twice, collapse whitespace, lower-case."""
    text = unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).strip().lower()


class ClipTokenizer:
    def __init__(self, vocab_path: str, context_length: int = 77) -> None:
        with gzip.open(vocab_path) as handle:
            merges_text = handle.read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in merges_text[1:49152 - 256 - 2 + 1]]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += list(SPECIAL_TOKENS)
        self.encoder = {token: index for index, token in enumerate(vocab)}
        self.bpe_ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.cache: Dict[str, str] = {t: t for t in SPECIAL_TOKENS}
        self.sot_token_id = self.encoder[SPECIAL_TOKENS[0]]
        self.eot_token_id = self.encoder[SPECIAL_TOKENS[1]]
        self.context_length = context_length

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word: Tuple[str, ...] = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = {(a, b) for a, b in zip(word, word[1:])}
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            merged: List[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = {(a, b) for a, b in zip(word, word[1:])}
        result = " ".join(word)
        self.cache[token] = result
        return result

    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for token in pre_tokenize(clean(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self.bpe(token).split(" "))
        return ids

    def __call__(self, texts: Sequence[str], context_length: int = 0) -> List[List[int]]:
        """Token ids per text, `[sot] + ids + [eot]`, truncated (eot kept last) and zero-padded."""
        context = context_length or self.context_length
        rows = []
        for text in [texts] if isinstance(texts, str) else texts:
            ids = [self.sot_token_id] + self.encode(text) + [self.eot_token_id]
            if len(ids) > context:
                ids = ids[:context]
                ids[-1] = self.eot_token_id
            rows.append(ids + [0] * (context - len(ids)))
        return rows
