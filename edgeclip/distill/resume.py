"""Resumable training: the `last.pt` checkpoint every trainer writes after each epoch and reads on --resume.

A checkpoint carries a fingerprint of what produced it (student, data, loss, schedule); resuming
from one made by something else is refused rather than silently mixing two runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_path, safe_torch_load

CHECKPOINT_NAME = "last.pt"


def restore_training(path: Path, fingerprint: str, *, model: torch.nn.Module, optimizer: Any, scheduler: Any,
                     made_by: str) -> dict[str, Any]:
    """Load model, optimizer and scheduler state from `path`; return the whole checkpoint (epoch, history, ...).

    `made_by` names what must match ("student, data, loss or schedule") in the refusal message."""
    state = safe_torch_load(path, "resume checkpoint", "drop --resume or remove the run's checkpoints/ folder")
    if state.get("fingerprint") != fingerprint:
        raise UserError(f"checkpoint {path} comes from a different {made_by}; drop --resume or use a new --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state


def save_training(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically: a run killed mid-write keeps its previous `last.pt`."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
