"""`equihand evaluate`: outputs, agreement with the independent scorer, clear errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, tiny_config
from PIL import Image

from equihand import cli
from equihand.data.cache import PreparedData
from equihand.evaluate.evaluate import evaluate
from equihand.methods.models import build_pose_model
from equihand.train.batches import Labels, load_images
from equihand.train.checkpoint import load_checkpoint, save_checkpoint
from equihand.train.finetune import finetune, labeled_subset, root_range
from equihand.train.pretrain import pretrain
from equihand.train.runtime import autocast, place


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


# --- root refinement and checkpoints without it -------------------------------------------------


@pytest.fixture(scope="module")
def refined(cache, tmp_path_factory) -> Path:
    """`finetuned`'s run with model.root_refine on."""
    out = tmp_path_factory.mktemp("ft_refined")
    return finetune(cache, out, tiny_config("finetune.max_steps=2", "model.root_refine=true"), None)


def _metrics_csv(checkpoint: Path) -> list[dict]:
    with open(checkpoint.parent / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_refinement_leaves_the_2_5d_model_as_it_was(finetuned, refined):
    # the refiner reads detached inputs: the encoder and 2.5D head train bitwise as without it;
    # the 3D changes with the root depth it is placed at (perspective: also its aligned shape)
    plain, ref = (load_checkpoint(p, kind="finetune")["model"] for p in (finetuned, refined))
    assert set(ref) - set(plain) and all(k.startswith("refiner.") for k in set(ref) - set(plain))
    assert all(torch.equal(v, ref[k]) for k, v in plain.items())
    rows = _metrics_csv(finetuned), _metrics_csv(refined)
    assert rows[0][-1]["val_epe_cm"] != rows[1][-1]["val_epe_cm"]


def test_evaluation_places_3d_with_the_recorded_refined_root(cache, refined, tmp_path):
    record = load_checkpoint(refined, kind="finetune")
    data = PreparedData(cache)
    labels = Labels(data)
    rows = labeled_subset(data.split("labeled"), 1.0, 0)
    low, high = root_range(labels.root[torch.from_numpy(rows)], 0.25)
    assert record["extra"]["root_depth_range"] == [low, high]
    torch.testing.assert_close(record["model"]["refiner.depth_range"], torch.tensor([low, high]))

    result = evaluate(refined, cache, "test", tmp_path / "eval", tiny_config())
    assert result["root_refine"] is True
    # the evaluated model, rebuilt by hand from the checkpoint: the refined root depth it
    # predicts is where pred.json puts each wrist
    model = build_pose_model(record["config"]["model"])
    model.load_state_dict(record["model"])
    model = place(model.eval(), torch.device("cpu"), record["config"])
    test = data.split("test")
    idx = torch.from_numpy(test)
    images = load_images(data.images, test, torch.device("cpu"), channels_last=True)
    with torch.no_grad(), autocast(torch.device("cpu"), record["config"]["train"]):
        out = model(images, labels.K[idx])
    xyz = torch.tensor(json.loads((tmp_path / "eval" / "pred.json").read_text())[0])
    wrist_depth = xyz[:, 0, 2] / labels.scale[idx] - out["zr"][:, 0].float()  # zr_0 is learned
    torch.testing.assert_close(wrist_depth, out["root"], rtol=1e-4, atol=1e-4)
    assert ((out["root"] - out["root_closed"]).abs() > 1e-4).all()  # the MLP has learned
    assert ((out["root_closed"] >= low - 1e-4) & (out["root_closed"] <= high + 1e-4)).all()


def test_a_checkpoint_from_before_root_refine_still_evaluates(cache, finetuned, tmp_path):
    # written by the current code with root_refine false, then stripped of every key the option
    # added: what an older equihand wrote
    record = load_checkpoint(finetuned, kind="finetune")
    for key in ("root_refine", "root_refine_hidden", "root_refine_margin"):
        del record["config"]["model"][key]
    del record["config"]["finetune"]["root_weight"]
    del record["extra"]["root_depth_range"]
    old = save_checkpoint(tmp_path / "old.pt", {k: v for k, v in record.items() if k != "format"})
    now = evaluate(finetuned, cache, "test", tmp_path / "now", tiny_config())
    before = evaluate(old, cache, "test", tmp_path / "old", tiny_config())
    assert before["root_refine"] is False
    for key in ("epe_cm", "pa_epe_cm", "auc", "pa_auc"):
        assert before[key] == now[key], key


def test_weights_that_do_not_fit_their_config_are_a_clear_error(cache, finetuned, tmp_path, capsys):
    record = load_checkpoint(finetuned, kind="finetune")
    record["config"]["model"]["root_refine"] = True  # but the weights have no refiner
    bad = save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in record.items() if k != "format"})
    # the checkpoint's model settings, not the command line's, decide what evaluate builds
    sets = [a for o in TINY if not o.startswith("model.") for a in ("--set", o)]
    args = ["evaluate", *sets, "--checkpoint", str(bad), "--data", str(cache)]
    assert cli.main([*args, "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "do not fit" in err and "root_refine=True" in err and "Traceback" not in err


def test_root_error_bench_places_the_3d_as_evaluate_does(cache, refined, tmp_path):
    # bench/root_error.py's "as evaluated" column must be what `equihand evaluate` measures on the
    # same split; the other placements swap one part for the truth
    result = evaluate(refined, cache, "val", tmp_path / "eval", tiny_config())
    script = Path(__file__).resolve().parents[1] / "bench" / "root_error.py"
    done = subprocess.run(
        [sys.executable, str(script), str(refined.parent), "--cache", str(cache), "--out",
         str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "root_error.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["refiner"] == "True" and int(row["n"]) == result["n_samples"]
    # bf16 autocast on CPUs with native bf16; evaluate also uses channels_last
    assert float(row["epe_cm[as_evaluated]"]) == pytest.approx(result["epe_cm"], rel=1e-2)
    assert float(row["auc[as_evaluated]"]) == pytest.approx(result["auc"], abs=1e-2)
    for key, value in row.items():
        if key.startswith("auc["):
            assert 0 <= float(value) <= 1, key


def test_root_error_bench_refuses_a_folder_without_a_model(cache, tmp_path):
    script = Path(__file__).resolve().parents[1] / "bench" / "root_error.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "--cache", str(cache)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{tmp_path}: no model.pt" in done.stderr
