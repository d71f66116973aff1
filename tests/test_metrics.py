"""FreiHAND metrics (equihand.metrics) and the `equihand score` step, on hand-computable
cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from equihand import cli
from equihand import metrics as m
from equihand.data import hand_model as hm
from equihand.data.layout import N_JOINTS, annotation_path
from equihand.data.units import suspected_factor

N_T = 100  # points of the official PCK grid linspace(0, 0.05, 100)


def realistic_hands(n: int, seed: int = 0) -> np.ndarray:
    """(n, 21, 3) metres: model hands in random gestures and orientations, 0.5-0.9 m deep."""
    rng = np.random.default_rng(seed)
    hands = np.empty((n, N_JOINTS, 3))
    for i in range(n):
        fingers, thumb = hm.sample_pose(rng.choice(hm.GESTURE_NAMES), rng, noise_deg=8.0)
        xyz = hm.forward_kinematics(fingers, thumb, hm.HandShape.sample(rng))
        xyz = (xyz - xyz.mean(axis=0)) @ hm.random_rotation(rng).T
        place = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(0.5, 0.9)])
        hands[i] = xyz + place
    return hands


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([hm.random_rotation(rng) for _ in range(n)])


def random_small_rotations(n: int, rng: np.random.Generator, angle: float) -> np.ndarray:
    """Rotations by `angle` radians about random axes (Rodrigues)."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= k.transpose(0, 2, 1)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def rotation_only_pa_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """PA errors with a reflection correction (det R = +1, as Umeyama/Kabsch): NOT official."""
    gt_c = gt - gt.mean(axis=1, keepdims=True)
    pred_c = pred - pred.mean(axis=1, keepdims=True)
    u, w, vt = np.linalg.svd(gt_c.transpose(0, 2, 1) @ pred_c)
    d = np.ones_like(w)
    d[:, 2] = np.sign(np.linalg.det(u @ vt))
    r = u @ (d[:, :, None] * vt)
    s = (w * d).sum(axis=1) / (pred_c**2).sum(axis=(1, 2))
    aligned = (pred_c @ r.transpose(0, 2, 1)) * s[:, None, None] + gt.mean(axis=1, keepdims=True)
    return m.keypoint_errors(aligned, gt)


def closed_form_auc(e: float, t_max: float = 0.05, steps: int = N_T) -> float:
    """AUC when every error equals e: pck(t_i) = [t_i >= e] on t_i = t_max * i / (steps - 1).

    The first threshold reached is k = ceil(e / dt); the trapezoid over [t_{k-1}, t_k] counts a
    half interval, the (steps - 1 - k) later intervals count fully; normalise by steps - 1.
    """
    if e > t_max:
        return 0.0
    k = math.ceil(e * (steps - 1) / t_max)
    return 1.0 if k == 0 else (steps - 1 - k + 0.5) / (steps - 1)


@pytest.fixture(scope="module")
def hands() -> np.ndarray:
    return realistic_hands(120)


# ---------------------------------------------------------------------------------------------
# metrics


def test_perfect_prediction(hands):
    uv = hands[..., :2] / hands[..., 2:] * 500 + 112
    r = m.evaluate_keypoints(hands, hands.copy(), uv, uv.copy())
    assert r["epe"] == 0 and r["epe_cm"] == 0 and r["rr_epe"] == 0
    assert r["auc"] == 1.0 and r["pck"]["pck"] == [1.0] * N_T
    assert r["per_joint_epe_cm"] == [0.0] * N_JOINTS
    assert r["epe_2d_px"] == 0 and r["auc_2d"] == 1.0
    # the official +1e-8 on the norms leaves at most 2e-8 m after alignment, so only the t = 0
    # point of the PA-PCK curve can miss: PA-AUC >= 1 - half an interval
    assert r["pa_epe"] < 2e-8
    assert r["pa_auc"] >= 1 - 0.5 / (N_T - 1)
    aligned = m.procrustes_align(hands, hands, eps=0.0)
    np.testing.assert_allclose(aligned, hands, rtol=0, atol=1e-12)


def test_similarity_transform_is_removed_by_alignment(hands):
    rng = np.random.default_rng(1)
    n = len(hands)
    k = rng.uniform(0.5, 2.0, (n, 1, 1))
    shift = rng.normal(0, 0.05, (n, 1, 3))
    pred = k * np.matmul(hands, random_rotations(n, rng).transpose(0, 2, 1)) + shift
    exact = m.keypoint_errors(m.procrustes_align(pred, hands, eps=0.0), hands)
    assert exact.max() < 1e-9
    official = m.keypoint_errors(m.procrustes_align(pred, hands), hands)
    # official eps shrinks the aligned set by ~2 eps / ||pred_c||: error <= 2 eps / k per joint
    assert (official <= 2 * m.OFFICIAL_EPS / k[:, :, 0] + 1e-12).all()
    r = m.evaluate_keypoints(pred, hands)
    assert r["pa_epe"] < 1e-8 and r["pa_auc"] >= 1 - 0.5 / (N_T - 1)
    assert r["epe_cm"] > 1.0 and r["auc"] < 0.9


def test_alignment_is_the_least_squares_similarity(hands):
    """No translation, scale or orthogonal change of the aligned prediction fits better."""
    rng = np.random.default_rng(2)
    pred = hands + rng.normal(0, 0.01, hands.shape)
    aligned = m.procrustes_align(pred, hands, eps=0.0)
    sse = ((aligned - hands) ** 2).sum(axis=(1, 2))
    centre = hands.mean(axis=1, keepdims=True)
    for _ in range(20):
        small = random_small_rotations(len(hands), rng, angle=0.01)
        scale = 1 + rng.normal(0, 0.01, (len(hands), 1, 1))
        moved = (aligned - centre) @ small.transpose(0, 2, 1) * scale + centre
        moved += rng.normal(0, 0.001, (len(hands), 1, 3))
        assert (((moved - hands) ** 2).sum(axis=(1, 2)) >= sse - 1e-15).all()


@pytest.mark.parametrize("e", [3 / 256, 1 / 32, 5 / 1024, 1 / 16])
def test_constant_error_gives_exact_epe_and_closed_form_auc(e):
    rng = np.random.default_rng(3)
    n = 8
    gt = rng.integers(-512, 512, (n, N_JOINTS, 3)) / 1024 + [0.0, 0.0, 0.75]  # dyadic: exact
    offset = np.zeros((n, N_JOINTS, 3))
    axis = rng.integers(0, 3, (n, N_JOINTS))
    sign = rng.choice([-1.0, 1.0], (n, N_JOINTS))
    np.put_along_axis(offset, axis[..., None], (sign * e)[..., None], axis=2)
    pred = gt + offset
    r = m.evaluate_keypoints(pred, gt)
    assert r["epe"] == e
    assert r["per_joint_epe_cm"] == pytest.approx([e * 100] * N_JOINTS, rel=1e-15)
    expected = closed_form_auc(e)
    assert r["auc"] == pytest.approx(expected, abs=1e-12)
    t = np.linspace(0, 0.05, N_T)
    assert r["pck"]["pck"] == [float(v) for v in t >= e]


def test_closed_form_auc_values():
    # the closed form itself, by hand: e = 3/256 m -> 23.2 intervals -> k = 24
    assert closed_form_auc(3 / 256) == pytest.approx(75.5 / 99)
    assert closed_form_auc(1 / 16) == 0.0


def test_pck_is_inclusive_and_auc_by_hand():
    errors = np.array([[0.0], [0.02], [0.04], [0.06]])
    t = np.array([0.0, 0.02, 0.04, 0.06])
    pck = m.pck_curve(errors, t)
    np.testing.assert_array_equal(pck, [[0.25, 0.5, 0.75, 1.0]])  # err <= t counts
    # trapezoid: 0.02 * (0.375 + 0.625 + 0.875) / 0.06
    assert m.auc(pck, t) == pytest.approx(0.625, abs=1e-15)
    two = m.pck_curve(np.array([[0.0, 0.06]]), t)
    # joint 0: AUC 1; joint 1 (err 0.06 <= t only at t = 0.06): 0.02 * 0.5 / 0.06 = 1/6
    assert m.auc(two, t) == pytest.approx((1.0 + 1 / 6) / 2, abs=1e-15)  # mean over joints


def test_mirrored_prediction_is_aligned_as_in_the_official_code(hands):
    """The official alignment allows reflections (no det(R) = +1 correction), so a prediction
    mirrored in x is aligned perfectly: PA-EPE cannot detect a left/right flip."""
    mirrored = hands * [-1.0, 1.0, 1.0]
    r = m.evaluate_keypoints(mirrored, hands)
    assert r["epe_cm"] > 1.0
    assert r["pa_epe"] < 2e-8
    # a reflection-corrected (rotation-only) alignment would keep the flip: errors of cm
    assert rotation_only_pa_errors(mirrored, hands).mean() > 0.005
    # ... and it agrees with the official one where no reflection is involved
    noisy = hands + np.random.default_rng(8).normal(0, 0.005, hands.shape)
    official = m.keypoint_errors(m.procrustes_align(noisy, hands, eps=0.0), hands)
    np.testing.assert_allclose(rotation_only_pa_errors(noisy, hands), official, atol=1e-12)


def test_root_relative_and_2d():
    gt = realistic_hands(10, seed=4)
    shift = np.array([0.027, -0.036, 0.0])  # |shift| = 4.5 cm
    r = m.evaluate_keypoints(gt + shift, gt)
    assert r["epe_cm"] == pytest.approx(4.5, abs=1e-12)
    assert r["rr_epe"] == pytest.approx(0.0, abs=1e-15)
    assert r["auc"] == pytest.approx(closed_form_auc(0.045), abs=1e-12)  # (99 - 90 + 0.5) / 99
    uv = np.random.default_rng(5).uniform(0, 224, (10, N_JOINTS, 2))
    r2 = m.evaluate_keypoints(gt, gt, uv + np.array([3.0, 0.0]), uv)
    assert r2["epe_2d_px"] == pytest.approx(3.0, abs=1e-12)
    assert r2["auc_2d"] == pytest.approx(closed_form_auc(3.0, t_max=30.0), abs=1e-12)


def test_vectorised_matches_per_sample_loop():
    rng = np.random.default_rng(6)
    gt = rng.normal(0, 0.05, (300, N_JOINTS, 3)) + np.array([0.0, 0.0, 0.7])
    pred = gt + rng.normal(0, 0.02, gt.shape)
    pred[::7] = rng.normal(0, 0.1, (len(pred[::7]), N_JOINTS, 3))  # some wild predictions
    pred[5] = 0.0  # the all-zero baseline sample
    ref = m.per_sample_loop_reference(pred, gt)
    pa = m.keypoint_errors(m.procrustes_align(pred, gt), gt)
    np.testing.assert_allclose(pa, ref["pa_errors"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(m.keypoint_errors(pred, gt), ref["errors"], rtol=0, atol=1e-12)
    r = m.evaluate_keypoints(pred, gt)
    assert r["epe"] == pytest.approx(ref["epe"], abs=1e-12)
    assert r["pa_epe"] == pytest.approx(ref["pa_epe"], abs=1e-9)


def test_all_zero_prediction_baseline(hands):
    """FreiHAND's README: 70.79 cm EPE and 4.73 cm PA-EPE for zeros on its evaluation set."""
    r = m.evaluate_keypoints(np.zeros_like(hands), hands)
    assert r["epe_cm"] > 30
    assert 1 < r["pa_epe_cm"] < 10
    assert r["auc"] == 0.0
    # aligned zeros collapse onto the ground-truth centroid
    centroid_dist = np.linalg.norm(hands - hands.mean(axis=1, keepdims=True), axis=2)
    assert r["pa_epe"] == pytest.approx(centroid_dist.mean(), rel=1e-9)


