"""Distribution shifts for the dual-encoder suite: the shared definitions in `edgeclip.data.shifts`
(one module for every report that measures robustness; data-free KD wraps them as datasets)."""

from __future__ import annotations

from edgeclip.data.shifts import SHIFT_DESCRIPTIONS, Shift, synthetic_shifts

__all__ = ["SHIFT_DESCRIPTIONS", "Shift", "synthetic_shifts"]
