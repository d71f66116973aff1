"""The synthetic hand dataset: kinematic model, rasteriser, written annotations, determinism,
atomicity, contact sheet and the `equihand synth` command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from equihand import cli
from equihand.config import load_config
from equihand.data import hand_model as hm
from equihand.data import render, scene, synth
from equihand.data.drawing import contact_sheet
from equihand.data.layout import (
    BONES,
    FINGERS,
    N_JOINTS,
    PART_NAMES,
    SCALE_BONE,
    annotation_path,
    image_path,
    parts_path,
)

PART_ID = {name: i for i, name in enumerate(PART_NAMES)}
TIPS = [4 + 4 * f for f in range(5)]  # thumb..pinky tips
BASES = [1 + 4 * f for f in range(5)]  # first joint of every finger (thumb CMC, finger MCPs)
KEYS = ("xyz", "K", "scale", "uv", "visibility", "gesture", "hand_id")


def _gesture(name: str) -> tuple[np.ndarray, np.ndarray]:
    g = hm.GESTURES[name]
    return np.asarray(g["fingers"], dtype=float), np.asarray(g["thumb"], dtype=float)


def _fk(name: str, shape: hm.HandShape | None = None) -> np.ndarray:
    return hm.forward_kinematics(*_gesture(name), shape)


def _cfg(**synth_keys) -> dict:
    # uniform 3D orientations (not the recipe's upright hands), as these tests were written for
    base = {"n_train": 12, "n_eval": 4, "image_size": 64, "workers": 1, "roll_deg": 180.0,
            "tilt_deg": 180.0}  # fmt: skip
    base.update(synth_keys)
    overrides = [f"synth.{k}={json.dumps(v)}" for k, v in base.items()]
    return load_config(None, [*overrides, "progress=never"])


def _load(root: Path, split: str, key: str):
    return json.loads(annotation_path(root, split, key).read_text())


def _hashes(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in exclude
    }


# A shared dataset for the annotation / rendering checks: few identities so that they repeat.
DATASET = {
    "n_train": 32,
    "n_eval": 8,
    "image_size": 96,
    "n_hands_train": 4,
    "n_hands_eval": 3,
    "seed": 3,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return synth.synthesize(tmp_path_factory.mktemp("synth") / "ds", _cfg(**DATASET))


# ---------------------------------------------------------------------------------------------
# kinematic hand model


@pytest.mark.parametrize("name", hm.GESTURE_NAMES)
def test_every_gesture_gives_21_finite_distinct_joints(name):
    xyz = _fk(name)
    assert xyz.shape == (N_JOINTS, 3)
    assert np.isfinite(xyz).all()
    np.testing.assert_array_equal(xyz[0], 0.0)  # wrist at the origin of the hand frame
    for parent, child in BONES:
        assert np.linalg.norm(xyz[child] - xyz[parent]) > 0.01


@pytest.mark.parametrize("name", hm.GESTURE_NAMES)
def test_gestures_lie_within_the_joint_limits(name):
    fingers, thumb = _gesture(name)
    clipped_f, clipped_t = hm.clip_pose(fingers, thumb)
    np.testing.assert_array_equal(clipped_f, fingers)
    np.testing.assert_array_equal(clipped_t, thumb)


def test_open_palm_tips_are_farther_from_the_wrist_than_their_bases():
    xyz = _fk("open_palm")
    dist = np.linalg.norm(xyz - xyz[0], axis=1)
    for f, finger in enumerate(FINGERS):
        chain = dist[BASES[f] : TIPS[f] + 1]
        assert dist[TIPS[f]] > dist[BASES[f]] + 0.05, finger
        assert (np.diff(chain) > 0).all(), f"{finger}: joints not moving away from the wrist"


def test_fingers_are_ordered_thumb_to_pinky_along_x():
    xyz = _fk("open_palm")
    mcp_x = xyz[[5, 9, 13, 17], 0]  # index, middle, ring, pinky MCPs
    assert (np.diff(mcp_x) > 0).all()
    tip_x = xyz[TIPS, 0]  # thumb, index, middle, ring, pinky tips
    assert (np.diff(tip_x) > 0).all()
    assert (xyz[2:5, 0] < mcp_x[0]).all()  # the thumb lies beyond the index finger, at -x
    # fingers point along +y; the middle finger is the longest
    assert (xyz[TIPS[1:], 1] > xyz[[5, 9, 13, 17], 1]).all()
    assert np.argmax(np.linalg.norm(xyz[TIPS], axis=1)) == 2


def test_right_hand_chirality_and_flexion_towards_the_palm():
    xyz = _fk("open_palm")
    # x (index -> pinky) cross y (wrist -> middle MCP) is the dorsal direction, +z
    dorsal = np.cross(xyz[17] - xyz[5], xyz[9] - xyz[0])
    assert dorsal[2] > 0.95 * np.linalg.norm(dorsal)
    fist = _fk("fist")
    for f in range(1, 5):  # curled fingertips sit on the palmar side of their MCPs
        assert fist[TIPS[f], 2] < fist[BASES[f], 2] - 0.01, FINGERS[f]
    assert fist[4, 2] < xyz[4, 2] - 0.02  # the thumb tip comes across to the palm


def test_joint_angle_conventions():
    fingers, thumb = np.zeros((4, 4)), np.array([15.0, -15.0, 0.0, 0.0])
    rest = hm.forward_kinematics(fingers, thumb)
    for f in range(4):
        tip = TIPS[f + 1]
        towards_thumb = fingers.copy()
        towards_thumb[f, 3] = 15.0  # positive abduction turns the finger towards the thumb (-x)
        assert hm.forward_kinematics(towards_thumb, thumb)[tip, 0] < rest[tip, 0] - 0.01
        flexed = fingers.copy()
        flexed[f, 1] = 60.0  # PIP flexion curls the finger towards the palm (-z)
        assert hm.forward_kinematics(flexed, thumb)[tip, 2] < rest[tip, 2] - 0.01
    opposed = hm.forward_kinematics(fingers, np.array([15.0, 50.0, 0.0, 0.0]))
    assert opposed[4, 0] > rest[4, 0] + 0.02  # opposition brings the thumb across the palm
    # open palm: the fingers spread, their tips are further apart than their MCPs
    xyz = _fk("open_palm")
    assert (np.diff(xyz[TIPS[1:], 0]) > np.diff(xyz[[5, 9, 13, 17], 0])).all()


def test_fist_tips_are_closer_to_the_wrist_than_open_palm():
    open_d = np.linalg.norm(_fk("open_palm")[TIPS], axis=1)
    fist_d = np.linalg.norm(_fk("fist")[TIPS], axis=1)
    assert (fist_d < open_d).all()
    assert (fist_d[1:] < 0.75 * open_d[1:]).all()  # the four fingers curl well in


def test_thumb_meets_index_in_ok_and_pinch():
    for name in ("ok", "pinch"):
        xyz = _fk(name)
        assert np.linalg.norm(xyz[4] - xyz[8]) < 0.035, name
    xyz = _fk("open_palm")
    assert np.linalg.norm(xyz[4] - xyz[8]) > 0.06


def _expected_bone_lengths(shape: hm.HandShape) -> np.ndarray:
    """Lengths of BONES in order, from the model's constants."""
    s = shape.size
    out = []
    for f in range(5):
        if f == 0:
            base = np.linalg.norm(hm.THUMB_CMC_POSITION) * s * shape.palm_factor
            rest = hm.THUMB_LENGTHS * shape.thumb_factors * s
        else:
            base = np.linalg.norm(hm.MCP_POSITIONS[f - 1]) * s * shape.palm_factor
            rest = hm.PHALANX_LENGTHS[f - 1] * shape.finger_factors[f - 1] * s
        out.extend([base, *rest])
    return np.asarray(out)


