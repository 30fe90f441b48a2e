"""Caption text for the offline tasks: the prompt templates of digits and CIFAR-10 and their caption banks.

A caption bank is every (template, class name) caption with its class index. The proxy teachers are
trained on these captions (teacher/proxy.py, teacher/proxy_cifar10.py) and the template pairs of
dual-encoder distillation draw from the same bank (data/pair_sources.py), so a student learns the
captions its teacher was trained on. Text only: no model, no torch.
"""

from __future__ import annotations

from typing import Callable

# OpenAI's 18 CIFAR-10/100 templates (CLIP repository, notebooks/Prompt_Engineering_for_ImageNet).
CIFAR_TEMPLATES = [
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.", "a photo of the {}.",
    "a blurry photo of the {}.", "a black and white photo of the {}.", "a low contrast photo of the {}.",
    "a high contrast photo of the {}.", "a bad photo of the {}.", "a good photo of the {}.",
    "a photo of the small {}.", "a photo of the big {}.",
]

# Used both to caption digits when training the proxy teacher and for its zero-shot head.
DIGITS_TEMPLATES = [
    "a photo of the digit {}.",
    "a handwritten {}.",
    "the number {}, written by hand.",
    "a low resolution image of the digit {}.",
    "a scan of a handwritten {}.",
    "an 8x8 picture of the number {}.",
]

DIGIT_NUMERALS = [str(i) for i in range(10)]


def digits_caption_bank(class_names: list[str]) -> tuple[list[str], list[int]]:
    """Every (template, name-or-numeral) caption with its class index."""
    captions, labels = [], []
    for label, word in enumerate(class_names):
        for template in DIGITS_TEMPLATES:
            for name in (word, DIGIT_NUMERALS[label]):
                captions.append(template.format(name))
                labels.append(label)
    return captions, labels


def cifar10_caption_bank(class_names: list[str]) -> tuple[list[str], list[int]]:
    """Every (template, class) caption with its class index."""
    captions, labels = [], []
    for label, name in enumerate(class_names):
        for template in CIFAR_TEMPLATES:
            captions.append(template.format(name))
            labels.append(label)
    return captions, labels


# The caption bank of each task with template pairs (`data.pairs` = digits / cifar10).
CAPTION_BANKS: dict[str, Callable[[list[str]], tuple[list[str], list[int]]]] = {
    "digits": digits_caption_bank,
    "cifar10": cifar10_caption_bank,
}
