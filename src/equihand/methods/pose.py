r"""The 2.5D hand pose representation and its closed-form inverse (Iqbal et al., ECCV 2018).

All functions are batched torch (no per-sample loops) and differentiable. Shapes: ``xyz``
(B, 21, 3) camera-frame joints in metres (FreiHAND order, root = joint 0, the wrist); ``K``
(B, 3, 3) or (3, 3) pinhole intrinsics in pixels with last row (0, 0, 1) (an affine pixel
transform A keeps that form: K' = A @ K); ``scale`` (B,) the sample's reference bone length
||xyz[9] - xyz[10]|| (FreiHAND's ``*_scale.json``, layout.SCALE_BONE) in metres.

2.5D representation (``to_25d``)
--------------------------------
For joint j with camera coordinates X_j = (X, Y, Z)::

    (u_j w, v_j w, w) = K @ X_j                  pixel projection (w = Z for a pinhole K)
    zr_j = (Z_j - Z_0) / scale                   root-relative depth in reference-bone units

so zr_0 = 0. Pixels follow the centre convention of FreiHAND's K: pixel i covers [i - 0.5,
i + 0.5]. ``uv_to_norm`` / ``norm_to_uv`` map pixels to [-1, 1] across an image of ``size``
pixels: uv_norm = (uv + 0.5) * 2 / size - 1, i.e. pixel = (uv_norm + 1) * size / 2 - 0.5
(-1 and +1 are the outer edges of the border pixels, as ``grid_sample(align_corners=False)``).

Inverse (``from_25d``)
----------------------
Work in units of the reference bone: P_j = X_j / scale. Normalised image coordinates
(x_j, y_j, 1) = K^{-1} (u_j, v_j, 1) give the ray of joint j, and its depth in bone units is
Z_j = Z_r + zr_j with the unknown root depth Z_r = Z_0 / scale, so

    P_j = (Z_r + zr_j) (x_j, y_j, 1).

The only unknown is Z_r; the reference bone (n, m) = (9, 10) fixes it by having unit length,
||P_n - P_m||^2 = 1. Component-wise,

    P_n - P_m = ( Z_r (x_n - x_m) + (x_n zr_n - x_m zr_m),
                  Z_r (y_n - y_m) + (y_n zr_n - y_m zr_m),
                  zr_n - zr_m ),

and squaring gives the quadratic a Z_r^2 + b Z_r + c = 0 with

    a = (x_n - x_m)^2 + (y_n - y_m)^2
    b = 2 [ (x_n zr_n - x_m zr_m)(x_n - x_m) + (y_n zr_n - y_m zr_m)(y_n - y_m) ]
    c = (x_n zr_n - x_m zr_m)^2 + (y_n zr_n - y_m zr_m)^2 + (zr_n - zr_m)^2 - 1.

Of its two roots we take the larger, Z_r = (-b + sqrt(b^2 - 4ac)) / (2a) (the far branch of the
parabola ||P_n - P_m||^2 - 1 in Z_r). The true depth is that root exactly when the derivative there,
2 (P_n - P_m) . (x_n - x_m, y_n - y_m, 0), is positive, which fails only when the reference bone
points close to its viewing ray: with realistic hands in uniformly random orientations (tests)
the larger root was right for about 99.5% of them, all failures had the bone within about 20
degrees of its ray, and near that direction the depth is ill-conditioned anyway (the two roots
merge). Numerically:

- the discriminant is clamped at (almost) 0: a prediction whose bone cannot reach unit length
  gets the depth where it comes closest, Z_r = -b / 2a; ``a`` is clamped at the dtype's machine
  epsilon (the two joints project to the same pixel), so degenerate input gives a far but finite
  hand with finite gradients;
- when b > 0 the equivalent form Z_r = 2c / (-b - sqrt(b^2 - 4ac)) avoids cancellation;
- the computation runs in at least float32 (bf16/fp16 inputs are promoted).

Finally X_j = scale * Z_j * (x_j, y_j, 1) in metres.
"""

from __future__ import annotations

import torch

from equihand.data.layout import SCALE_BONE

ROOT = 0  # the wrist


