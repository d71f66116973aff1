r"""The geometric part of a view: per-sample rotation, zoom and shift, kept as a pixel-space
matrix so that keypoints (or a projection, as PeCLR does) move the way the pixels moved.

Pixel convention
    Pixel (column u, row v) has its centre at the continuous coordinate (u, v); u points right
    and v points *down* on screen. Keypoints ``uv`` use the same coordinates.

Geometry
    A view of an image of input size (H, W) and output size (H', W') is the affine map, in
    homogeneous pixel coordinates,

    .. math::
        A = T(c' + t)\, R(\theta)\, S(s\,k)\, T(-c), \qquad
        R(\theta) = \begin{pmatrix}\cos\theta & -\sin\theta\\ \sin\theta & \cos\theta\end{pmatrix},

    with c = ((W-1)/2, (H-1)/2) the centre of the input (c' that of the output), T a
    translation, S(s k) = diag(s k_u, s k_v) the zoom s times the resize factor
    k = (W'/W, H'/H) (k = 1 when the size is kept), and t the shift in output pixels. A maps an
    input pixel position to the output pixel position where its content lands:
    ``uv_out = A @ (u, v, 1)``. Because v points down, R with a *positive* angle turns the
    picture **clockwise on screen**: content right of the centre moves below it at +90 degrees.

    Sampling (per sample): theta ~ U(-rotation_deg, rotation_deg) (stored in radians);
    log s ~ U(log scale[0], log scale[1]); t ~ U(-translate * W', translate * W') along u and
    U(-translate * H', translate * H') along v.

Warping
    ``grid_sample`` (align_corners=False) reads normalised coordinates in which pixel centre u
    sits at (2u + 1)/W - 1, i.e. x = N (u, v, 1) with
    N = [[2/W, 0, 1/W - 1], [0, 2/H, 1/H - 1], [0, 0, 1]]. Each output pixel must read the input
    at A^{-1} of its own position, so the affine grid uses
    theta = (N_in A^{-1} N_out^{-1})[:2], one ``affine_grid`` + ``grid_sample`` call for the batch
    (bilinear, zero padding). A = identity reproduces the image exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F


class GeometryRanges(Protocol):
    """The ranges a view's geometry is drawn from (equihand.methods.augment.AugmentConfig)."""

    rotation_deg: float
    scale: tuple[float, float]
    translate: float


Size = int | tuple[int, int]  # an int means a square image; a pair is (H, W)


@dataclass(frozen=True)
class Geometry:
    """Per-sample geometric parameters of a batch of views and their pixel-space matrices.

    angle: (B,) radians, positive = clockwise on screen; scale: (B,) zoom (output pixels per
    input pixel, resize factor excluded); shift: (B, 2) (du, dv) in output pixels;
    matrix: (B, 3, 3) float32, maps input pixel (u, v, 1) to output pixel.
    """

    angle: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    matrix: torch.Tensor


def _hw(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def make_geometry(
    angle: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    size: Size,
    out_size: Size | None = None,
) -> Geometry:
    """Geometry from given parameters: A = T(c' + shift) R(angle) S(scale * k) T(-c).

    angle (B,) radians, scale (B,), shift (B, 2) in output pixels; `size` is the input (H, W) (or
    an int for a square), `out_size` the output size (default: the input size).
    """
    h, w = _hw(size)
    h2, w2 = _hw(out_size if out_size is not None else size)
    dtype = torch.float64
    a, s, t = angle.to(dtype), scale.to(dtype), shift.to(dtype)
    cos, sin = torch.cos(a), torch.sin(a)
    su, sv = s * (w2 / w), s * (h2 / h)
    cu, cv = (w - 1) / 2, (h - 1) / 2
    # R @ diag(su, sv), then the translation that takes c to c' + t.
    m00, m01 = cos * su, -sin * sv
    m10, m11 = sin * su, cos * sv
    tu = (w2 - 1) / 2 + t[:, 0] - (m00 * cu + m01 * cv)
    tv = (h2 - 1) / 2 + t[:, 1] - (m10 * cu + m11 * cv)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    matrix = torch.stack(
        [
            torch.stack([m00, m01, tu], -1),
            torch.stack([m10, m11, tv], -1),
            torch.stack([zero, zero, one], -1),
        ],
        dim=1,
    )
    return Geometry(angle=angle, scale=scale, shift=shift, matrix=matrix.to(torch.float32))


def sample_geometry(
    batch: int,
    size: Size,
    cfg: GeometryRanges,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    out_size: Size | None = None,
) -> Geometry:
    """Draw one rotation, zoom and shift per sample (see the module docstring) on the CPU and
    return them, with their matrices, as float32 tensors on `device`."""
    h2, w2 = _hw(out_size if out_size is not None else size)
    u = torch.rand(batch, 4, generator=generator, dtype=torch.float64)
    angle = (2 * u[:, 0] - 1) * math.radians(cfg.rotation_deg)
    log_lo, log_hi = math.log(cfg.scale[0]), math.log(cfg.scale[1])
    scale = torch.exp(log_lo + u[:, 1] * (log_hi - log_lo))
    limit = torch.tensor([cfg.translate * w2, cfg.translate * h2], dtype=torch.float64)
    shift = (2 * u[:, 2:] - 1) * limit
    geom = make_geometry(angle, scale, shift, size, out_size)
    return Geometry(
        *(x.to(device=device, dtype=torch.float32) for x in (angle, scale, shift, geom.matrix))
    )


def _affine_inverse(matrix: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of (B, 3, 3) affine matrices (last row 0 0 1); no solver, no sync."""
    a, b, tu = matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2]
    c, d, tv = matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    out = torch.zeros_like(matrix)
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = ia, ib, -(ia * tu + ib * tv)
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = ic, id_, -(ic * tu + id_ * tv)
    out[:, 2, 2] = 1
    return out


def _normaliser(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """N: pixel centres -> grid_sample coordinates (align_corners=False)."""
    return torch.tensor(
        [[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]],
        dtype=like.dtype,
        device=like.device,
    )


def warp(images: torch.Tensor, matrix: torch.Tensor, out_size: Size | None = None) -> torch.Tensor:
    """Resample (B, C, H, W) `images` so that input pixel p lands at output pixel matrix @ p.

    Bilinear, zeros outside, one affine_grid + grid_sample for the whole batch. The output keeps
    the input's memory format (channels_last stays channels_last).
    """
    b, ch, h, w = images.shape
    h2, w2 = _hw(out_size if out_size is not None else (h, w))
    m = matrix.to(device=images.device, dtype=torch.float64)
    n_in, n_out = _normaliser(h, w, m), _normaliser(h2, w2, m)
    n_out_inv = _affine_inverse(n_out[None])[0]
    theta = (n_in @ _affine_inverse(m) @ n_out_inv)[:, :2]
    dtype = images.dtype if images.is_floating_point() else torch.float32
    grid = F.affine_grid(theta.to(dtype), [b, ch, h2, w2], align_corners=False)
    out = F.grid_sample(
        images.to(dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def transform_points(matrix: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Move (B, J, 2) pixel positions by (B, 3, 3) matrices: uv' = M[:2, :2] uv + M[:2, 2]."""
    m = matrix.to(device=uv.device, dtype=uv.dtype)
    return uv @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
