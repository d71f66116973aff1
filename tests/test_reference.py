"""The constant-pose PA-EPE reference: the pose is chosen on validation, and scored exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY

from equihand import cli
from equihand.data.cache import PreparedData
from equihand.evaluate.reference import (
    constant_pose_pa_epe_cm,
    constant_pose_reference,
    mean_pose_prediction,
    unaligned_measures,
)


def test_a_pose_predicted_for_itself_scores_zero_and_others_do_not():
    rng = np.random.default_rng(0)
    hand = rng.normal(size=(21, 3)) * 0.05
    assert constant_pose_pa_epe_cm(hand, hand[None]) == pytest.approx(0.0, abs=1e-5)
    # alignment removes rotation, translation and scale: a moved, turned, scaled copy scores 0
    c, s = np.cos(0.7), np.sin(0.7)
    turned = 1.5 * hand @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + 0.3
    assert constant_pose_pa_epe_cm(hand, turned[None]) == pytest.approx(0.0, abs=1e-5)
    other = rng.normal(size=(21, 3)) * 0.05
    assert constant_pose_pa_epe_cm(hand, other[None]) > 0.5


def test_the_reference_is_the_best_labeled_pose_on_validation(cache):
    data = PreparedData(cache)
    labeled, val, test = (data.split(s) for s in ("labeled", "val", "test"))
    xyz = np.asarray(data.xyz, dtype=np.float64)
    ref = constant_pose_reference(cache, candidates=10_000, seed=0)  # every labeled pose
    brute = {int(r): constant_pose_pa_epe_cm(xyz[r], xyz[val]) for r in labeled}
    assert ref["row"] == min(brute, key=brute.get)
    assert ref["candidates"] == len(labeled)
    assert ref["val_pa_epe_cm"] == pytest.approx(min(brute.values()))
    assert ref["test_pa_epe_cm"] == pytest.approx(
        constant_pose_pa_epe_cm(xyz[ref["row"]], xyz[test])
    )
    assert (ref["n_val"], ref["n_test"]) == (len(val), len(test))
    assert constant_pose_reference(cache, candidates=3, seed=1) == constant_pose_reference(
        cache, candidates=3, seed=1
    )


def test_cli_writes_reference_json(cache, tmp_path):
    out = tmp_path / "tables" / "reference.json"
    args = ["--set", "report.reference_candidates=5"]
    sets = [a for t in TINY for a in ("--set", t)]
    assert cli.main(["reference", *sets, *args, "--data", str(cache), "--out", str(out)]) == 0
    ref = json.loads(out.read_text())
    assert ref["candidates"] == 5 and ref["test_pa_epe_cm"] > 0
    assert ref["unaligned"]["test_epe_cm"] > 0 and 0 <= ref["unaligned"]["test_auc"] <= 1


def test_mean_pose_is_placed_on_the_centre_ray_at_the_mean_depth():
    # a hand whose root lies on the centre ray at depth Z (bone units) is predicted exactly
    rng = np.random.default_rng(1)
    hand = rng.normal(size=(21, 3)) * 2.0  # bone units
    hand -= hand[0]
    K = np.array(
        [[[90.0, 0, 20.0], [0, 95.0, 33.0], [0, 0, 1]], [[60.0, 0, 31.5], [0, 60, 31.5], [0, 0, 1]]]
    )
    scale = np.array([0.03, 0.04])
    size, depth = 64, 18.0
    centre = np.linalg.solve(K, np.array([31.5, 31.5, 1.0]))  # K^-1 (c, 1) per sample
    true = scale[:, None, None] * (depth * centre[:, None, :] + hand[None])
    pred = mean_pose_prediction(hand, depth, K, scale, size)
    np.testing.assert_allclose(pred, true, atol=1e-12)
    assert unaligned_measures(pred, true)["epe_cm"] == pytest.approx(0.0, abs=1e-9)
    assert unaligned_measures(pred, true)["auc"] > 0.99  # (errors of 1e-17 m miss t = 0)
    far = unaligned_measures(pred + np.array([0, 0, 0.1]), true)  # 10 cm off: beyond the AUC's 5 cm
    assert far["epe_cm"] == pytest.approx(10.0) and far["auc"] == 0.0


def test_unaligned_reference_matches_a_direct_computation(cache):
    data = PreparedData(cache)
    labeled, val, test = (data.split(s) for s in ("labeled", "val", "test"))
    xyz = np.asarray(data.xyz, dtype=np.float64)
    K = np.asarray(data.K, dtype=np.float64)
    s = np.asarray(data.scale, dtype=np.float64)
    rel = (xyz - xyz[:, :1]) / s[:, None, None]
    mean_pose = rel[labeled].mean(0)
    mean_depth = (xyz[labeled, 0, 2] / s[labeled]).mean()
    c = (data.images.shape[1] - 1) / 2
    ref = constant_pose_reference(cache, candidates=3, seed=0)["unaligned"]
    assert ref["mean_root_depth_bones"] == pytest.approx(mean_depth)
    for name, rows in (("val", val), ("test", test)):
        ray = np.linalg.solve(K[rows], np.array([c, c, 1.0]))
        pred = s[rows, None, None] * (mean_depth * ray[:, None, :] + mean_pose)
        err = np.linalg.norm(pred - xyz[rows], axis=-1)
        assert ref[f"{name}_epe_cm"] == pytest.approx(100 * err.mean())
        assert 0.0 <= ref[f"{name}_auc"] <= 1.0
    # a model is expected to beat this by far; on the synthetic hands it is some centimetres off
    assert ref["test_epe_cm"] > 1.0
