"""Zero-shot classification on the device with class names chosen at run time (numpy + runtime only).

Used by `edgeclip_runner.py --classes "cat,dog" --text-tower DIR IMAGE_TOWER_DIR [--data eval.npz | --images ...]`:
the text tower's artifact ships the BPE vocabulary and `tokenizer.json` (context length, special
ids, prompt templates); `clip_tokenizer.py` reproduces open_clip's token ids. Each class becomes
the L2-normalized mean of its normalized prompt embeddings (prompt ensemble, `prompt_ensemble.py`,
the definition edgeclip itself loads), an image's logits are
logit_scale · cosine, as in `edgeclip`'s zero-shot head. Alternatively `--class-embeddings FILE.npy`
(e.g. a fused artifact's class_embeddings.npy) skips the text tower. Python 3.8+.
"""

import json
import os
from typing import Callable, List, Optional, Sequence

import numpy as np

from clip_tokenizer import ClipTokenizer
from prompt_ensemble import ensemble_class_embeddings, l2_normalize as normalize


def parse_classes(text: str) -> List[str]:
    if text.startswith("@"):
        with open(text[1:]) as handle:
            names = [line.strip() for line in handle if line.strip()]
    else:
        names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ValueError("--classes is empty; give class names like 'cat,dog' or @file with one per line")
    return names


def text_class_embeddings(text_model, artifact_dir: str, class_names: Sequence[str],
                          templates: Optional[Sequence[str]] = None) -> np.ndarray:
    """(C, D) prompt-ensemble class embeddings computed with the exported text tower."""
    with open(os.path.join(artifact_dir, "tokenizer.json")) as handle:
        record = json.load(handle)
    tokenizer = ClipTokenizer(os.path.join(artifact_dir, record["vocab_file"]), int(record["context_length"]))
    templates = list(templates or record.get("templates") or ["{}"])
    return ensemble_class_embeddings(lambda prompts: text_model.run(np.asarray(tokenizer(prompts), dtype=np.int64)),
                                     class_names, templates)


def load_images(paths: Sequence[str], preprocessing: dict) -> np.ndarray:
    """Preprocess image files like edgeclip's Preprocess (needs Pillow on the device); for an image tower
    with fused preprocessing, uint8 frames of its size (other sizes stretched, bilinear, as edgeclip does)."""
    from PIL import Image

    frame = preprocessing.get("fused_frame")
    if frame:
        frames = []
        for path in paths:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (int(frame[1]), int(frame[0])):
                    image = image.resize((int(frame[1]), int(frame[0])), Image.BILINEAR)
                frames.append(np.asarray(image, dtype=np.uint8))
        return np.stack(frames)
    size = int(preprocessing.get("size", 224))
    mean = np.asarray(preprocessing.get("mean", (0.48145466, 0.4578275, 0.40821073)), dtype=np.float32)
    std = np.asarray(preprocessing.get("std", (0.26862954, 0.26130258, 0.27577711)), dtype=np.float32)
    mode = preprocessing.get("resize_mode", "center_crop")
    batch = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if mode == "stretch":
                image = image.resize((size, size), Image.BICUBIC)
            elif mode == "letterbox":
                scale = size / max(image.size)
                resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
                image = Image.new("RGB", (size, size), (0, 0, 0))
                image.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
            else:
                scale = size / min(image.size)
                image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.BICUBIC)
                left, top = (image.width - size) // 2, (image.height - size) // 2
                image = image.crop((left, top, left + size, top + size))
            pixels = np.asarray(image, dtype=np.float32) / 255.0
        batch.append(((pixels - mean) / std).transpose(2, 0, 1))
    return np.stack(batch).astype(np.float32)


def classify(image_model, images: np.ndarray, class_embeddings: np.ndarray, logit_scale: float, batch: int = 32) -> np.ndarray:
    """(N, C) logits = logit_scale · cos(image embedding, class embedding)."""
    out = [normalize(np.asarray(image_model.run(images[i:i + batch]), dtype=np.float32)) for i in range(0, len(images), batch)]
    return logit_scale * np.concatenate(out) @ class_embeddings.T


def run(args, open_model: Callable, read_manifest: Callable, model_file: Callable) -> dict:
    """One JSON-able result: classes, predictions for --images, accuracy on --data (labels index --classes)."""
    class_names = parse_classes(args.classes)
    image_dir = args.artifacts[0]
    image_manifest = read_manifest(image_dir)
    if image_manifest.get("kind") != "image_encoder":
        raise ValueError(f"{image_dir} is a {image_manifest.get('kind')} artifact; zero-shot needs an image tower (…-image)")
    image_model = open_model(model_file(image_dir, image_manifest), image_manifest, args)
    if args.class_embeddings:
        embeddings = normalize(np.load(args.class_embeddings).astype(np.float32))
        if len(embeddings) != len(class_names):
            raise ValueError(f"{args.class_embeddings} has {len(embeddings)} classes but --classes names {len(class_names)}")
        source = args.class_embeddings
    elif args.text_tower:
        text_manifest = read_manifest(args.text_tower)
        text_model = open_model(model_file(args.text_tower, text_manifest), text_manifest, args)
        templates = parse_classes(args.templates) if args.templates else None
        embeddings = text_class_embeddings(text_model, args.text_tower, class_names, templates)
        source = f"text tower {args.text_tower}"
    else:
        raise ValueError("zero-shot needs --text-tower DIR (tokenizer shipped inside) or --class-embeddings FILE.npy")
    scale = float(args.logit_scale or (image_manifest.get("spec", {}).get("extra", {}) or {}).get("logit_scale") or 100.0)
    result = {"classes": class_names, "class_embeddings_from": source, "image_tower": image_dir, "logit_scale": scale}
    if args.images:
        logits = classify(image_model, load_images(args.images, image_manifest.get("preprocessing", {})), embeddings, scale)
        result["predictions"] = [{"image": p, "class": class_names[int(i)]} for p, i in zip(args.images, logits.argmax(axis=1))]
    if args.data:
        data = np.load(args.data)
        if image_manifest.get("preprocessing", {}).get("fused_frame"):  # the tower takes raw frames
            if "frames" not in data.files:
                raise ValueError(f"{image_dir} takes uint8 frames (fused preprocessing) but {args.data} has no 'frames' "
                                 "array (N,H,W,3) uint8; add one, or use an image tower exported without it")
            images = data["frames"]
        else:
            images = data["images"].astype(np.float32)
        logits = classify(image_model, images, embeddings, scale)
        predicted = logits.argmax(axis=1)
        result["images"] = int(len(predicted))
        if "labels" in data.files:
            result["accuracy"] = float((predicted == data["labels"].astype(np.int64)).mean())
    return result
