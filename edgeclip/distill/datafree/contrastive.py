"""Contrastive-Prompt (paper 002 §3.2.3): learn each prompt's pseudo token V* with InfoNCE.

Anchor T = E_txt(prompt with V*); positive T⁺ = the same prompt with the letters inside each
frozen template word shuffled ("in the style of" → "ni eht lytse fo"; class word and V* untouched), so
the meaning survives; negatives = the other prompts of the batch and a memory bank of earlier
anchors. Pushing every prompt away from all others spreads the prompts — and so the images they
steer — over the text-embedding space. Only V* is learned; the teacher stays frozen.

Loss per anchor (standard InfoNCE: the positive also sits in the denominator):
    L = −log( exp(cos(T, T⁺)/τ) / (exp(cos(T, T⁺)/τ) + Σ_neg exp(cos(T, T⁻)/τ)) )
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from edgeclip.distill.datafree.common import frozen_weights

Encoder = Callable[[Sequence[str], torch.Tensor], torch.Tensor]


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, bank: torch.Tensor | None, tau: float) -> torch.Tensor:
    """Mean InfoNCE over the batch. Negatives of anchor i: every other anchor j ≠ i and every bank row.

    All inputs are L2-normalised (N, D) / (M, D) embeddings.
    """
    n = len(anchors)
    positive = (anchors * positives).sum(dim=1, keepdim=True) / tau
    batch = anchors @ anchors.T / tau
    batch = batch.masked_fill(torch.eye(n, dtype=torch.bool, device=anchors.device), float("-inf"))
    columns = [positive, batch]
    if bank is not None and len(bank):
        columns.append(anchors @ bank.T / tau)
    logits = torch.cat(columns, dim=1)
    return torch.nn.functional.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=anchors.device))


def shuffle_word_letters(text: str, rng: random.Random) -> str:
    """Shuffle the letters inside each whitespace-separated word; spaces stay where they are."""
    return " ".join("".join(rng.sample(word, len(word))) for word in text.split(" "))


def shuffled_prompt(style_template: str, class_name: str, placeholder: str, rng: random.Random) -> str:
    """The prompt with the letters of the frozen template words shuffled — the words between the
    class slot and the style slot ("in the style of" in '{} in the style of {}', the paper's
    augmentation) — filled with the class name and the placeholder (neither is shuffled). Text
    before the class or after the style (e.g. "a photo of the digit", ".") is kept as it is."""
    parts = style_template.split("{}")
    return fill_template([parts[0], shuffle_word_letters(parts[1], rng), *parts[2:]], [class_name, placeholder])


def positive_prompt(prompt: str, style_template: str, class_name: str, placeholder: str, rng: random.Random,
                    fits: Callable[[str], bool] | None = None, attempts: int = 10) -> tuple[str, bool]:
    """A letter-shuffled positive for `prompt` that still fits the text encoder's context.

    Shuffled words tokenize into more (rarer) BPE pieces; when no shuffle out of `attempts` fits
    the context, the prompt itself is the positive (returns (prompt, False)).
    """
    for _ in range(attempts):
        candidate = shuffled_prompt(style_template, class_name, placeholder, rng)
        if fits is None or fits(candidate):
            return candidate, True
    return prompt, False


def fill_template(parts: list[str], values: list[str]) -> str:
    """Join template pieces (split on '{}') with the values in order."""
    out = parts[0]
    for value, part in zip(values, parts[1:]):
        out += value + part
    return out


class MemoryBank:
    """FIFO queue of the most recent `size` anchor embeddings (detached)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: torch.Tensor | None = None

    def push(self, embeddings: torch.Tensor) -> None:
        if self.size <= 0:
            return
        new = embeddings.detach()
        self.rows = new if self.rows is None else torch.cat([new, self.rows])
        self.rows = self.rows[: self.size]

    def get(self) -> torch.Tensor | None:
        return self.rows


def learn_pseudo_tokens(
    encoder: Encoder,
    model: torch.nn.Module,
    prompts: Sequence[str],
    class_names: Sequence[str],
    style_template: str,
    placeholder: str,
    init: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    bank_size: int,
    tau: float,
    seed: int,
    progress: bool = True,
    fits: Callable[[str], bool] | None = None,
) -> tuple[torch.Tensor, list[float], int]:
    """Learn V* (N, width) starting from `init` (Random-Prompt draws).

    `prompts[i]` is prompt i with the placeholder; `class_names[i]` its class word (kept in the
    positive). Batches of `batch_size` prompts, Adam(lr), `epochs` passes over all prompts.
    `fits(prompt)` says whether a shuffled positive still fits the context (see `positive_prompt`).
    Returns (V*, mean loss per epoch, number of positives that fell back to the unshuffled prompt).
    """
    vectors = torch.nn.Parameter(init.detach().clone())
    optimizer = torch.optim.Adam([vectors], lr=lr)
    bank = MemoryBank(bank_size)
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    n = len(prompts)
    history: list[float] = []
    fallbacks = 0
    bar = tqdm(range(epochs), desc="contrastive prompts", unit="epoch", disable=not progress, leave=False, dynamic_ncols=True)
    with frozen_weights(model):
        for _ in bar:
            order = torch.randperm(n, generator=generator)
            total, seen = 0.0, 0
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                if len(index) < 2 and bank.get() is None:
                    continue  # one prompt and an empty bank: no negative to contrast with
                batch_prompts = [prompts[int(i)] for i in index]
                positives_text = []
                for i in index:
                    text, shuffled = positive_prompt(prompts[int(i)], style_template, class_names[int(i)], placeholder, rng, fits)
                    positives_text.append(text)
                    fallbacks += not shuffled
                anchors = encoder(batch_prompts, vectors[index])
                positives = encoder(positives_text, vectors[index])
                loss = info_nce(anchors, positives, bank.get(), tau)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bank.push(anchors)
                total += float(loss.detach()) * len(index)
                seen += len(index)
            history.append(total / max(seen, 1))
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    return vectors.detach(), history, fallbacks
