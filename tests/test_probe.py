"""The part-aware probe: crop geometry, retrieval mAP by hand, probe determinism, the claims."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config
from PIL import Image

from equihand import cli
from equihand.analysis import part_aware
from equihand.analysis.claims import CLAIMS, claim_sentences, claims
from equihand.analysis.document import markdown_table
from equihand.analysis.probe_results import display_table, load_probe_runs, report_blocks
from equihand.data.cache import PreparedData
from equihand.data.images import rescale_intrinsics
from equihand.data.prepare import project
from equihand.errors import UserError
from equihand.methods.models import build_contrastive_model
from equihand.probe import probe_data
from equihand.probe.linear import (
    COLUMNS,
    linear_probe,
    load_encoder,
    mean_ap,
    retrieval_ap,
    ridge_probe,
)
from equihand.probe.sets import (
    OBJECT_TASKS,
    REGRESSION_TASKS,
    crop_box,
    crop_sides,
    cut_crop,
    full_size_uv,
    orientation_angles,
    orientation_bins,
    orientation_edges,
    pose2d_targets,
    select_crops,
)
from equihand.probe.sets import load as load_probe_sets

PROBE = ["probe.n_train=24", "probe.n_val=8", "probe.n_test=8", "probe.min_crop_px=3"]
PROBE += ["probe.epochs=4", "probe.feature_batch_size=32"]


# --- crop geometry -----------------------------------------------------------------------------


def test_crop_side_is_the_factor_times_the_nearest_other_keypoint():
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [10.0, 10.0]])
    # nearest others: 0 -> 1 (3), 1 -> 0 (3), 2 -> 0 (4), 3 -> 2 (sqrt(100 + 36))
    want = 0.5 * np.array([3.0, 3.0, 4.0, math.sqrt(136.0)])
    np.testing.assert_allclose(crop_sides(points, 0.5), want)
    with pytest.raises(ValueError, match="two keypoints"):
        crop_sides(points[:1], 1.0)


def test_crop_box_is_centred_on_the_keypoint_in_pil_coordinates():
    # pixel-centre keypoint (10, 20) is PIL coordinate (10.5, 20.5)
    assert crop_box(np.array([10.0, 20.0]), 6.0) == (7.5, 17.5, 13.5, 23.5)


@pytest.mark.parametrize("center, side", [((37.3, 52.6), 20.0), ((5.0, 90.2), 13.0)])
def test_the_keypoint_lands_at_the_centre_of_its_resized_crop(center, side):
    """A bright blob at a sub-pixel keypoint: its intensity centroid in the 32 px crop is the
    crop's centre ((32 - 1) / 2 in pixel-centre coordinates), even near the image border."""
    h = w = 100
    v, u = np.mgrid[0:h, 0:w].astype(float)
    blob = np.exp(-((u - center[0]) ** 2 + (v - center[1]) ** 2) / (2 * 1.5**2))
    image = Image.fromarray(np.repeat((255 * blob)[..., None], 3, axis=2).astype(np.uint8))
    crop = cut_crop(image, crop_box(np.array(center), side), 32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    weight = crop[..., 0].astype(float)
    cv, cu = np.mgrid[0:32, 0:32].astype(float)
    centroid = ((weight * cu).sum() / weight.sum(), (weight * cv).sum() / weight.sum())
    np.testing.assert_allclose(centroid, (15.5, 15.5), atol=0.2)
    # the blob's width scales by 32 / side (1.5 px sigma -> 1.5 * 32 / side)
    sigma = math.sqrt((weight * ((cu - 15.5) ** 2)).sum() / weight.sum())
    assert sigma == pytest.approx(1.5 * 32 / side, rel=0.2)


def test_outside_the_image_is_black():
    image = Image.new("RGB", (40, 40), (200, 200, 200))
    crop = cut_crop(image, crop_box(np.array([0.0, 0.0]), 20.0), 32)
    assert crop[:8, :8].max() == 0 and crop[-8:, -8:].min() == 200


def test_crops_of_hidden_tiny_or_outside_keypoints_are_dropped():
    uv = np.zeros((21, 2))
    joints = (0, 4, 8, 12)
    uv[0], uv[4], uv[8], uv[12] = (10, 10), (30, 10), (32, 10), (60, 70)
    visible = np.ones(21, bool)
    visible[4] = False
    kept = select_crops(uv, visible, (50, 50), joints, 1.0, 3.0)
    # joint 4 hidden; joint 12 outside the 50 x 50 image; joint 8's nearest is joint 4 (2 px): tiny
    assert [label for label, _, _ in kept] == [0]
    assert kept[0][2] == pytest.approx(20.0)


def test_full_size_keypoints_invert_the_cache_resize():
    rng = np.random.default_rng(0)
    xyz = rng.normal([0, 0, 0.6], [0.05, 0.05, 0.02], size=(21, 3))
    K = np.array([[480.0, 0, 111.5], [0, 480.0, 111.5], [0, 0, 1]])
    uv_full = project(xyz, K)
    uv_cache = project(xyz, rescale_intrinsics(K, (224, 224), 32))
    np.testing.assert_allclose(full_size_uv(uv_cache, 32, (224, 224)), uv_full)


def test_orientation_angle_and_equal_count_bins():
    uv = np.zeros((4, 21, 2))
    uv[:, 9] = [[0, -1], [1, 0], [0, 1], [-1, -1]]  # up, right, down, up-left (v points down)
    np.testing.assert_allclose(orientation_angles(uv), [270, 0, 90, 225])
    angles = np.arange(100.0)
    edges = orientation_edges(angles, 4)
    assert np.bincount(orientation_bins(angles, edges)).tolist() == [25, 25, 25, 25]


# --- retrieval ---------------------------------------------------------------------------------


def test_retrieval_ap_matches_a_hand_worked_example():
    """Five unit vectors on a circle (cosine = dot product), the query left out of its gallery.

    q0 (class 0): 1 (+) .8, 2 .6, 3 0, 4 -1            -> AP 1
    q1 (class 0): 2 .96, 0 (+) .8, 3 .6, 4 -.8          -> AP 1/2
    q2 (class 1): 1 .96, 3 (+) .8, 0 .6, 4 (+) -.6      -> AP (1/2 + 2/4) / 2 = 1/2
    q3 (class 1): 2 (+) .8, 1 .6, 0 0, 4 (+) 0 (tie: gallery order) -> AP (1 + 2/4) / 2 = 3/4
    q4 (class 1): 3 (+) 0, 2 (+) -.6, 1 -.8, 0 -1       -> AP 1
    """
    f = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1], [-1, 0]]) * [[1], [2], [3], [0.5], [4]]
    labels = np.array([0, 0, 1, 1, 1])
    ap = retrieval_ap(f, labels)
    np.testing.assert_allclose(ap, [1, 0.5, 0.5, 0.75, 1])
    m, cm = mean_ap(ap, labels)
    assert m == pytest.approx(3.75 / 5) and cm == pytest.approx((0.75 + 2.25 / 3) / 2)


