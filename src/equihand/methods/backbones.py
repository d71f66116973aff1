"""The encoder: a torchvision ResNet or RegNet (random or ImageNet initialisation) and moving its
weights between models.

- ``Encoder``: images in [0, 1] (B, 3, H, W) -> global-average-pooled features (B, d). The
  ImageNet mean/std normalisation happens inside (a non-persistent buffer), so data loading and
  augmentation stay in [0, 1]. d = 512 for resnet18/34, 2048 for resnet50/101/152, 400 for
  regnet_x_400mf (a cheaper encoder for CPU studies: docs/study.md).
- ``backbone_state`` / ``load_backbone_state`` move the encoder weights of a pretraining model
  into a pose model (strictly; a mismatch names both backbones).
"""

from __future__ import annotations

import functools
import os
import pickle
import re
from pathlib import Path

import torch
import torchvision
from torch import nn

from equihand.errors import UserError

# ResNet name -> (blocks per stage, bottleneck blocks)
RESNETS = {
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
    "resnet101": ((3, 4, 23, 3), True),
    "resnet152": ((3, 8, 36, 3), True),
}
REGNETS = ("regnet_x_400mf",)
# backbone name -> pooled feature dimension
BACKBONES = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
    "resnet152": 2048,
    "regnet_x_400mf": 400,
}
INITS = ("random", "imagenet")
ENCODER_STRIDE = 32  # a ResNet's or RegNet's last feature map is 1/32 of the image side
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """torchvision's DEFAULT ImageNet weights of `name`, from the torch hub cache or the network."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as e:
        # OSError covers urllib's URLError/HTTPError, ssl and socket errors and unreadable files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        filename = os.path.basename(weights.url)
        target = Path(torch.hub.get_dir()) / "checkpoints" / filename
        raise UserError(
            f"model.init=imagenet: could not load torchvision's ImageNet weights for {name} "
            f"({type(e).__name__}: {reason}). Without a network connection, download {weights.url} "
            f"elsewhere and put it at {target} (the torch hub cache; set TORCH_HOME to use another "
            f"folder's hub/checkpoints), or use model.init=random"
        ) from None


def build_backbone(name: str, init: str = "random") -> tuple[nn.Module, int]:
    """A torchvision ResNet or RegNet with ``fc = Identity`` (pooled features) and its feature
    dimension."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    if init not in INITS:
        raise UserError(f"unknown backbone init {init!r}; expected one of {', '.join(INITS)}")
    state = _imagenet_state(name) if init == "imagenet" else None  # fail before building
    net = torchvision.models.get_model(name, weights=None)
    if state is not None:
        net.load_state_dict(state)
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, feature_dim


class Encoder(nn.Module):
    """Images in [0, 1] (B, 3, H, W) -> features (B, feature_dim)."""

    def __init__(self, name: str = "resnet18", init: str = "random"):
        super().__init__()
        self.backbone_name = name
        self.backbone, self.feature_dim = build_backbone(name, init)
        # constants, not weights: kept out of the state dict
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone((images - self.mean) / self.std)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> the last stage's map (B, feature_dim, ~H/32, ~W/32), unpooled."""
        net = self.backbone
        x = (images - self.mean) / self.std
        if self.backbone_name in REGNETS:
            return net.trunk_output(net.stem(x))
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))


# --- moving encoder weights between models ------------------------------------------------------


def _get_encoder(model: nn.Module) -> Encoder:
    if isinstance(model, Encoder):
        return model
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"{type(model).__name__} has no equihand Encoder")
    return encoder


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The backbone weights (state dict, no fc) of a model, an encoder, or a pose model."""
    return {k: v.detach().clone() for k, v in _get_encoder(model).backbone.state_dict().items()}


def _backbone_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone entries of a whole-model, encoder or backbone state dict, unprefixed."""
    for prefix in ("encoder.backbone.", "backbone."):
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    # a plain backbone state dict (torchvision's own carries a classifier we do not use)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if not k.startswith("fc.")}


@functools.cache
def _regnet_shapes(name: str) -> dict[str, tuple[int, ...]]:
    # built for real: torchvision's RegNet initialisation cannot run on the meta device
    return _shapes(torchvision.models.get_model(name, weights=None).state_dict())


def _describe_regnet(state: dict[str, torch.Tensor]) -> str:
    """The RegNet name whose parameters (names and shapes) `state` holds, or "an unknown RegNet"."""
    shapes = _shapes(state)
    for name in REGNETS:
        if _regnet_shapes(name) == shapes:
            return name
    return "an unknown RegNet"


def describe_backbone(state: dict[str, torch.Tensor]) -> str:
    """The backbone name a ResNet or RegNet state dict matches, or a description of what it
    holds."""
    if any(k.startswith("trunk_output.") for k in state):
        return _describe_regnet(state)
    blocks = []
    for stage in range(1, 5):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(len(found))
    bottleneck = any(".conv3." in k for k in state)
    for name, (layout, bottle) in RESNETS.items():
        if tuple(blocks) == layout and bottle == bottleneck:
            return name
    if not any(blocks):
        return "no ResNet or RegNet weights"
    kind = "bottleneck" if bottleneck else "basic"
    return f"an unknown ResNet ({kind} blocks {blocks})"


def backbone_of(state: dict[str, torch.Tensor]) -> str:
    """The backbone name the encoder weights of a (whole-model) state dict match, or what they
    hold (describe_backbone)."""
    return describe_backbone(_backbone_keys(state))


def load_backbone_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load backbone weights into `model`'s encoder, strictly.

    `state` is ``backbone_state(...)``, an encoder's state dict, or a whole model's state dict
    (e.g. a pretraining checkpoint's ``model``: its ``encoder.backbone.*`` entries are used and
    the projection head is ignored). Raises UserError naming both backbones on a mismatch.
    """
    encoder = _get_encoder(model)
    weights = _backbone_keys(state)
    found = describe_backbone(weights)
    if found != encoder.backbone_name:
        raise UserError(
            f"the weights hold {found}, but the model's backbone is {encoder.backbone_name}: "
            "pretrain and finetune with the same model.backbone"
        )
    try:
        encoder.backbone.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        if len(detail) > 600:
            detail = detail[:600] + " ..."
        raise UserError(
            f"the {found} weights do not fit the model's {encoder.backbone_name} backbone: {detail}"
        ) from None
