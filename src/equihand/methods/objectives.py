"""Pretraining objectives: SimCLR (invariant), PeCLR (equivariant), masked image modelling (mim)
and the sums of each contrastive loss with MIM.

Every objective has ONE signature, so the training loop never branches on its name::

    fn(z1, z2, geom1, geom2, *, temperature: float, image_size: int, recon=None) -> scalar tensor

- ``z1``, ``z2``: (B, D) projection-head outputs of the two views of the same B images
  (unnormalised; each objective L2-normalises what it needs). Row i of both is image i.
- ``geom1``, ``geom2``: the geometry each view's augmentation actually applied, any object with
  ``angle`` (B,) in radians and ``shift`` (B, 2) in pixels, (x, y) order (see `undo_geometry`
  for the convention). Objectives that ignore geometry still accept it.
- ``temperature``: NT-Xent temperature (PeCLR and SimCLR use 0.5).
- ``image_size``: side of the square view in pixels; turns a pixel shift into a fraction.
- ``recon``: an `equihand.methods.mim.Reconstruction` (decoder output, target view, patch mask, MIM
  weight), passed only to masked objectives.

The study's registry (`equihand.vocabulary.OBJECTIVES`) names each objective, its loss here and
what the pretraining step must compute for it -- ``contrastive`` (two projected views and their
geometry; z1, z2, geom1, geom2 are None otherwise) and ``masked`` (a masked view reconstructed by
the pixel decoder, ``recon``). equihand.train.pretrain builds exactly the model parts and inputs
these flags ask for; `get_objective` resolves a name into its `vocabulary.ObjectiveEntry`.

On several ranks (equihand.train.launch) `nt_xent` scores each rank's anchors against every
rank's projections (the global batch), with gradients that reach the rank that made them.

Adding an objective is one function with this signature plus one `register_objective` line in
equihand/vocabulary.py. "none" (no pretraining) is a valid study arm but has no loss, so it is
never registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

from equihand import vocabulary
from equihand.methods import collectives
from equihand.methods.mim import Reconstruction, mim_loss


class Geometry(Protocol):
    """What an objective reads from a view's augmentation record."""

    angle: torch.Tensor  # (B,) radians
    shift: torch.Tensor  # (B, 2) pixels, (x, y)


Objective = Callable[..., torch.Tensor]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy (Chen et al., ICML 2020, eq. 1).

    z1, z2: (B, D) two views of the same B samples; row i of each is a positive pair.
    Both are L2-normalised here. With z = cat(z1, z2) (2B, D) and s = z z^T / temperature, the
    loss of anchor i is ``-log(exp(s[i, pos(i)]) / sum_{k != i} exp(s[i, k]))`` where pos(i) is
    i's other view; the denominator runs over the other 2B - 1 samples (the positive included,
    the anchor itself excluded). Returns the mean over all 2B anchors, a scalar. For B = 1 the
    only other sample is the positive, so the loss is 0.

    On W ranks (equihand.train.launch; B equal on every rank) the keys are every rank's
    projections, gathered with gradients that reach the rank that made them
    (equihand.methods.collectives.gather_rows): this rank's 2B anchors against 2WB keys, the
    single-process loss of the concatenated batch split by anchors; DistributedDataParallel's
    gradient average makes the mean over ranks the global loss. On one rank the keys are z.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"expected two (B, D) batches of equal shape, got {z1.shape}, {z2.shape}")
    if z1.shape[0] == 0:
        raise ValueError("nt_xent needs at least one pair (B >= 1)")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b, world = z1.shape[0], collectives.world_size()
    n = world * b  # pairs in the global batch
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    keys = (
        z
        if world == 1
        else torch.cat([collectives.gather_rows(z[:b]), collectives.gather_rows(z[b:])])
    )
    logits = z @ keys.T / temperature  # (2B, 2n): all first views, then all second views
    idx = torch.arange(b, device=z.device) + collectives.rank() * b  # this rank's pairs
    own = torch.cat([idx, idx + n])  # each anchor's own column
    positives = torch.cat([idx + n, idx])  # its other view's column
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(2 * b, device=z.device), own] = True
    logits = logits.masked_fill(self_mask, float("-inf"))  # an anchor is never its own negative
    return F.cross_entropy(logits, positives)


