"""`equihand figures`: the study's figures, from every evaluation's metrics.json.

Beside each metrics.json it reads `pck.csv`, `per_joint.csv` and `qualitative.png`; it also reads
the `metrics.csv` of the finetuning run (the folder of metrics.json["checkpoint"]) and of the
pretraining run (the folder of metrics.json["pretrained"], unless "scratch"). Every file is read
before anything is drawn. Writes NAME.png (150 dpi) and NAME.pdf for every NAME in
`equihand.vocabulary.FIGURES`.
Spreads are over seeds: mean ± standard deviation (ddof=1) or the min-max band.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator
from PIL import Image

from equihand.analysis.ablation import load_runs
from equihand.analysis.plots import figure_paths, save_figure
from equihand.errors import UserError
from equihand.outputs import check_files, claim_files
from equihand.vocabulary import FIGURES, percent, rank, study_objectives

KEYS = ["objective", "backbone", "label_fraction", "seed"]
PA_EPE = "PA-EPE (cm, lower is better)"


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path}: missing; expected a CSV with columns {columns}")
    table = pd.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing}; expected {columns}")
    return table[columns]


def load_study(metrics_paths: list[Path]) -> dict[str, pd.DataFrame]:
    """`runs` (aggregate.load_runs, sorted, plus `setting` and `qualitative`) and long tables
    `pck`, `joints`, `finetune`, `pretrain`: one row per run and CSV row, tagged with the run."""
    runs = load_runs([Path(p) for p in metrics_paths])
    order = study_objectives()
    runs["rank"] = runs["objective"].map(lambda o: rank(o, order))
    runs = runs.sort_values(["rank", "objective", "backbone", "label_fraction", "seed"])
    runs = runs.drop(columns="rank").reset_index(drop=True)
    many = runs["backbone"].nunique() > 1
    runs["setting"] = [
        f"{b}, {percent(f)} labels" if many else f"{percent(f)} labels"
        for b, f in zip(runs["backbone"], runs["label_fraction"], strict=True)
    ]
    runs["qualitative"] = [str(Path(p).parent / "qualitative.png") for p in runs["path"]]
    parts = {"pck": [], "joints": [], "finetune": [], "pretrain": []}
    for _, run in runs.iterrows():
        folder, meta = Path(run["path"]).parent, json.loads(Path(run["path"]).read_text())
        if "checkpoint" not in meta or "pretrained" not in meta:
            raise UserError(f"{run['path']}: missing keys 'checkpoint', 'pretrained'")
        if not Path(run["qualitative"]).is_file():
            raise UserError(f"{run['qualitative']}: missing; expected evaluate's prediction grid")
        tag = {k: run[k] for k in [*KEYS, "setting"]}
        fine = Path(meta["checkpoint"]).parent / "metrics.csv"
        for key, path, columns in [
            ("pck", folder / "pck.csv", ["threshold_mm", "pck", "pa_pck"]),
            ("joints", folder / "per_joint.csv", ["joint", "name", "pa_epe_cm"]),
            ("finetune", fine, ["step", "loss", "val_pa_epe_cm"]),
        ]:
            parts[key].append(_read_csv(path, columns).assign(**tag))
        if meta["pretrained"] != "scratch":
            pre = Path(meta["pretrained"]).parent / "metrics.csv"
            parts["pretrain"].append(_read_csv(pre, ["step", "loss"]).assign(run=str(pre), **tag))
    study = {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in parts.items()}
    if len(study["pretrain"]):  # one pretraining run serves every fraction: count it once
        study["pretrain"] = study["pretrain"].drop_duplicates(["run", "step"])
    return study | {"runs": runs}


def summarize(runs: pd.DataFrame, metric: str = "pa_epe_cm") -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one seed) and seed count of `metric` per
    objective, backbone and label fraction."""
    keys = ["objective", "backbone", "label_fraction"]
    out = runs.groupby(keys, sort=False)[metric].agg(["mean", "std", "count"])
    return out.rename(columns={"count": "n_seeds"}).reset_index()


def _rows(table: pd.DataFrame, **match) -> pd.DataFrame:
    for key, value in match.items():
        table = table[table[key] == value]
    return table


def _objectives(runs: pd.DataFrame, **match) -> list[str]:
    return list(_rows(runs, **match)["objective"].unique())


def _band(ax, table: pd.DataFrame, x: str, y: str, color, label: str, ls: str = "-") -> None:
    """Mean line over seeds with the min-max band shaded."""
    stats = table.dropna(subset=[y]).groupby(x)[y].agg(["mean", "min", "max"])
    marker = "o" if len(stats) <= 20 else None  # a curve of one or few points stays visible
    ax.plot(stats.index, stats["mean"], color=color, label=label, ls=ls, marker=marker, ms=3)
    ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, lw=0)


def _grid(nrows: int, ncols: int, width: float, height: float, **kw):
    size = (width * ncols, height * nrows)
    return plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained", **kw)


