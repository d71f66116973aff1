"""`equihand part-aware`: the part-aware table, figure and claims from every `equihand probe` run.

Reads the probe.csv files, writes ``<table>.csv`` (every run's rows), ``<table>.md`` (mean ± std
over seeds per encoder and feature; equihand.analysis.probe_results), ``<table>_claims.csv`` (the
paired comparisons of Zhu et al.'s claims; equihand.analysis.claims) and the figure
``<figure>.png`` / ``.pdf``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from equihand.analysis.claims import claim_sentences, claims
from equihand.analysis.document import markdown_table
from equihand.analysis.plots import save_figure
from equihand.analysis.probe_results import display_table, load_probe_runs
from equihand.io import atomic_path, atomic_write_text
from equihand.outputs import check_files, claim_files
from equihand.probe.sets import OBJECT_TASKS, PART_TASKS
from equihand.vocabulary import encoders, in_order

# --- figure ------------------------------------------------------------------------------------


def plot(runs: pd.DataFrame) -> plt.Figure:
    data = runs[runs["feature"] == "backbone"].copy()
    data["level task"] = data["level"] + ": " + data["task"]
    order = in_order(data["encoder"], encoders())
    hue_order = [f"object: {t}" for t in OBJECT_TASKS] + [f"part: {t}" for t in PART_TASKS]
    hue_order = [h for h in hue_order if h in set(data["level task"])]
    palette = dict(zip(hue_order, sns.color_palette("Paired", 4)[: len(hue_order)], strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for ax, (metric, label) in zip(
        axes, [("test_top1", "linear-probe test top-1"), ("map", "test retrieval mAP")], strict=True
    ):
        sns.barplot(data, x="encoder", y=metric, hue="level task", order=order,
                    hue_order=hue_order, palette=palette, errorbar="sd", capsize=0.1,
                    ax=ax)  # fmt: skip
        ax.set(xlabel="encoder", ylabel=label, title=label)
        ax.tick_params(axis="x", rotation=30)
        ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    fig.suptitle(
        "Object level vs part level per encoder (backbone features; mean ± std over seeds)"
    )
    return fig


# --- the step ----------------------------------------------------------------------------------


def output_paths(table: Path, figure: Path) -> list[Path]:
    """The files of `write`: the table's .csv, .md and _claims.csv, the figure's .png and .pdf."""
    table, figure = Path(table), Path(figure)
    return [
        table.with_suffix(".csv"),
        table.with_suffix(".md"),
        table.with_name(table.name + "_claims.csv"),
        figure.with_name(figure.name + ".png"),
        figure.with_name(figure.name + ".pdf"),
    ]


def write(
    paths: list[Path], table: Path, figure: Path, config: dict, *, force: bool = False
) -> pd.DataFrame:
    table, figure = Path(table), Path(figure)
    outputs = output_paths(table, figure)
    check_files(outputs, "part-aware", force=force)
    runs = load_probe_runs(paths)
    claims_table = claims(runs, config["report"])
    claim_files(outputs, "part-aware", force=force)
    with atomic_path(table.with_suffix(".csv")) as tmp:
        runs.to_csv(tmp, index=False, float_format="%.6f")
    atomic_write_text(table.with_suffix(".md"), markdown_table(display_table(runs)))
    with atomic_path(table.with_name(table.name + "_claims.csv")) as tmp:
        claims_table.to_csv(tmp, index=False, float_format="%.6f")
    with plt.rc_context():
        sns.set_theme(style="whitegrid", context="paper")
        save_figure(plot(runs), figure.parent, figure.name)
    return claims_table


def add_arguments(parser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="probe.csv of `equihand probe`")
    parser.add_argument(
        "--table", required=True, help="table path without suffix (.csv, .md, _claims.csv)"
    )
    parser.add_argument("--figure", required=True, help="figure path without suffix (.png, .pdf)")


def run(args, config: dict) -> None:
    table = write(
        [Path(p) for p in args.runs], Path(args.table), Path(args.figure), config, force=args.force
    )
    for sentence in claim_sentences(table):
        print(sentence)
