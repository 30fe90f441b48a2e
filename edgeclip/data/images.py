"""Reading image files: always RGB, always fully decoded, bad files named in a `UserError`."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageFile

from edgeclip.errors import UserError

# Lower-case suffixes a folder dataset picks up (others, e.g. .txt or .DS_Store, are ignored).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

CORRUPT_FIX = "remove or replace it, or pass --set data.skip_corrupt=true to skip and count such files"


def is_image_file(path: str | Path) -> bool:
    """True for a non-hidden file whose suffix is one of IMAGE_EXTENSIONS (case-insensitive)."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert to RGB; transparent pixels are composited onto white instead of exposing whatever
    colour the encoder left under alpha=0 (often black, which would read as content)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def image_error(path: str | Path) -> str | None:
    """Why `path` cannot be decoded as an image, or None when it can (full decode, not a header peek)."""
    try:
        load_image(path)
    except UserError as err:
        return str(err.__cause__ or err)
    return None


def load_image(path: str | Path) -> Image.Image:
    """Open `path` as a fully decoded RGB PIL image.

    `img.load()` forces the whole decode here, so a truncated JPEG fails now, with the file's
    name, rather than as an anonymous error deep inside a DataLoader worker.
    """
    path = Path(path)
    # Another library may have flipped this global on; with it, truncated files decode silently
    # as grey padding, which is exactly the corruption we must report.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as image:
            image.load()
            rgb = _to_rgb(image)
            # Closing the file releases an image's pixels in recent Pillow, so hand back a copy.
            return rgb.copy() if rgb is image else rgb
    except FileNotFoundError as err:
        raise UserError(f"image file {path} does not exist; fix the path or {CORRUPT_FIX}") from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        # OSError covers UnidentifiedImageError and "image file is truncated"; some decoders raise
        # ValueError/SyntaxError on malformed headers.
        reason = str(err) or type(err).__name__
        raise UserError(f"{path} is not a readable image ({reason}); {CORRUPT_FIX}") from err
