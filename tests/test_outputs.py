"""The output rule (equihand.outputs): no step deletes or overwrites what it did not write."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import tiny_config

from equihand.data.layout import annotation_path
from equihand.errors import UserError
from equihand.evaluate.evaluate import evaluate
from equihand.methods.models import build_pose_model
from equihand.outputs import (
    MARKER,
    check_folder,
    claim_files,
    claim_folder,
    owns_file,
    owns_folder,
    replace_folder,
)
from equihand.train.checkpoint import save_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"
UNWRITABLE = Path("/sys/equihand-test-output")  # mkdir fails there even for root


def tree(root: Path) -> dict[str, str]:
    """Every path under `root` (files by content hash, folders by name)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def decoy(folder: Path, *victims: str) -> Path:
    """A user's folder: notes, a subfolder, and the files `victims` (relative paths)."""
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.bin").write_bytes(os.urandom(64))
    for v in victims:
        (folder / v).write_text(f"my own {v}\n")
    return folder


# --- the rule, in-process -------------------------------------------------------------------


def test_claim_folder_new_empty_own_and_foreign(tmp_path):
    new = claim_folder(tmp_path / "a" / "run", "evaluate")
    assert new.is_dir() and owns_folder(new, "evaluate")
    (tmp_path / "empty").mkdir()
    assert owns_folder(claim_folder(tmp_path / "empty", "evaluate"), "evaluate")
    # a Snakemake rerun: the rule's outputs were deleted, the rest of the run folder is left
    (new / "config.yaml").write_text("x")
    claim_folder(new, "evaluate")
    assert (new / "config.yaml").read_text() == "x"
    # another step's output folder is foreign to this step
    with pytest.raises(UserError, match="not an output of `equihand pretrain`"):
        claim_folder(new, "pretrain")
    user = decoy(tmp_path / "user")
    before = tree(tmp_path / "user")
    with pytest.raises(UserError, match=r"user: is a folder with other content.*--force"):
        claim_folder(user, "evaluate")
    assert tree(tmp_path / "user") == before


def test_claim_folder_force_moves_aside(tmp_path, capsys):
    user = decoy(tmp_path / "user")
    before = tree(user)
    claim_folder(user, "probe", force=True)
    assert sorted(p.name for p in user.iterdir()) == [MARKER]
    (aside,) = tmp_path.glob("user.old-*")
    assert tree(aside) == before
    assert str(aside) in capsys.readouterr().err
    # a file where the folder belongs
    (tmp_path / "f").write_text("mine")
    with pytest.raises(UserError, match="is a file, where `equihand probe` writes a folder"):
        claim_folder(tmp_path / "f", "probe")
    claim_folder(tmp_path / "f", "probe", force=True)
    assert (tmp_path / "f").is_dir()
    (aside,) = tmp_path.glob("f.old-*")
    assert aside.read_text() == "mine"


def test_claim_files(tmp_path):
    folder = decoy(tmp_path / "tables", "ablation.csv")
    before = tree(folder)
    with pytest.raises(UserError, match=r"ablation.csv: is a file not written by `equihand agg"):
        claim_files([folder / "runs.csv", folder / "ablation.csv"], "aggregate")
    assert tree(folder) == before  # refused before touching anything (no marker either)
    claim_files([folder / "runs.csv", folder / "ablation.csv"], "aggregate", force=True)
    assert not (folder / "ablation.csv").exists()
    (aside,) = folder.glob("ablation.csv.old-*")
    assert aside.read_text() == "my own ablation.csv\n"
    (folder / "ablation.csv").write_text("written by aggregate")
    claim_files([folder / "ablation.csv"], "aggregate")  # its own: replaceable
    assert owns_file(folder / "ablation.csv", "aggregate")
    # another step writing beside it (tables/ holds aggregate's, part-aware's, reference's)
    claim_files([folder / "reference.json"], "reference")
    assert not owns_file(folder / "ablation.csv", "reference")
    with pytest.raises(UserError, match="not written by `equihand reference`"):
        claim_files([folder / "ablation.csv"], "reference")
    (folder / "d").mkdir()
    with pytest.raises(UserError, match="d: is a folder, where `equihand score` writes a file"):
        claim_files([folder / "d"], "score")
    with pytest.raises(UserError, match=r"notes.txt is a file, not a folder"):
        claim_files([folder / "notes.txt" / "m.json"], "score")
    assert (folder / "notes.txt").read_text() == "my notes\n"