def _bone_lengths(xyz: np.ndarray) -> np.ndarray:
    return np.array([np.linalg.norm(xyz[c] - xyz[p]) for p, c in BONES])


def test_bone_lengths_are_the_constants_for_any_pose():
    rng = np.random.default_rng(0)
    mean = hm.HandShape.mean()
    expected = _expected_bone_lengths(mean)
    np.testing.assert_allclose(expected[[9, 10, 11]], hm.PHALANX_LENGTHS[1])  # middle finger
    np.testing.assert_allclose(expected[[1, 2, 3]], hm.THUMB_LENGTHS)
    for k in range(40):
        name = hm.GESTURE_NAMES[k % len(hm.GESTURE_NAMES)]
        fingers, thumb = hm.sample_pose(name, rng, noise_deg=25.0)
        np.testing.assert_allclose(_bone_lengths(hm.forward_kinematics(fingers, thumb)), expected)
        shape = hm.HandShape.sample(rng)  # a random identity keeps its own rigid bones
        np.testing.assert_allclose(
            _bone_lengths(hm.forward_kinematics(fingers, thumb, shape)),
            _expected_bone_lengths(shape),
        )
    # the reference bone is the middle finger's proximal phalanx (about 4.5 cm)
    assert BONES.index(SCALE_BONE) == 9
    assert 0.04 < hm.PHALANX_LENGTHS[1, 0] < 0.05


