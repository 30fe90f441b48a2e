"""Prompt diversification (paper 002 §3.2): one target text embedding per synthetic image.

- `plain`: "a photo of a {CLS}" — every image of a class chases the same embedding (the
  baseline; the paper shows it collapses to one mode).
- `mix` (Mix-Prompt): two different styles s₁, s₂ from the style dictionary,
  T = λ·T("{CLS} in the style of s₁") + (1 − λ)·T("{CLS} in the style of s₂"), λ ~ Beta(α, α).
- `random` (Random-Prompt): "{CLS} in the style of H*" where the pseudo word's embedding is
  V* = μ + e·ε·σ, ε ~ N(0, I), μ/σ per dimension over the teacher's token table, e = 10.
- `contrastive` (Contrastive-Prompt): Random-Prompt's V* refined with InfoNCE (see `contrastive`).

`build_prompt_plan` returns the rows (what each image was asked to be: prompt, style(s), λ or
the V* seed) and the (N, D) targets, class-major: images_per_class rows of class 0 first.
Everything is drawn from `seed`, so the same recipe gives the same plan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from edgeclip.distill.datafree.contrastive import learn_pseudo_tokens
from edgeclip.distill.datafree.styles import styles_for
from edgeclip.distill.datafree.text_encoder import PLACEHOLDER, PseudoTokenEncoder, token_statistics, token_table
from edgeclip.errors import UserError, unknown_name_error

PROMPT_METHODS = ("plain", "mix", "random", "contrastive")


@dataclass
class PromptPlan:
    method: str
    rows: list[dict[str, Any]]
    targets: torch.Tensor  # (N, D), L2-normalised
    pseudo_tokens: torch.Tensor | None = None  # (N, width): V* of random / contrastive
    info: dict[str, Any] = field(default_factory=dict)

    def for_class(self, label: int) -> tuple[list[int], torch.Tensor]:
        index = [i for i, row in enumerate(self.rows) if row["label"] == label]
        return index, self.targets[index]


def check_method(method: str) -> str:
    if method not in PROMPT_METHODS:
        raise unknown_name_error("prompt method", method, PROMPT_METHODS, "set datafree.prompt (or --prompt)")
    return method


def check_template(template: str, slots: int, key: str) -> None:
    if template.count("{}") != slots:
        raise UserError(f"datafree.{key} '{template}' must have exactly {slots} '{{}}' slot(s) "
                        f"({'class name' if slots == 1 else 'class name, then style'})")


def mix_embeddings(first: torch.Tensor, second: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """T = λ·T₁ + (1 − λ)·T₂ row-wise (paper eq. 6), then L2-normalised (the synthesis distance
    and the teacher's cosine only see the direction)."""
    lam = lam.reshape(-1, 1).to(first.dtype)
    return torch.nn.functional.normalize(lam * first + (1 - lam) * second, dim=-1)


def sample_pseudo_tokens(mu: torch.Tensor, sigma: torch.Tensor, scale: float, seeds: Sequence[int]) -> torch.Tensor:
    """V* = μ + e·ε·σ with ε ~ N(0, I) drawn from each seed (paper eq. 10); (len(seeds), D)."""
    rows = []
    for seed in seeds:
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(int(seed)))
        rows.append(mu + scale * eps * sigma)
    return torch.stack(rows)


def _plain(teacher: Any, class_names: list[str], per_class: int, cfg: Any) -> PromptPlan:
    check_template(cfg.template, 1, "template")
    prompts = [cfg.template.format(name) for name in class_names]
    embeddings = teacher.encode_text(prompts, normalize=True)
    rows = [{"label": c, "class": name, "prompt": prompts[c]} for c, name in enumerate(class_names) for _ in range(per_class)]
    targets = embeddings.repeat_interleave(per_class, dim=0)
    return PromptPlan("plain", rows, targets)


def _mix(teacher: Any, class_names: list[str], per_class: int, cfg: Any, seed: int) -> PromptPlan:
    check_template(cfg.style_template, 2, "style_template")
    if cfg.mix_alpha <= 0:
        raise UserError(f"datafree.mix_alpha must be > 0 (lambda ~ Beta(alpha, alpha)), got {cfg.mix_alpha}")
    styles, dropped, source = styles_for(cfg.styles_file, cfg.exclude_domains)
    rng = random.Random(seed)
    beta = torch.distributions.Beta(torch.tensor(float(cfg.mix_alpha)), torch.tensor(float(cfg.mix_alpha)))
    torch.manual_seed(seed)
    rows, firsts, seconds = [], [], []
    for c, name in enumerate(class_names):
        for _ in range(per_class):
            s1, s2 = rng.sample(styles, 2)
            lam = float(beta.sample())
            p1, p2 = cfg.style_template.format(name, s1), cfg.style_template.format(name, s2)
            rows.append({"label": c, "class": name, "prompt": p1, "prompt_2": p2, "styles": [s1, s2], "lambda": lam})
            firsts.append(p1)
            seconds.append(p2)
    lam = torch.tensor([r["lambda"] for r in rows])
    targets = mix_embeddings(_encode_many(teacher, firsts), _encode_many(teacher, seconds), lam)
    return PromptPlan("mix", rows, targets, info={"styles": len(styles), "styles_dropped": dropped, "styles_file": source})


