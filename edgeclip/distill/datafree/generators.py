"""Image generators for synthesis: one interface, several parameterisations, and a user hook.

Interface (`ImageGenerator`, an `nn.Module`):
    images = generator.sample(n, rng)   # n fresh latents → (n, 3, S, S) images in [0, 1]
    generator.latents                   # the optimisable parameters (what Adam updates)
    images = generator.render()         # images of the current latents (after optimiser steps)
`sample` and `render` are differentiable with respect to the latents; any weights a generator
holds (a decoder) stay frozen.

Built in (no pretrained weights needed):
- `pixel`: a sigmoid per pixel, optionally at a lower `base_size` and upsampled (a smoothness
  prior), optionally `grayscale` (one channel replicated);
- `fourier`: lucid-style decorrelated parameterisation — a 1/f^decay-scaled spectrum per
  channel, inverse FFT, a fixed colour-decorrelation matrix, sigmoid. Natural images have ~1/f
  spectra, so plain gradient steps favour low frequencies instead of adversarial pixel noise.

Hook for a user's generator (paper 002 used VQGAN; a diffusion model's latents work the same):
wrap its decoder in `DecoderGenerator(decoder, latent_shape, image_size)` and register a factory

    from edgeclip.distill.datafree.generators import DecoderGenerator, register_generator

    @register_generator("vqgan")
    def vqgan(image_size: int, checkpoint: str = "") -> DecoderGenerator:
        model = load_my_vqgan(checkpoint)          # frozen, eval mode
        return DecoderGenerator(model.decode, latent_shape=(256, image_size // 16, image_size // 16),
                                image_size=image_size, output_range=(-1.0, 1.0))

then `datafree.generator: vqgan` and `datafree.generator_params: {checkpoint: ...}`. For the CLI,
expose the factory as an entry point in your package (group `edgeclip.generators`, e.g.
`vqgan = mypkg.gen:vqgan`); it is found by name on first use. Recipes only name generators —
no code is imported from a recipe.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from edgeclip.errors import UserError
from edgeclip.registry import Registry

GeneratorFactory = Callable[..., "ImageGenerator"]
GENERATORS: Registry[GeneratorFactory] = Registry("image generator", "edgeclip list generators")
ENTRY_POINT_GROUP = "edgeclip.generators"


def register_generator(name: str) -> Callable[[GeneratorFactory], GeneratorFactory]:
    """Decorator: `factory(image_size: int, **params) -> ImageGenerator` under `name`."""

    def decorator(factory: GeneratorFactory) -> GeneratorFactory:
        GENERATORS.register(name, factory)
        return factory

    return decorator


class ImageGenerator(nn.Module):
    """Base class: subclasses give `init_latents(n, rng)` and `decode(latents)`."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.latents = nn.Parameter(torch.empty(0))

    def init_latents(self, n: int, rng: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """Draw `n` fresh latents (they become `self.latents`) and return their images."""
        self.latents = nn.Parameter(self.init_latents(n, rng))
        return self.render()

    def render(self) -> torch.Tensor:
        images = self.decode(self.latents)
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = nn.functional.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                               align_corners=False, antialias=True)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return images.clamp(0, 1)

    def describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "image_size": self.image_size}


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class PixelGenerator(ImageGenerator):
    """One logit per pixel (and channel) at `base_size`, sigmoid, bicubic upsampling to the image size."""

    def __init__(self, image_size: int, base_size: int = 0, grayscale: bool = False, init_mean: float = 0.5,
                 init_std: float = 0.5) -> None:
        super().__init__(image_size)
        self.base_size = int(base_size) or self.image_size
        if not 1 <= self.base_size <= self.image_size:
            raise UserError(f"pixel generator base_size must be between 1 and the image size {self.image_size}, got {base_size}")
        if not 0 < init_mean < 1 or init_std < 0:
            raise UserError(f"pixel generator needs 0 < init_mean < 1 and init_std >= 0, got {init_mean}, {init_std}")
        self.channels = 1 if grayscale else 3
        self.init_mean, self.init_std = float(init_mean), float(init_std)

    def init_latents(self, n: int, rng: torch.Generator) -> torch.Tensor:
        noise = torch.randn(n, self.channels, self.base_size, self.base_size, generator=rng)
        return _logit(self.init_mean) + self.init_std * noise

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        images = torch.sigmoid(latents)
        if self.base_size != self.image_size:
            images = nn.functional.interpolate(images, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        return images

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_size": self.base_size, "grayscale": self.channels == 1,
                "init_mean": self.init_mean, "init_std": self.init_std}


# lucid's colour-correlation square root (ImageNet RGB), columns scaled to unit max norm: images
# are parameterised in a decorrelated colour space and mapped back to RGB with this matrix.
_COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_MATRIX = _COLOR_CORRELATION_SQRT / _COLOR_CORRELATION_SQRT.norm(dim=0).max()