def undo_geometry(
    points: torch.Tensor, angle: torch.Tensor, shift_frac: torch.Tensor
) -> torch.Tensor:
    """PeCLR's inverse of a view's geometric augmentation, applied in projection space.

    points: (B, P, 2) a projection read as P two-dimensional (x, y) points per sample.
    angle: (B,) radians the view was rotated by. shift_frac: (B, 2) the view's pixel shift
    (x, y) divided by the image size. Returns (B, P, 2).

    Forward model (what the augmentation is assumed to have done to the points)::

        rotate by +angle about the points' mean:   q = R(angle) (p - mean(p)) + mean(p)
        then translate in units of their extent:   q = q + shift_frac * (max(q) - min(q))

    with R(a) = [[cos a, -sin a], [sin a, cos a]] acting on (x, y) column vectors, i.e. the
    same matrix the augmentation applies to keypoint pixel coordinates. So ``angle`` must be
    the rotation of keypoint coordinates in this convention, whatever the image library calls it.

    Inverse, exactly as the PeCLR code orders it:

    1. undo translation: ``p - shift_frac[:, None, :] * range``, range (B, 1, 2) the per-axis
       max - min over the P points (translation leaves it unchanged);
    2. undo rotation: rotate by -angle about the points' mean (rotation about the mean leaves
       it unchanged).

    Range and mean are detached, as in the public code: they are treated as constants, so the
    gradient only flows through the points themselves. Scale (crop size) is not undone.
    """
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"points must be (B, P, 2), got {tuple(points.shape)}")
    b = points.shape[0]
    if angle.shape != (b,) or shift_frac.shape != (b, 2):
        raise ValueError(
            f"angle must be ({b},) and shift_frac ({b}, 2), "
            f"got {tuple(angle.shape)} and {tuple(shift_frac.shape)}"
        )
    angle = angle.to(points)
    shift_frac = shift_frac.to(points)

    fixed = points.detach()
    extent = fixed.amax(dim=1, keepdim=True) - fixed.amin(dim=1, keepdim=True)  # (B, 1, 2)
    points = points - shift_frac[:, None, :] * extent

    center = points.detach().mean(dim=1, keepdim=True)  # (B, 1, 2)
    cos, sin = torch.cos(-angle), torch.sin(-angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # R(-a)
    # Points are rows, so R p becomes p R^T.
    return (points - center) @ rot.transpose(1, 2) + center


def equivariant_projection(
    z: torch.Tensor, angle: torch.Tensor, shift_frac: torch.Tensor
) -> torch.Tensor:
    """PeCLR's projection: normalise z (B, D), read it as (B, D/2, 2) points, `undo_geometry`,
    flatten and normalise again. Returns (B, D) unit rows. D must be even."""
    if z.ndim != 2 or z.shape[1] % 2:
        raise ValueError(f"z must be (B, D) with even D, got {tuple(z.shape)}")
    b, d = z.shape
    points = F.normalize(z, dim=1).reshape(b, d // 2, 2)
    return F.normalize(undo_geometry(points, angle, shift_frac).reshape(b, d), dim=1)


def invariant(
    z1: torch.Tensor,
    z2: torch.Tensor,
    geom1: Geometry,
    geom2: Geometry,
    *,
    temperature: float,
    image_size: int,
) -> torch.Tensor:
    """SimCLR: NT-Xent on the projections as they are; the geometry is ignored."""
    return nt_xent(z1, z2, temperature)


def equivariant(
    z1: torch.Tensor,
    z2: torch.Tensor,
    geom1: Geometry,
    geom2: Geometry,
    *,
    temperature: float,
    image_size: int,
) -> torch.Tensor:
    """PeCLR (Spurr et al., ICCV 2021): undo each view's rotation and translation in projection
    space (`equivariant_projection`), then NT-Xent."""
    p1 = equivariant_projection(z1, geom1.angle, geom1.shift / image_size)
    p2 = equivariant_projection(z2, geom2.angle, geom2.shift / image_size)
    return nt_xent(p1, p2, temperature)


def mim(
    z1: None,
    z2: None,
    geom1: None,
    geom2: None,
    *,
    temperature: float,
    image_size: int,
    recon: Reconstruction,
) -> torch.Tensor:
    """Masked image modelling alone (equihand.methods.mim): the reconstruction loss, unweighted."""
    return mim_loss(recon)


def plus_mim(contrastive: Objective, name: str) -> Objective:
    """The objective `contrastive` + recon.weight x MIM, on one backbone."""

    def loss(
        z1: torch.Tensor,
        z2: torch.Tensor,
        geom1: Geometry,
        geom2: Geometry,
        *,
        temperature: float,
        image_size: int,
        recon: Reconstruction,
    ) -> torch.Tensor:
        c = contrastive(z1, z2, geom1, geom2, temperature=temperature, image_size=image_size)
        return c + recon.weight * mim_loss(recon)

    loss.__name__ = loss.__qualname__ = f"{contrastive.__name__}_mim"
    loss.__doc__ = f"{name} + recon.weight x MIM, on one backbone."
    return loss


invariant_mim = plus_mim(invariant, "SimCLR")
equivariant_mim = plus_mim(equivariant, "PeCLR")


def get_objective(name: str) -> vocabulary.ObjectiveEntry:
    """The objective registered under `name` (equihand.vocabulary), its loss imported to check
    it exists; ValueError naming the allowed ones otherwise."""
    entry = vocabulary.OBJECTIVES.get(name)
    if entry is None:
        allowed = ", ".join(vocabulary.pretraining_objectives())
        hint = " ('none' means no pretraining and has no loss)" if name == "none" else ""
        raise ValueError(f"unknown objective {name!r}{hint}; choose one of: {allowed}")
    entry.loss  # noqa: B018 -- fails here, naming the module, if the loss does not import
    return entry
