"""`equihand synth`: render the synthetic hand dataset in the FreiHAND layout.

Each image is a kinematic right hand (equihand.data.hand_model) in a named gesture plus noise,
turned by a uniformly random rotation, placed at a random distance in front of a pinhole camera,
rendered (equihand.data.render) over a random textured background with distractor shapes, blurred,
noised and JPEG-compressed (equihand.data.scene). Image i of a split depends only on (seed, split,
i), so the bytes do not depend on the number of worker processes. Hand identities (bone lengths,
skin tone) are drawn per identity; training and evaluation identities are disjoint. A contact
sheet (equihand.data.drawing) shows the first images with their skeletons and part masks.
"""

from __future__ import annotations

import io as _io
import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from PIL import Image

from equihand import progress
from equihand.config import write_resolved
from equihand.data import hand_model as hm
from equihand.data.drawing import contact_sheet
from equihand.data.layout import PART_NAMES, SCALE_BONE, annotation_path, image_path, parts_path
from equihand.data.scene import SynthParams, render_sample
from equihand.io import atomic_write_json
from equihand.outputs import replace_folder

GENERATOR_VERSION = 1


# --- writing the dataset -------------------------------------------------------------------------


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _encode_png(labels: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(labels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _render_chunk(job: tuple[Path, str, SynthParams, list[int]]) -> list[dict]:
    root, split, p, indices = job
    out = []
    for i in indices:
        s = render_sample(i, split, p)
        image_path(root, split, i).write_bytes(_encode_jpeg(s.image, p.jpeg_quality))
        parts_path(root, split, i).write_bytes(_encode_png(s.parts))
        out.append(
            {
                "xyz": s.xyz.tolist(),
                "K": s.K.tolist(),
                "scale": float(np.linalg.norm(s.xyz[SCALE_BONE[0]] - s.xyz[SCALE_BONE[1]])),
                "uv": np.round(s.uv, 4).tolist(),
                "visibility": s.visibility.astype(int).tolist(),
                "gesture": s.gesture,
                "hand_id": s.hand_id,
            }
        )
    return out


def write_split(root: Path, split: str, n: int, p: SynthParams, workers: int) -> None:
    (root / split / "rgb").mkdir(parents=True, exist_ok=True)
    (root / split / "parts").mkdir(parents=True, exist_ok=True)
    chunk = 64
    jobs = [(root, split, p, list(range(i, min(i + chunk, n)))) for i in range(0, n, chunk)]
    records: list[dict] = []
    bar = progress.bar(total=n, desc=f"synth {split}", unit="img")
    if workers == 1:
        results = map(_render_chunk, jobs)
        for r in results:
            records.extend(r)
            bar.update(len(r))
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            for r in pool.imap(_render_chunk, jobs):
                records.extend(r)
                bar.update(len(r))
    bar.close()
    for key in ("xyz", "K", "scale", "uv", "visibility", "gesture", "hand_id"):
        atomic_write_json(annotation_path(root, split, key), [r[key] for r in records])


def synthesize(out_dir: str | Path, config: dict, *, force: bool = False) -> Path:
    """Render the whole dataset described by `config["synth"]` into `out_dir` (atomically;
    equihand.outputs says what may be there already)."""
    s = config["synth"]
    workers = s["workers"] or os.cpu_count() or 1
    out_dir = Path(out_dir)
    with replace_folder(out_dir, "synth", force=force) as tmp:
        for split, n in (("training", s["n_train"]), ("evaluation", s["n_eval"])):
            write_split(tmp, split, n, SynthParams.from_config(config, split), workers)
        meta = {
            "generator": "equihand.synth",
            "generator_version": GENERATOR_VERSION,
            "image_size": s["image_size"],
            "seed": s["seed"],
            "gesture_names": list(hm.GESTURE_NAMES),
            "part_names": list(PART_NAMES),
            "n_train": s["n_train"],
            "n_eval": s["n_eval"],
        }
        (tmp / "synth_meta.json").write_text(json.dumps(meta, indent=2))
        write_resolved(config, tmp / "config.yaml")
        contact_sheet(tmp, tmp / "contact_sheet.png")
    return out_dir


# --- CLI -----------------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--out", help="dataset folder (default: <data_dir>/synth)")


def run(args, config: dict) -> None:
    out = Path(args.out) if args.out else Path(config["data_dir"]) / "synth"
    synthesize(out, config, force=args.force)
    print(
        f"wrote {config['synth']['n_train']} training and {config['synth']['n_eval']} "
        f"evaluation images to {out} (contact sheet: {out / 'contact_sheet.png'})"
    )