def _legend_below(fig, title: str, order: list[str]) -> None:
    """One legend for the whole figure (colours mean the same objective in every panel)."""
    entries = {}
    for ax in fig.axes:
        entries.update(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
    labels = [o for o in order if o in entries]
    handles = [entries[o] for o in labels]
    fig.legend(handles, labels, title=title, loc="outside lower center", ncols=len(labels))


def plot_pa_epe(study, palette) -> plt.Figure:
    runs, settings = study["runs"], study["runs"]["setting"].unique()
    fig, axes = _grid(1, len(settings), 3.2, 3.4, sharey=True)
    for ax, setting in zip(axes[0], settings, strict=True):
        data, order = _rows(runs, setting=setting), _objectives(runs, setting=setting)
        sns.barplot(data, x="objective", y="pa_epe_cm", hue="objective", order=order, ax=ax,
                    palette=palette, errorbar="sd", capsize=0.2, alpha=0.8)  # fmt: skip
        for i, obj in enumerate(order):  # every seed, spread evenly (seaborn's jitter is random)
            values = _rows(data, objective=obj)["pa_epe_cm"]
            x = i + np.linspace(-0.15, 0.15, len(values)) * (len(values) > 1)
            ax.scatter(x, values, color="black", s=12, zorder=3)
        ax.set(title=setting, xlabel="pretraining objective", ylabel=PA_EPE)
    fig.suptitle("Test PA-EPE per pretraining objective (bars: mean ± std over seeds; dots: seeds)")
    return fig


def plot_pck(study, palette) -> plt.Figure:
    runs, pck, settings = study["runs"], study["pck"], study["runs"]["setting"].unique()
    fig, axes = _grid(len(settings), 2, 5.2, 3.0, sharex=True, sharey=True)
    for r, setting in enumerate(settings):
        for ax, (col, name) in zip(axes[r], [("pck", "PCK"), ("pa_pck", "PA-PCK")], strict=True):
            for obj in _objectives(runs, setting=setting):
                auc = _rows(runs, setting=setting, objective=obj)[["auc", "pa_auc"]].mean()
                label = f"{obj}: AUC {auc['auc']:.3f}, PA-AUC {auc['pa_auc']:.3f}"
                curve = _rows(pck, setting=setting, objective=obj)
                _band(ax, curve, "threshold_mm", col, palette[obj], label)
            ax.set(title=f"{name}, {setting}", ylabel=f"{name} (higher is better)", ylim=(0, 1.02))
            ax.set_xlabel("error threshold (mm)" if r == len(settings) - 1 else "")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), title="objective (mean AUC, 0-50 mm)")
    fig.suptitle("Fraction of test joints within the threshold (mean over seeds, min-max band)")
    return fig


def plot_label_efficiency(study, palette) -> plt.Figure:
    runs = study["runs"]
    fractions = np.sort(runs["label_fraction"].unique())
    log = fractions.max() / fractions.min() > 10
    objectives, backbones = _objectives(runs), runs["backbone"].unique()
    fig, axes = _grid(1, len(backbones), 4.8, 3.6, sharey=True)
    for ax, backbone in zip(axes[0], backbones, strict=True):
        stats = summarize(_rows(runs, backbone=backbone)).sort_values("label_fraction")
        for k, obj in enumerate(objectives):
            s = _rows(stats, objective=obj)
            shift = (k - (len(objectives) - 1) / 2) * 0.02  # dodge the error bars apart
            x = s["label_fraction"] * (10**shift if log else 1 + shift)
            ax.errorbar(
                x,
                s["mean"],
                yerr=s["std"].fillna(0),
                color=palette[obj],
                marker="o",
                capsize=3,
                label=obj,
            )
        ax.set_xscale("log" if log else "linear")
        ax.set_xticks(fractions)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda f, _: percent(f)))
        ax.set(
            title=f"Label efficiency, {backbone}",
            xlabel="labelled training images used",
            ylabel=PA_EPE,
        )
    _legend_below(fig, "pretraining objective (mean ± std over seeds)", objectives)
    return fig