class FourierGenerator(ImageGenerator):
    """Spectrum per channel scaled by 1/max(f, 1/S)^decay, inverse real FFT, colour decorrelation, sigmoid."""

    def __init__(self, image_size: int, grayscale: bool = False, decay: float = 1.0, init_std: float = 0.01,
                 init_mean: float = 0.5, decorrelate: bool = True) -> None:
        super().__init__(image_size)
        if decay < 0 or init_std < 0 or not 0 < init_mean < 1:
            raise UserError(f"fourier generator needs decay >= 0, init_std >= 0 and 0 < init_mean < 1, got {decay}, {init_std}, {init_mean}")
        self.channels = 1 if grayscale else 3
        self.decay, self.init_std, self.init_mean, self.decorrelate = float(decay), float(init_std), float(init_mean), bool(decorrelate)
        size = self.image_size
        freqs = torch.sqrt(torch.fft.fftfreq(size)[:, None] ** 2 + torch.fft.rfftfreq(size)[None, :] ** 2)
        # Normalised to unit RMS, so with norm="ortho" a unit-variance spectrum gives pixels of
        # roughly unit variance whatever the size and decay; init_std sets the starting contrast.
        scale = 1.0 / torch.clamp(freqs, min=1.0 / size) ** self.decay
        self.register_buffer("spectrum_scale", scale / scale.square().mean().sqrt(), persistent=False)

    def init_latents(self, n: int, rng: torch.Generator) -> torch.Tensor:
        size = self.image_size
        return self.init_std * torch.randn(n, self.channels, size, size // 2 + 1, 2, generator=rng)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        spectrum = torch.complex(latents[..., 0], latents[..., 1]) * self.spectrum_scale
        images = torch.fft.irfft2(spectrum, s=(self.image_size, self.image_size), norm="ortho")
        if self.channels == 3 and self.decorrelate:
            images = torch.einsum("nchw,dc->ndhw", images, _COLOR_MATRIX.to(images))
        return torch.sigmoid(images + _logit(self.init_mean))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "grayscale": self.channels == 1, "decay": self.decay, "init_std": self.init_std,
                "init_mean": self.init_mean, "decorrelate": self.decorrelate}


class DecoderGenerator(ImageGenerator):
    """A user's frozen decoder (VQGAN, a diffusion decoder, ...) driven by optimisable latents.

    `decoder(latents) -> images` in `output_range`; latents start as N(0, init_std²) of
    `latent_shape` per image (or from `init_fn(n, rng)`). The decoder's weights are frozen.
    """

    def __init__(self, decoder: Callable[[torch.Tensor], torch.Tensor], latent_shape: Sequence[int], image_size: int,
                 output_range: tuple[float, float] = (-1.0, 1.0), init_std: float = 1.0,
                 init_fn: Callable[[int, torch.Generator], torch.Tensor] | None = None) -> None:
        super().__init__(image_size)
        if isinstance(decoder, nn.Module):
            decoder.eval().requires_grad_(False)
            self.decoder_module = decoder  # registered, so .to(device) moves it
        self.decoder = decoder
        self.latent_shape = tuple(int(s) for s in latent_shape)
        self.output_range = (float(output_range[0]), float(output_range[1]))
        self.init_std = float(init_std)
        self.init_fn = init_fn

    def init_latents(self, n: int, rng: torch.Generator) -> torch.Tensor:
        if self.init_fn is not None:
            return self.init_fn(n, rng)
        return self.init_std * torch.randn(n, *self.latent_shape, generator=rng)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        low, high = self.output_range
        return (self.decoder(latents) - low) / (high - low)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "latent_shape": list(self.latent_shape), "output_range": list(self.output_range)}


register_generator("pixel")(PixelGenerator)
register_generator("fourier")(FourierGenerator)


def _find_entry_point(name: str) -> bool:
    """Register generator `name` from an installed package's `edgeclip.generators` entry point."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name and name not in GENERATORS:
            GENERATORS.register(name, entry.load())
            return True
    return False


def create_generator(name: str, image_size: int, params: dict[str, Any] | None = None) -> ImageGenerator:
    """Build generator `name`; unknown names and options are one-line UserErrors."""
    if name not in GENERATORS:
        _find_entry_point(name)
    factory = GENERATORS.get(name)
    params = dict(params or {})
    signature = inspect.signature(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    allowed = [p for p in signature.parameters if p not in ("self", "image_size")]
    unknown = sorted(set(params) - set(allowed))
    if unknown and not accepts_any:
        raise UserError(f"image generator '{name}' has no option {unknown}; its options are: {', '.join(allowed) or 'none'}")
    try:
        generator = factory(image_size=image_size, **params)
    except TypeError as exc:
        raise UserError(f"image generator '{name}' cannot be built with {params} ({exc}); fix datafree.generator_params") from None
    if not isinstance(generator, ImageGenerator):
        raise UserError(f"image generator '{name}' returned a {type(generator).__name__}, not an ImageGenerator; "
                        "subclass edgeclip.distill.datafree.generators.ImageGenerator (or use DecoderGenerator)")
    return generator


def list_generators() -> list[tuple[str, str]]:
    """(name, first docstring line) of the registered generators."""
    rows = []
    for name, factory in GENERATORS.items():
        doc = inspect.getdoc(factory) or ""
        rows.append((name, doc.splitlines()[0] if doc else ""))
    return rows
