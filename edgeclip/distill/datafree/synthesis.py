"""Surrogate image synthesis (paper 002 §3.1): optimise images until the teacher sees the prompt.

For every target text embedding T (one per image, from `prompts`), a generator's latents are
optimised with Adam to minimise the squared spherical distance D(E_img(aug(G(z))), T), averaged
over `views` randomly augmented copies (jitter/scale/rotation/flip + pixel noise) — without the
augmentation the optimum is adversarial pixel noise that only this teacher reads as the class.

Written per prompt method under `<run>/synthetic/<method>/`:
    images/<NNN>-<class>/00000.png ...   the images (a class folder each) + records.json (per image)
    contact_sheets/<NNN>-<class>.png, contact_sheet.png (all classes)   to look at
    prompts.pt                     the prompt plan (targets, V*), reused on --resume
    synthetic.json                 written last: config, timing, one row per image (prompt,
                                   style(s), λ or V* seed, teacher similarities of the saved image)
Each class folder is written atomically; with `resume=True` finished classes (same fingerprint)
are kept and only the rest are synthesized.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from edgeclip.distill.augment import BatchAugment
from edgeclip.distill.datafree.common import frozen_weights, slug, squared_spherical_distance
from edgeclip.distill.datafree.generators import ImageGenerator, create_generator
from edgeclip.distill.datafree.prompts import PromptPlan
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_dir, atomic_path, read_json, safe_torch_load, write_json

SYNTHETIC_JSON = "synthetic.json"
IMAGES_DIR = "images"  # a plain folder of class folders: any folder reader (eval, export, KD) can open it
RECORDS_JSON = "records.json"
PROMPTS_FILE = "prompts.pt"
SCHEMA = "edgeclip.datafree.synthetic/1"


@dataclass(frozen=True)
class SynthesisSettings:
    """How each image is optimised (from the recipe's `datafree` section)."""

    generator: str
    generator_params: dict[str, Any]
    image_size: int
    steps: int
    lr: float
    batch_size: int
    views: int
    translate: float
    scale: tuple[float, float]
    degrees: float
    flip: bool
    noise: float
    tv_weight: float

    @classmethod
    def from_config(cls, cfg: Any, teacher_size: int) -> "SynthesisSettings":
        settings = cls(cfg.generator, dict(cfg.generator_params), int(cfg.image_size) or int(teacher_size), int(cfg.steps),
                       float(cfg.lr), int(cfg.batch_size), int(cfg.views), float(cfg.augment_translate),
                       tuple(float(s) for s in cfg.augment_scale), float(cfg.augment_degrees), bool(cfg.augment_flip),  # type: ignore[arg-type]
                       float(cfg.augment_noise), float(cfg.tv_weight))
        settings.check()
        return settings

    def check(self) -> None:
        for key in ("steps", "batch_size", "views"):
            if getattr(self, key) < 1:
                raise UserError(f"datafree.{key} must be >= 1, got {getattr(self, key)}; synthesis needs at least one "
                                f"{'optimisation step' if key == 'steps' else key.replace('_', ' ')}")
        if self.lr <= 0:
            raise UserError(f"datafree.lr must be > 0, got {self.lr}")
        if self.image_size < 8:
            raise UserError(f"datafree.image_size must be >= 8 (0 = the teacher's input size), got {self.image_size}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise UserError(f"datafree.augment_scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")
        if self.translate < 0 or self.degrees < 0 or self.noise < 0 or self.tv_weight < 0:
            raise UserError("datafree.augment_translate, augment_degrees, augment_noise and tv_weight must be >= 0")

    def describe(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (a smoothness prior)."""
    return (images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (images[..., :, 1:] - images[..., :, :-1]).abs().mean()


class TeacherImageInput:
    """[0, 1] RGB images → the teacher's normalised input at its size (differentiable)."""

    def __init__(self, teacher: Any) -> None:
        pre = teacher.preprocess
        self.size = int(pre.size)
        self.mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.size:
            images = torch.nn.functional.interpolate(images, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return (images - self.mean) / self.std


def optimise_batch(teacher: Any, generator: ImageGenerator, targets: torch.Tensor, settings: SynthesisSettings,
                   rng: torch.Generator, to_input: TeacherImageInput, bar: Any = None) -> torch.Tensor:
    """Optimise len(targets) images towards `targets` (L2-normalised (n, D)); returns uint8 (n, 3, S, S)."""
    augment = BatchAugment(degrees=settings.degrees, scale=settings.scale, translate=settings.translate, hflip=settings.flip)
    generator.sample(len(targets), rng)
    optimizer = torch.optim.Adam([generator.latents], lr=settings.lr)
    repeated = targets.repeat(settings.views, 1)
    for _ in range(settings.steps):
        images = generator.render()
        views = augment(images.repeat(settings.views, 1, 1, 1), rng)
        if settings.noise > 0:
            views = (views + settings.noise * torch.randn(views.shape, generator=rng)).clamp(0, 1)
        features = teacher.model.encode_image(to_input(views), normalize=True)
        loss = squared_spherical_distance(features, repeated).mean()
        if settings.tv_weight > 0:
            loss = loss + settings.tv_weight * total_variation(images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if bar is not None:
            bar.set_postfix(distance=f"{float(loss.detach()):.3f}", refresh=False)
    with torch.no_grad():
        return (generator.render() * 255).round().to(torch.uint8)


@torch.no_grad()
def teacher_similarities(teacher: Any, images_uint8: torch.Tensor, class_embeddings: torch.Tensor,
                         targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cosine to every class embedding (n, C), cosine to each image's own target (n,)) of the
    saved 8-bit images — the numbers the student is distilled from."""
    features = teacher.model.encode_image(TeacherImageInput(teacher)(images_uint8.float() / 255), normalize=True)
    return features @ class_embeddings.T, (features * targets).sum(dim=1)


class OnlineTeacher:
    """Teacher logits (logit_scale × cosine to each class) for a batch of *student-normalised*
    images, for KD with `train_classifier(teacher_fn=...)`: the teacher answers for the augmented
    view the student sees. Works across different student/teacher sizes and normalisations."""

    def __init__(self, teacher: Any, class_embeddings: torch.Tensor, student_preprocess: Any) -> None:
        self.teacher = teacher
        self.class_embeddings = class_embeddings
        self.to_input = TeacherImageInput(teacher)
        self.mean = torch.tensor(student_preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(student_preprocess.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.scale = float(teacher.logit_scale)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        pixels = (images * self.std + self.mean).clamp(0, 1)
        features = self.teacher.model.encode_image(self.to_input(pixels), normalize=True)
        return self.scale * features @ self.class_embeddings.T


def class_dir_name(label: int, name: str) -> str:
    return f"{label:03d}-{slug(name)}"


def save_plan(path: Path, plan: PromptPlan, fingerprint: str) -> None:
    with atomic_path(path) as tmp:
        torch.save({"fingerprint": fingerprint, "method": plan.method, "rows": plan.rows, "targets": plan.targets,
                    "pseudo_tokens": plan.pseudo_tokens, "info": plan.info}, tmp)


def load_plan(path: Path, fingerprint: str) -> PromptPlan | None:
    """The saved plan if it was made by the same recipe, else None."""
    if not path.is_file():
        return None
    data = safe_torch_load(path, "prompt plan", "delete it or drop --resume")
    if data.get("fingerprint") != fingerprint:
        return None
    return PromptPlan(data["method"], data["rows"], data["targets"], data.get("pseudo_tokens"), data.get("info", {}))


def synthesize_set(
    teacher: Any,
    plan: PromptPlan,
    class_names: Sequence[str],
    class_embeddings: torch.Tensor,
    settings: SynthesisSettings,
    out_dir: Path,
    *,
    fingerprint: str,
    seed: int,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Synthesize every class of `plan` into `out_dir` (see the module docstring); returns synthetic.json's content."""
    out_dir = Path(out_dir)
    create_generator(settings.generator, settings.image_size, settings.generator_params)  # bad options fail first
    (out_dir / SYNTHETIC_JSON).unlink(missing_ok=True)
    to_input = TeacherImageInput(teacher)
    labels = sorted({row["label"] for row in plan.rows})
    done: dict[int, dict[str, Any]] = {}
    for label in labels:
        records = out_dir / IMAGES_DIR / class_dir_name(label, class_names[label]) / RECORDS_JSON
        if resume and records.is_file():
            data = read_json(records)
            if data.get("fingerprint") != fingerprint:
                raise UserError(f"{records.parent} was synthesized by a different recipe or teacher; drop --resume or use a new --out")
            done[label] = data
    todo = [label for label in labels if label not in done]
    total_batches = sum(-(-len(plan.for_class(label)[0]) // settings.batch_size) for label in todo)
    bar = tqdm(total=total_batches, desc=f"synthesize {plan.method}", unit="batch", disable=not progress, dynamic_ncols=True)
    with frozen_weights(teacher.model):
        for label in todo:
            done[label] = _synthesize_class(teacher, plan, label, class_names, class_embeddings, settings, out_dir,
                                            fingerprint, seed, to_input, bar)
    bar.close()
    result = _write_summary(plan, class_names, settings, out_dir, fingerprint, done, teacher)
    return result


def _synthesize_class(teacher: Any, plan: PromptPlan, label: int, class_names: Sequence[str], class_embeddings: torch.Tensor,
                      settings: SynthesisSettings, out_dir: Path, fingerprint: str, seed: int, to_input: TeacherImageInput,
                      bar: Any) -> dict[str, Any]:
    index, targets = plan.for_class(label)
    started, cpu_started = time.perf_counter(), time.process_time()
    images = []
    for b, start in enumerate(range(0, len(index), settings.batch_size)):
        # Seeded per (seed, class, batch): a resumed run draws exactly what a fresh one would.
        rng = torch.Generator().manual_seed(seed * 1_000_003 + label * 10_007 + b)
        generator = create_generator(settings.generator, settings.image_size, settings.generator_params)
        images.append(optimise_batch(teacher, generator, targets[start:start + settings.batch_size], settings, rng, to_input, bar))
        bar.update(1)
    pixels = torch.cat(images)
    # Wall time says how long a user waits; CPU time what it costs when other jobs share the cores.
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    similarity, target_similarity = teacher_similarities(teacher, pixels, class_embeddings, targets)
    folder = class_dir_name(label, class_names[label])
    # The sheet first: a class folder (with records.json) is the "done" marker a resume trusts.
    write_contact_sheet(pixels, out_dir / "contact_sheets" / f"{folder}.png")
    rows = []
    with atomic_dir(out_dir / IMAGES_DIR / folder) as tmp:
        for j, (i, image) in enumerate(zip(index, pixels)):
            name = f"{j:05d}.png"
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp / name)
            row = {**plan.rows[i], "file": f"{IMAGES_DIR}/{folder}/{name}", "index": i,
                   "teacher_similarity": [round(float(v), 6) for v in similarity[j]],
                   "target_similarity": round(float(target_similarity[j]), 6),
                   "teacher_top1": class_names[int(similarity[j].argmax())]}
            rows.append(row)
        write_json(tmp / RECORDS_JSON, {"fingerprint": fingerprint, "label": label, "class": class_names[label],
                                        "seconds": seconds, "cpu_seconds": cpu_seconds, "images": rows})
    return read_json(out_dir / IMAGES_DIR / folder / RECORDS_JSON)


def _write_summary(plan: PromptPlan, class_names: Sequence[str], settings: SynthesisSettings, out_dir: Path,
                   fingerprint: str, done: dict[int, dict[str, Any]], teacher: Any) -> dict[str, Any]:
    rows = [row for label in sorted(done) for row in done[label]["images"]]
    seconds = sum(done[label]["seconds"] for label in done)
    cpu_seconds = sum(done[label].get("cpu_seconds", 0.0) for label in done)
    teacher_agrees = sum(1 for row in rows if row["teacher_top1"] == row["class"]) / max(len(rows), 1)
    overview = [Image.open(out_dir / row["file"]) for label in sorted(done) for row in done[label]["images"][:8]]
    _write_overview(overview, [len(done[label]["images"][:8]) for label in sorted(done)],
                    [class_names[label] for label in sorted(done)], out_dir / "contact_sheet.png")
    result = {
        "schema": SCHEMA,
        "method": plan.method,
        "fingerprint": fingerprint,
        "teacher": teacher.name,
        "logit_scale": teacher.logit_scale,
        "class_names": list(class_names),
        "settings": settings.describe(),
        "prompts": plan.info,
        "images_total": len(rows),
        "synthesis_seconds": seconds,
        "seconds_per_image": seconds / max(len(rows), 1),
        "cpu_seconds_per_image": cpu_seconds / max(len(rows), 1),
        "teacher_agreement_on_synthetic": teacher_agrees,
        "mean_target_similarity": float(np.mean([row["target_similarity"] for row in rows])) if rows else None,
        "images": rows,
    }
    write_json(out_dir / SYNTHETIC_JSON, result)
    return result


def _tile(image: Image.Image, size: int) -> Image.Image:
    # Small synthetic images are upscaled without smoothing so their pixels stay visible.
    return image.resize((size, size), Image.Resampling.NEAREST if image.width < size else Image.Resampling.BILINEAR)


def write_contact_sheet(pixels: torch.Tensor, path: Path, columns: int = 8, limit: int = 64, tile: int = 64) -> None:
    """Up to `limit` images of one class in a grid (uint8 (n, 3, S, S))."""
    images = [Image.fromarray(p.permute(1, 2, 0).numpy()) for p in pixels[:limit]]
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * tile, max(rows, 1) * tile), (128, 128, 128))
    for k, image in enumerate(images):
        sheet.paste(_tile(image, tile), ((k % columns) * tile, (k // columns) * tile))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def _write_overview(images: list[Image.Image], counts: list[int], names: list[str], path: Path, tile: int = 48) -> None:
    """One row per class (its first images), class name on the left."""
    from PIL import ImageDraw

    margin = 72
    columns = max(counts) if counts else 1
    sheet = Image.new("RGB", (margin + columns * tile, max(len(counts), 1) * tile), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    k = 0
    for r, (count, name) in enumerate(zip(counts, names)):
        draw.text((4, r * tile + tile // 2 - 6), name[:11], fill=(0, 0, 0))
        for c in range(count):
            sheet.paste(_tile(images[k], tile), (margin + c * tile, r * tile))
            k += 1
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def clear_method_dir(out_dir: Path) -> None:
    """A fresh (non-resumed) synthesis starts from an empty folder."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
