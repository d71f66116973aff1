"""The FreiHAND on-disk layout, shared by the synthetic writer, the downloader and the loader.

A dataset root holds, for each split ``training`` and ``evaluation``:

- ``<split>/rgb/%08d.jpg``: RGB images (FreiHAND: 224x224). FreiHAND's training set has four
  versions of every annotated sample: image ``i`` has annotation ``i % n_annotations``.
- ``<split>_xyz.json``: list of 21x3 joint positions, camera frame, metres.
- ``<split>_K.json``: list of 3x3 pinhole intrinsics (pixels).
- ``<split>_scale.json``: list of ||xyz[9] - xyz[10]|| (middle-finger MCP-PIP bone), metres.

Extra labels that only the synthetic set has (all optional for a reader):

- ``<split>_gesture.json``: list of gesture class ids (names in ``synth_meta.json``).
- ``<split>_hand_id.json``: list of hand identity ids (identities never straddle train/eval).
- ``<split>_visibility.json``: list of 21 0/1 flags (joint not hidden by the hand itself).
- ``<split>_uv.json``: list of 21x2 projected joint positions in pixels (u right, v down).
- ``<split>/parts/%08d.png``: uint8 label map, values index PART_NAMES (0 background, 1 palm,
  2-6 thumb..pinky, 7 forearm).
- ``synth_meta.json``: gesture and part names, image size, seed, generator version.

Joint order (FreiHAND): 0 wrist; 1-4 thumb (MCP, PIP, DIP, tip); 5-8 index; 9-12 middle;
13-16 ring; 17-20 pinky, each finger from base to tip.
"""

from __future__ import annotations

from pathlib import Path

SPLITS = ("training", "evaluation")
N_JOINTS = 21
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
JOINT_NAMES = (
    "wrist",
    *(f"{finger}_{part}" for finger in FINGERS for part in ("mcp", "pip", "dip", "tip")),
)
# (parent, child) joint pairs: the kinematic tree's 20 bones
BONES = tuple(
    (0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)
)
SCALE_BONE = (9, 10)  # the reference bone FreiHAND's *_scale.json measures
PART_NAMES = ("background", "palm", *FINGERS, "forearm")
UNKNOWN_PART = 255  # parts.npy value in a split that has no part masks


def image_path(root: str | Path, split: str, index: int) -> Path:
    return Path(root) / split / "rgb" / f"{index:08d}.jpg"


def parts_path(root: str | Path, split: str, index: int) -> Path:
    return Path(root) / split / "parts" / f"{index:08d}.png"


def annotation_path(root: str | Path, split: str, key: str) -> Path:
    """Path of ``<split>_<key>.json`` (key: xyz, K, scale, gesture, hand_id, visibility, uv)."""
    return Path(root) / f"{split}_{key}.json"
