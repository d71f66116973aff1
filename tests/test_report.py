"""The written report: Holm-corrected paired tests over seeds, the generated answer, outputs."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from PIL import Image

from equihand.analysis.ablation import ablation_table
from equihand.analysis.comparisons import comparisons
from equihand.analysis.prose import (
    answer,
    label_effect_text,
    reference_text,
    unaligned_reference_text,
)
from equihand.analysis.report import read_reference, write_report
from equihand.cli import main
from equihand.config import load_config
from equihand.errors import UserError
from equihand.vocabulary import FIGURES


def _runs(values: dict[str, list], fraction: float = 0.1) -> pd.DataFrame:
    """runs.csv rows: objective -> PA-EPE per seed 0, 1, ... (None = that seed did not run)."""
    rows = [
        {
            "objective": objective,
            "backbone": "resnet18",
            "label_fraction": fraction,
            "seed": seed,
            "epe_cm": 10.0,
            "pa_epe_cm": v,
            "auc": 0.5,
            "pa_auc": 0.8,
            "path": f"{objective}/{fraction}/{seed}/metrics.json",
        }
        for objective, vs in values.items()
        for seed, v in enumerate(vs)
        if v is not None
    ]
    return pd.DataFrame(rows)


REP = load_config(None, [])["report"]


def _answer(runs: pd.DataFrame) -> str:
    return " ".join(answer(ablation_table(runs), comparisons(runs, REP), REP))


def compare(runs: pd.DataFrame, a: str, b: str) -> pd.Series:
    """The family member `a` vs `b` (objectives) of `runs`' report."""
    comps = comparisons(runs, REP)
    rows = comps[(comps["kind"] == "objectives") & (comps["a"] == a) & (comps["b"] == b)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_clear_winner_hand_worked():
    runs = _runs({"none": [3.0, 3.2, 3.1], "equivariant": [2.0, 2.1, 2.2]})
    c = compare(runs, "equivariant", "none")
    assert c["n_seeds"] == 3 and c["unpaired"] == ""
    assert c["diff_cm"] == pytest.approx(1.0, abs=1e-12)  # d = 1.0, 1.1, 0.9
    assert c["improvement_pct"] == pytest.approx(100 / 3.1)
    # t-interval: 1.0 +- t(0.975, 2) * 0.1 / sqrt(3)
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert (c["ci_low_cm"], c["ci_high_cm"]) == pytest.approx((1 - half, 1 + half), abs=1e-5)
    assert c["p_t"] == pytest.approx(0.003316, abs=1e-5) and c["p_perm"] == pytest.approx(0.25)
    assert not c["perm_can_reject"] and c["family_size"] == 1
    assert c["p_holm"] == c["p_t"] and c["beyond_noise"] and c["verdict"] == "equivariant better"
    assert c["seed_std_a_cm"] == pytest.approx(0.1) and c["seed_std_b_cm"] == pytest.approx(0.1)
    assert c["mde_cm"] > 0 and c["seeds_for_target"] >= 2
    text = _answer(runs)
    assert "`equivariant` has the lowest mean PA-EPE (2.10 cm" in text
    assert "`equivariant`'s PA-EPE is 32.3% (1.000 cm) lower than `none`'s" in text
    assert "the corrected test rejects, so this is larger than seed noise" in text
    assert "which cannot go below 0.25 at 3 seeds" in text and "cannot tell" not in text


def test_sign_flip_across_seeds_cannot_tell_apart():
    runs = _runs(
        {"none": [3.0, 3.0, 3.0], "invariant": [2.8, 3.3, 2.9], "equivariant": [3.1, 2.9, 3.0]}
    )
    comps = comparisons(runs, REP)
    assert [(a, b) for a, b in comps[["a", "b"]].values] == [
        ("invariant", "none"),
        ("equivariant", "none"),
        ("equivariant", "invariant"),
    ]
    assert ((comps["ci_low_cm"] <= 0) & (comps["ci_high_cm"] >= 0)).all()
    assert not comps["beyond_noise"].any() and set(comps["verdict"]) == {"cannot tell"}
    text = _answer(runs)
    assert "the corrected test does not reject, so the study cannot tell" in text
    assert "cannot tell whether the equivariant objective beats the invariant one" in text
    assert "this study cannot tell the objectives apart at this budget" in text


def test_invariant_beating_equivariant_is_named():
    runs = _runs(
        {"none": [3.0, 3.0, 3.0], "invariant": [2.0, 2.1, 2.0], "equivariant": [2.5, 2.6, 2.5]}
    )
    text = _answer(runs)
    assert "`invariant` has the lowest mean PA-EPE" in text
    assert "The invariant objective beats the equivariant one" in text


def test_a_difference_the_uncorrected_test_finds_is_not_claimed_when_holm_does_not():
    # d = 0.10, 0.12, 0.14 for equivariant vs none at each of three fractions: p_t 0.0103 each,
    # but the family has 3 members plus the label effects, so Holm's corrected p is above 0.05
    runs = pd.concat(
        [
            _runs({"none": [3.0, 3.0, 3.0], "equivariant": [2.90, 2.88, 2.86]}, f)
            for f in (0.1, 0.5, 1.0)
        ]
    )
    comps = comparisons(runs, REP)
    objectives = comps[comps["kind"] == "objectives"]
    assert (objectives["p_t"] < 0.05).all() and (objectives["p_holm"] > 0.05).all()
    assert not objectives["beyond_noise"].any() and objectives["family_size"].eq(7).all()
    # the MDE is at Holm's first-step level, 0.05 / 7: larger than the observed 0.12 cm
    assert (objectives["mde_cm"] > objectives["diff_cm"]).all()
    assert "the observed difference is smaller than the design can detect" in _answer(runs)


def test_the_report_says_when_the_design_cannot_detect_peclrs_gain():
    runs = _runs({"none": [3.0, 3.5, 2.5], "equivariant": [2.9, 3.0, 2.7]})
    c = compare(runs, "equivariant", "none")
    assert c["mde_pct"] > REP["reference_gain_pct"]
    assert "cannot detect even the 14.5% gain PeCLR reports on FreiHAND" in _answer(runs)
    clear = _runs({"none": [3.0, 3.01, 3.02], "equivariant": [2.0, 2.0, 2.0]})
    assert "PeCLR reports" not in _answer(clear)


def test_single_seed_has_no_test(tmp_path):
    runs = _runs({"none": [3.0], "equivariant": [2.0]})
    c = compare(runs, "equivariant", "none")
    assert c["n_seeds"] == 1 and math.isnan(c["ci_low_cm"]) and not c["beyond_noise"]
    assert c["verdict"] == "no test (one seed)" and math.isnan(c["p_holm"])
    text = _answer(runs)
    assert "mean of 1 seed)" in text and "with one seed there is no test and no interval" in text
    assert "cannot tell the objectives apart" in text
    runs.to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "figs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "figs" / "qualitative_grid.png")
    write_report(tmp_path / "runs.csv", tmp_path / "figs", tmp_path / "out", load_config(None, []))
    md = (tmp_path / "out" / "ablation.md").read_text()
    assert "With 1 seed there is no test and no interval" in md
    assert "| no test (one seed) |" in md
    assert f"*{FIGURES['qualitative_grid']}*" in md


def test_unpaired_seeds_use_the_common_ones():
    runs = _runs({"none": [3.0, 3.1, 3.2], "equivariant": [2.0, 2.2, None]})
    c = compare(runs, "equivariant", "none")
    assert c["n_seeds"] == 2 and c["seeds"] == "0, 1"
    assert c["unpaired"] == "seed 2 only for none"
    assert c["diff_cm"] == pytest.approx(0.95)
    assert "(seeds 0, 1; seed 2 only for none)" in _answer(runs)
    effect = comparisons(
        _runs({"none": [3.0, 3.1, None]}, 0.1).pipe(
            lambda r: pd.concat([r, _runs({"none": [2.0, 2.2, 2.1]}, 1.0)])
        ),
        REP,
    )
    assert effect.iloc[0]["unpaired"] == "seed 2 only for none at 100%"


def test_bad_inputs_name_the_file(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    _runs({"none": [3.0, 3.1]}).to_csv(runs_csv, index=False)
    config = load_config(None, [])
    with pytest.raises(UserError, match="nofigs"):
        write_report(runs_csv, tmp_path / "nofigs", tmp_path / "out", config)
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "other.png").write_bytes(b"")
    with pytest.raises(UserError, match="figs: no figures found"):
        write_report(runs_csv, tmp_path / "figs", tmp_path / "out", config)
    bad = tmp_path / "bad.csv"
    bad.write_text("objective,seed\nnone,0\n")
    with pytest.raises(UserError, match=r"bad\.csv"):
        write_report(bad, tmp_path / "figs", tmp_path / "out", config)


def test_cli_writes_markdown_html_and_comparisons(tmp_path):
    runs = pd.concat(
        [
            _runs({"none": [3.0, 3.2, 3.1], "equivariant": [2.0, 2.1, 2.2]}, 0.1),
            _runs({"none": [3.0, 3.2, 3.1], "invariant": [3.1, 3.0, 3.2]}, 1.0),
        ]
    )
    runs.to_csv(tmp_path / "runs.csv", index=False)
    figures = tmp_path / "figures"
    figures.mkdir()
    Image.new("RGB", (8, 8), "red").save(figures / "pa_epe_per_objective.png")
    out = tmp_path / "report"
    argv = ["report", "--runs", str(tmp_path / "runs.csv"), "--figures", str(figures)]
    assert main([*argv, "--out", str(out), "--set", "report.target_gain_pct=3"]) == 0
    md = (out / "ablation.md").read_text()
    assert "](../figures/pa_epe_per_objective.png)" in md
    assert "| equivariant | resnet18 | 0.1 |" in md  # the ablation table
    assert "Holm's step-down method at 0.05" in md and "seeds for 3%" in md
    assert "The 3 comparisons with at least two seeds form one family: equivariant vs none at "
    assert "cannot reject at 0.05 whatever the data" in md
    assert "**resnet18, 10% of the labels.**" in md and "**resnet18, 100% of the labels.**" in md
    page = (out / "ablation.html").read_text()
    assert "data:image/png;base64," in page and "<table" in page and "<strong>" in page
    comps = pd.read_csv(out / "comparisons.csv")
    assert list(comps["kind"]) == ["objectives", "objectives", "labels"]
    assert list(comps["a"]) == ["equivariant", "invariant", "none"]
    assert list(comps["beyond_noise"]) == [True, False, False]
    assert (comps["family_size"] == 3).all() and comps["p_holm"].notna().all()


def test_mim_objectives_are_compared_with_none_and_their_contrastive_half():
    runs = _runs(
        {
            "none": [3.0, 3.1],
            "equivariant": [2.9, 3.0],
            "mim": [3.2, 3.3],
            "equivariant+mim": [2.5, 2.7],
        }
    )
    pairs = list(zip(*(comparisons(runs, REP)[k] for k in ("a", "b")), strict=True))
    assert pairs == [
        ("equivariant", "none"),
        ("mim", "none"),
        ("equivariant+mim", "none"),
        ("equivariant+mim", "equivariant"),
        ("equivariant+mim", "mim"),
    ]
    row = comparisons(runs, REP).iloc[-2]
    assert row["diff_cm"] == pytest.approx(((2.9 - 2.5) + (3.0 - 2.7)) / 2)
    # the answer words X+mim vs X as adding MIM, never as equivariant vs invariant
    text = _answer(runs)
    assert (
        "Adding MIM to `equivariant`: `equivariant+mim`'s PA-EPE is 11.9% (0.350 cm) lower" in text
    )
    # and against MIM alone: Zhu et al.'s claim is that the combination beats either half
    assert (
        "Adding `equivariant` to MIM: `equivariant+mim`'s PA-EPE is 20.0% (0.650 cm) lower than "
        "`mim`'s" in text
    )
    assert "invariant one" not in text


def test_mim_comparisons_do_not_pose_as_equivariant_vs_invariant():
    runs = _runs({"invariant": [3.0, 3.1], "invariant+mim": [2.0, 2.1], "equivariant": [3, 3.1]})
    text = _answer(runs)
    assert text.count("invariant one") == 1  # equivariant vs invariant, once
    assert "Adding MIM to `invariant`: `invariant+mim`'s PA-EPE is" in text


def test_reference_sentence_follows_the_numbers(tmp_path):
    table = ablation_table(_runs({"none": [3.0, 3.2], "equivariant": [2.0, 2.2]}))
    ref = {"test_pa_epe_cm": 2.5, "candidates": 200}
    assert "Mean PA-EPE below it: `equivariant` at 10%." in reference_text(table, ref)
    low = reference_text(table, ref | {"test_pa_epe_cm": 1.0})
    assert "No objective gets below it" in low and "1.00 cm" in low
    bad = tmp_path / "reference.json"
    bad.write_text("{}")
    with pytest.raises(UserError, match=r"reference\.json"):
        read_reference(bad)


def test_label_effect_pairs_each_fraction_with_the_largest_by_seed():
    runs = pd.concat(
        [
            _runs({"none": [2.6, 2.7, 2.8], "equivariant": [2.5, 2.4, 2.6]}, 0.1),
            _runs({"none": [2.1, 2.2, 2.3], "equivariant": [2.6, 2.3, 2.5]}, 1.0),
        ]
    )
    comps = comparisons(runs, REP)
    assert list(comps["kind"]) == ["objectives"] * 2 + ["labels"] * 2
    assert (comps["family_size"] == 4).all()  # one family: objectives and label effects
    text = " ".join(label_effect_text(comps, REP))
    # none: d = 0.5 for every seed, so the interval is the point itself and p is 0
    assert "`none` (resnet18) at 10% of the labels against 100%" in text
    assert "PA-EPE +0.500 cm over 3 seeds, 95% t-interval +0.500 to +0.500 cm" in text
    assert "(fewer labels are worse)" in text
    # equivariant: d = -0.1, +0.1, +0.1: the corrected test does not reject
    assert "PA-EPE +0.033 cm over 3 seeds" in text and "(the study cannot tell)" in text
    one = comparisons(_runs({"none": [2.0, 2.1]}, 0.1), REP)
    assert label_effect_text(one, REP) == []  # one fraction only


def test_unaligned_reference_is_printed_beside_the_table_and_judged(tmp_path):
    runs = pd.concat(
        [
            _runs({"none": [3.0, 3.2], "equivariant": [2.0, 2.2]}, 0.1),
            _runs({"none": [3.0, 3.2], "equivariant": [2.0, 2.2]}, 1.0),
        ]
    )
    runs.loc[runs["label_fraction"] == 1.0, ["epe_cm", "auc"]] = [4.0, 0.3]  # only 100% learns
    table = ablation_table(runs)
    ref = {"test_pa_epe_cm": 2.5, "candidates": 200}
    un = {"test_epe_cm": 8.0, "test_auc": 0.1}
    assert unaligned_reference_text(table, ref) is None  # a reference.json from before
    text = unaligned_reference_text(table, ref | {"unaligned": un})
    assert "EPE of 8.00 cm and an AUC of 0.100" in text
    assert "Mean EPE below it and mean AUC above it: `none` at 100%, `equivariant` at 100%." in text
    none = unaligned_reference_text(table, ref | {"unaligned": {**un, "test_epe_cm": 3.0}})
    assert "No objective has a lower mean EPE and a higher mean AUC" in none

    runs.to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "reference.json").write_text(json.dumps(ref | {"unaligned": un}))
    figures = tmp_path / "figures"
    figures.mkdir()
    Image.new("RGB", (8, 8), "red").save(figures / "pa_epe_per_objective.png")
    config = load_config(None, [])
    write_report(
        tmp_path / "runs.csv", figures, tmp_path / "out", config, tmp_path / "reference.json"
    )
    md = (tmp_path / "out" / "ablation.md").read_text()
    table_end = md.index("| equivariant | resnet18 | 1 |")
    beside = md.index("References on the test split")
    assert table_end < beside < md.index("## Statistics")
    assert "PA-EPE 2.50 cm" in md[beside:] and "EPE 8.00 cm and AUC 0.100" in md[beside:]
    (tmp_path / "reference.json").write_text(json.dumps(ref | {"unaligned": {"test_auc": 1}}))
    with pytest.raises(UserError, match=r"reference\.json"):
        read_reference(tmp_path / "reference.json")


def test_a_rejected_difference_below_the_mde_is_claimed_with_its_low_power_stated():
    # 9 seeds, d with mean 0.043 and SD 0.046 cm: paired t p ~0.02 in a family of one, so it is
    # claimed, while the MDE at 80% power (~0.049 cm) is above the observed difference
    d = [0.075, -0.005, 0.035, 0.115, -0.025, 0.055, 0.015, 0.095, 0.025]
    runs = _runs({"none": [3.0] * 9, "equivariant": [3.0 - x for x in d]})
    c = compare(runs, "equivariant", "none")
    assert c["beyond_noise"] and c["p_holm"] < 0.05 and c["diff_cm"] < c["mde_cm"]
    text = _answer(runs)
    assert "this is larger than seed noise" in text
    assert "a rerun would detect a true effect of this size with less than 80% power" in text
    assert "smaller than the design can detect" not in text
