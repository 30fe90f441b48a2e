"""Data-free distillation from class names alone (paper 002: prompt diversification).

A CLIP teacher and a list of class names are all it needs: images are synthesized by optimising
an image parameterisation until the teacher finds it close to a prompt embedding, the prompts are
diversified (plain / Mix-Prompt / Random-Prompt / Contrastive-Prompt), and a student learns to
match the teacher's similarity vector on the synthetic set. Modules, one job each:

- `styles`        the style dictionary (paper Table 8, `edgeclip/data/styles.yaml`)
- `text_encoder`  open_clip text forward with an injected pseudo-token embedding
- `prompts`       the four prompt diversification methods → one target embedding per image
- `contrastive`   InfoNCE learning of pseudo tokens (Contrastive-Prompt)
- `generators`    image parameterisations (pixel, Fourier) + the hook for a user's latent generator
- `synthesis`     optimise images towards the targets; write the synthetic set and contact sheets
- `synthetic_set` read a synthetic set back as an `ImageDataset` with its teacher outputs
- `fewshot`       optional few-shot fine-tuning on k real images per class
- `trainer`       `distill_datafree`: the method behind `edgeclip distill --method data-free`
- `real_reference` the same loss/schedule on k real images per class (what a synthetic set is compared with)

Nothing here imports torch at package import time.
"""
