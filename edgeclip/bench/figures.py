"""Report figures: headless matplotlib and a figure's PNG bytes (one place for both)."""

from __future__ import annotations

import contextlib
import io
from typing import Any, Iterator


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend (no display on servers or CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def png_figure(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any, io.BytesIO]]:
    """`plt.subplots(*args, **kwargs)` → (fig, axes, buffer); on leaving, the laid-out figure is
    saved into `buffer` as PNG and closed (also when drawing fails)."""
    plt = pyplot()
    fig, axes = plt.subplots(*args, **kwargs)
    buffer = io.BytesIO()
    try:
        yield fig, axes, buffer
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