def test_retrieval_ap_of_a_query_alone_in_its_class_is_nan_and_ignored():
    ap = retrieval_ap(np.eye(3), np.array([0, 0, 1]))
    assert np.isnan(ap[2]) and not np.isnan(ap[:2]).any()
    m, cm = mean_ap(np.array([1.0, 0.5, np.nan, 0.2]), np.array([0, 0, 1, 1]))
    assert m == pytest.approx(1.7 / 3) and cm == pytest.approx((0.75 + 0.2) / 2)


# --- the linear probe --------------------------------------------------------------------------


def test_linear_probe_separates_separable_classes_and_picks_the_epoch_on_val():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    x, y = {}, {}
    for split, n in (("train", 90), ("val", 30), ("test", 30)):
        y[split] = np.arange(n) % 3
        x[split] = (centres[y[split]] + rng.normal(size=(n, 16))).astype(np.float32)
    cfg = tiny_config(*PROBE)["probe"] | {"epochs": 5}
    out = linear_probe(x, y, 3, cfg, seed=0)
    assert out["test_top1"] == 1.0 and out["val_top1"] == 1.0
    assert 1 <= out["best_epoch"] <= 5
    # the test split never chooses: flipping test labels changes the score, not the epoch
    y["test"] = (y["test"] + 1) % 3
    flipped = linear_probe(x, y, 3, cfg, seed=0)
    assert flipped["best_epoch"] == out["best_epoch"] and flipped["test_top1"] == 0.0


