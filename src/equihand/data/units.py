"""Unit checks: recognise lengths given in centimetres or millimetres where metres belong.

FreiHAND stores every length in metres. A file written in another metric unit is off by a factor
of 100 or 1000 from what it should be; `suspected_factor` recognises such a factor in a ratio of
two lengths that should agree (a prediction's hand size against the ground truth's, xyz's bone
against ``*_scale.json``), so the error can name the unit it suspects.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from equihand.data.layout import SCALE_BONE
from equihand.errors import DataError

UNITS = {100: "centimetres", 1000: "millimetres"}  # factor from metres -> unit name
TOLERANCE = 10**0.25  # a ratio within this factor (~1.78x) of 100 or 1000 counts as that unit
TYPICAL_BONE_M = 0.04  # FreiHAND's scale bone (middle finger MCP-PIP), about 4 cm on an adult
MAX_BONE_M = 0.5  # no finger bone is this long in metres; a median above it means another unit
MAX_BONE_RATIO = 2.0  # xyz's bone / scale beyond this factor either way: not the same bone


def suspected_factor(ratio: float) -> int | None:
    """100 or 1000 (or -100, -1000: the other way round) when `ratio` is that near, else None.

    A positive factor f says the numerator looks f times too large (in cm or mm where the
    denominator is in metres); a negative one says the denominator does.
    """
    if not math.isfinite(ratio) or ratio <= 0:
        return None
    for factor in UNITS:
        if abs(math.log10(ratio) - math.log10(factor)) < math.log10(TOLERANCE):
            return factor
        if abs(math.log10(ratio) + math.log10(factor)) < math.log10(TOLERANCE):
            return -factor
    return None


def unit_of(factor: int) -> str:
    """The unit name a factor from `suspected_factor` stands for ("centimetres", ...)."""
    return UNITS[abs(factor)]


def check_scale_bone(xyz: np.ndarray, scale: np.ndarray, xyz_path: Path, scale_path: Path) -> None:
    """Refuse joints and ``*_scale.json`` that are not both in metres (DataError naming files).

    FreiHAND's scale is ``||xyz[9] - xyz[10]||``; the median ratio of the two tells whether one
    of them is in another unit, and the median bone length whether both are.
    """
    bone = np.linalg.norm(xyz[:, SCALE_BONE[0]] - xyz[:, SCALE_BONE[1]], axis=-1)
    ratio = float(np.median(bone / scale))
    if (factor := suspected_factor(ratio)) is not None:
        odd, other = (xyz_path, scale_path) if factor > 0 else (scale_path, xyz_path)
        raise DataError(
            f"{odd}: looks like {unit_of(factor)}: its lengths are about {abs(factor)}x those of "
            f"{other.name} (median ||xyz[9] - xyz[10]|| / scale = {ratio:.4g}); FreiHAND stores "
            f"both in metres"
        )
    if not 1 / MAX_BONE_RATIO <= ratio <= MAX_BONE_RATIO:
        raise DataError(
            f"{scale_path}: expected the length of the bone between joints {SCALE_BONE[0]} and "
            f"{SCALE_BONE[1]} of {xyz_path.name}, in metres; the median ratio bone / scale is "
            f"{ratio:.4g}"
        )
    median = float(np.median(scale))
    if median > MAX_BONE_M:
        factor = min(UNITS, key=lambda f: abs(math.log10(median / TYPICAL_BONE_M / f)))
        raise DataError(
            f"{xyz_path} and {scale_path}: look like {UNITS[factor]} (median scale bone "
            f"{median:.4g}; a hand's is about {TYPICAL_BONE_M} m, never {MAX_BONE_M} m); "
            f"FreiHAND stores both in metres (divide by {factor})"
        )