def plot_per_joint(study, palette) -> plt.Figure:
    joints, runs = study["joints"], study["runs"]
    means = joints.groupby(["setting", "objective", "joint"], sort=False)["pa_epe_cm"].mean()
    names = joints.drop_duplicates("joint").set_index("joint")["name"]
    settings = runs["setting"].unique()
    height = len(settings) * (0.4 * len(palette) + 0.6) + 1.2  # + titles and joint names
    fig, axes = _grid(len(settings), 1, 13, height / len(settings), sharex=True)
    for r, (ax, setting) in enumerate(zip(axes[:, 0], settings, strict=True)):
        table = means.loc[setting].unstack("joint").loc[_objectives(runs, setting=setting)]
        sns.heatmap(
            table,
            ax=ax,
            annot=True,
            fmt=".2f",
            annot_kws={"size": 7},
            cmap="rocket_r",
            vmin=means.min(),
            vmax=means.max(),
            cbar_kws={"label": "PA-EPE (cm)", "pad": 0.01},
            xticklabels=names.loc[table.columns] if r == len(settings) - 1 else False,
        )
        ax.set(title=setting, xlabel="", ylabel="")
        ax.tick_params(axis="y", labelrotation=0)
    plt.setp(axes[-1, 0].get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    fig.suptitle("Test PA-EPE per joint (cm, mean over seeds; lower is better)")
    return fig


def plot_losses(study, palette) -> plt.Figure:
    runs, fine, pre = study["runs"], study["finetune"], study["pretrain"]
    settings = runs["setting"].unique()
    fig = plt.figure(figsize=(13, 0.6 + 2.8 * len(settings)), layout="constrained")
    grid = fig.add_gridspec(len(settings), 3)
    ax = fig.add_subplot(grid[:, 0])
    backbones = list(runs["backbone"].unique())
    many = len(backbones) > 1
    for (obj, backbone), table in pre.groupby(["objective", "backbone"]) if len(pre) else []:
        style = ["-", "--", ":", "-."][backbones.index(backbone) % 4]
        _band(ax, table, "step", "loss", palette[obj], obj, ls=style)
    if len(pre) and pre["loss"].min() > 0 and pre["loss"].max() / pre["loss"].min() > 20:
        ax.set_yscale("log")
    if not len(pre):
        msg = "no pretraining runs\n(all from scratch)"
        ax.text(0.5, 0.5, msg, ha="center", transform=ax.transAxes)
        ax.set(xticks=[], yticks=[])
    title = "Self-supervised pretraining" + (" (line style: backbone)" if many else "")
    ax.set(title=title, ylabel="pretraining loss (objective's own scale)")
    axes = [ax] if len(pre) else []
    for r, setting in enumerate(settings):
        loss_ax, val_ax = fig.add_subplot(grid[r, 1]), fig.add_subplot(grid[r, 2])
        for obj in _objectives(runs, setting=setting):
            table = _rows(fine, setting=setting, objective=obj)
            _band(loss_ax, table, "step", "loss", palette[obj], obj)
            _band(val_ax, table, "step", "val_pa_epe_cm", palette[obj], obj)
        loss_ax.set(title=f"Finetuning, {setting}", ylabel="training loss")
        val_ax.set(title=f"Validation, {setting}", ylabel="val. " + PA_EPE)
        axes += [loss_ax, val_ax]
    for a in axes:
        a.set_xlabel("optimiser step")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_below(fig, "pretraining objective (mean over seeds, min-max band)", list(palette))
    return fig


def qualitative_runs(runs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The runs the qualitative grid shows: `seed` (else the smallest seed present), the smallest
    label fraction and the first backbone, one per objective."""
    runs = _rows(runs, seed=seed if seed in set(runs["seed"]) else runs["seed"].min())
    runs = _rows(runs, label_fraction=runs["label_fraction"].min())
    return _rows(runs, backbone=runs["backbone"].iloc[0])


def plot_qualitative(study, palette, seed: int) -> plt.Figure:
    runs = qualitative_runs(study["runs"], seed)
    fig, axes = _grid(1, len(runs), 4, 4.3)
    for ax, (_, run) in zip(axes[0], runs.iterrows(), strict=True):
        with Image.open(run["qualitative"]) as im:
            ax.imshow(np.asarray(im.convert("RGB")))
        ax.set_title(f"{run['objective']}: PA-EPE {run['pa_epe_cm']:.2f} cm")
        ax.axis("off")
    run = runs.iloc[0]
    fig.suptitle(
        f"Test predictions ({run['backbone']}, {percent(run['label_fraction'])} labels, seed "
        f"{run['seed']}): true skeleton white, predicted in colour"
    )
    return fig


def make_figures(
    metrics_paths: list[Path], out_dir: Path, config: dict, *, force: bool = False
) -> list[Path]:
    """Draw every figure in FIGURES into `out_dir` (PNG and PDF); return the written paths."""
    outputs = [p for name in FIGURES for p in figure_paths(out_dir, name)]
    check_files(outputs, "figures", force=force)
    study = load_study(metrics_paths)
    objectives = _objectives(study["runs"])
    seed = config.get("report", {}).get("qualitative_seed", 0)
    draw = {
        "pa_epe_per_objective": plot_pa_epe,
        "pck_curves": plot_pck,
        "label_efficiency": plot_label_efficiency,
        "per_joint_heatmap": plot_per_joint,
        "loss_curves": plot_losses,
        "qualitative_grid": lambda study, palette: plot_qualitative(study, palette, seed),
    }
    claim_files(outputs, "figures", force=force)
    written = []
    with plt.rc_context():
        sns.set_theme(style="whitegrid", context="paper")
        palette = dict(
            zip(objectives, sns.color_palette("colorblind", len(objectives)), strict=True)
        )
        for name in FIGURES:
            written += save_figure(draw[name](study, palette), Path(out_dir), name)
    return written


def add_arguments(parser) -> None:
    parser.add_argument("--metrics", nargs="+", required=True, help="evaluate metrics.json files")
    parser.add_argument("--out", required=True, help="folder for the figures (PNG and PDF)")


def run(args, config: dict) -> None:
    paths = make_figures([Path(p) for p in args.metrics], Path(args.out), config, force=args.force)
    print(f"{len(paths)} figure files -> {args.out}")