def _scale_column(scale: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """`scale` as a (B, 1) (or broadcastable) tensor of `like`'s dtype and device."""
    scale = torch.as_tensor(scale, dtype=like.dtype, device=like.device)
    return scale.reshape(-1, 1) if scale.dim() >= 1 else scale


def _work_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = torch.float32
    for t in tensors:
        if torch.is_tensor(t):
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def to_25d(
    xyz: torch.Tensor, K: torch.Tensor, scale: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame joints (B, 21, 3) -> (uv (B, 21, 2) pixels, zr (B, 21) root-relative depth).

    zr is in units of `scale` (B,), the reference bone length of each sample.
    """
    dtype = _work_dtype(xyz, K)
    xyz = xyz.to(dtype)
    K = torch.as_tensor(K, dtype=dtype, device=xyz.device)
    proj = xyz @ K.transpose(-1, -2)  # (B, J, 3): row j is K @ X_j
    w = proj[..., 2:]
    tiny = torch.finfo(dtype).tiny
    w = torch.where(w.abs() < tiny, torch.full_like(w, tiny), w)  # a joint on the camera plane
    uv = proj[..., :2] / w
    scale = _scale_column(scale, xyz).clamp(min=tiny)
    zr = (xyz[..., 2] - xyz[..., ROOT : ROOT + 1, 2]) / scale
    return uv, zr


def root_depth(rays: torch.Tensor, zr: torch.Tensor, bone: tuple[int, int] = SCALE_BONE):
    """Root depth Z_r (B,) in bone units from normalised rays (B, J, 3) and zr (B, J).

    Solves the quadratic of the module docstring and returns its larger root.
    """
    n, m = bone
    x_n, y_n, x_m, y_m = rays[:, n, 0], rays[:, n, 1], rays[:, m, 0], rays[:, m, 1]
    z_n, z_m = zr[:, n], zr[:, m]
    dx, dy = x_n - x_m, y_n - y_m
    px, py = x_n * z_n - x_m * z_m, y_n * z_n - y_m * z_m
    eps = torch.finfo(rays.dtype).eps
    a = (dx * dx + dy * dy).clamp(min=eps)
    b = 2.0 * (px * dx + py * dy)
    c = px * px + py * py + (z_n - z_m) ** 2 - 1.0
    # the floor keeps sqrt's gradient finite where the discriminant is clamped
    sqrt_d = torch.sqrt((b * b - 4.0 * a * c).clamp(min=eps * eps))
    direct = (-b + sqrt_d) / (2.0 * a)  # stable for b <= 0
    # the same root, stable for b > 0 (there -b - sqrt_d < -eps); the other branch gets a
    # harmless denominator so that torch.where's unused side stays finite for autograd
    den = torch.where(b > 0, -b - sqrt_d, -torch.ones_like(b))
    stable = 2.0 * c / den
    return torch.where(b > 0, stable, direct)


def rays(uv: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels (B, J, 2) -> normalised rays K^-1 (u, v, 1) (B, J, 3), in at least float32."""
    dtype = _work_dtype(uv, K)
    uv = uv.to(dtype)
    K = torch.as_tensor(K, dtype=dtype, device=uv.device)
    homog = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1)  # (B, J, 3)
    K = K.expand(uv.shape[0], 3, 3) if K.dim() == 2 else K
    return torch.linalg.solve(K, homog.transpose(-1, -2)).transpose(-1, -2)


def true_root_depth(xyz: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """The root's camera depth in reference-bone units, Z_0 / scale (B,): what ``root_depth``
    recovers from exact 2.5D, and the target of a learned root refinement."""
    return xyz[:, ROOT, 2] / _scale_column(scale, xyz).reshape(-1)


def from_25d(
    uv: torch.Tensor,
    zr: torch.Tensor,
    K: torch.Tensor,
    scale: torch.Tensor | float,
    root: torch.Tensor | None = None,
) -> torch.Tensor:
    """(uv (B, 21, 2) pixels, zr (B, 21)) + intrinsics + reference bone length -> xyz (B, 21, 3).

    The exact inverse of ``to_25d`` wherever the larger root is the true one (see the module
    docstring); always finite for finite inputs and an invertible K. `root` (B,), in bone units,
    replaces the closed-form root depth when given (e.g. a learned refinement of it).
    """
    dtype = _work_dtype(uv, zr, K)
    uv, zr = uv.to(dtype), zr.to(dtype)
    r = rays(uv, K)
    z_root = root_depth(r, zr) if root is None else root.to(dtype)
    depth = z_root[:, None] + zr  # (B, J), bone units
    return _scale_column(scale, uv)[..., None] * depth[..., None] * r


def uv_to_norm(uv: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Pixels (centre convention) -> [-1, 1] across the image; size = S or (width, height)."""
    w, h = (size, size) if isinstance(size, int) else size
    return (uv + 0.5) * uv.new_tensor([2.0 / w, 2.0 / h]) - 1.0


def norm_to_uv(uv_norm: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """[-1, 1] across the image -> pixels: (uv_norm + 1) * size / 2 - 0.5."""
    w, h = (size, size) if isinstance(size, int) else size
    return (uv_norm + 1.0) * uv_norm.new_tensor([w / 2.0, h / 2.0]) - 0.5