# --- the steps on the tiny dataset -------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_sets(cache, tiny_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "data"
    probe_data.write(cache, tiny_dataset, out, tiny_config(*PROBE))
    return out


def test_probe_sets_hold_labelled_crops_split_by_hand(probe_sets, cache):
    arrays, meta = load_probe_sets(probe_sets)
    assert list(meta["tasks"]) == ["gesture", "orientation", "pose2d", "part", "finger"]
    assert meta["tasks"]["pose2d"]["kind"] == "regression"
    assert arrays["pose2d"].shape == (len(arrays["object_images"]), 42)
    data = PreparedData(cache)
    hand_id = np.asarray(data.hand_id)
    for task in ("part", "finger"):
        labels, split = arrays[f"{task}_labels"], arrays[f"{task}_split"]
        assert arrays[f"{task}_images"].shape == (len(labels), 32, 32, 3)
        assert labels.max() < len(meta["tasks"][task]["classes"])
        assert set(split.tolist()) == {0, 1, 2}
        hands = [set(hand_id[arrays[f"{task}_row"][split == s]].tolist()) for s in range(3)]
        assert not (hands[0] & hands[1]) and not (hands[0] & hands[2]) and not hands[1] & hands[2]
        sides = arrays[f"{task}_box"][:, 2] - arrays[f"{task}_box"][:, 0]
        assert (sides >= 3 - 1e-4).all()
    assert meta["counts"]["object"] == {"train": 24, "val": 8, "test": 8}


def test_missing_raw_image_names_the_file(cache, tiny_dataset, tmp_path):
    broken = tmp_path / "copy"
    shutil.copytree(tiny_dataset, broken)
    victim = sorted((broken / "evaluation" / "rgb").iterdir())[0]
    victim.unlink()
    with pytest.raises(UserError, match=victim.name):
        probe_data.write(cache, broken, tmp_path / "out", tiny_config(*PROBE))
    assert not (tmp_path / "out").exists()


def _pretrained(cache, tmp_path) -> Path:
    from equihand.train.pretrain import pretrain

    return pretrain(cache, tmp_path / "pre", tiny_config("pretrain.objective=equivariant"))


def test_probe_is_deterministic_and_scores_backbone_and_projector(probe_sets, cache, tmp_path):
    ckpt = _pretrained(cache, tmp_path)
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        argv = ["probe", *[a for p in ["progress=never", "device=cpu", "train.threads=1", *PROBE]
                           for a in ("--set", p)]]  # fmt: skip
        code = cli.main([*argv, "--probe-data", str(probe_sets), "--checkpoint", str(ckpt),
                         "--encoder", "equivariant", "--seed", "3", "--out", str(out)])  # fmt: skip
        assert code == 0
        runs.append((out / "probe.csv").read_bytes())
    assert runs[0] == runs[1]
    table = pd.read_csv(tmp_path / "run0" / "probe.csv")
    assert set(table["feature"]) == {"backbone", "projector"}
    assert set(table["task"]) == {"gesture", "orientation", "pose2d", "part", "finger"}
    classified = table[table["task"] != "pose2d"]
    assert classified["test_top1"].between(0, 1).all() and classified["map"].between(0, 1).all()
    pose = table[table["task"] == "pose2d"]
    assert pose["test_r2"].notna().all() and (pose["test_r2"] <= 1).all()
    assert pose["test_top1"].isna().all() and classified["test_r2"].isna().all()
    arrays, _ = load_probe_sets(probe_sets)
    part_test = arrays["part_labels"][arrays["part_split"] == 2]
    majority = table.set_index(["feature", "task"]).loc[("backbone", "part"), "test_majority"]
    assert majority == pytest.approx(np.bincount(part_test).max() / len(part_test), abs=1e-6)
    assert (classified["best_epoch"].between(1, 4)).all()
    assert (tmp_path / "run0" / "config.yaml").is_file()


