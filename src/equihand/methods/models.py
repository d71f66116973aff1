"""Heads and the models assembled from an encoder (equihand.methods.backbones) and them.

- ``ProjectionHead``: Linear(d, 512) -> BatchNorm1d -> ReLU -> Linear(512, 128, bias=False), as
  PeCLR; the objective (equihand.methods.objectives) normalises and reads it as 2D points.
- ``PoseHead``: Linear(d, 21 * 3) -> ``uv_norm`` (B, 21, 2) and ``zr`` (B, 21). ``uv_norm`` is the
  joint's pixel position normalised to the image, pixel = (uv_norm + 1) * size / 2 - 0.5
  (pixel-centre convention: -1 and +1 are the outer edges of the border pixels; see
  equihand.methods.pose.uv_to_norm / norm_to_uv); ``zr`` is the root-relative depth in
  reference-bone units (equihand.methods.pose.to_25d), turned into 3D by
  equihand.methods.pose.from_25d.
- ``ContrastiveModel(encoder, projection)``: images -> projection (B, projection_dim), pretraining.
- ``PixelDecoder``: SimMIM's light decoder, feature map (B, d, h, w) -> image (B, 3, 32h, 32w);
  ``MaskedModel(encoder, decoder, projection=None)`` pretrains with masked image modelling
  (equihand.methods.mim), alone or beside a contrastive objective on the same backbone.
- ``RootRefiner``: PeCLR's learned root depth (``RN_25D_wMLPref``; Spurr et al., ECCV 2020). The
  closed-form root depth (equihand.methods.pose.root_depth) of the predicted 2.5D, clamped to a
  plausible range recorded from the labeled training set (a buffer, so it travels in the
  checkpoint), plus a correction by an MLP (Linear-BN-LeakyReLU x2 -> 1) reading the 21 relative
  depths, the 42 normalised ray coordinates (x, y) of K^-1 (u, v, 1) of the predicted 2D joints
  (the root's, then the others' relative to it) and the clamped closed form; its output is in
  units of the clamp range's half-width (docs/study.md "Root refinement" says why both). Its
  inputs are detached: the root-depth loss trains the MLP only, never the head or the encoder,
  which train exactly as without it. The 3D still changes beyond its placement: by perspective
  the recovered shape depends on the root depth, so PA-EPE moves a little too. The last layer
  starts at zero: an untrained refiner returns the clamped closed form.
- ``PoseModel(encoder, head, refiner=None)``: ``model(images, K=None)`` -> dict(uv_norm, zr,
  features), finetuning; with a refiner and the images' intrinsics K (B, 3, 3) also ``root``
  (refined) and ``root_closed`` (clamped closed form), (B,) in reference-bone units. A dict, so
  that new outputs do not change the signature.

Every model accepts channels_last input and runs under ``torch.autocast`` (heads then return the
autocast dtype; callers cast to float).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from equihand.data.layout import N_JOINTS
from equihand.methods import pose
from equihand.methods.backbones import ENCODER_STRIDE, Encoder


class ProjectionHead(nn.Sequential):
    """PeCLR's projection: Linear -> BatchNorm1d -> ReLU -> Linear(bias=False)."""

    def __init__(self, in_dim: int, hidden: int = 512, out: int = 128):
        super().__init__(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out, bias=False),
        )


class PoseHead(nn.Module):
    """Features (B, d) -> dict(uv_norm (B, J, 2) in about [-1, 1], zr (B, J)), one Linear."""

    def __init__(self, in_dim: int, n_joints: int = N_JOINTS):
        super().__init__()
        self.n_joints = n_joints
        self.linear = nn.Linear(in_dim, n_joints * 3)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(features).view(-1, self.n_joints, 3)
        return {"uv_norm": out[..., :2], "zr": out[..., 2]}


class ContrastiveModel(nn.Module):
    """Encoder + projection head for pretraining: images -> projection (B, projection_dim)."""

    def __init__(self, encoder: Encoder, projection: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.projection = projection

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(images))


class PixelDecoder(nn.Sequential):
    """SimMIM's decoder: a 1x1 conv to 3 * stride^2 channels per location, then pixel shuffle,
    so a (B, d, h, w) map becomes a (B, 3, h * stride, w * stride) image."""

    def __init__(self, in_dim: int, stride: int = ENCODER_STRIDE):
        super().__init__(nn.Conv2d(in_dim, 3 * stride * stride, 1), nn.PixelShuffle(stride))