def test_sample_pose_respects_the_joint_limits():
    rng = np.random.default_rng(1)
    fingers = []
    thumbs = []
    for k in range(400):
        f, t = hm.sample_pose(hm.GESTURE_NAMES[k % len(hm.GESTURE_NAMES)], rng, noise_deg=60.0)
        assert f.shape == (4, 4) and t.shape == (4,)
        fingers.append(f)
        thumbs.append(t)
    fingers, thumbs = np.stack(fingers), np.stack(thumbs)
    assert (fingers >= hm.FINGER_LIMITS[:, 0]).all() and (fingers <= hm.FINGER_LIMITS[:, 1]).all()
    assert (thumbs >= hm.THUMB_LIMITS[:, 0]).all() and (thumbs <= hm.THUMB_LIMITS[:, 1]).all()
    # with that much noise the limits are reached, i.e. the clamp is really applied
    assert np.isclose(fingers[..., 1], hm.FINGER_LIMITS[1, 1]).any()
    assert np.isclose(thumbs[:, 0], hm.THUMB_LIMITS[0, 0]).any()
    # zero noise gives the gesture itself
    f, t = hm.sample_pose("victory", rng, noise_deg=0.0)
    np.testing.assert_array_equal(f, _gesture("victory")[0])
    np.testing.assert_array_equal(t, _gesture("victory")[1])


def test_random_rotation_is_a_proper_rotation():
    rng = np.random.default_rng(2)
    for _ in range(20):
        R = hm.random_rotation(rng)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# rasteriser

F = 100.0
SIZE2 = (128, 128)
K_TEST = np.array([[F, 0.0, 63.5], [0.0, F, 63.5], [0.0, 0.0, 1.0]])


def _capsule(a, b, r):
    return render.capsule_fragments(
        K_TEST, np.atleast_2d(a), np.atleast_2d(b), np.array([r]), np.array([r]), SIZE2
    )


def _segment_distance(pa, pb, rows, cols):
    p = np.stack([cols, rows], axis=-1).astype(float)
    d = pb - pa
    t = np.clip(((p - pa) @ d) / (d @ d), 0, 1)
    return np.linalg.norm(p - (pa + t[..., None] * d), axis=-1)


def test_capsule_covers_its_projected_area():
    # parallel to the image plane at z = 1: a 60 x 20 px stadium centred on the principal point
    fr = _capsule([-0.3, 0.0, 1.0], [0.3, 0.0, 1.0], 0.1)
    length_px, r_px = 0.6 * F, 0.1 * F
    area = 2 * r_px * length_px + np.pi * r_px**2
    assert len(fr.rows) == pytest.approx(area, rel=0.03)
    assert len(set(zip(fr.rows.tolist(), fr.cols.tolist(), strict=True))) == len(fr.rows)
    # exact shape: every pixel well inside is covered, nothing well outside is
    rows, cols = np.mgrid[0 : SIZE2[0], 0 : SIZE2[1]]
    dist = _segment_distance(np.array([33.5, 63.5]), np.array([93.5, 63.5]), rows, cols)
    covered = np.zeros(SIZE2, dtype=bool)
    covered[fr.rows, fr.cols] = True
    assert covered[dist < r_px - 0.5].all()
    assert not covered[dist > r_px + 0.5].any()
    # the surface bulges towards the camera: nearest on the axis (z - r), facing the camera
    surf = render.resolve(fr, SIZE2)
    assert surf.depth[63, 63] == pytest.approx(0.9, abs=2e-3)
    assert surf.depth.min() == pytest.approx(0.9, abs=2e-3)
    edge = surf.depth[63 + int(r_px) - 1, 63]
    assert 0.9 < edge < 1.0
    assert (fr.normal[:, 2] <= 0).all()
    assert np.isinf(surf.depth[0, 0]) and surf.prim[0, 0] == -1


