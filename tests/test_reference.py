"""The constant-pose PA-EPE reference: the pose is chosen on validation, and scored exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY

from equihand import cli
from equihand.data.cache import PreparedData
from equihand.reference import constant_pose_pa_epe_cm, constant_pose_reference


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
