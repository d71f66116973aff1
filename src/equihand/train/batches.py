"""Batches of the prepared cache on the training device: images as float tensors, the label
arrays as tensors, and a pose model's predictions for cache rows (finetuning's validation and
`equihand evaluate`)."""

from __future__ import annotations

import numpy as np
import torch

from equihand.data.cache import PreparedData
from equihand.methods import augment, pose
from equihand.train.runtime import autocast


def load_images(images, positions: np.ndarray, device: torch.device, channels_last: bool):
    """uint8 rows of the cache (a memory map or a RowReader) -> float (B, 3, H, W) in [0, 1] on
    `device`."""
    batch = torch.from_numpy(np.ascontiguousarray(images[positions])).to(device, non_blocking=True)
    out = augment.to_float(batch)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out.contiguous()


class Labels:
    """The label arrays of a cache, as float32 tensors on the CPU."""

    def __init__(self, data: PreparedData):
        self.uv = torch.from_numpy(np.array(data.uv, dtype=np.float32))
        self.xyz = torch.from_numpy(np.array(data.xyz, dtype=np.float32))
        self.K = torch.from_numpy(np.array(data.K, dtype=np.float32))
        self.scale = torch.from_numpy(np.array(data.scale, dtype=np.float32))
        _, self.zr = pose.to_25d(self.xyz, self.K, self.scale)
        self.root = pose.true_root_depth(self.xyz, self.scale)  # bone units


@torch.no_grad()
def predict(model, images, rows, labels: Labels, device, config, batch_size):
    """Predicted 2D joints (N, 21, 2) in cache pixels and 3D joints (N, 21, 3) in metres for
    cache rows, without augmentation (3D from the 2.5D output with each row's K and scale)."""
    model.eval()
    size = images.shape[1]
    uvs, xyzs = [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = load_images(images, chunk, device, config["train"]["channels_last"])
        idx = torch.from_numpy(chunk)
        K = labels.K[idx]
        with autocast(device, config["train"]):
            pred = model(batch, K.to(device))
        uv = pose.norm_to_uv(pred["uv_norm"].float().cpu(), size)
        root = pred["root"].float().cpu() if "root" in pred else None  # else the closed form
        uvs.append(uv)
        xyzs.append(pose.from_25d(uv, pred["zr"].float().cpu(), K, labels.scale[idx], root))
    return torch.cat(uvs), torch.cat(xyzs)


def predict_xyz(model, images, rows, labels: Labels, device, config, batch_size):
    return predict(model, images, rows, labels, device, config, batch_size)[1]
