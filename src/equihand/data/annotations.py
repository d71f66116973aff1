"""The annotation files of a FreiHAND-layout dataset, checked: <split>_xyz.json, _K.json and
_scale.json (required), _gesture, _hand_id, _visibility and _uv.json (optional), and the
synthetic dataset's synth_meta.json. Every error names the file and the first bad entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from equihand.data.layout import N_JOINTS, annotation_path
from equihand.data.units import check_scale_bone
from equihand.errors import DataError

UV_TOLERANCE_PX = 1.0  # a provided <split>_uv.json must agree with the projection of xyz by K


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "a single number"


def _describe(item) -> str:
    try:
        return _shape_text(np.asarray(item, dtype=np.float64).shape)
    except (ValueError, TypeError):
        return f"a ragged or non-numeric value ({str(item)[:40]})"


def _read_json_list(path: Path) -> list:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: missing (required by the FreiHAND layout)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list, got {type(data).__name__}")
    return data


def _numeric_array(path: Path, data: list, shape: tuple[int, ...]) -> np.ndarray:
    """`data` as finite float64 (len(data), *shape), or a DataError naming the first bad entry."""
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.shape != (len(data), *shape):
        want = _shape_text(shape) + (" numbers" if shape else "")
        for i, item in enumerate(data):
            got = _describe(item)
            if got != _shape_text(shape):
                raise DataError(f"{path}[{i}]: expected {want}, got {got}")
        raise DataError(f"{path}: expected a list of {want}")  # pragma: no cover
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{path}[{i}]: expected finite numbers, got {data[i]}")
    return arr


def _int_array(path: Path, data: list, minimum: int, maximum: int | None = None) -> np.ndarray:
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise DataError(f"{path}[{i}]: expected an integer >= {minimum}, got {v!r}")
        if maximum is not None and v > maximum:
            raise DataError(f"{path}[{i}]: expected an integer <= {maximum}, got {v!r}")
    return np.asarray(data, dtype=np.int64).reshape(len(data))


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def project(xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection: uv = (K @ xyz^T)^T divided by its third coordinate; (..., 21, 2)."""
    p = np.einsum("...ij,...kj->...ki", K, xyz)
    return p[..., :2] / p[..., 2:]


def load_annotations(root: Path, split: str, gesture_names: list[str] | None = None) -> dict:
    """Read and check one split's JSON annotations; returns float64/int64 arrays per key."""
    paths = {key: annotation_path(root, split, key) for key in ("xyz", "K", "scale")}
    lists = {key: _read_json_list(p) for key, p in paths.items()}
    n = len(lists["xyz"])
    if n == 0:
        raise DataError(f"{paths['xyz']}: expected at least one annotation, got an empty list")
    for key in ("K", "scale"):
        if len(lists[key]) != n:
            raise DataError(
                f"{paths[key]}: expected {n} entries (as many as {paths['xyz'].name}), "
                f"got {len(lists[key])}"
            )
    xyz = _numeric_array(paths["xyz"], lists["xyz"], (N_JOINTS, 3))
    bad = (xyz[..., 2] <= 0).any(axis=1)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(
            f"{paths['xyz']}[{i}]: expected every joint in front of the camera (z > 0), "
            f"got z = {xyz[i, :, 2].min():.4g} m"
        )
    K = _numeric_array(paths["K"], lists["K"], (3, 3))
    bad = (K[:, 0, 0] <= 0) | (K[:, 1, 1] <= 0)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(
            f"{paths['K']}[{i}]: expected positive focal lengths, "
            f"got fx = {K[i, 0, 0]:.4g}, fy = {K[i, 1, 1]:.4g}"
        )
    bad = np.abs(K[:, 2] - np.array([0.0, 0.0, 1.0])).max(axis=1) > 1e-6
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{paths['K']}[{i}]: expected last row [0, 0, 1], got {K[i, 2]}")
    scale = _numeric_array(paths["scale"], lists["scale"], ())
    bad = scale <= 0
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{paths['scale']}[{i}]: expected a positive scale, got {scale[i]}")
    check_scale_bone(xyz, scale, paths["xyz"], paths["scale"])
    ann = {"n": n, "xyz": xyz, "K": K, "scale": scale}

    def optional(key: str) -> tuple[Path, list] | None:
        path = annotation_path(root, split, key)
        if not path.exists():
            return None
        data = _read_json_list(path)
        if len(data) != n:
            raise DataError(
                f"{path}: expected {n} entries (as many as {paths['xyz'].name}), got {len(data)}"
            )
        return path, data

    if (found := optional("gesture")) is not None:
        top = len(gesture_names) - 1 if gesture_names else None
        ann["gesture"] = _int_array(*found, minimum=0, maximum=top)
    if (found := optional("hand_id")) is not None:
        ann["hand_id"] = _int_array(*found, minimum=0)
    if (found := optional("visibility")) is not None:
        vis = _numeric_array(*found, (N_JOINTS,))
        bad = ((vis != 0) & (vis != 1)).any(axis=1)
        if bad.any():
            i = _first_bad(bad)
            raise DataError(f"{found[0]}[{i}]: expected 21 flags 0 or 1, got {found[1][i]}")
        ann["visibility"] = vis.astype(bool)
    if (found := optional("uv")) is not None:
        uv = _numeric_array(*found, (N_JOINTS, 2))
        err = np.abs(uv - project(xyz, K)).max(axis=(1, 2))
        bad = err > UV_TOLERANCE_PX
        if bad.any():
            i = _first_bad(bad)
            raise DataError(
                f"{found[0]}[{i}]: expected the projection of {paths['xyz'].name}[{i}] by "
                f"{paths['K'].name}[{i}] (within {UV_TOLERANCE_PX} px), differs by {err[i]:.3g} px"
            )
    return ann


def read_synth_meta(root: Path) -> dict:
    path = root / "synth_meta.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def synth_names(meta: dict, key: str, path: Path) -> list[str] | None:
    names = meta.get(key)
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise DataError(f"{path}: expected '{key}' to be a list of names, got {names!r}")
    return names