def test_result_is_json_serialisable_and_shapes_checked(hands):
    r = m.evaluate_keypoints(hands + 0.01, hands)
    back = json.loads(json.dumps(r))
    assert back["epe_cm"] == pytest.approx(math.sqrt(3))
    assert len(back["pck"]["thresholds_m"]) == N_T and len(back["per_joint_pa_epe_cm"]) == 21
    with pytest.raises(ValueError, match="shape"):
        m.evaluate_keypoints(hands[:, :20], hands)
    with pytest.raises(ValueError, match="shape"):
        m.procrustes_align(hands[0], hands[0])


# ---------------------------------------------------------------------------------------------
# equihand score


@pytest.fixture
def scored(tmp_path, hands):
    gt = hands[:12]
    root = tmp_path / "freihand"
    root.mkdir()
    annotation_path(root, "evaluation", "xyz").write_text(json.dumps(gt.tolist()))
    pred = gt + np.random.default_rng(7).normal(0, 0.01, gt.shape)
    return root, gt, pred


def _score(tmp_path: Path, root: Path, content, *extra: str) -> int:
    path = tmp_path / "pred.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    argv = ["score", "--set", "progress=never", "--pred", str(path), "--gt", str(root), *extra]
    return cli.main(argv)


def test_score_cli_good(tmp_path, scored, capsys):
    root, gt, pred = scored
    out = tmp_path / "res" / "metrics.json"
    assert _score(tmp_path, root, [pred.tolist(), []], "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "PA-EPE (cm)" in printed and "12 samples" in printed
    saved = json.loads(out.read_text())
    expected = m.evaluate_keypoints(pred, gt)
    assert saved["epe_cm"] == pytest.approx(expected["epe_cm"], rel=1e-12)
    assert saved["pa_auc"] == pytest.approx(expected["pa_auc"], rel=1e-12)
    assert f"{expected['pa_epe_cm']:.2f}" in printed
    # --gt may also name the xyz file; verts lists are accepted and ignored
    verts = [[[0.0, 0.0, 0.5]] * 3] * len(gt)
    gt_file = annotation_path(root, "evaluation", "xyz")
    assert _score(tmp_path, gt_file, [pred.tolist(), verts]) == 0
    assert "vertices ignored" in capsys.readouterr().out


def test_score_names_ground_truth_in_millimetres(tmp_path, scored, capsys):
    root, gt, pred = scored
    path = annotation_path(root, "evaluation", "xyz")
    path.write_text(json.dumps((gt * 1000).tolist()))
    err = _bad(tmp_path, root, [pred.tolist(), []], capsys)
    assert f"{path}: looks like millimetres" in err and "about 1000x the size" in err


def test_suspected_factor_only_near_a_metric_factor():
    for ratio in (1.0, 3.0, 0.3, 50.0, 300.0, 5000.0, 0.0, -100.0, math.nan):
        assert suspected_factor(ratio) is None, ratio
    assert suspected_factor(100.0) == 100 and suspected_factor(120.0) == 100
    assert suspected_factor(700.0) == 1000 and suspected_factor(1 / 1000) == -1000
    assert suspected_factor(1 / 90) == -100


def _bad(tmp_path, root, content, capsys) -> str:
    assert _score(tmp_path, root, content) == 2
    return capsys.readouterr().err


def test_score_cli_errors(tmp_path, scored, capsys):
    root, _, pred = scored
    err = _bad(tmp_path, root, [pred[:11].tolist(), []], capsys)
    assert "11 samples" in err and "has 12" in err
    wrong = pred.tolist()
    wrong[3] = wrong[3][:20]
    err = _bad(tmp_path, root, [wrong, []], capsys)
    assert "entry 3" in err and "(20, 3)" in err
    nan = pred.copy()
    nan[5, 2, 1] = np.nan
    err = _bad(tmp_path, root, [nan.tolist(), []], capsys)
    assert "entry 5" in err and "NaN" in err
    null = pred.tolist()
    null[7][0][0] = None
    assert "entry 7" in _bad(tmp_path, root, [null, []], capsys)
    err = _bad(tmp_path, root, [(pred * 1000).tolist(), []], capsys)
    assert "pred.json: looks like millimetres" in err and "FreiHAND expects metres" in err
    err = _bad(tmp_path, root, [(pred * 100).tolist(), []], capsys)
    assert "pred.json: looks like centimetres" in err and "(divide by 100)" in err
    # the hand size, not the distance from the camera, decides: a far-off prediction is scored
    far = pred.copy()
    far[..., 2] *= 30
    assert _score(tmp_path, root, [far.tolist(), []]) == 0
    capsys.readouterr()
    err = _bad(tmp_path, root, "[[1, 2], oops", capsys)
    assert "not valid JSON" in err and "pred.json" in err
    err = _bad(tmp_path, root, {"xyz": pred.tolist()}, capsys)
    assert "2-element list" in err
    err = _bad(tmp_path, root, [pred.tolist()], capsys)
    assert "2-element list" in err and "length 1" in err
    err = _bad(tmp_path, tmp_path / "nowhere", [pred.tolist(), []], capsys)
    assert "evaluation_xyz.json" in err and "not found" in err


def test_precomputed_errors_give_the_same_metrics_and_epe_cm_is_their_mean():
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(40, N_JOINTS, 3)) * 0.05
    pred = gt + rng.normal(size=gt.shape) * 0.01
    errors = m.keypoint_errors(pred, gt), m.aligned_errors(pred, gt)
    assert m.evaluate_keypoints(pred, gt, errors=errors) == m.evaluate_keypoints(pred, gt)
    aligned = m.keypoint_errors(m.procrustes_align(pred, gt), gt)
    np.testing.assert_array_equal(errors[1], aligned)
    assert m.epe_cm(errors[1]) == float(aligned.mean()) * 100
    with pytest.raises(ValueError, match="errors"):
        m.evaluate_keypoints(pred, gt, errors=(errors[0][:5], errors[1]))
