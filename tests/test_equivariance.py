"""The augmentation's recorded geometry and PeCLR's inverse transform use the same conventions:
undoing a view's geometry in "projection space" recovers points moved exactly like keypoints."""

from __future__ import annotations

import math

import torch

from equihand.methods import geometry, objectives

SIZE = 64
CENTRE = (SIZE - 1) / 2


def _square(side: float) -> torch.Tensor:
    """Corners and edge midpoints of a square centred on the image centre, (1, 8, 2) pixels."""
    h = side / 2
    offsets = [(-h, -h), (h, -h), (h, h), (-h, h), (0, -h), (h, 0), (0, h), (-h, 0)]
    return torch.tensor([[(CENTRE + x, CENTRE + y) for x, y in offsets]], dtype=torch.float64)


def test_undoing_a_rotation_recovers_the_keypoints():
    points = _square(20.0)
    for degrees in (30.0, -50.0):
        geom = geometry.make_geometry(
            torch.tensor([math.radians(degrees)]), torch.ones(1), torch.zeros(1, 2), SIZE
        )
        moved = geometry.transform_points(geom.matrix.double(), points)
        assert not torch.allclose(moved, points, atol=1e-3)
        undone = objectives.undo_geometry(moved, geom.angle.double(), geom.shift.double() / SIZE)
        assert torch.allclose(undone, points, atol=1e-6)


def test_undoing_a_shift_recovers_the_keypoints():
    # PeCLR scales the shift by the points' range: with a range of exactly the image size the
    # undo is exact in pixels.
    points = _square(float(SIZE))
    geom = geometry.make_geometry(torch.zeros(1), torch.ones(1), torch.tensor([[5.0, -7.0]]), SIZE)
    moved = geometry.transform_points(geom.matrix.double(), points)
    undone = objectives.undo_geometry(moved, geom.angle.double(), geom.shift.double() / SIZE)
    assert torch.allclose(undone, points, atol=1e-6)
