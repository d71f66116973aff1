"""The study's figures: every file is written and looks like a plot; summaries; clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from equihand.analysis.figures import load_study, make_figures, qualitative_runs, summarize
from equihand.cli import main
from equihand.data.layout import JOINT_NAMES
from equihand.errors import UserError
from equihand.vocabulary import FIGURES

OBJECTIVES = {"none": 1.5, "invariant": 1.3, "equivariant": 1.1}  # PA-EPE at full labels


def _csv(path: Path, header: list[str], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def fake_study(root: Path, fractions=(0.1, 1.0), seeds=(0, 1, 2)) -> list[Path]:
    """What `equihand evaluate` and the training runs leave behind, with made-up numbers:
    PA-EPE = OBJECTIVES[objective] + 0.5 (at fractions below 1) + 0.1 * seed."""
    rng = np.random.default_rng(0)
    paths = []
    for obj, base in OBJECTIVES.items():
        for seed in seeds:
            pretrained = "scratch"
            if obj != "none":
                pre = root / "pretrain" / f"{obj}_{seed}"
                pretrained = str(pre / "model.pt")
                loss = [[e, 10 * e, base * 3 / (e + 1) + 0.1 * seed, 0.1, 100] for e in range(6)]
                _csv(pre / "metrics.csv", ["epoch", "step", "loss", "lr", "images_per_s"], loss)
            for fraction in fractions:
                pa_epe = base + 0.5 * (fraction < 1) + 0.1 * seed
                fine = root / "finetune" / f"{obj}_{fraction}_{seed}"
                curve = [[e, 5 * e, pa_epe / (e + 1), 0.1, 50, 2 * pa_epe, pa_epe + 1 / (e + 1)]
                         for e in range(5)]  # fmt: skip
                header = ["epoch", "step", "loss", "lr", "images_per_s", "val_epe_cm"]
                _csv(fine / "metrics.csv", [*header, "val_pa_epe_cm"], curve)
                ev = root / "evaluate" / f"{obj}_{fraction}_{seed}"
                t = np.linspace(0, 50, 11)
                pck = [[x, 1 - np.exp(-x / (8 * pa_epe)), 1 - np.exp(-x / (5 * pa_epe))] for x in t]
                _csv(ev / "pck.csv", ["threshold_mm", "pck", "pa_pck"], pck)
                joint_err = pa_epe * (0.5 + rng.random(21))
                joints = zip(range(21), JOINT_NAMES, 2 * joint_err, joint_err, strict=True)
                _csv(ev / "per_joint.csv", ["joint", "name", "epe_cm", "pa_epe_cm"], joints)
                tile = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
                Image.fromarray(tile).save(ev / "qualitative.png")
                metrics = {
                    "objective": obj,
                    "backbone": "resnet18",
                    "label_fraction": fraction,
                    "seed": seed,
                    "epe_cm": 2 * pa_epe,
                    "pa_epe_cm": pa_epe,
                    "auc": 0.5,
                    "pa_auc": 0.8,
                    "checkpoint": str(fine / "model.pt"),
                    "pretrained": pretrained,
                }
                (ev / "metrics.json").write_text(json.dumps(metrics))
                paths.append(ev / "metrics.json")
    return paths


def _check_outputs(out: Path, written: list[Path]) -> None:
    assert sorted(written) == sorted(out / f"{n}.{e}" for n in FIGURES for e in ("png", "pdf"))
    for name in FIGURES:
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        with Image.open(out / f"{name}.png") as im:
            pixels = np.asarray(im.convert("RGB"))
        assert min(pixels.shape[:2]) > 200, name
        assert pixels.std() > 10, f"{name}.png is nearly one flat colour"


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> list[Path]:
    return fake_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def drawn(study, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("figures")
    return out, make_figures(study, out, {"report": {"qualitative_seed": 1}})


def test_every_figure_is_written_as_png_and_pdf(drawn):
    _check_outputs(*drawn)


def test_summary_is_mean_and_sample_std_over_seeds(study):
    runs = load_study(study)["runs"]
    table = summarize(runs).set_index(["objective", "label_fraction"])
    row = table.loc[("none", 0.1)]  # PA-EPE 2.0, 2.1, 2.2
    assert row["mean"] == pytest.approx(2.1)
    assert row["std"] == pytest.approx(0.1)
    assert row["n_seeds"] == 3
    assert list(runs["objective"].unique()) == ["none", "invariant", "equivariant"]


def test_qualitative_runs_use_the_configured_seed_or_the_smallest(study):
    runs = load_study(study)["runs"]
    chosen = qualitative_runs(runs, seed=2)
    assert list(chosen["objective"]) == ["none", "invariant", "equivariant"]
    assert set(chosen["seed"]) == {2} and set(chosen["label_fraction"]) == {0.1}
    assert set(qualitative_runs(runs, seed=7)["seed"]) == {0}


def test_single_seed_and_log_spaced_fractions(tmp_path):
    paths = fake_study(tmp_path / "study", fractions=(0.01, 1.0), seeds=(3,))
    out = tmp_path / "figures"
    _check_outputs(out, make_figures(paths, out, {}))


def test_missing_pck_csv_is_a_user_error(tmp_path):
    paths = fake_study(tmp_path, fractions=(1.0,), seeds=(0,))
    missing = paths[1].parent / "pck.csv"
    missing.unlink()
    with pytest.raises(UserError, match=re.escape(str(missing))):
        make_figures(paths, tmp_path / "figures", {})
    assert not (tmp_path / "figures").exists()  # nothing is drawn before every file is read


def test_cli_matches_the_function_byte_for_byte(study, drawn, tmp_path, capsys):
    out = tmp_path / "figures"
    argv = ["figures", "--metrics", *map(str, study), "--out", str(out)]
    assert main([*argv, "--set", "report.qualitative_seed=1"]) == 0
    for path in drawn[1]:  # same inputs, same bytes: nothing random, no timestamps
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    assert main(["figures", "--metrics", str(tmp_path / "nope.json"), "--out", str(out)]) == 2
    assert "nope.json" in capsys.readouterr().err
