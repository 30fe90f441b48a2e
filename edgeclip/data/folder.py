"""Class-per-folder image datasets (torchvision ImageFolder layout), optionally with train/ and test/.

    root/cat/001.jpg, root/dog/a.png, ...                       → the whole folder (open_image_dataset
                                                                  splits it 80/20, fixed, for train/test)
    root/train/cat/..., root/test/cat/...                        → `split` picks train/ or test/

Class names are the sorted class-folder names; label i = class_names[i]. Images are found
recursively inside each class folder by extension (IMAGE_EXTENSIONS, any case); hidden files
and folders are ignored.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from edgeclip.data.base import ImageDataset, check_split
from edgeclip.data.images import IMAGE_EXTENSIONS, image_error, is_image_file, load_image
from edgeclip.errors import UserError
from edgeclip.utils import stable_hash

# A folder has no proxy-teacher pool: bring a teacher trained elsewhere.
FOLDER_SPLITS = ("train", "test", "all")


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_images(class_dir: Path) -> list[Path]:
    return sorted(
        p for p in class_dir.rglob("*")
        if p.is_file() and is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(class_dir).parts)
    )


def resolve_split_dir(root: Path, split: str) -> tuple[Path, str]:
    """(folder holding the class folders, effective split). A folder without train/ and test/
    is used whole whatever the split, recorded as split 'all'."""
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if not (has_train or has_test):
        return root, "all"
    if has_train != has_test:
        present, absent = ("train", "test") if has_train else ("test", "train")
        raise UserError(
            f"folder {root} has a {present}/ subfolder but no {absent}/; add {absent}/ with the same class "
            f"folders, or point the data spec at {root / present} (a folder of class folders)"
        )
    if split == "all":
        raise UserError(
            f"folder {root} is split into train/ and test/; ask for split 'train' or 'test', "
            "not 'all' (or point the data spec at one of those subfolders)"
        )
    return root / split, split


class FolderDataset(ImageDataset):
    """Images in class folders. With `skip_corrupt=True` every image is fully decoded now and
    unreadable ones are skipped and listed in `skipped`; otherwise a bad file raises a
    `UserError` naming it when it is loaded."""

    kind = "folder"

    def __init__(self, root: str | Path, split: str = "train", *, skip_corrupt: bool = False) -> None:
        check_split(split, "folder", FOLDER_SPLITS)
        root = Path(root).expanduser()
        if not root.exists():
            raise UserError(f"data folder {root} does not exist; fix the path (or use 'digits' or 'synthetic:N')")
        if not root.is_dir():
            raise UserError(f"data spec {root} is a file, not a folder; give a folder of class folders")
        root = root.resolve()
        folder, effective_split = resolve_split_dir(root, split)

        class_dirs = _visible_dirs(folder)
        if not class_dirs:
            loose = [p.name for p in folder.iterdir() if p.is_file() and is_image_file(p)]
            hint = f" (found {len(loose)} loose images: put each class's images in its own subfolder)" if loose else ""
            raise UserError(f"folder {folder} has no class folders{hint}; lay it out as {folder}/<class name>/<image>")

        self.root = root
        self.folder = folder
        self.split = effective_split
        self.class_names = [d.name for d in class_dirs]
        self.paths: list[Path] = []
        self.labels = []
        self.skipped = []
        for label, class_dir in enumerate(class_dirs):
            images = _class_images(class_dir)
            if not images:
                raise UserError(
                    f"class folder {class_dir} has no images ({'/'.join(IMAGE_EXTENSIONS)}); "
                    "add images or remove the folder"
                )
            kept = 0
            for path in images:
                if skip_corrupt and image_error(path) is not None:
                    self.skipped.append(str(path))
                    continue
                self.paths.append(path)
                self.labels.append(label)
                kept += 1
            if kept == 0:
                raise UserError(
                    f"every image in class folder {class_dir} is unreadable ({len(images)} skipped as corrupt); "
                    "replace them or remove the folder"
                )
        self.identity = self._make_identity()

    def _make_identity(self) -> str:
        # Sizes and mtimes (not contents: hashing every byte would be slow on big folders) so that
        # editing, replacing, adding or removing an image changes the cache key.
        entries = []
        for path in self.paths:
            stat = path.stat()
            entries.append((str(path.relative_to(self.folder)), stat.st_size, stat.st_mtime_ns))
        return (
            f"folder:{self.folder}:split={self.split}:n={len(self.paths)}"
            f":classes={len(self.class_names)}:files={stable_hash(entries)}"
        )

    def sample_ids(self) -> list[str]:
        return [str(path.resolve()) for path in self.paths]  # a symlinked test/ is the same images

    def load(self, index: int) -> Image.Image:
        return load_image(self.paths[self._check_index(index)])
