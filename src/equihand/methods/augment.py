r"""Batched, per-sample image augmentation that records its geometry (for equivariant pretraining).

Every sample of a batch gets its own random parameters, drawn in one vectorised call, and the
geometric part is kept as a pixel-space matrix so that keypoints (or a projection, as PeCLR
does) can be moved the same way the pixels moved.

Geometry
    A view's rotation, zoom and shift, its pixel-space matrix and the warp that applies it:
    equihand.methods.geometry (the pixel convention and the maths are in its docstring).

Photometric part
    Colour jitter as torchvision defines it (kornia.enhance functionals and ``shift_hue``, with
    per-sample factors):
    brightness multiplies by b ~ U(max(0, 1 - brightness), 1 + brightness), contrast blends with
    the image's grey mean (factor drawn the same way), saturation blends with the grey image,
    hue shifts by h ~ U(-hue, hue) of the hue circle; applied in that fixed order to a sample
    with probability ``jitter_p``. Then grey (BT.601 luma, probability ``grayscale_p``) and a
    Gaussian blur (sigma ~ U(0.1, 2.0) px, kernel about a tenth of the image side, probability
    ``blur_p``). An op whose probability (or range) is 0 is skipped entirely; samples where an op
    did not fire are passed through bit for bit. Output is clamped to [0, 1].
    The jitter is computed in place on contiguous planes of the samples that fire only, with
    kornia's arithmetic element for element (its numbers bit for bit, ~2.5x faster on the CPU).

Randomness
    All parameters are drawn with ``torch.rand(..., generator=generator)`` on the CPU and then
    moved to the images' device, so the result depends only on the generator (a CPU
    ``torch.Generator``) or, when it is None, on the global torch seed (callers seed torch per
    step) -- never on the device. kornia.augmentation modules are deliberately not used: they
    draw from the global RNG on their own schedule and cannot take a generator.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import kornia
import torch
import torch.nn.functional as F

from equihand.methods.geometry import Geometry, Size, sample_geometry, warp

BLUR_SIGMA = (0.1, 2.0)  # Gaussian blur sigma range in pixels (SimCLR's)
# background swap: a partner's hand is filled in by a normalised Gaussian blur of its own
# background with this sigma, as a fraction of the image side (wide enough to span a hand)
FILL_SIGMA_FRACTION = 1 / 8


@dataclass(frozen=True)
class AugmentConfig:
    """The ``augment`` section of the config (defaults as in schema.yaml)."""

    rotation_deg: float = 45.0
    scale: tuple[float, float] = (0.8, 1.25)
    translate: float = 0.12
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_p: float = 0.8
    grayscale_p: float = 0.0
    blur_p: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(x) for x in self.scale))
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"augment.scale must be [lo, hi] with 0 < lo <= hi, got {self.scale}")
        for name in ("rotation_deg", "translate", "brightness", "contrast", "saturation", "hue"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        if self.hue > 0.5:
            raise ValueError(f"augment.hue must be at most 0.5, got {self.hue}")
        for name in ("jitter_p", "grayscale_p", "blur_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> AugmentConfig:
        """Build from ``config["augment"]``; missing keys take the defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"unknown augment keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**section)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 (any device) -> (B, 3, H, W) float32 in [0, 1], channels_last."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) uint8, got {tuple(images.shape)} {images.dtype}")
    out = images.permute(0, 3, 1, 2).float().div_(255.0)  # NHWC storage = channels_last
    return out.contiguous(memory_format=torch.channels_last)