def test_replace_folder(tmp_path):
    out = tmp_path / "cache"
    with replace_folder(out, "prepare") as tmp:
        (tmp / "a.npy").write_text("1")
    assert owns_folder(out, "prepare")
    with replace_folder(out, "prepare") as tmp:  # its own earlier output is replaced
        (tmp / "b.npy").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing left beside it
    with pytest.raises(RuntimeError, match="killed"), replace_folder(out, "prepare") as tmp:
        (tmp / "c.npy").write_text("3")
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.npy"]
    user = decoy(tmp_path / "user")
    before = tree(user)
    with pytest.raises(UserError, match="not an output of `equihand prepare`"):
        check_folder(user, "prepare")
    with pytest.raises(UserError), replace_folder(user, "prepare"):
        pytest.fail("the block must not run")
    with replace_folder(user, "prepare", force=True) as tmp:
        (tmp / "a.npy").write_text("1")
    assert owns_folder(user, "prepare")
    (aside,) = tmp_path.glob("user.old-*")
    assert tree(aside) == before


def test_unwritable_location_is_a_user_error():
    with pytest.raises(UserError, match=f"cannot write the output {UNWRITABLE}"):
        claim_folder(UNWRITABLE / "run", "evaluate")
    with pytest.raises(UserError, match=f"cannot write the output {UNWRITABLE}"):
        claim_files([UNWRITABLE / "m.json"], "score")
    with pytest.raises(UserError, match=f"cannot write the output {UNWRITABLE}"):
        check_folder(UNWRITABLE, "synth")
        with replace_folder(UNWRITABLE, "synth"):
            pass


def test_the_steps_mark_their_outputs(tiny_dataset, cache):
    """synth and prepare (the session fixtures) wrote markers; a rerun may replace them."""
    assert (tiny_dataset / MARKER).read_text() == "synth\n"
    assert (cache / MARKER).read_text() == "prepare\n"
    check_folder(cache, "prepare")
    with pytest.raises(UserError, match="not an output of `equihand synth`"):
        check_folder(cache, "synth")


# --- the CLI, as a user runs it -------------------------------------------------------------


