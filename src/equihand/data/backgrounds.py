"""Backgrounds of the synthetic images: a bank of textured base images per seed (smooth colour
fields, stripes or checks, blotches, grain), varied per image by flips, a transpose and a
channel permutation; optionally flattened towards one colour; flat distractor shapes on top."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

BACKGROUND_BANK = 256  # distinct base textures per seed; each image flips and permutes one


@functools.cache
def unit_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates in [0, 1) of an n x n grid (cached, read-only)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / np.float32(n)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random textured background: smooth colour fields, stripes/checks or blotches, plus grain.

    Drawn at half resolution and upsampled (the final image is blurred anyway).
    """
    half = max(size // 2, 8)
    base = rng.uniform(0, 1, size=(rng.integers(2, 7), rng.integers(2, 7), 3))
    img = np.asarray(
        Image.fromarray((base * 255).astype(np.uint8)).resize((half, half), Image.BILINEAR),
        dtype=np.float32,
    ) * np.float32(1 / 255)
    kind = rng.integers(3)
    yy, xx = unit_grid(half)
    if kind == 0:  # stripes or checks
        theta = rng.uniform(0, np.pi)
        period = np.float32(rng.uniform(0.03, 0.25))
        c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
        wave = np.sin((xx * c + yy * s) * np.float32(2 * np.pi) / period)
        if rng.random() < 0.4:
            wave *= np.sin((xx * s - yy * c) * np.float32(2 * np.pi) / period)
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        img = np.where((wave > 0)[..., None], img, 0.5 * img + 0.5 * colour)
    elif kind == 1:  # blotches
        for _ in range(rng.integers(2, 6)):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            blob = np.exp(((xx - cx) ** 2 + (yy - cy) ** 2) * np.float32(-0.5 / (r * r)))
            colour = rng.uniform(0, 1, 3).astype(np.float32)
            img += blob[..., None] * (colour - img)
    img += rng.standard_normal((half, half, 1), dtype=np.float32) * np.float32(
        rng.uniform(0.01, 0.06)
    )
    pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return pil.resize((size, size), Image.NEAREST)  # the final blur softens the blocks


@functools.lru_cache(maxsize=BACKGROUND_BANK)
def bank_background(seed: int, size: int, k: int) -> np.ndarray:
    """Base texture k of the bank (computed once per process, identical in every process)."""
    image = np.asarray(textured_background(np.random.default_rng([seed, 104729, k]), size))
    image.flags.writeable = False
    return image


def varied_background(rng: np.random.Generator, seed: int, size: int) -> Image.Image:
    """A bank texture, randomly flipped, transposed and channel-permuted (48 variants each)."""
    image = bank_background(seed, size, int(rng.integers(BACKGROUND_BANK)))
    if rng.random() < 0.5:
        image = image[::-1]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.5:
        image = image.transpose(1, 0, 2)
    return Image.fromarray(np.ascontiguousarray(image[..., rng.permutation(3)]))


def flatten_background(background: Image.Image, contrast: float) -> Image.Image:
    """Scale the background's deviations from its mean colour by `contrast` (1 = unchanged)."""
    if contrast >= 1.0:
        return background
    pixels = np.asarray(background, dtype=np.float32)
    mean = pixels.reshape(-1, 3).mean(axis=0)
    flat = mean + np.float32(contrast) * (pixels - mean)
    return Image.fromarray((flat + 0.5).clip(0, 255).astype(np.uint8))


def draw_distractors(pil: Image.Image, rng: np.random.Generator, skin: np.ndarray, n: int):
    """Flat shapes behind the hand; some skin-coloured, so colour alone does not find the hand."""
    size = pil.width
    draw = ImageDraw.Draw(pil)
    for _ in range(rng.integers(0, n + 1)):
        colour = skin * rng.uniform(0.7, 1.1) if rng.random() < 0.3 else rng.uniform(0, 1, 3)
        fill = tuple(int(c) for c in np.clip(colour * 255, 0, 255))
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * size
        w, h = rng.uniform(0.05, 0.35, 2) * size
        box = [x0, y0, x0 + w, y0 + h]
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            draw.rectangle(box, fill=fill)
        else:
            draw.line(box, fill=fill, width=int(rng.integers(2, max(3, size // 16))))
    return pil
