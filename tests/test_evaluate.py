"""`equihand evaluate`: outputs, agreement with the independent scorer, clear errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from conftest import TINY, tiny_config
from PIL import Image

from equihand import cli
from equihand.data.cache import PreparedData
from equihand.evaluate import evaluate
from equihand.finetune import finetune
from equihand.pretrain import pretrain


@pytest.fixture(scope="module")
def finetuned(cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ft")
    return finetune(cache, out, tiny_config("finetune.max_steps=2"), None)


def test_evaluate_writes_every_output(cache, finetuned, tmp_path):
    result = evaluate(finetuned, cache, "test", tmp_path / "eval", tiny_config())
    out = tmp_path / "eval"
    n_test = len(PreparedData(cache).split("test"))
    assert result["n_samples"] == n_test == 8
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("epe_cm", "pa_epe_cm", "auc", "pa_auc", "rr_epe_cm", "epe_2d_px"):
        assert math.isfinite(saved[key]), key
    assert saved["pa_epe_cm"] <= saved["epe_cm"]
    with open(out / "per_sample.csv") as f:
        per_sample = list(csv.DictReader(f))
    assert len(per_sample) == n_test
    mean = sum(float(r["epe_cm"]) for r in per_sample) / n_test
    assert mean == pytest.approx(saved["epe_cm"], rel=1e-9)
    with open(out / "per_joint.csv") as f:
        assert [r["name"] for r in csv.DictReader(f)][:2] == ["wrist", "thumb_mcp"]
    with open(out / "pck.csv") as f:
        assert len(list(csv.DictReader(f))) == 100
    xyz, verts = json.loads((out / "pred.json").read_text())
    assert len(xyz) == n_test and len(xyz[0]) == 21 and len(xyz[0][0]) == 3
    assert len(verts) == n_test
    assert Image.open(out / "qualitative.png").size[0] > 0
    assert (out / "config.yaml").is_file()


def test_pred_json_scores_the_same_with_the_independent_scorer(
    cache, finetuned, tiny_dataset, tmp_path, capsys
):
    result = evaluate(finetuned, cache, "test", tmp_path / "eval", tiny_config())
    args = ["score", "--pred", str(tmp_path / "eval" / "pred.json"), "--gt", str(tiny_dataset)]
    assert cli.main([*args, "--out", str(tmp_path / "score.json")]) == 0
    scored = json.loads((tmp_path / "score.json").read_text())
    # the cache stores float32 ground truth, the JSON float64: agreement to a micrometre
    assert scored["epe_cm"] == pytest.approx(result["epe_cm"], abs=1e-4)
    assert scored["pa_epe_cm"] == pytest.approx(result["pa_epe_cm"], abs=1e-4)


def test_evaluate_refuses_a_pretraining_checkpoint(cache, tmp_path, capsys):
    pre = pretrain(cache, tmp_path / "pre", tiny_config("pretrain.max_steps=1"))
    sets = [a for o in TINY for a in ("--set", o)]
    args = ["evaluate", *sets, "--checkpoint", str(pre), "--data", str(cache)]
    assert cli.main([*args, "--out", str(tmp_path / "eval")]) == 2
    assert "expected 'finetune'" in capsys.readouterr().err
    assert not (tmp_path / "eval" / "metrics.json").exists()