def equihand(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "equihand.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def refused(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# step -> (victims in the decoy folder D, arguments with D in place of the output)
CASES = {
    "synth": ((), ["--out", "D"]),
    "download": ((), ["--out", "D"]),
    "prepare": ((), ["--root", "DATA", "--out", "D"]),
    "pretrain": ((), ["--data", "CACHE", "--out", "D"]),
    "finetune": ((), ["--data", "CACHE", "--pretrained", "none", "--out", "D"]),
    "evaluate": ((), ["--checkpoint", "x.pt", "--data", "CACHE", "--out", "D"]),
    "probe-data": ((), ["--data", "CACHE", "--raw", "DATA", "--out", "D"]),
    "probe": ((), ["--probe-data", "x", "--checkpoint", "random", "--encoder", "r", "--out", "D"]),
    "aggregate": (("ablation.csv",), ["--metrics", "x.json", "--out", "D"]),
    "figures": (("pck_curves.png",), ["--metrics", "x.json", "--out", "D"]),
    "report": (("ablation.md",), ["--runs", "x.csv", "--figures", "x", "--out", "D"]),
    "reference": (("ref.json",), ["--data", "CACHE", "--out", "D/ref.json"]),
    "score": (("m.json",), ["--pred", "x.json", "--gt", "x", "--out", "D/m.json"]),
    "part-aware": (("pa.md",), ["--runs", "x.csv", "--table", "D/pa", "--figure", "D/pa"]),
}


@pytest.mark.parametrize("step", CASES)
def test_cli_refuses_to_overwrite_a_users_files(step, tmp_path, tiny_dataset, cache):
    victims, args = CASES[step]
    d = decoy(tmp_path / "mine", *victims)
    before = tree(tmp_path)
    swap = {"D": str(d), "DATA": str(tiny_dataset), "CACHE": str(cache)}
    args = [swap.get(a, a.replace("D/", f"{d}/")) for a in args]
    refused(equihand(step, *args), str(d), "--force")
    assert tree(tmp_path) == before


def test_cli_refuses_wrong_kinds_and_unwritable_places(tmp_path, cache):
    (tmp_path / "file").write_text("mine")
    decoy(tmp_path / "folder")
    before = tree(tmp_path)
    refused(equihand("prepare", "--root", cache, "--out", tmp_path / "file"), "is a file")
    refused(equihand("reference", "--data", cache, "--out", tmp_path / "folder"), "is a folder")
    refused(
        equihand("score", "--pred", "p", "--gt", "g", "--out", tmp_path / "file" / "m.json"),
        "is a file, not a folder",
    )
    refused(equihand("download", "--out", UNWRITABLE / "freihand"), str(UNWRITABLE))
    assert tree(tmp_path) == before


def test_cli_force_keeps_the_old_content_and_reruns_need_no_force(tmp_path, cache):
    d = decoy(tmp_path / "tables", "reference.json")
    out = d / "reference.json"
    result = equihand("reference", "--set", "report.reference_candidates=4", "--data", cache,
                      "--out", out, "--force")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (aside,) = d.glob("reference.json.old-*")
    assert aside.read_text() == "my own reference.json\n"
    assert "test_pa_epe_cm" in json.loads(out.read_text())
    assert (d / "notes.txt").read_text() == "my notes\n"
    before = tree(tmp_path)
    result = equihand("reference", "--set", "report.reference_candidates=4", "--data", cache,
                      "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr  # its own output: replaced without --force
    assert tree(tmp_path) == before  # the same bytes again; nothing else touched


# --- checkpoints: every way a file fails to be the model evaluate needs ---------------------


def finetuned(path: Path, *extra: str, **record) -> Path:
    """A finetune checkpoint of the tiny config (random weights: evaluate needs no training)."""
    config = tiny_config(*extra)
    model = build_pose_model(tiny_config()["model"])
    payload = {
        "kind": "finetune",
        "model": model.state_dict(),
        "config": config,
        "extra": {"pretrained": "scratch", "objective": "none", "resolution": 32},
    }
    return save_checkpoint(path, {**payload, **record})


CHECKPOINTS = {
    "text": (lambda p: p.write_text("hello\n"), [], "not a readable checkpoint"),
    "foreign pickle": (
        lambda p: p.write_bytes(pickle.dumps(pickle.Pickler)),
        [],
        "never loads other pickled objects",
    ),
    "no config": (lambda p: finetuned(p, config=None), [], "without its run's config"),
    "backbones disagree": (
        lambda p: finetuned(p, "model.backbone=resnet34"),
        [],
        "config says model.backbone=resnet34 but its weights hold resnet18",
    ),
    "wrong kind": (lambda p: finetuned(p, kind="pretrain"), [], "expected 'finetune'"),
    "resolution": (
        lambda p: finetuned(p, extra={"pretrained": "x", "objective": "x", "resolution": 64}),
        [],
        "trained on 64 px images, but the cache",
    ),
    "--set contradicts": (
        finetuned,
        ["--set", "model.backbone=resnet34"],
        "--set model.backbone=resnet34 contradicts the checkpoint",
    ),
}


@pytest.mark.parametrize("case", CHECKPOINTS)
def test_cli_evaluate_refuses_what_is_not_its_model(case, tmp_path, cache):
    make, sets, needle = CHECKPOINTS[case]
    ckpt = tmp_path / "model.pt"
    make(ckpt)
    before = tree(tmp_path)
    args = ["--checkpoint", ckpt, "--data", cache, "--out", tmp_path / "eval"]
    result = equihand("evaluate", *sets, *args)
    refused(result, str(ckpt) if case != "--set contradicts" else "resnet18", needle)
    assert "weights_only" not in result.stderr
    assert tree(tmp_path) == before  # no output folder either


def test_evaluate_records_the_checkpoints_model(tmp_path, cache):
    out = tmp_path / "eval"
    # a model setting the user did not give is the default; the checkpoint's wins and is written
    trained = tiny_config("model.projection_dim=32")["model"]
    ckpt = finetuned(tmp_path / "model.pt", "model.projection_dim=32")
    evaluate(ckpt, cache, "test", out, tiny_config())
    written = yaml.safe_load((out / "config.yaml").read_text())["model"]
    assert written == trained


# --- messages say where a bad value came from -----------------------------------------------


def test_cli_blames_the_set_override_not_the_config_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("synth:\n  n_train: -2\n")
    before = tree(tmp_path)
    result = equihand("synth", "--set", "synth.n_train=-3", "--out", tmp_path / "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "(from --set synth.n_train=-3)" in result.stderr
    assert "(defaults)" not in result.stderr
    result = equihand("synth", "--config", config, "--set", "synth.n_eval=x", "--out", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    n_eval, n_train = (line for line in result.stderr.splitlines() if "'synth.n_" in line)
    assert n_eval.endswith("(from --set synth.n_eval=x)")  # the override's fault
    assert "--set" not in n_train  # the file's own
    refused(equihand("synth", "--config", tmp_path, "--out", tmp_path / "x"), "is a folder")
    assert tree(tmp_path) == before


# --- wrong units are refused, naming the file and the factor ----------------------------------


def test_cli_refuses_lengths_in_the_wrong_unit(tmp_path, tiny_dataset):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    xyz = annotation_path(data, "training", "xyz")
    xyz.write_text(json.dumps((np.asarray(json.loads(xyz.read_text())) * 1000).tolist()))
    before = tree(tmp_path)
    refused(
        equihand("prepare", "--root", data, "--out", tmp_path / "cache"),
        f"{xyz}: looks like millimetres",
        "1000x those of training_scale.json",
    )
    assert tree(tmp_path) == before
    gt = np.asarray(json.loads(annotation_path(data, "evaluation", "xyz").read_text()))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([(gt * 100).tolist(), []]))
    before = tree(tmp_path)
    refused(
        equihand("score", "--pred", pred, "--gt", data, "--out", tmp_path / "m.json"),
        f"{pred}: looks like centimetres",
        "divide by 100",
    )
    assert tree(tmp_path) == before
