"""How much of a paired difference's seed-to-seed SD is the sampling of the evaluation images.

    python bench/eval_noise.py --evaluations FOLDER --cache CACHE [--more-hands 2 4 8]
                               [--finetuned RUNS --split val] [--out results/bench]

--evaluations: a folder of `equihand evaluate` outputs, one per run, named `<arm>_s<seed>`
(e.g. results/evaluate: `none_resnet18_f0.1_s0`), each with its per_sample.csv (row, PA-EPE per
image). With --finetuned, every RUNS/<arm>_s<seed>/model.pt without an output there is first
evaluated on --split into it (`equihand evaluate`; e.g. the budget study's
results/budget/pretrain_finetune/b64 on the val split, where design questions are asked).
--cache: the prepared cache they read (its hand_id.npy groups the rows by hand). Every pair of
arms with the same label-fraction token (`f0.1`) and at least 2 common seeds is compared.

Per pair, the per-image difference d(i, s) = PA-EPE_a - PA-EPE_b on image i for seed s, averaged
per hand h: d(h, s). Its two-way ANOVA (statsmodels: d ~ C(hand) + C(seed)) splits the variance
into the hands' fixed differences (the same for every seed: no noise between seeds), the seeds'
(what more seeds average out) and the residual, the hand x seed interaction: a seed's model doing
better or worse on some hands than on others. The mean difference D(s) over the H hands then
varies between seeds with variance var_seed + var_hxs / H, and only the second part shrinks with
more evaluation hands. Printed per pair: the observed SD of D(s), the interaction's part
sqrt(var_hxs / H), the SD left at infinitely many hands (observed^2 - interaction part^2, floored
at 0; from few seeds a rough estimate), and the predicted SD at --more-hands x H hands. The hands
are the sampling unit because images of one hand are not independent (the image-level split is
printed beside it).
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from common import RESULTS, markdown, write_csv
from statsmodels.stats.anova import anova_lm

from equihand.errors import UserError

RUN = re.compile(r"^(?P<arm>.+)_s(?P<seed>\d+)$")
FRACTION = re.compile(r"(?:^|_)(f[\d.]+)(?:_|$)")


def read_runs(folder: Path, hand_id: np.ndarray) -> pd.DataFrame:
    """Per-image PA-EPE of every run below `folder`: arm, seed, row, hand, pa_epe_cm."""
    frames = []
    for path in sorted(folder.glob("*/per_sample.csv")):
        m = RUN.match(path.parent.name)
        if m is None:
            raise UserError(f"{path.parent}: expected a run folder named <arm>_s<seed>")
        f = pd.read_csv(path)
        if not {"row", "pa_epe_cm"} <= set(f.columns):
            raise UserError(f"{path}: expected columns row, pa_epe_cm (equihand evaluate)")
        if f["row"].max() >= len(hand_id):
            raise UserError(f"{path}: row {f['row'].max()} is outside the cache's hand_id.npy")
        frames.append(f.assign(arm=m["arm"], seed=int(m["seed"]), hand=hand_id[f["row"]]))
    if not frames:
        raise UserError(f"{folder}: no */per_sample.csv (outputs of equihand evaluate)")
    return pd.concat(frames, ignore_index=True)


def evaluate_runs(finetuned: Path, cache: Path, split: str, out: Path) -> None:
    """`equihand evaluate` of every finetuned run below `finetuned` not yet evaluated in `out`."""
    checkpoints = sorted(finetuned.glob("*/model.pt"))
    if not checkpoints:
        raise UserError(f"{finetuned}: no */model.pt (finetuning runs)")
    equihand = Path(sys.executable).parent / "equihand"
    for checkpoint in checkpoints:
        target = out / checkpoint.parent.name
        if (target / "per_sample.csv").is_file():
            continue
        command = [str(equihand), "evaluate", "--checkpoint", str(checkpoint), "--data", str(cache)]
        subprocess.run([*command, "--split", split, "--out", str(target)], check=True)


def _fraction(arm: str) -> str:
    m = FRACTION.search(arm)
    return m[1] if m else ""


def residual_var(d: pd.DataFrame, unit: str) -> float:
    """The unit x seed interaction variance of d (residual mean square of d ~ unit + seed)."""
    fit = smf.ols(f"d ~ C({unit}) + C(seed)", data=d).fit()
    return float(anova_lm(fit).loc["Residual", "mean_sq"])


def pair_row(runs: pd.DataFrame, a: str, b: str, more_hands: list[float]) -> dict | None:
    x = runs[runs.arm == a].set_index(["seed", "row"])
    y = runs[runs.arm == b].set_index(["seed", "row"])
    common = x.index.intersection(y.index)
    seeds = sorted(set(common.get_level_values("seed")))
    if len(seeds) < 2:
        return None
    d = (x.loc[common, "pa_epe_cm"] - y.loc[common, "pa_epe_cm"]).rename("d").reset_index()
    d["hand"] = x.loc[common, "hand"].to_numpy()
    if d.groupby("seed").size().nunique() != 1:
        raise UserError(f"{a} vs {b}: the seeds were evaluated on different images")
    per_hand = d.groupby(["hand", "seed"], as_index=False)["d"].mean()
    n_images, n_hands = d["row"].nunique(), per_hand["hand"].nunique()
    # the mean over hands (each hand weighted by its images, as the reported PA-EPE weights them)
    observed = d.groupby("seed")["d"].mean().std(ddof=1)
    hands_part = math.sqrt(residual_var(per_hand, "hand") / n_hands)
    images_part = math.sqrt(residual_var(d.rename(columns={"row": "image"}), "image") / n_images)
    floor2 = max(0.0, observed**2 - hands_part**2)
    row = {
        "comparison": f"{a} vs {b}",
        "seeds": len(seeds),
        "images": n_images,
        "hands": n_hands,
        "SD of mean d over seeds (cm)": f"{observed:.4f}",
        "hand x seed part (cm)": f"{hands_part:.4f}",
        "image x seed part, if images were independent (cm)": f"{images_part:.4f}",
        "share of the variance": f"{min(1.0, hands_part**2 / observed**2):.0%}",
        "SD at infinitely many hands (cm)": f"{math.sqrt(floor2):.4f}",
    }
    for k in more_hands:
        row[f"SD at {k:g} x the hands (cm)"] = f"{math.sqrt(floor2 + hands_part**2 / k):.4f}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="the prepared cache")
    parser.add_argument("--finetuned", type=Path, help="evaluate these runs first (see above)")
    parser.add_argument("--split", default="val", help="the split --finetuned runs are read on")
    parser.add_argument("--more-hands", type=float, nargs="+", default=[2, 4, 8])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for eval_noise.csv")
    args = parser.parse_args()
    hand_file = args.cache / "hand_id.npy"
    if not hand_file.is_file():
        raise SystemExit(
            f"{hand_file}: missing; --cache must be a prepared cache (equihand prepare)"
        )
    if args.finetuned:
        evaluate_runs(args.finetuned, args.cache, args.split, args.evaluations)
    runs = read_runs(args.evaluations, np.load(hand_file))
    arms = sorted(set(runs["arm"]))
    rows = [
        row
        for a, b in itertools.combinations(arms, 2)
        if _fraction(a) == _fraction(b) and (row := pair_row(runs, a, b, args.more_hands))
    ]
    if not rows:
        raise SystemExit(f"{args.evaluations}: no two arms with 2 or more common seeds")
    print(markdown(rows))
    print(f"wrote {write_csv(args.out / 'eval_noise.csv', rows)}")


if __name__ == "__main__":
    main()
