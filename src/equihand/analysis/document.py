"""Documents of the report: Markdown tables, and the report's blocks (headings, paragraphs, lists,
tables, figures) as Markdown and as self-contained HTML (figures embedded as base64)."""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

import pandas as pd


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, every cell as str()."""
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _inline_html(text: str) -> str:
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render(blocks: list[tuple], out_dir: Path) -> tuple[str, str]:
    """Markdown and self-contained HTML of the same blocks: (kind, *content)."""
    md, body = [], []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            md.append(f"{'#' * int(kind[1])} {content[0]}\n")
            body.append(f"<{kind}>{_inline_html(content[0])}</{kind}>")
        elif kind == "p":
            md.append(content[0] + "\n")
            body.append(f"<p>{_inline_html(content[0])}</p>")
        elif kind == "ul":
            md.append("".join(f"- {item}\n" for item in content[0]))
            body.append(
                "<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in content[0]) + "</ul>"
            )
        elif kind == "table":
            md.append(content[0])
            body.append(content[1].to_html(index=False, border=0))
        elif kind == "figure":
            png, caption = content
            rel = Path(os.path.relpath(png.resolve(), out_dir.resolve())).as_posix()
            md.append(f"![{png.stem}]({rel})\n\n*{caption}*\n")
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline_html(caption)}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
        "table{border-collapse:collapse;font-size:90%}td,th{padding:.2em .6em;"
        "border-bottom:1px solid #ccc;text-align:right}img{max-width:100%}"
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(blocks[0][1])}</title><style>{style}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    return "\n".join(md), page
