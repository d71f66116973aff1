"""Saving matplotlib figures as the study writes them: PNG at 150 dpi and PDF with reproducible
bytes, written atomically, the figure closed afterwards."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from equihand.io import atomic_path

DPI = 150


def figure_paths(out_dir: Path, name: str) -> list[Path]:
    return [Path(out_dir) / f"{name}.{ext}" for ext in ("png", "pdf")]


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    paths = figure_paths(out_dir, name)
    try:
        for path in paths:
            ext = path.suffix[1:]
            meta = {"CreationDate": None} if ext == "pdf" else {}  # reproducible bytes
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, dpi=DPI, bbox_inches="tight", metadata=meta)
    finally:
        plt.close(fig)  # memory stays flat however many figures are drawn
    return paths
