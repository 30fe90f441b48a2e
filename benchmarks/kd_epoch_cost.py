"""What a KD epoch costs with cached teacher outputs, against a plain student epoch and against
running the teacher on every batch (no cache). One process, modes interleaved per round.

Usage (the committed results came from exactly this, see "command" in the JSON):
    python benchmarks/kd_epoch_cost.py --out benchmarks/results/kd_epoch_cost --rounds 3

Modes, each one epoch over the digits train split (719 images, batch 128, 32×32, the same
batch augmentation), a fresh student from the same seed each time:
- plain:      CE only — what training the student costs anyway;
- kd-cached:  0.5·KL + 0.5·CE with the teacher's logits looked up from the cached tensor;
- kd-online:  the same loss, but the (frozen) teacher runs on each batch (its inputs preloaded,
              so only its forward pass is counted — the cheapest possible uncached variant).
Also measured: one full teacher pass over the train split (what the cache costs, once), and the
per-image forward time of a ViT-B/32 CLIP image tower (random weights; the cost does not depend on
them) to show what the cache saves with a real-size teacher.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch


class OnlineTeacher:
    """Looks like the cached logits tensor to the trainer but runs the teacher on every lookup."""

    def __init__(self, teacher: Any, inputs: torch.Tensor) -> None:
        self.teacher, self.inputs = teacher, inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.teacher.forward_images(self.inputs[index]).float()


def one_epoch(student: str, class_names: list[str], train_set: Any, augment: Any, criterion: Any, teacher_logits: Any, seed: int) -> float:
    from edgeclip.config import DistillConfig
    from edgeclip.distill.trainer import train_classifier
    from edgeclip.students.registry import create_student
    from edgeclip.utils import seed_everything

    seed_everything(seed)
    model, _ = create_student(student, class_names=class_names, image_size=32)
    config = DistillConfig(epochs=1, batch_size=128, lr=0.1, milestones=[])
    history = train_classifier(model, train_set, criterion=criterion, config=config, seed=seed, teacher_logits=teacher_logits,
                               progress=False, batch_transform=augment)
    return history[0].seconds


def vit_b32_per_image_seconds(batch: int = 8, repeats: int = 3) -> float:
    import open_clip

    torch.backends.mha.set_fastpath_enabled(False)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        model.encode_image(x)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.encode_image(x)
            times.append(time.perf_counter() - started)
    return statistics.median(times) / batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/kd_epoch_cost")
    parser.add_argument("--student", default="resnet18_w8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared 2-core machine)")
    parser.add_argument("--no-vit", action="store_true", help="skip the ViT-B/32 per-image measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    from edgeclip.config import load_recipe
    from edgeclip.data import open_image_dataset
    from edgeclip.distill.augment import BatchAugment, TensorImages, training_view
    from edgeclip.distill.losses import cross_entropy_criterion, hinton_criterion
    from edgeclip.distill.results import machine_info
    from edgeclip.distill.teachers import prepare_teacher
    from edgeclip.students.registry import clip_preprocess

    recipe = load_recipe("digits-kd", ["distill.head_epochs=10"])
    train = open_image_dataset("digits", "train")
    preprocess = clip_preprocess(32)
    teacher = prepare_teacher("proxy-digits", recipe, train, student_preprocess=preprocess, progress=False)
    teacher.logits(train)  # make sure the feature cache exists
    t0 = time.perf_counter()
    cached = teacher.logits(train).float()
    cache_read_seconds = time.perf_counter() - t0
    teacher_inputs = TensorImages.from_dataset(train, teacher.clip.preprocess).images
    t0 = time.perf_counter()
    with torch.no_grad():
        full_pass = torch.cat([teacher.forward_images(teacher_inputs[i:i + 128]) for i in range(0, len(train), 128)])
    teacher_pass_seconds = time.perf_counter() - t0
    assert torch.allclose(full_pass, cached, atol=1e-4), "cached and online teacher outputs differ"

    train_set, augment = training_view(train, preprocess, augment=True)
    assert isinstance(augment, BatchAugment)
    kd, ce = hinton_criterion(0.5, 0.5, 1.0), cross_entropy_criterion()
    modes = {"plain": (ce, None), "kd-cached": (kd, cached), "kd-online": (kd, OnlineTeacher(teacher, teacher_inputs))}
    one_epoch(args.student, train.class_names, train_set, augment, ce, None, 0)  # warm-up (allocator, oneDNN kernels)
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    for round_index in range(args.rounds):
        for mode, (criterion, logits) in modes.items():
            seconds[mode].append(one_epoch(args.student, train.class_names, train_set, augment, criterion, logits, round_index))
            print(f"round {round_index + 1} {mode}: {seconds[mode][-1]:.2f}s", flush=True)
    median = {m: statistics.median(v) for m, v in seconds.items()}
    per_round_ratio = [c / p for c, p in zip(seconds["kd-cached"], seconds["plain"])]
    vit = None if args.no_vit else vit_b32_per_image_seconds()
    result = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": "python " + " ".join(sys.argv),
        "machine": {**machine_info(), "torch_threads": args.threads},
        "student": args.student, "teacher": teacher.describe(), "train_images": len(train), "batch_size": 128, "rounds": args.rounds,
        "epoch_seconds": seconds, "median_epoch_seconds": median,
        "kd_cached_over_plain": median["kd-cached"] / median["plain"], "kd_cached_over_plain_per_round": per_round_ratio,
        "kd_online_over_kd_cached": median["kd-online"] / median["kd-cached"],
        "teacher_full_pass_seconds": teacher_pass_seconds, "cache_read_seconds": cache_read_seconds,
        "vit_b32_image_tower_seconds_per_image": vit,
        "vit_b32_teacher_pass_seconds_estimate": None if vit is None else vit * len(train),
        "seconds": time.perf_counter() - started,
    }
    out = Path(args.out)
    from edgeclip.io_utils import write_result_files

    write_result_files(out, result, render(result))
    print(render(result))
    return 0


def render(r: dict[str, Any]) -> str:
    m = r["median_epoch_seconds"]
    lines = [
        "# KD epoch cost with cached teacher outputs (digits, proxy CLIP teacher)",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores_logical']} cores (shared with other jobs), torch {r['machine']['torch']}, "
        f"{r['machine']['torch_threads']} torch thread(s). Student {r['student']}, {r['train_images']} images, batch {r['batch_size']}, "
        f"32×32, batch augmentation on; median of {r['rounds']} interleaved rounds.",
        "",
        "| mode | median epoch (s) | per round (s) | vs plain |",
        "|---|---:|---|---:|",
    ]
    for mode in ("plain", "kd-cached", "kd-online"):
        rounds = ", ".join(f"{s:.2f}" for s in r["epoch_seconds"][mode])
        lines.append(f"| {mode} | {m[mode]:.2f} | {rounds} | {m[mode] / m['plain']:.3f}x |")
    verdict = "meets" if r["kd_cached_over_plain"] <= 1.3 else "MISSES"
    lines += [
        "",
        f"KD epoch with cached teacher outputs / plain student epoch: **{r['kd_cached_over_plain']:.3f}x** "
        f"(per round: {', '.join(f'{x:.3f}' for x in r['kd_cached_over_plain_per_round'])}) — {verdict} the ≤ 1.3x target.",
        f"Running the proxy teacher on every batch instead: {r['kd_online_over_kd_cached']:.3f}x the cached KD epoch "
        f"({m['kd-online'] - m['kd-cached']:+.2f} s per epoch). One full teacher pass (what the cache costs, once): "
        f"{r['teacher_full_pass_seconds']:.2f} s; reading the cached outputs: {r['cache_read_seconds'] * 1000:.0f} ms.",
    ]
    if r.get("vit_b32_image_tower_seconds_per_image"):
        per = r["vit_b32_image_tower_seconds_per_image"]
        lines.append(f"With a real-size teacher (ViT-B/32 image tower at 224², measured {per * 1000:.0f} ms/image here) one pass over "
                     f"these {r['train_images']} images costs ≈ {r['vit_b32_teacher_pass_seconds_estimate']:.0f} s: without the cache every "
                     f"epoch pays it (100 epochs ≈ {100 * r['vit_b32_teacher_pass_seconds_estimate'] / 3600:.1f} h); with it, once.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