def shift_hue(images: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of (B, 3, H, W) RGB images in [0, 1] by `turn` (B,) of the hue circle.

    The same result as an RGB -> HSV -> RGB round trip (torchvision's / kornia's adjust_hue; value
    and saturation are kept) computed directly in RGB: each channel is
    max - (max - min) * clamp(min(k, 4 - k), 0, 1) with k = (n + 6 h') mod 6, n = 5, 3, 1 for
    R, G, B. Several times faster than kornia.enhance.adjust_hue on the CPU.
    """
    return _shift_hue_(images.clone(memory_format=torch.contiguous_format), turn)


def _shift_hue_(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """shift_hue in place on a contiguous (B, 3, H, W) batch: whole planes, few temporaries."""
    r, g, b = x.unbind(-3)
    mx, mn = x.amax(-3), x.amin(-3)
    chroma = mx - mn
    safe = chroma.clamp_min(torch.finfo(x.dtype).tiny)
    hue = torch.remainder((g - b) / safe, 6)  # the sector of each maximum, as HSV defines it
    from_g = (b - r).div_(safe).add_(2)
    from_b = (r - g).div_(safe).add_(4)
    hue = torch.where(mx == r, hue, torch.where(mx == g, from_g, from_b, out=from_b))
    hue.add_(6 * turn.to(x.dtype)[:, None, None])
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device)[:, None, None]
    k = torch.add(n, hue[:, None], out=x).remainder_(6)  # r, g, b are not read again
    k = torch.minimum(k, 4 - k, out=k).clamp_(0, 1).mul_(chroma[:, None])
    return torch.sub(mx[:, None], k, out=k)


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def _where(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.to(old.device)[:, None, None, None], new, old)


def _jitter_(
    x: torch.Tensor,
    brightness: torch.Tensor | None,
    contrast: torch.Tensor | None,
    saturation: torch.Tensor | None,
    turn: torch.Tensor | None,
) -> torch.Tensor:
    """Colour jitter in place on a contiguous (B, 3, H, W) batch, per-sample factors (B,) or None.

    Element for element the arithmetic of kornia.enhance's adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction and adjust_saturation_with_gray_subtraction (grey by
    kornia.color.rgb_to_grayscale), so the result is theirs bit for bit, without their
    temporaries (tests/test_augment.py compares).
    """
    as_factor = lambda f: f.to(device=x.device, dtype=x.dtype)[:, None, None, None]  # noqa: E731
    x.clamp_(0, 1)
    if brightness is not None:
        x.mul_(as_factor(brightness)).clamp_(0, 1)
    if contrast is not None:
        f = as_factor(contrast)
        mean = kornia.color.rgb_to_grayscale(x).mean((-2, -1), True)
        x.mul_(f).add_(mean * (1 - f)).clamp_(0, 1)
    if saturation is not None:
        f = as_factor(saturation)
        grey = kornia.color.rgb_to_grayscale(x)
        x.mul_(f).add_((1 - f) * grey).clamp_(0, 1)
    if turn is not None:
        x = _shift_hue_(x, turn)
    return x


def photometric(
    images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-sample colour jitter, grey and blur of a (B, 3, H, W) float batch in [0, 1]."""
    b, _, h, w = images.shape
    device = images.device
    channels_last = (
        images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    )
    out = images.clone(memory_format=torch.contiguous_format)  # whole planes; worked in place
    jitter = (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
    if cfg.jitter_p > 0 and any(x > 0 for x in jitter):
        fire = torch.rand(b, generator=generator) < cfg.jitter_p
        draws = [
            _uniform(b, max(0.0, 1 - x), 1 + x, generator) if x > 0 else None for x in jitter[:3]
        ]
        turn = _uniform(b, -cfg.hue, cfg.hue, generator) if cfg.hue > 0 else None
        rows = fire.nonzero()[:, 0]
        # Only the samples that fire are worked on. A lone row of a batch is not taken on its
        # own: ATen would sum its contrast mean in two halves, where a batch sums each row whole.
        if len(rows) == b or (len(rows) == 1 and b > 1):
            out = _where(fire, _jitter_(out.clone(), *draws, turn), out)
        elif len(rows):
            pick = lambda f: None if f is None else f[rows]  # noqa: E731
            at = rows.to(device)
            done = _jitter_(out.index_select(0, at), *map(pick, draws), pick(turn))
            out.index_copy_(0, at, done)
    if channels_last:  # the layout the blur convolution has always been given
        out = out.contiguous(memory_format=torch.channels_last)
    if cfg.grayscale_p > 0:
        fire = torch.rand(b, generator=generator) < cfg.grayscale_p
        grey = kornia.color.rgb_to_grayscale(out).expand_as(out)
        out = _where(fire, grey, out)
    if cfg.blur_p > 0:
        fire = torch.rand(b, generator=generator) < cfg.blur_p
        sigma = _uniform(b, *BLUR_SIGMA, generator)[:, None].expand(b, 2)
        kernel = max(3, int(0.1 * min(h, w)) // 2 * 2 + 1)
        kernel = min(kernel, (min(h, w) - 1) // 2 * 2 + 1)  # reflect padding needs pad < side
        blurred = kornia.filters.gaussian_blur2d(
            out, kernel, sigma.to(device=device, dtype=out.dtype)
        )
        out = _where(fire, blurred, out)
    out = out.clamp(0, 1)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


@torch.no_grad()
def augment_view(
    images: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator | None = None,
    out_size: Size | None = None,
) -> tuple[torch.Tensor, Geometry]:
    """One random view of each image of a (B, 3, H, W) float batch: geometry, then colour.

    Returns the views (B, 3, H', W') on the images' device and their Geometry.
    """
    b, _, h, w = images.shape
    geom = sample_geometry(b, (h, w), cfg, generator, images.device, out_size)
    views = warp(images, geom.matrix, out_size)
    return photometric(views, cfg, generator), geom


@torch.no_grad()
def two_views(
    images: torch.Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator | None = None,
    out_size: Size | None = None,
) -> tuple[tuple[torch.Tensor, Geometry], tuple[torch.Tensor, Geometry]]:
    """Two independent views of the same batch: ``(view1, geom1), (view2, geom2)``."""
    first = augment_view(images, cfg, generator, out_size)
    second = augment_view(images, cfg, generator, out_size)
    return first, second


def _fill_holes(images: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images with the pixels where `holes` (B, 1, H, W) is 1 replaced by a
    normalised Gaussian blur of the others (blur(image * keep) / blur(keep)): a cheap inpainting
    that smears the surrounding background into the hole. Where no kept pixel is within reach,
    the image's mean kept colour."""
    b, _, h, w = images.shape
    sigma = FILL_SIGMA_FRACTION * min(h, w)
    kernel = min(int(4 * sigma) // 2 * 2 + 1, (min(h, w) - 1) // 2 * 2 + 1)
    keep = 1.0 - holes
    sig = torch.full((b, 2), sigma, device=images.device, dtype=images.dtype)
    num = kornia.filters.gaussian_blur2d(images * keep, kernel, sig)
    den = kornia.filters.gaussian_blur2d(keep, kernel, sig)
    mean = (images * keep).sum((2, 3), keepdim=True) / keep.sum((2, 3), keepdim=True).clamp_min(1)
    eps = 1e-3
    filled = (num + eps * mean) / (den + eps)
    return torch.where(holes > 0, filled, images)


@torch.no_grad()
def swap_backgrounds(
    images: torch.Tensor,
    foreground: torch.Tensor,
    p: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Give each image of a (B, 3, H, W) batch, with probability `p`, another image's background.

    `foreground` (B, H, W) bool marks each image's hand (and arm). An image that fires keeps its
    foreground pixels and takes every other pixel from its partner, image (i + k) mod B of the
    same batch (one random k in [1, B - 1] per call, so never itself), whose own hand (dilated by
    one pixel to drop its antialiased rim) is first filled in from its surroundings
    (`_fill_holes`). Called once per view, so the two views of an image get different
    backgrounds and only the hand is left for a contrastive objective to match (the background
    augmentation of Ryali et al., ICCV 2021, with masks instead of saliency). Samples that do not
    fire are returned bit for bit; p = 0 or B = 1 returns `images` itself.
    """
    b = images.shape[0]
    if foreground.shape != (b, *images.shape[2:]):
        raise ValueError(
            f"foreground must be {(b, *images.shape[2:])}, got {tuple(foreground.shape)}"
        )
    if not 0 <= p <= 1:
        raise ValueError(f"background swap probability must be in [0, 1], got {p}")
    if p == 0 or b < 2:
        return images
    fire = torch.rand(b, generator=generator) < p
    k = int(torch.randint(1, b, (1,), generator=generator))
    if not fire.any():
        return images
    partner = torch.roll(images, -k, dims=0)
    fg = foreground.to(images.dtype)[:, None]
    partner_hand = F.max_pool2d(torch.roll(fg, -k, dims=0), 3, stride=1, padding=1)
    background = _fill_holes(partner, partner_hand)
    swapped = fg * images + (1 - fg) * background
    return _where(fire, swapped.to(images.dtype), images)