class MaskedModel(nn.Module):
    """Encoder + pixel decoder (+ projection head when the objective is also contrastive).

    ``forward(masked, views=None)``: one backbone pass over ``cat(views, masked)``; returns
    dict(pred (B, 3, H, W) = the decoder's reconstruction of the B masked images, and, when
    `views` (2B, 3, H, W) is given, z (2B, projection_dim) = their pooled features projected).
    One pass means the backbone's BatchNorm statistics mix unmasked and masked images; the
    projection head's BatchNorm sees only the unmasked views.
    """

    def __init__(
        self, encoder: Encoder, decoder: PixelDecoder, projection: nn.Module | None = None
    ):
        super().__init__()
        self.encoder = encoder
        self.projection = projection
        self.decoder = decoder

    def forward(
        self, masked: torch.Tensor, views: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        if views is None:
            return {"pred": self.decoder(self.encoder.feature_map(masked))}
        if self.projection is None:
            raise ValueError("this MaskedModel has no projection head; pass only masked images")
        maps = self.encoder.feature_map(torch.cat([views, masked]))
        n = views.shape[0]
        z = self.projection(maps[:n].mean(dim=(2, 3)))
        return {"pred": self.decoder(maps[n:]), "z": z}


class RootRefiner(nn.Module):
    """(uv_norm, zr, K) of a 2.5D prediction -> dict(root, root_closed) (B,), bone units.

    `depth_range` (low, high) clamps the closed form; left out, it is NaN until set with
    ``set_range`` or loaded with a state dict (finetuning records it from the labeled set).
    Runs in float32 even under autocast (it is tiny, and depths of ~10-50 bone units would lose
    about 0.3% to bf16).
    """

    def __init__(
        self,
        n_joints: int = N_JOINTS,
        hidden: int = 128,
        depth_range: tuple[float, float] | None = None,
    ):
        super().__init__()
        self.n_joints = n_joints
        self.mlp = nn.Sequential(
            nn.Linear(3 * n_joints + 1, hidden),
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, 1),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("depth_range", torch.full((2,), math.nan))
        if depth_range is not None:
            self.set_range(*depth_range)

    def set_range(self, low: float, high: float) -> None:
        if not 0 < low < high or not math.isfinite(high):
            raise ValueError(f"root depth range needs 0 < low < high, got ({low}, {high})")
        self.depth_range.copy_(torch.tensor([low, high]))

    def forward(
        self, uv_norm: torch.Tensor, zr: torch.Tensor, K: torch.Tensor, size: tuple[int, int]
    ) -> dict[str, torch.Tensor]:
        with torch.autocast(uv_norm.device.type, enabled=False):
            zr = zr.detach().float()
            uv = pose.norm_to_uv(uv_norm.detach().float(), size)
            r = pose.rays(uv, K.to(device=uv.device, dtype=torch.float32))
            closed = pose.root_depth(r, zr).clamp(self.depth_range[0], self.depth_range[1])
            xy = r[..., :2]  # the root's ray, then every other joint's relative to it
            xy = torch.cat([xy[:, :1], xy[:, 1:] - xy[:, :1]], dim=1)
            x = torch.cat([zr, xy.flatten(1), closed[:, None]], dim=1)
            # the MLP's output is in units of the range's half-width: O(1) for the optimiser
            # (in bone units an Adam step of ~lr moves a correction of several units too slowly)
            half_width = (self.depth_range[1] - self.depth_range[0]) / 2
            root = closed + half_width * self.mlp(x).squeeze(1)
        return {"root": root, "root_closed": closed}


class PoseModel(nn.Module):
    """Encoder + 2.5D pose head (+ root refiner): images (and their intrinsics K) ->
    dict(uv_norm (B, J, 2), zr (B, J), features (B, d)[, root (B,), root_closed (B,)])."""

    def __init__(self, encoder: Encoder, head: PoseHead, refiner: RootRefiner | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.refiner = refiner

    def forward(
        self, images: torch.Tensor, K: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        features = self.encoder(images)
        out = {**self.head(features), "features": features}
        if self.refiner is not None and K is not None:
            size = (images.shape[-1], images.shape[-2])  # (width, height)
            out.update(self.refiner(out["uv_norm"], out["zr"], K, size))
        return out


def _encoder(model_cfg: dict) -> Encoder:
    return Encoder(model_cfg.get("backbone", "resnet18"), model_cfg.get("init", "random"))


def _projection(encoder: Encoder, model_cfg: dict) -> ProjectionHead:
    return ProjectionHead(
        encoder.feature_dim,
        model_cfg.get("projection_hidden", 512),
        model_cfg.get("projection_dim", 128),
    )


def build_contrastive_model(model_cfg: dict) -> ContrastiveModel:
    """The pretraining model of a config's ``model`` section."""
    encoder = _encoder(model_cfg)
    return ContrastiveModel(encoder, _projection(encoder, model_cfg))


def build_masked_model(model_cfg: dict, contrastive: bool) -> MaskedModel:
    """The masked-image-modelling pretraining model; with a projection head if `contrastive`.

    Built in the same order as `build_contrastive_model` (encoder, projection, then decoder), so
    with the same seed the encoder and projection start from the same weights as that model's.
    """
    encoder = _encoder(model_cfg)
    projection = _projection(encoder, model_cfg) if contrastive else None
    return MaskedModel(encoder, PixelDecoder(encoder.feature_dim), projection)


def build_pose_model(model_cfg: dict, root_range: tuple[float, float] | None = None) -> PoseModel:
    """The finetuning model of a config's ``model`` section.

    With ``model.root_refine`` it has a RootRefiner clamping to `root_range` (bone units; None
    leaves it unset, for a model whose state dict is loaded next). A config without the key
    (checkpoints written before it existed) builds no refiner, whatever the schema's default:
    such checkpoints hold none. The refiner is built after the encoder and head, so those start
    from the same weights with and without it.
    """
    encoder = _encoder(model_cfg)
    head = PoseHead(encoder.feature_dim)
    refiner = None
    if model_cfg.get("root_refine", False):
        refiner = RootRefiner(hidden=model_cfg["root_refine_hidden"], depth_range=root_range)
    return PoseModel(encoder, head, refiner)