def test_capsule_clipping_and_culling():
    fr = _capsule([-2.0, 0.0, 1.0], [0.3, 0.0, 1.0], 0.1)  # runs far off the left edge
    assert len(fr.rows) > 0
    assert fr.cols.min() == 0 and fr.cols.max() < SIZE2[1]
    assert fr.rows.min() >= 0 and fr.rows.max() < SIZE2[0]
    behind = _capsule([-0.3, 0.0, -1.0], [0.3, 0.0, 1.0], 0.1)  # crosses behind the camera
    assert len(behind.rows) == 0


@pytest.mark.parametrize("front_first", [True, False])
def test_resolve_keeps_the_front_most_capsule(front_first):
    # a horizontal capsule at z = 1 and a vertical one at z = 2 of the same projected size
    front = (np.array([-0.3, 0.0, 1.0]), np.array([0.3, 0.0, 1.0]), 0.1)
    back = (np.array([0.0, -0.6, 2.0]), np.array([0.0, 0.6, 2.0]), 0.2)
    caps = [front, back] if front_first else [back, front]
    front_id = 0 if front_first else 1
    a, b = np.stack([c[0] for c in caps]), np.stack([c[1] for c in caps])
    r = np.array([c[2] for c in caps])
    fr = render.capsule_fragments(K_TEST, a, b, r, r, SIZE2)
    surf = render.resolve(fr, SIZE2)
    pix = fr.rows * SIZE2[1] + fr.cols
    own = {k: set(pix[fr.prim == k].tolist()) for k in (0, 1)}
    overlap = np.array(sorted(own[0] & own[1]))
    assert len(overlap) > 100
    assert (surf.prim.ravel()[overlap] == front_id).all()
    assert (surf.depth.ravel()[overlap] < 1.0 + 1e-6).all()
    only_back = np.array(sorted(own[1 - front_id] - own[front_id]))
    assert (surf.prim.ravel()[only_back] == 1 - front_id).all()
    # the depth map is the per-pixel minimum over all fragments
    best = np.full(SIZE2[0] * SIZE2[1], np.inf)
    np.minimum.at(best, pix, fr.depth.astype(np.float64))
    np.testing.assert_allclose(surf.depth.ravel(), best, rtol=0, atol=0)
    assert len(surf.front.rows) == len(own[0] | own[1])


def test_slab_covers_its_projected_polygon_at_the_right_depth():
    # a 0.6 m square facing the camera at z = 2, 0.1 m thick: it spans 48.5..78.5 px, so the
    # pixel centres 49..78 of each axis (30 x 30)
    corners = np.array([[-0.3, -0.3, 2.0], [0.3, -0.3, 2.0], [0.3, 0.3, 2.0], [-0.3, 0.3, 2.0]])
    fr = render.slab_fragments(K_TEST, corners, 0.1, SIZE2, prim=7)
    assert len(fr.rows) == pytest.approx(30 * 30, rel=0.02)
    assert (fr.prim == 7).all()
    np.testing.assert_allclose(fr.depth, 1.95, atol=1e-5)  # the face towards the camera
    assert (fr.cols.min(), fr.cols.max(), fr.rows.min(), fr.rows.max()) == (49, 78, 49, 78)
    # a tilted slab: depth from the exact ray-plane intersection
    tilted = corners.copy()
    tilted[:, 2] += corners[:, 0]  # z = 2 + x
    fr = render.slab_fragments(K_TEST, tilted, 0.0, SIZE2, prim=0)
    x = (fr.cols - K_TEST[0, 2]) / F
    np.testing.assert_allclose(fr.depth, 2.0 / (1.0 - x), rtol=1e-5)


def test_visible_joints_uses_the_depth_buffer():
    surf = render.resolve(_capsule([-0.3, 0.0, 1.0], [0.3, 0.0, 1.0], 0.1), SIZE2)
    xyz = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.5, 3.0], [5.0, 0.0, 1.0]])
    radii = np.array([0.1, 0.01, 0.01, 0.01])  # the first joint is the capsule's own axis
    uv = render.project(xyz, K_TEST)
    vis = render.visible_joints(surf, uv, xyz, radii)
    # on the axis (its own surface), hidden behind the capsule, unobstructed, outside the image
    np.testing.assert_array_equal(vis, [True, False, True, False])


