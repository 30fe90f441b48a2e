"""Image–caption pairs from a CSV (`path,caption`), for DistillCLIP-style training and retrieval.

The header is optional: a first row naming the columns (path/image/file/filepath and
caption/text/title, any case) is read as a header and lets the columns come in any order or
sit among others. Without a header, column 1 is the path and the rest of the row is the
caption (so an unquoted comma in a caption does not break the row). Relative paths are
resolved against the CSV's folder, so a dataset folder can be moved as a whole.
"""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image

from edgeclip.data.images import image_error, load_image
from edgeclip.errors import UserError
from edgeclip.utils import stable_hash

PATH_COLUMNS = ("path", "image", "file", "filepath", "image_path", "filename")
CAPTION_COLUMNS = ("caption", "text", "title")
FORMAT_FIX = "each line must be `path,caption` (header optional; quote captions that contain commas)"


def _header_columns(row: list[str]) -> tuple[int, int] | None:
    """(path column, caption column) when `row` is a header naming both, else None."""
    names = [cell.strip().lower() for cell in row]
    path_col = next((i for i, n in enumerate(names) if n in PATH_COLUMNS), None)
    caption_col = next((i for i, n in enumerate(names) if n in CAPTION_COLUMNS), None)
    if path_col is None or caption_col is None:
        return None
    return path_col, caption_col


class PairDataset:
    """`len(ds)`, `ds.load(i) -> PIL RGB`, `ds.captions[i]`, `ds.paths[i]`, `ds.identity`."""

    kind = "pairs"

    def __init__(self, csv_path: str | Path, *, skip_corrupt: bool = False) -> None:
        csv_path = Path(csv_path).expanduser()
        if not csv_path.is_file():
            raise UserError(f"pair CSV {csv_path} does not exist; give a CSV file of `path,caption` lines")
        csv_path = csv_path.resolve()
        self.csv_path = csv_path
        self.paths: list[Path] = []
        self.captions: list[str] = []
        self.skipped: list[str] = []
        base = csv_path.parent

        try:
            with csv_path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel writes a BOM
                rows = [(number, row) for number, row in enumerate(csv.reader(handle), start=1)]
        except (UnicodeDecodeError, csv.Error) as err:
            raise UserError(f"pair CSV {csv_path} is not a readable UTF-8 CSV ({err}); save it as UTF-8 text") from err
        rows = [(n, r) for n, r in rows if any(cell.strip() for cell in r)]  # blank lines
        if not rows:
            raise UserError(f"pair CSV {csv_path} has no rows; {FORMAT_FIX}")
        columns = _header_columns(rows[0][1])
        if columns is not None:
            rows = rows[1:]

        for line, row in rows:
            if columns is not None:
                path_col, caption_col = columns
                if len(row) <= max(path_col, caption_col):
                    raise UserError(f"{csv_path} line {line}: expected {max(columns) + 1} columns, got {len(row)}; {FORMAT_FIX}")
                raw_path, caption = row[path_col].strip(), row[caption_col].strip()
            else:
                if len(row) < 2:
                    raise UserError(f"{csv_path} line {line}: missing the caption column; {FORMAT_FIX}")
                raw_path, caption = row[0].strip(), ",".join(row[1:]).strip()
            if not raw_path:
                raise UserError(f"{csv_path} line {line}: empty image path; {FORMAT_FIX}")
            if not caption:
                raise UserError(f"{csv_path} line {line}: empty caption for {raw_path}; {FORMAT_FIX}")
            path = Path(raw_path).expanduser()
            path = (path if path.is_absolute() else base / path).resolve()
            if not path.is_file():
                raise UserError(
                    f"{csv_path} line {line}: image {raw_path} not found (looked at {path}); fix the path "
                    "(relative paths are resolved against the CSV's folder) or remove the line"
                )
            if skip_corrupt and image_error(path) is not None:
                self.skipped.append(str(path))
                continue
            self.paths.append(path)
            self.captions.append(caption)
        if not self.paths:
            raise UserError(f"pair CSV {csv_path} has no usable rows ({len(self.skipped)} corrupt images skipped)")

        stat = csv_path.stat()
        image_stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in self.paths]
        self.identity = (
            f"pairs:{csv_path}:n={len(self.paths)}"
            f":files={stable_hash(stat.st_size, stat.st_mtime_ns, image_stats)}"
        )

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        return load_image(self.paths[index])

    def caption(self, index: int) -> str:
        return self.captions[index]

    def __repr__(self) -> str:
        return f"PairDataset({self.identity!r}, pairs={len(self)})"