def test_probe_reads_the_checkpoints_backbone(cache, tmp_path):
    """The frozen encoder's features are the pretrained model's encoder features."""
    ckpt = _pretrained(cache, tmp_path)
    enc = load_encoder(str(ckpt), tiny_config()["model"], seed=0)
    state = torch.load(ckpt, weights_only=True)["model"]
    model = build_contrastive_model(tiny_config()["model"])
    model.load_state_dict(state)
    model.eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)["backbone"], model.encoder(x))
        torch.testing.assert_close(enc(x)["projector"], model(x))
    random0, random1 = (load_encoder("random", tiny_config()["model"], s) for s in (0, 1))
    assert "projector" not in random0(x)
    assert not torch.equal(random0(x)["backbone"], random1(x)["backbone"])


def test_probe_rejects_a_missing_checkpoint(probe_sets, tmp_path, capsys):
    code = cli.main(["probe", "--set", "progress=never", "--probe-data", str(probe_sets),
                     "--checkpoint", str(tmp_path / "nope.pt"), "--encoder", "x",
                     "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "nope.pt" in capsys.readouterr().err


# --- the table and the claims ------------------------------------------------------------------


def _run_rows(encoder, seed, values: dict, feature="backbone") -> list[dict]:
    """Probe rows; a task's value is (top-1, mAP), or the test R^2 for pose2d."""
    rows = []
    for task, value in values.items():
        row = dict.fromkeys(COLUMNS, 0)
        row |= {"encoder": encoder, "backbone": "resnet18", "seed": seed, "feature": feature}
        if task in REGRESSION_TASKS:
            row |= {"task": task, "level": "object", "n_classes": 0, "test_r2": value}
            row |= dict.fromkeys(("test_top1", "val_top1", "map", "class_map"), float("nan"))
        else:
            top1, m = value
            level = "object" if task in OBJECT_TASKS else "part"
            row |= {"task": task, "level": level, "n_classes": 5, "test_top1": top1, "map": m}
            row |= {"test_r2": float("nan")}
        rows.append(row)
    return rows


def _write_runs(tmp_path, rows) -> Path:
    path = tmp_path / "probe.csv"
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return path


def claim_texts(table) -> dict[str, str]:
    """Claim name -> its sentence (claim_sentences gives one per claim, in CLAIMS order)."""
    return dict(zip(CLAIMS, claim_sentences(table), strict=True))


REP = {"alpha": 0.05, "power": 0.8, "max_seeds": 200}


def test_claims_are_paired_by_seed_and_holm_corrected(tmp_path):
    rows = []
    for s, shift in enumerate([0.00, 0.01, 0.02]):
        rows += _run_rows("supervised", s, {"gesture": (0.60 + shift, 0.3), "part": (0.40, 0.2)})
        rows += _run_rows("equivariant", s, {"gesture": (0.50 + shift, 0.3), "part": (0.45, 0.3)})
        rows += _run_rows(
            "equivariant", s, {"gesture": (0.5, 0.3), "part": (0.4, 0.1)}, "projector"
        )
    runs = load_probe_runs([_write_runs(tmp_path, rows)])
    table = claims(runs, REP).set_index(["claim", "task"])
    sup = table.loc[("supervised_object", "gesture")]
    # paired by seed, the differences are all 0.10: the interval is the point itself, p is 0
    assert sup["diff"] == pytest.approx(0.10) and sup["n_seeds"] == 3
    assert sup["ci_low"] == pytest.approx(0.10) and sup["ci_high"] == pytest.approx(0.10)
    assert sup["verdict"] == "supports" and sup["p_holm"] < 1e-9 and sup["p_perm"] == 0.25
    assert (table["family_size"] == len(table)).all() and not table["perm_can_reject"].any()
    assert table.loc[("ssl_part", "part"), "diff"] == pytest.approx(0.05)
    assert table.loc[("backbone_part", "part"), "diff"] == pytest.approx(0.2)  # mAP .3 vs .1
    assert not (table.index.get_level_values("claim") == "cl_mim_part").any()
    sentences = claim_texts(table.reset_index())
    assert "not tested" in sentences["beats_random"]  # no random-init encoder among these runs
    assert "not tested" in sentences["pose_beats_random"]
    assert "**holds here**" in sentences["supervised_object"]
    assert "not tested" in sentences["cl_mim_part"]


def test_pose_claims_compare_with_random_and_equivariant_with_invariant(tmp_path):
    rows = []
    for s in range(3):
        rows += _run_rows("random", s, {"orientation": (0.30, 0.2), "pose2d": 0.10 + s / 100})
        rows += _run_rows("invariant", s, {"orientation": (0.28, 0.2), "pose2d": 0.12 + s / 100})
        rows += _run_rows("equivariant", s, {"orientation": (0.40, 0.2), "pose2d": 0.30})
    runs = load_probe_runs([_write_runs(tmp_path, rows)])
    table = claims(runs, REP).set_index(["claim", "a", "task"])
    r2 = table.loc[("pose_beats_random", "equivariant", "pose2d")]
    assert r2["metric"] == "test_r2" and r2["diff"] == pytest.approx(0.19)
    assert r2["verdict"] == "supports"
    assert table.loc[("pose_beats_random", "invariant", "orientation"), "verdict"] == (
        "contradicts"
    )
    eq = table.loc[("equivariant_pose", "equivariant", "pose2d")]
    assert eq["b"] == "invariant" and eq["diff"] == pytest.approx(0.17)
    sentences = claim_texts(table.reset_index())
    assert "**holds here**" in sentences["equivariant_pose"]
    assert "**holds only in part**" in sentences["pose_beats_random"]
    assert "pose2d R²" in sentences["equivariant_pose"]
    md = markdown_table(display_table(runs))
    assert "pose2d R²" in md and "0.300 ± 0.000" in md


def test_pose2d_targets_keep_shape_and_rotation_but_not_position_or_size():
    rng = np.random.default_rng(0)
    uv = rng.normal(size=(1, 21, 2))
    moved = uv * 3.0 + np.array([5.0, -2.0])
    t = pose2d_targets(np.concatenate([uv, moved]))
    np.testing.assert_allclose(t[0], t[1], atol=1e-5)
    assert (t[0].reshape(21, 2) ** 2).sum(axis=1).mean() == pytest.approx(1.0, abs=1e-5)
    turned = uv[..., ::-1] * np.array([1.0, -1.0])  # a quarter turn
    assert np.abs(pose2d_targets(turned) - t[:1]).max() > 0.1


def test_ridge_probe_reads_a_linear_target_and_not_noise():
    rng = np.random.default_rng(0)
    x = {s: rng.normal(size=(n, 16)) for s, n in (("train", 400), ("val", 100), ("test", 100))}
    w = rng.normal(size=(16, 4))
    linear = {s: v @ w + 0.01 * rng.normal(size=(len(v), 4)) for s, v in x.items()}
    noise = {s: rng.normal(size=(len(v), 4)) for s, v in x.items()}
    good = ridge_probe(x, linear, [0.1, 10.0, 1000.0])
    assert good["test_r2"] > 0.99 and good["alpha"] == 0.1
    bad = ridge_probe(x, noise, [0.1, 10.0, 1000.0])
    assert bad["test_r2"] < 0.02 and bad["alpha"] == 1000.0


def test_a_sign_flip_across_seeds_is_within_seed_noise(tmp_path):
    rows = []
    for s, d in enumerate([0.05, -0.05, 0.04, -0.04]):
        rows += _run_rows("supervised", s, {"part": (0.4, 0.2)})
        rows += _run_rows("mim", s, {"part": (0.4 + d, 0.2)})
    runs = load_probe_runs([_write_runs(tmp_path, rows)])
    row = claims(runs, REP).iloc[0]
    assert row["claim"] == "ssl_part" and row["ci_low"] < 0 < row["ci_high"]
    assert row["verdict"] == "cannot tell"
    sentences = claim_texts(claims(runs, REP))
    assert "cannot be told from seed noise" in sentences["ssl_part"]


def test_one_seed_has_no_ci_and_says_a_ci_needs_two_seeds(tmp_path):
    rows = []
    for enc, part in [("supervised", 0.40), ("mim", 0.45), ("invariant", 0.50)]:
        rows += _run_rows(enc, 0, {"part": (part, 0.2)})
    rows += _run_rows("invariant", 1, {"part": (0.50, 0.2)})
    rows += _run_rows("supervised", 1, {"part": (0.40, 0.2)})
    runs = load_probe_runs([_write_runs(tmp_path, rows)])
    table = claims(runs, REP).set_index(["claim", "a"])
    one = table.loc[("ssl_part", "mim")]
    assert one["n_seeds"] == 1 and one["verdict"] == "no test" and math.isnan(one["ci_low"])
    assert table.loc[("ssl_part", "invariant"), "verdict"] == "supports"
    sentence = claim_texts(table.reset_index())["ssl_part"]
    assert "nan" not in sentence and "every CI contains 0" not in sentence
    assert "1 of the 2 have one seed, so no test" in sentence
    assert "mim vs supervised on part top-1 +0.050 (one seed, no test)" in sentence

    single = claims(runs[runs["seed"] == 0], REP)
    sentence = claim_texts(single)["ssl_part"]
    assert "**cannot be tested here**: a test needs at least 2 seeds" in sentence
    assert "nan" not in sentence and "every CI contains 0" not in sentence


def test_part_aware_step_writes_table_claims_figure_and_report_section(tmp_path):
    rows = []
    for s in range(2):
        for enc, g, p in [("random", 0.1, 0.3), ("supervised", 0.5, 0.35), ("mim", 0.3, 0.4)]:
            rows += _run_rows(enc, s, {"gesture": (g + s / 100, 0.2), "part": (p, 0.2 + s / 100)})
    runs = _write_runs(tmp_path, rows)
    config = tiny_config()
    part_aware.write([runs], tmp_path / "t" / "part_aware", tmp_path / "f" / "part_aware", config)
    assert (tmp_path / "t" / "part_aware.csv").is_file()
    md = (tmp_path / "t" / "part_aware.md").read_text()
    assert "| supervised | resnet18 | backbone | 2 | 0.505 ± 0.007 |" in md
    png = Image.open(tmp_path / "f" / "part_aware.png")
    assert np.asarray(png.convert("L")).std() > 10  # not blank
    assert (tmp_path / "f" / "part_aware.pdf").read_bytes().startswith(b"%PDF")
    blocks = report_blocks(tmp_path / "t" / "part_aware", tmp_path / "f" / "part_aware.png")
    text = json.dumps([b[1] if isinstance(b[1], str) else "" for b in blocks])
    assert "Part-aware probe" in text and "without looking at the image" in text
    with pytest.raises(UserError, match="appears in more than one"):
        load_probe_runs([runs, runs])