# ---------------------------------------------------------------------------------------------
# the written dataset


def test_layout_and_file_counts(dataset):
    s = DATASET["image_size"]
    meta = json.loads((dataset / "synth_meta.json").read_text())
    assert meta["gesture_names"] == list(hm.GESTURE_NAMES)
    assert meta["part_names"] == list(PART_NAMES)
    assert (meta["image_size"], meta["seed"]) == (s, DATASET["seed"])
    for split, n in (("training", DATASET["n_train"]), ("evaluation", DATASET["n_eval"])):
        assert len(list((dataset / split / "rgb").iterdir())) == n
        assert len(list((dataset / split / "parts").iterdir())) == n
        for key in KEYS:
            assert len(_load(dataset, split, key)) == n, (split, key)
        for i in (0, n - 1):
            with Image.open(image_path(dataset, split, i)) as im:
                assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (s, s))
            with Image.open(parts_path(dataset, split, i)) as im:
                assert (im.format, im.mode, im.size) == ("PNG", "L", (s, s))
                assert np.asarray(im).max() < len(PART_NAMES)
    assert load_config(dataset / "config.yaml")["synth"]["n_train"] == DATASET["n_train"]
    assert not list(dataset.parent.glob(".*"))  # no temp folder left beside it


@pytest.mark.parametrize("split", ["training", "evaluation"])
def test_annotations_are_consistent(dataset, split):
    xyz = np.asarray(_load(dataset, split, "xyz"))
    K = np.asarray(_load(dataset, split, "K"))
    uv = np.asarray(_load(dataset, split, "uv"))
    scale = np.asarray(_load(dataset, split, "scale"))
    vis = np.asarray(_load(dataset, split, "visibility"))
    gesture = np.asarray(_load(dataset, split, "gesture"))
    n = len(xyz)
    s = DATASET["image_size"]
    assert xyz.shape == (n, N_JOINTS, 3) and uv.shape == (n, N_JOINTS, 2)
    assert K.shape == (n, 3, 3) and vis.shape == (n, N_JOINTS)
    assert (xyz[..., 2] > 0.1).all()
    np.testing.assert_allclose(scale, np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=1), atol=1e-9)
    assert ((scale > 0.03) & (scale < 0.06)).all()
    # pinhole: fx == fy, no skew, principal point near the centre, last row (0, 0, 1)
    np.testing.assert_array_equal(K[:, 0, 0], K[:, 1, 1])
    np.testing.assert_array_equal(K[:, [0, 1, 1], [1, 0, 0]], 0.0)
    np.testing.assert_array_equal(K[:, 2], np.broadcast_to([0.0, 0.0, 1.0], (n, 3)))
    assert (np.abs(K[:, :2, 2] - (s - 1) / 2) < 0.05 * s).all()
    assert ((K[:, 0, 0] > 1.0 * s) & (K[:, 0, 0] < 4.0 * s)).all()  # ~450-650 px at 224 px
    proj = np.einsum("nij,nkj->nki", K, xyz)
    np.testing.assert_allclose(proj[..., :2] / proj[..., 2:], uv, atol=1e-3)
    # visibility flags are 0/1; a visible joint projects inside the image
    assert set(np.unique(vis)) <= {0, 1}
    px = np.round(uv).astype(int)
    inside = ((px >= 0) & (px < s)).all(axis=-1)
    assert not (vis.astype(bool) & ~inside).any()
    assert 0.3 < vis.mean() < 0.98
    # the hand is framed: the wrist is almost always in view, no joint far outside
    assert inside[:, 0].mean() >= 0.9
    assert ((uv > -0.1 * s) & (uv < 1.1 * s)).all()
    assert ((gesture >= 0) & (gesture < len(hm.GESTURE_NAMES))).all()
    assert np.isin(gesture, np.arange(len(hm.GESTURE_NAMES))).all()


