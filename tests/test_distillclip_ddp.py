"""DDP: 2 gloo processes on half batches give the loss and gradients of 1 process on the whole batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from edgeclip.distill.losses import WeightedLoss, WeightedTerm

TERMS = [WeightedTerm("inter", 1.0), WeightedTerm("intra_image", 1.0), WeightedTerm("intra_text", 1.0),
         WeightedTerm("feature", 0.5), WeightedTerm("contrastive", 0.1)]
BATCH = 8


def _inputs():
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(BATCH, 3, 32, 32, generator=generator)
    tokens = torch.randint(1, 400, (BATCH, 16), generator=generator)
    tokens[:, 0] = 49406
    tokens[torch.arange(BATCH), torch.randint(3, 16, (BATCH,), generator=generator)] = 49407
    teacher_image = torch.nn.functional.normalize(torch.randn(BATCH, 48, generator=generator), dim=-1)
    teacher_text = torch.nn.functional.normalize(torch.randn(BATCH, 48, generator=generator), dim=-1)
    return images, tokens, teacher_image, teacher_text


def _student():
    from edgeclip.distill.distillclip.student import DistillStudent
    from edgeclip.students.registry import create_student

    torch.manual_seed(0)
    clip, _ = create_student("test_distillclip")
    return DistillStudent(clip, teacher_dim=48, feature_projection=True)


def _loss_and_grads(model, student, images, tokens, teacher_image, teacher_text):
    from edgeclip.distill.distillclip import ddp

    out = model(images, tokens)
    batch = {k: ddp.all_gather_with_grad(v) for k, v in out.items()}
    batch["teacher_image"] = ddp.all_gather_no_grad(teacher_image)
    batch["teacher_text"] = ddp.all_gather_no_grad(teacher_text)
    batch["student_logit_scale"] = student.logit_scale()
    loss, _ = WeightedLoss(list(TERMS))(batch)
    loss.backward()
    return float(loss.detach()), {n: p.grad.detach().clone() for n, p in student.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        images, tokens, teacher_image, teacher_text = _inputs()
        rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        student = _student()
        model = torch.nn.parallel.DistributedDataParallel(student)
        loss, grads = _loss_and_grads(model, student, images[rows], tokens[rows], teacher_image[rows], teacher_text[rows])
        torch.save({"loss": loss, "grads": grads}, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process_on_the_concatenated_batch(tmp_path) -> None:
    student = _student()
    single_loss, single_grads = _loss_and_grads(student, student, *_inputs())
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"out.{rank}", weights_only=True)
        assert got["loss"] == pytest.approx(single_loss, abs=1e-5)
        assert set(got["grads"]) == set(single_grads)
        for name, grad in single_grads.items():
            torch.testing.assert_close(got["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)
    assert any(g.abs().sum() > 0 for n, g in single_grads.items() if "image_projection" in n)


def test_world_size_larger_than_shards_is_one_line_exit_2(tmp_path) -> None:
    from edgeclip.data.shards import write_pair_shards
    from edgeclip.data.pair_sources import DigitsCaptionPairs

    write_pair_shards(_Few(DigitsCaptionPairs()), tmp_path / "shards", shard_size=10)
    env = {**os.environ, "WORLD_SIZE": "4", "RANK": "0", "LOCAL_RANK": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "edgeclip", "distill", "--recipe", "distillclip-digits", "--quiet",
                           "--set", f"data.pairs={tmp_path / 'shards'}", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "world size 4 is larger than the number of shards (2)" in proc.stderr
    assert not (tmp_path / "run").exists()


class _Few:
    """The first 20 digit pairs (2 shards of 10)."""

    def __init__(self, pairs) -> None:
        self.pairs, self.captions = pairs, pairs.captions[:20]

    def __len__(self) -> int:
        return 20

    def load(self, i):
        return self.pairs.load(i)

    def sample_ids(self):
        return self.pairs.sample_ids()[:20]
