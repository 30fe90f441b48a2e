"""DistillCLIP (paper 001): distill a CLIP teacher into a small dual encoder that keeps zero-shot.

- `losses`: the `inter`, `intra_image`, `intra_text`, `contrastive` and `feature` terms;
- `embeddings`: teacher image/text embeddings per pair, cached on disk;
- `ddp`: torchrun set-up and the all-gather with gradients for global-batch similarity maps;
- `student`: the trainable wrapper (student CLIP + feature projections);
- `trainer`: `distill_clip(recipe, ...)`, the `distillclip` method.
"""