def test_hand_identities_are_disjoint_and_rigid(dataset):
    n_tr, n_ev = DATASET["n_hands_train"], DATASET["n_hands_eval"]
    train = np.asarray(_load(dataset, "training", "hand_id"))
    evaluation = np.asarray(_load(dataset, "evaluation", "hand_id"))
    assert set(train.tolist()) <= set(range(n_tr))
    assert set(evaluation.tolist()) <= set(range(n_tr, n_tr + n_ev))
    assert not set(train.tolist()) & set(evaluation.tolist())
    assert len(set(train.tolist())) > 1
    # one identity, one skeleton: every bone has the same length in all its images
    for split, ids in (("training", train), ("evaluation", evaluation)):
        xyz = np.asarray(_load(dataset, split, "xyz"))
        lengths = np.stack([_bone_lengths(x) for x in xyz])
        repeated = 0
        for hand in np.unique(ids):
            same = lengths[ids == hand]
            repeated += len(same) > 1
            np.testing.assert_allclose(same, np.broadcast_to(same[0], same.shape), atol=1e-5)
        assert repeated > 0
    all_lengths = np.stack(
        [_bone_lengths(x) for x in np.asarray(_load(dataset, "training", "xyz"))]
    )
    assert len(np.unique(all_lengths[:, 9].round(5))) == len(set(train.tolist()))


def test_written_hands_are_right_hands(dataset):
    # (index MCP, pinky MCP, thumb CMC) relative to the wrist: rigid, so its orientation does not
    # depend on the pose, and a rotation keeps it (a mirrored hand would flip its sign)
    ref = hm.forward_kinematics(np.zeros((4, 4)), np.zeros(4))
    sign = np.sign(np.linalg.det(ref[[5, 17, 1]] - ref[0]))
    for split in ("training", "evaluation"):
        xyz = np.asarray(_load(dataset, split, "xyz"))
        dets = np.linalg.det(xyz[:, [5, 17, 1]] - xyz[:, :1])
        assert (np.sign(dets) == sign).all(), split


def _near(parts: np.ndarray, u: float, v: float) -> np.ndarray:
    col, row = round(u), round(v)
    return parts[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]


