"""Masked image modelling (MIM) for a ResNet: patch masks, masked inputs and the pixel loss.

SimMIM-style (Xie et al., CVPR 2022) with MAE's per-patch normalised targets (He et al.,
CVPR 2022, ``norm_pix_loss``):

1. An augmented view (B, 3, H, W) is cut into a grid of ``patch_size`` x ``patch_size``
   patches; exactly ``masked_count`` of them are chosen per image, uniformly at random.
2. Masked patches are filled with the image's mean colour over its *visible* pixels (per
   image and channel), so they hold no content, leak nothing about the hidden pixels and stay
   in the range of real images (a ResNet has no mask token; a zero fill would be a black square,
   i.e. far from the mean after the encoder's ImageNet normalisation).
3. The encoder's last feature map (B, d, H/32, W/32) goes through a light decoder
   (equihand.methods.models.PixelDecoder: 1x1 conv to 3 * 32^2 channels + pixel shuffle) back to
   (B, 3, H, W).
4. The loss is the mean squared error on masked patches only, against targets normalised per
   patch: each target patch (its p * p * 3 values) minus its mean, divided by
   sqrt(var + 1e-6) with the unbiased variance, as MAE's code does.

Limitation: the decoder sees the map at stride 32, so at 32 px (the tiny test cache) it
reconstructs the whole image from a single 1 x 1 location, and at 64 px from 2 x 2; the
task is only as local as the resolution allows (at 128 px the map is 4 x 4, at 224 px 7 x 7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from equihand.errors import UserError
from equihand.methods.backbones import ENCODER_STRIDE

EPS = 1e-6  # MAE's epsilon under the square root of the patch variance


@dataclass(frozen=True)
class Reconstruction:
    """What a masked objective scores: the decoder's output for a batch of masked views.

    pred, target: (B, 3, H, W) float, the reconstruction and the unmasked view;
    mask: (B, H / patch_size, W / patch_size) bool, True = masked (scored);
    weight: the MIM term's weight when it is added to a contrastive loss.
    """

    pred: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    patch_size: int
    weight: float = 1.0


def check_settings(mask_ratio: float, patch_size: int, image_size: int) -> None:
    """UserError naming the key and the sizes if MIM cannot run on `image_size` px images."""
    if not 0 < mask_ratio < 1:
        raise UserError(f"pretrain.mim.mask_ratio must be in (0, 1), got {mask_ratio}")
    if patch_size < 1 or image_size % patch_size or patch_size >= image_size:
        raise UserError(
            f"pretrain.mim.patch_size={patch_size} must divide the image size ({image_size} px, "
            "prepare.resolution) and be smaller than it"
        )
    if image_size % ENCODER_STRIDE:
        raise UserError(
            f"masked image modelling needs an image size divisible by {ENCODER_STRIDE} (the "
            f"ResNet's output stride, which the decoder undoes); the cache holds {image_size} px "
            "images (prepare.resolution)"
        )


def masked_count(n_patches: int, mask_ratio: float) -> int:
    """Patches masked per image: mask_ratio x n_patches rounded half up, kept in [1, n - 1]."""
    return min(n_patches - 1, max(1, math.floor(mask_ratio * n_patches + 0.5)))


def random_patch_mask(
    batch: int,
    grid: int,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(batch, grid, grid) bool, exactly `masked_count(grid**2, mask_ratio)` True per image.

    Drawn on the CPU (like equihand.methods.augment) so the mask depends only on the generator or
    the global torch seed, never on the device.
    """
    n = grid * grid
    order = torch.rand(batch, n, generator=generator).argsort(dim=1)  # a random order per image
    chosen = order[:, : masked_count(n, mask_ratio)]
    mask = torch.zeros(batch, n, dtype=torch.bool).scatter_(1, chosen, True)
    return mask.view(batch, grid, grid).to(device)


def pixel_mask(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, h, w) patch mask -> (B, 1, h * patch_size, w * patch_size) pixel mask."""
    return mask.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)[:, None]


def mask_images(images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Fill the masked patches of (B, 3, H, W) `images` with each image's mean visible colour."""
    hidden = pixel_mask(mask, patch_size)
    visible = (~hidden).to(images.dtype)
    mean = (images * visible).sum((2, 3), keepdim=True) / visible.sum((2, 3), keepdim=True)
    return torch.where(hidden, mean, images)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p * p * C), patches in row-major grid order (as mask.view(B, -1)).

    Each patch's values are ordered (row, column, channel), as MAE's patchify.
    """
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def normalise_patches(patches: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(..., D) -> each row minus its mean, over sqrt(unbiased variance + eps) (MAE)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def reconstruction_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, patch_size: int
) -> torch.Tensor:
    """Mean over masked patches of the per-patch mean squared error between `pred` and the
    per-patch normalised `target` (both (B, 3, H, W)); unmasked patches do not count at all."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    b = pred.shape[0]
    goal = normalise_patches(patchify(target.detach(), patch_size))
    error = (patchify(pred, patch_size) - goal).square().mean(dim=-1)  # (B, N)
    scored = mask.reshape(b, -1)
    # where, not a product: a non-finite error on a visible patch must not leak in
    return torch.where(scored, error, 0).sum() / scored.sum()


def mim_loss(recon: Reconstruction) -> torch.Tensor:
    """`reconstruction_loss` of a Reconstruction record (unweighted)."""
    return reconstruction_loss(recon.pred, recon.target, recon.mask, recon.patch_size)
