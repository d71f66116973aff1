"""Skeletons drawn over images: the synthetic dataset's contact sheet and the qualitative grid of
`equihand evaluate` (true skeleton white, predicted in colour)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from equihand.data import hand_model as hm
from equihand.data.layout import BONES, annotation_path, image_path, parts_path

FINGER_COLOURS = [(255, 60, 60), (255, 170, 0), (60, 200, 60), (0, 160, 255), (200, 80, 255)]


def draw_skeleton(image: Image.Image, uv: np.ndarray, vis: np.ndarray | None = None) -> None:
    """Draw the 21-joint skeleton over `image` (in place); hidden joints as hollow circles."""
    draw = ImageDraw.Draw(image)
    r = max(1, image.width // 110)
    for parent, child in BONES:
        colour = FINGER_COLOURS[(child - 1) // 4]
        draw.line([tuple(uv[parent]), tuple(uv[child])], fill=colour, width=max(1, r // 2 + 1))
    for j, (u, v) in enumerate(uv):
        colour = (255, 255, 255) if j == 0 else FINGER_COLOURS[(j - 1) // 4]
        hidden = vis is not None and not vis[j]
        draw.ellipse([u - r, v - r, u + r, v + r], outline=colour, fill=None if hidden else colour)


def contact_sheet(root: Path, out: Path, n: int = 24, split: str = "training") -> Path:
    """A grid of samples: the image, the image with its projected skeleton, and its part mask."""
    uv = json.loads(annotation_path(root, split, "uv").read_text())
    vis = json.loads(annotation_path(root, split, "visibility").read_text())
    gestures = json.loads(annotation_path(root, split, "gesture").read_text())
    n = min(n, len(uv))
    tiles = []
    palette = np.array(
        [[0, 0, 0], [230, 200, 170], *FINGER_COLOURS, [120, 120, 120]], dtype=np.uint8
    )
    for i in range(n):
        img = Image.open(image_path(root, split, i)).convert("RGB")
        skel = img.copy()
        draw_skeleton(skel, np.asarray(uv[i]), np.asarray(vis[i], dtype=bool))
        ImageDraw.Draw(skel).text((3, 2), hm.GESTURE_NAMES[gestures[i]], fill=(255, 255, 255))
        parts = Image.fromarray(palette[np.asarray(Image.open(parts_path(root, split, i)))])
        tiles.append((img, skel, parts))
    w = tiles[0][0].width
    cols = 4
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * 3 * w + (cols - 1) * 6, rows * w), (255, 255, 255))
    for k, triple in enumerate(tiles):
        x0 = (k % cols) * (3 * w + 6)
        for j, tile in enumerate(triple):
            sheet.paste(tile, (x0 + j * w, (k // cols) * w))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


GRID_TILE_PX = 160


def qualitative_grid(images: np.ndarray, uv_true, uv_pred, scale_px: float) -> Image.Image:
    """Tiles of (image, true skeleton in white, predicted skeleton in colour)."""
    n = len(images)
    cols = 4
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * GRID_TILE_PX, rows * GRID_TILE_PX), "white")
    for k in range(n):
        tile = Image.fromarray(images[k]).resize((GRID_TILE_PX, GRID_TILE_PX), Image.BILINEAR)
        draw = ImageDraw.Draw(tile)
        true = (np.asarray(uv_true[k]) + 0.5) * scale_px - 0.5
        for parent, child in BONES:
            draw.line([tuple(true[parent]), tuple(true[child])], fill=(255, 255, 255), width=3)
        draw_skeleton(tile, (np.asarray(uv_pred[k]) + 0.5) * scale_px - 0.5)
        sheet.paste(tile, ((k % cols) * GRID_TILE_PX, (k // cols) * GRID_TILE_PX))
    return sheet