def _encode_many(teacher: Any, prompts: list[str], chunk: int = 512) -> torch.Tensor:
    # Unique prompts once (a class has at most |styles|² distinct pairs), then gathered.
    unique = sorted(set(prompts))
    position = {p: i for i, p in enumerate(unique)}
    encoded = torch.cat([teacher.encode_text(unique[i:i + chunk], normalize=True) for i in range(0, len(unique), chunk)])
    return encoded[[position[p] for p in prompts]]


def _pseudo_prompts(class_names: list[str], per_class: int, cfg: Any, seed: int) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    check_template(cfg.style_template, 2, "style_template")
    # A class name that tokenizes to the placeholder too is caught when the prompts are encoded.
    rng = random.Random(seed)
    rows, prompts, seeds = [], [], []
    for c, name in enumerate(class_names):
        for _ in range(per_class):
            v_seed = rng.randrange(2**31)
            prompt = cfg.style_template.format(name, PLACEHOLDER)
            rows.append({"label": c, "class": name, "prompt": prompt, "v_seed": v_seed})
            prompts.append(prompt)
            seeds.append(v_seed)
    return rows, prompts, seeds


def _random(teacher: Any, class_names: list[str], per_class: int, cfg: Any, seed: int, method: str = "random",
            progress: bool = True) -> PromptPlan:
    encoder = PseudoTokenEncoder(teacher)
    if cfg.random_scale < 0:
        raise UserError(f"datafree.random_scale (e) must be >= 0, got {cfg.random_scale}")
    rows, prompts, seeds = _pseudo_prompts(class_names, per_class, cfg, seed)
    mu, sigma = token_statistics(token_table(teacher.model))
    vectors = sample_pseudo_tokens(mu, sigma, cfg.random_scale, seeds)
    info: dict[str, Any] = {"random_scale": cfg.random_scale, "token_mean_norm": float(mu.norm()), "token_std_mean": float(sigma.mean())}
    if method == "contrastive":
        for key in ("contrastive_epochs", "contrastive_batch"):
            if getattr(cfg, key) < 1:
                raise UserError(f"datafree.{key} must be >= 1, got {getattr(cfg, key)}")
        if cfg.contrastive_lr <= 0 or cfg.contrastive_tau <= 0:
            raise UserError("datafree.contrastive_lr and datafree.contrastive_tau must be > 0")
        vectors, history, fallbacks = learn_pseudo_tokens(
            encoder, teacher.model, prompts, [r["class"] for r in rows], cfg.style_template, PLACEHOLDER, vectors,
            epochs=cfg.contrastive_epochs, lr=cfg.contrastive_lr, batch_size=cfg.contrastive_batch,
            bank_size=cfg.contrastive_bank, tau=cfg.contrastive_tau, seed=seed, progress=progress, fits=encoder.fits)
        info["contrastive_loss"] = {"first": history[0] if history else None, "last": history[-1] if history else None,
                                    "epochs": len(history), "unshuffled_positives": fallbacks}
    with torch.no_grad():
        targets = torch.cat([encoder(prompts[i:i + 512], vectors[i:i + 512]) for i in range(0, len(prompts), 512)])
    return PromptPlan(method, rows, targets, pseudo_tokens=vectors, info=info)


def build_prompt_plan(method: str, teacher: Any, class_names: Sequence[str], per_class: int, cfg: Any, seed: int,
                      progress: bool = True) -> PromptPlan:
    """The target embedding of every image to synthesize (see the module docstring)."""
    check_method(method)
    names = list(class_names)
    if method == "plain":
        plan = _plain(teacher, names, per_class, cfg)
    elif method == "mix":
        plan = _mix(teacher, names, per_class, cfg, seed)
    else:
        plan = _random(teacher, names, per_class, cfg, seed, method=method, progress=progress)
    # Diversity of what the images are asked to be: mean pairwise cosine of targets within a class.
    plan.info["target_cosine_within_class"] = _within_class_cosine(plan)
    return plan


def _within_class_cosine(plan: PromptPlan) -> float:
    values = []
    for label in sorted({row["label"] for row in plan.rows}):
        _, targets = plan.for_class(label)
        n = len(targets)
        if n > 1:
            sims = targets @ targets.T
            values.append(float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1))))
    return sum(values) / len(values) if values else 1.0
