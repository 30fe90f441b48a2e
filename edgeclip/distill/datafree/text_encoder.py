"""open_clip's text forward with one token's embedding replaced (Random- and Contrastive-Prompt).

Paper 002 §3.2.2 splits the text encoder into a token-embedding lookup and a sentence encoder,
E_txt = E_sentence ∘ E_token, and feeds E_sentence a pseudo word H* whose embedding V* is not a
row of the table. `encode_text_injected` is open_clip's `encode_text` with that one change: at the
placeholder's position the looked-up embedding is swapped for V* (differentiably, so V* can be
learned). With V* equal to the placeholder's own row it returns exactly `encode_text` — that is
the test that keeps it in step with open_clip.

Supported towers: `open_clip.CLIP` (the text transformer lives on the model) and
`CustomTextCLIP` with an open_clip `TextTransformer` (`model.text`). Hugging Face text towers
have no open_clip token table and are refused with a UserError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from edgeclip.errors import UserError

# The pseudo word H*: a rare word that is one BPE token in CLIP's vocabulary (DreamBooth's "sks");
# its position marks where V* goes. Letters, not punctuation: "*." would merge into another token.
PLACEHOLDER = "sks"


@dataclass
class TextTower:
    """The pieces of an open_clip text tower that the injected forward needs."""

    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor
    transformer: nn.Module
    ln_final: nn.Module
    text_projection: Any
    attn_mask: torch.Tensor | None
    pool_type: str
    eos_id: int | None
    module: nn.Module  # the TextTransformer for CustomTextCLIP (pad masks), else the CLIP model


def text_tower(model: nn.Module) -> TextTower:
    """The open_clip text tower of `model` (CLIP or CustomTextCLIP + TextTransformer)."""
    if hasattr(model, "token_embedding") and hasattr(model, "transformer") and hasattr(model, "ln_final"):
        return TextTower(model.token_embedding, model.positional_embedding, model.transformer, model.ln_final,
                         model.text_projection, getattr(model, "attn_mask", None), getattr(model, "text_pool_type", "argmax"),
                         getattr(model, "text_eos_id", None), model)
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "token_embedding") and getattr(text, "cls_emb", None) is None:
        return TextTower(text.token_embedding, text.positional_embedding, text.transformer, text.ln_final,
                         text.text_projection, text.attn_mask, text.pool_type, getattr(text, "eos_id", None), text)
    raise UserError(f"the teacher's text tower ({type(text or model).__name__}) has no open_clip token-embedding table; "
                    "Random- and Contrastive-Prompt inject a pseudo-token embedding there — use datafree.prompt=plain or mix")


def token_table(model: nn.Module) -> torch.Tensor:
    """The (K, D) token-embedding codebook C."""
    return text_tower(model).token_embedding.weight


def token_statistics(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation over the K rows (paper eq. 8–9):
    mu_d = (1/K) Σ_j C_jd,  sigma_d² = (1/K) Σ_j C_jd² − mu_d²  (population variance)."""
    table = table.detach().double()
    mu = table.mean(dim=0)
    variance = (table * table).mean(dim=0) - mu * mu
    return mu.float(), variance.clamp(min=0).sqrt().float()


def placeholder_positions(tokens: torch.Tensor, placeholder_id: int) -> torch.Tensor:
    """The index of the placeholder token in every row; each row must hold it exactly once."""
    hits = tokens == placeholder_id
    counts = hits.sum(dim=1)
    if bool((counts != 1).any()):
        row = int(torch.nonzero(counts != 1)[0])
        reason = "was cut off (the prompt is longer than the teacher's context)" if int(counts[row]) == 0 else "appears more than once"
        raise UserError(f"the pseudo word '{PLACEHOLDER}' {reason} in prompt {row}; shorten datafree.style_template "
                        f"or the class names, and keep '{PLACEHOLDER}' out of them")
    return hits.float().argmax(dim=1)


def placeholder_token_id(tokenizer: Any) -> int:
    """The single token id the tokenizer gives the placeholder."""
    ids = [int(t) for t in tokenizer([PLACEHOLDER])[0].tolist() if int(t) != 0]
    # [start-of-text, placeholder, end-of-text]
    if len(ids) != 3:
        raise UserError(f"the teacher's tokenizer splits the pseudo word '{PLACEHOLDER}' into {len(ids) - 2} tokens; "
                        "Random/Contrastive-Prompt need a single-token placeholder")
    return ids[1]


def encode_text_injected(model: nn.Module, tokens: torch.Tensor, vectors: torch.Tensor | None = None,
                         positions: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    """open_clip `encode_text(tokens)` with row b's token at `positions[b]` embedded as `vectors[b]`.

    Gradients flow into `vectors` (the teacher's weights are left as they are). With
    `vectors=None` this is plain `encode_text`.
    """
    tower = text_tower(model)
    cast_dtype = tower.transformer.get_cast_dtype() if hasattr(tower.transformer, "get_cast_dtype") else torch.float32
    x = tower.token_embedding(tokens).to(cast_dtype)
    if vectors is not None:
        if positions is None or len(positions) != len(tokens) or len(vectors) != len(tokens):
            raise ValueError(f"{len(tokens)} prompts need as many positions and vectors")
        mask = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
        mask[torch.arange(len(tokens)), positions] = True
        x = torch.where(mask[..., None], vectors.to(cast_dtype)[:, None, :], x)
    seq_len = x.shape[1]
    attn_mask = tower.attn_mask
    module = tower.module
    if getattr(module, "use_pad_mask", False):  # TextTransformer with padding masks
        add_mask = module._build_additive_mask(tokens, seq_len, x.dtype)
        attn_mask = add_mask if attn_mask is None else attn_mask[:seq_len, :seq_len].unsqueeze(0) + add_mask
    x = x + tower.positional_embedding[:seq_len].to(cast_dtype)
    x = tower.transformer(x, attn_mask=attn_mask)
    x = tower.ln_final(x)
    from open_clip.transformer import text_global_pool

    x = text_global_pool(x, tokens, tower.pool_type, eos_token_id=tower.eos_id)
    if tower.text_projection is not None:
        x = tower.text_projection(x) if isinstance(tower.text_projection, nn.Linear) else x @ tower.text_projection
    return nn.functional.normalize(x, dim=-1) if normalize else x


class PseudoTokenEncoder:
    """Encode prompts that contain the placeholder `*`, with one V* per prompt."""

    def __init__(self, teacher: Any) -> None:
        self.teacher = teacher
        self.model = teacher.model
        text_tower(self.model)  # refuse unsupported towers before anything runs
        self.placeholder_id = placeholder_token_id(teacher.tokenizer)

    @property
    def width(self) -> int:
        return int(token_table(self.model).shape[1])

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.teacher.tokenize(list(prompts))
        return tokens, placeholder_positions(tokens, self.placeholder_id)

    def fits(self, prompt: str) -> bool:
        """Whether the placeholder survives tokenization (is not cut off by the context length)."""
        tokens = self.teacher.tokenize([prompt])
        return int((tokens == self.placeholder_id).sum()) == 1

    def __call__(self, prompts: Sequence[str], vectors: torch.Tensor) -> torch.Tensor:
        """L2-normalized text embeddings (N, D); differentiable w.r.t. `vectors` (N, width)."""
        tokens, positions = self.tokenize(prompts)
        return encode_text_injected(self.model, tokens, vectors, positions, normalize=True)