def test_part_masks_agree_with_the_joint_labels(dataset):
    hits = total = 0
    joint_on_hand = joint_total = 0
    for split in ("training", "evaluation"):
        uv = _load(dataset, split, "uv")
        vis = _load(dataset, split, "visibility")
        for i in range(len(uv)):
            parts = np.asarray(Image.open(parts_path(dataset, split, i)))
            assert (parts > 0).mean() > 0.02  # the hand (and arm) is drawn
            for j in range(N_JOINTS):
                if not vis[i][j]:
                    continue
                near = _near(parts, *uv[i][j])
                joint_total += 1
                joint_on_hand += bool((near > 0).any())
                if j in TIPS:
                    total += 1
                    hits += bool((near == PART_ID[FINGERS[TIPS.index(j)]]).any())
    assert total >= 50
    assert hits / total >= 0.8, f"only {hits}/{total} visible tips on their finger's part"
    assert joint_on_hand / joint_total >= 0.95


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose whole 3x3 neighbourhood is in `mask` (outside the image counts as not)."""
    h, w = mask.shape
    padded = np.pad(mask, 1, constant_values=False)
    out = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            out &= padded[dy : dy + h, dx : dx + w]
    return out


def test_image_shows_the_hand_where_the_part_mask_says(monkeypatch):
    # a flat blue background, no distractors, no occluders: then the hand is exactly where the
    # image differs from the background (up to blur at the outline and sensor noise)
    monkeypatch.setattr(
        scene,
        "varied_background",
        lambda rng, seed, size: Image.new("RGB", (size, size), (0, 0, 255)),
    )
    monkeypatch.setattr(scene, "draw_distractors", lambda pil, rng, skin, n: pil)
    monkeypatch.setattr(scene, "OCCLUDER_PROBABILITY", -1.0)
    p = scene.SynthParams.from_config(_cfg(image_size=64), "training")
    for i in range(12):
        s = scene.render_sample(i, "training", p)
        hand = s.parts > 0
        inner_hand, inner_background = _erode(hand), _erode(~hand)
        assert inner_hand.sum() > 50 and inner_background.sum() > 500
        image = s.image.astype(int)
        background = np.median(image[inner_background], axis=0)
        diff = np.abs(image - background).max(axis=-1)
        assert (diff[inner_background] <= 30).mean() > 0.99, i
        assert (diff[inner_hand] > 30).mean() > 0.9, i


def test_render_sample_is_a_pure_function_of_seed_split_index():
    p = scene.SynthParams.from_config(_cfg(image_size=48), "training")
    a, b = scene.render_sample(5, "training", p), scene.render_sample(5, "training", p)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.parts, b.parts)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    c = scene.render_sample(5, "evaluation", p)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (48, 48, 3) and a.image.dtype == np.uint8
    assert a.parts.shape == (48, 48) and a.parts.dtype == np.uint8


# ---------------------------------------------------------------------------------------------
# determinism


def test_same_seed_gives_identical_bytes(dataset, tmp_path):
    again = synth.synthesize(tmp_path / "again", _cfg(**DATASET))
    expected = _hashes(dataset)
    assert _hashes(again) == expected
    assert "contact_sheet.png" in expected and "training_xyz.json" in expected


def test_images_do_not_depend_on_the_dataset_size_and_seed_matters(dataset, tmp_path):
    small = synth.synthesize(tmp_path / "small", _cfg(**{**DATASET, "n_train": 4, "n_eval": 2}))
    other = synth.synthesize(
        tmp_path / "other", _cfg(**{**DATASET, "n_train": 4, "n_eval": 2, "seed": 4})
    )
    for i in range(4):
        ref = image_path(dataset, "training", i).read_bytes()
        assert image_path(small, "training", i).read_bytes() == ref  # a prefix of the big set
        assert image_path(other, "training", i).read_bytes() != ref
    assert _load(small, "training", "xyz") == _load(dataset, "training", "xyz")[:4]
    assert _load(other, "training", "xyz") != _load(dataset, "training", "xyz")[:4]


def test_worker_count_does_not_change_bytes(tmp_path):
    # more than one 64-image chunk so that two processes really share the work
    keys = {"n_train": 70, "n_eval": 3, "image_size": 32}
    one = synth.synthesize(tmp_path / "one", _cfg(**keys, workers=1))
    two = synth.synthesize(tmp_path / "two", _cfg(**keys, workers=2))
    h1, h2 = _hashes(one, exclude=("config.yaml",)), _hashes(two, exclude=("config.yaml",))
    # images, parts, json, meta, sheet, the output marker
    assert len(h1) == 2 * (70 + 3) + 2 * len(KEYS) + 3
    assert h1 == h2


# ---------------------------------------------------------------------------------------------
# atomicity


def _failing_render(monkeypatch, fail_at: int):
    real = scene.render_sample
    calls = {"n": 0}

    def render(index, split, p):
        calls["n"] += 1
        if calls["n"] > fail_at:
            raise RuntimeError("renderer crashed")
        return real(index, split, p)

    monkeypatch.setattr(synth, "render_sample", render)
    return calls


@pytest.mark.parametrize("fail_at", [0, 5, 14])  # first image, mid training, mid evaluation
def test_a_crash_leaves_no_output(tmp_path, monkeypatch, fail_at):
    calls = _failing_render(monkeypatch, fail_at)
    out = tmp_path / "parent" / "ds"
    with pytest.raises(RuntimeError, match="renderer crashed"):
        synth.synthesize(out, _cfg(n_train=12, n_eval=4, image_size=32))
    assert calls["n"] == fail_at + 1
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_a_crash_keeps_the_previous_dataset(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    synth.synthesize(out, _cfg(n_train=4, n_eval=2, image_size=32))
    before = _hashes(out)
    _failing_render(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        synth.synthesize(out, _cfg(n_train=4, n_eval=2, image_size=32, seed=1))
    assert _hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ---------------------------------------------------------------------------------------------
# contact sheet and CLI


def test_contact_sheet(dataset, tmp_path):
    s = DATASET["image_size"]
    n = min(24, DATASET["n_train"])
    rows = -(-n // 4)
    with Image.open(dataset / "contact_sheet.png") as im:
        assert im.format == "PNG"
        assert im.size == (4 * 3 * s + 3 * 6, rows * s)
        sheet = np.asarray(im.convert("RGB"))
    # its first tile is the first image; its third is the coloured part mask
    with Image.open(image_path(dataset, "training", 0)) as im:
        np.testing.assert_array_equal(sheet[:s, :s], np.asarray(im.convert("RGB")))
    parts = np.asarray(Image.open(parts_path(dataset, "training", 0)))
    np.testing.assert_array_equal(sheet[:s, 2 * s : 3 * s].any(axis=-1), parts > 0)
    # a smaller sheet of the evaluation split
    out = contact_sheet(dataset, tmp_path / "x" / "sheet.png", n=5, split="evaluation")
    with Image.open(out) as im:
        assert im.size == (4 * 3 * s + 3 * 6, 2 * s)


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["synth", "--set", "synth.n_train=8", "--set", "synth.n_eval=2"]
    argv += ["--set", "synth.image_size=32", "--set", "synth.workers=1", "--set", "progress=never"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert len(_load(out, "training", "xyz")) == 8
    assert len(_load(out, "evaluation", "xyz")) == 2
    resolved = load_config(out / "config.yaml")
    assert resolved["synth"]["image_size"] == 32 and resolved["synth"]["n_train"] == 8


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("synth.image_size=8", "synth.image_size"),
        ("synth.bogus=1", "bogus"),
        ("synth.n_train=0", "synth.n_train"),
        ("synth.focal_px=[500]", "synth.focal_px"),
    ],
)
def test_cli_rejects_invalid_config(tmp_path, capsys, override, named):
    out = tmp_path / "bad"
    assert cli.main(["synth", "--set", override, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "equihand synth: error" in err
    assert named in err
    assert not out.exists()


@pytest.mark.parametrize("roll, tilt", [(0.0, 0.0), (30.0, 45.0), (90.0, 10.0)])
def test_limited_orientations_stay_within_roll_and_tilt(roll, tilt):
    rng = np.random.default_rng(3)
    fingers_up, facing = [], []
    for _ in range(400):
        R = hm.limited_rotation(rng, roll, tilt)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(R), 1)
        up = R @ np.array([0.0, 1.0, 0.0])  # the hand's finger direction in camera coordinates
        dorsal = R @ np.array([0.0, 0.0, 1.0])
        fingers_up.append(up)
        facing.append(dorsal[2])
    fingers_up, facing = np.array(fingers_up), np.array(facing)
    # the tilt moves the back/palm normal at most `tilt` degrees off the viewing axis
    off_axis = np.degrees(np.arccos(np.clip(np.abs(facing), -1, 1)))
    assert off_axis.max() <= tilt + 1e-6
    assert off_axis.max() >= 0.8 * tilt  # and uses the range
    # back and palm towards the camera are equally likely
    assert 0.4 < np.mean(facing < 0) < 0.6
    if tilt == 0:
        # without tilt, the in-plane angle of the fingers from image-up is the roll
        angle = np.degrees(np.arctan2(fingers_up[:, 0], -fingers_up[:, 1]))
        assert np.abs(angle).max() <= roll + 1e-6


def test_orientation_keys_render_upright_hands_and_default_is_the_recipe(tmp_path):
    small = ["synth.n_train=24", "synth.n_eval=4", "synth.image_size=48"]
    config = load_config(None, small)
    p = scene.SynthParams.from_config(config, "training")
    assert (p.roll_deg, p.tilt_deg) == (30.0, 45.0)  # the default study's, as FreiHAND
    upright = load_config(None, [*small, "synth.roll_deg=0", "synth.tilt_deg=0"])
    synth.synthesize(tmp_path / "up", upright)
    xyz = np.array(json.loads((tmp_path / "up" / "training_xyz.json").read_text()))
    # wrist below the middle fingertip in the image (camera y points down) for every hand
    assert (xyz[:, 0, 1] > xyz[:, 12, 1]).mean() > 0.9


def test_background_contrast_flattens_only_the_background():
    full = scene.SynthParams.from_config(_cfg(image_size=64, distractors=0), "training")
    flat = scene.SynthParams.from_config(
        _cfg(image_size=64, distractors=0, background_contrast=0.0), "training"
    )
    assert full.background_contrast == 1.0
    spread = {"full": [], "flat": []}
    for i in range(6):
        a, b = scene.render_sample(i, "training", full), scene.render_sample(i, "training", flat)
        # no random draw depends on the knob: the same hand, labels and part mask
        np.testing.assert_array_equal(a.xyz, b.xyz)
        np.testing.assert_array_equal(a.uv, b.uv)
        np.testing.assert_array_equal(a.parts, b.parts)
        background = _erode(a.parts == 0)
        for name, s in (("full", a), ("flat", b)):
            spread[name].append(s.image[background].astype(float).std(axis=0).mean())
    # what is left of a flat background's spread is blur at the edges, grain and sensor noise
    assert np.mean(spread["flat"]) < 0.5 * np.mean(spread["full"])
    with pytest.raises(Exception, match="background_contrast"):
        _cfg(background_contrast=1.5)
