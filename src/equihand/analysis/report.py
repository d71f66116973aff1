"""`equihand report`: the written ablation report, every verdict from a Holm-corrected paired test.

Reads runs.csv (written by `equihand aggregate`) and the PNGs written by `equihand figures`, and
writes into --out: `ablation.md` (figures linked by a path relative to --out), `ablation.html`
(self-contained: figures embedded as base64 data URIs) and `comparisons.csv` (one row per
member of the report's family of paired comparisons: objectives against each other per backbone
and label fraction, and each smaller label fraction against the largest;
equihand.analysis.comparisons). Every sentence of the answer is generated from the numbers
(equihand.analysis.prose) and rendered as Markdown and HTML (equihand.analysis.document).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from equihand.analysis.ablation import (
    KEYS,
    METRICS,
    ablation_table,
    display_table,
    to_markdown,
)
from equihand.analysis.comparisons import comparison_table, comparisons, join
from equihand.analysis.document import markdown_table, render
from equihand.analysis.probe_results import report_blocks
from equihand.analysis.prose import (
    QUESTION,
    answer,
    label_effect_text,
    reference_text,
    references_line,
    setup,
    statistics_text,
    unaligned_reference_text,
)
from equihand.errors import UserError
from equihand.io import atomic_write_text
from equihand.outputs import check_files, claim_files
from equihand.vocabulary import FIGURES


def read_runs(path: Path) -> pd.DataFrame:
    """runs.csv as written by `equihand aggregate`, checked."""
    try:
        runs = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a readable runs.csv ({e})") from None
    missing = [c for c in [*KEYS, "seed", *METRICS] if c not in runs.columns]
    if missing or runs.empty:
        raise UserError(f"{path}: expected runs.csv of `equihand aggregate` (missing {missing})")
    if runs.duplicated([*KEYS, "seed"]).any():
        raise UserError(f"{path}: the same objective/backbone/label_fraction/seed appears twice")
    return runs


def find_figures(folder: Path) -> list[Path]:
    """The PNGs of FIGURES present in `folder`, in FIGURES' order."""
    found = [folder / f"{name}.png" for name in FIGURES if (folder / f"{name}.png").is_file()]
    if not found:
        raise UserError(
            f"{folder}: no figures found; expected PNGs named {join(FIGURES)} "
            "(written by `equihand figures`)"
        )
    return found


def read_reference(path: Path) -> dict:
    try:
        reference = json.loads(Path(path).read_text())
        float(reference["test_pa_epe_cm"]), int(reference["candidates"])
        if "unaligned" in reference:  # absent from references written before it existed
            float(reference["unaligned"]["test_epe_cm"]), float(reference["unaligned"]["test_auc"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"{path}: not a reference.json written by `equihand reference` ({e!r})"
        ) from None
    return reference


OUTPUTS = ("ablation.md", "ablation.html", "comparisons.csv")


def write_report(
    runs_csv: Path,
    figures_dir: Path,
    out_dir: Path,
    config: dict,
    reference: Path | None = None,
    part_aware: tuple[Path, Path] | None = None,
    *,
    force: bool = False,
) -> pd.DataFrame:
    """Write ablation.md, ablation.html and comparisons.csv into `out_dir`; return comparisons.

    `part_aware`: (table path without suffix, figure PNG) of `equihand part-aware`, for its section.
    """
    outputs = [Path(out_dir) / name for name in OUTPUTS]
    check_files(outputs, "report", force=force)
    runs, figures = read_runs(runs_csv), find_figures(figures_dir)
    probe_blocks = report_blocks(*part_aware) if part_aware is not None else []
    ref = read_reference(reference) if reference is not None else None
    rep = config["report"]
    table = ablation_table(runs)
    comps = comparisons(runs, rep)
    blocks = [
        ("h1", "Self-supervised pretraining for 3D hand pose: ablation report"),
        ("h2", "Question"),
        ("p", QUESTION),
        ("h2", "Setup"),
        ("ul", setup(runs, config)),
        ("h2", "Ablation table"),
        ("p", "Mean ± standard deviation over seeds; the last column is the gain over none."),
        ("table", to_markdown(table), display_table(table)),
        *([("p", references_line(ref))] if ref is not None else []),
        ("h2", "Statistics"),
        *[("p", p) for p in statistics_text(comps, rep)],
        ("table", markdown_table(comparison_table(comps)), comparison_table(comps))
        if len(comps)
        else ("p", "No two objectives ran with the same backbone and label fraction."),
        ("h2", "Answer"),
        *[("p", p) for p in answer(table, comps, rep)],
        *[("p", p) for p in label_effect_text(comps, rep)],
        *([("p", reference_text(table, ref))] if ref is not None else []),
        *(
            [("p", text)]
            if ref is not None and (text := unaligned_reference_text(table, ref))
            else []
        ),
        ("h2", "Figures"),
        *[("figure", png, FIGURES[png.stem]) for png in figures],
        *probe_blocks,
    ]
    md, page = render(blocks, Path(out_dir))
    claim_files(outputs, "report", force=force)
    atomic_write_text(Path(out_dir) / "ablation.md", md)
    atomic_write_text(Path(out_dir) / "ablation.html", page)
    atomic_write_text(Path(out_dir) / "comparisons.csv", comps.to_csv(index=False))
    return comps


def add_arguments(parser) -> None:
    parser.add_argument("--runs", required=True, help="runs.csv written by `equihand aggregate`")
    parser.add_argument("--figures", required=True, help="folder of `equihand figures` PNGs")
    parser.add_argument("--reference", help="reference.json of `equihand reference` (optional)")
    parser.add_argument(
        "--part-aware",
        nargs=2,
        metavar=("TABLE", "FIGURE"),
        help="table path without suffix and figure PNG of `equihand part-aware` (optional)",
    )
    parser.add_argument(
        "--out", required=True, help="folder for ablation.{md,html}, comparisons.csv"
    )


def run(args, config: dict) -> None:
    out = Path(args.out)
    reference = Path(args.reference) if args.reference else None
    part_aware = tuple(Path(p) for p in args.part_aware) if args.part_aware else None
    write_report(
        Path(args.runs), Path(args.figures), out, config, reference, part_aware, force=args.force
    )
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.html'}, {out / 'comparisons.csv'}")
