"""Training throughput: the full pretraining step against the model's own forward/backward.

    python bench/train_throughput.py [--cache results/prepared/synth] [--source data/synth]
        [--cases resnet18:32:128 ...] [--steps 4] [--threads 0]

For one backbone and resolution, alternately times (median of `--steps` after a warm-up each):
- model: the contrastive model's forward/backward + optimiser step on pre-made random views on
  the device, scored by the same objective with fixed geometry (the model's own compute);
- pipeline: cached uint8 rows -> device -> two augmented views -> forward/backward -> optimiser
  step, with what `equihand pretrain` uses (rows read with `data.cache.RowReader`, the next
  batch's read ahead on a background thread by `data.cache.Prefetcher`, then
  `pretrain.load_images` and `pretrain.contrastive_loss`);
- and, apart, the pipeline's data part: the uint8 gather + float conversion, and the two views.
Both run under `equihand pretrain`'s runtime setup (train.runtime_setup: threads and
`train.malloc_keep_mb`, which keeps freed blocks in the process). Images/s counts every image
the network sees (a contrastive pair is two). At the cache's own resolution the rows come from
`--cache`; at another one from `--source`'s JPEGs decoded into a temporary cache. Prints a
Markdown table and writes results/bench/train_throughput.csv.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, environment, markdown, set_threads, sync, write_csv
from fixtures import decode_jpegs, jpeg_files, write_cache

from equihand.config import load_config
from equihand.data.cache import Prefetcher, PreparedData, RowReader
from equihand.methods import augment, geometry, objectives
from equihand.methods.models import build_contrastive_model
from equihand.train.batches import load_images
from equihand.train.optim import build_optimizer
from equihand.train.pretrain import contrastive_loss
from equihand.train.runtime import runtime_setup

OBJECTIVE = "equivariant"
TEMPERATURE = 0.5


def images_at(resolution: int, cache: Path, source: Path, n: int, tmp: Path) -> np.ndarray:
    """uint8 (N, R, R, 3) rows, memory-mapped: the cache's own when its resolution matches."""
    data = PreparedData(cache)
    if data.images.shape[1] == resolution:
        return data.images
    folder = write_cache(
        tmp / f"cache{resolution}", decode_jpegs(jpeg_files(source, n), resolution)
    )
    return PreparedData(folder).images


def measure(
    images: np.ndarray, backbone: str, batch: int, steps: int, device: str = "auto"
) -> dict:
    """One row: model-only and pipeline images/s, their ratio and the data part's seconds."""
    config = load_config(None, [f"model.backbone={backbone}", f"device={device}"])
    dev = runtime_setup(config)
    size = images.shape[1]
    aug_cfg = augment.AugmentConfig.from_config(config["augment"])
    loss_fn = objectives.get_objective(OBJECTIVE).loss
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = build_contrastive_model(config["model"]).to(dev).to(memory_format=torch.channels_last)
    opt = build_optimizer(model, config["pretrain"])
    views = torch.rand(2 * batch, 3, size, size, device=dev)
    views = views.contiguous(memory_format=torch.channels_last)
    geom1 = geometry.sample_geometry(batch, size, aug_cfg, device=dev)
    geom2 = geometry.sample_geometry(batch, size, aug_cfg, device=dev)

    def rows():
        return np.sort(rng.choice(len(images), batch, replace=len(images) < batch))

    def update(loss):
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the training loop reads every loss

    def model_only():
        z1, z2 = model(views).float().chunk(2)
        update(loss_fn(z1, z2, geom1, geom2, temperature=TEMPERATURE, image_size=size))

    reader = Prefetcher(RowReader(images))
    upcoming = [rows()]

    def pipeline():
        current = upcoming.pop()
        upcoming.append(rows())
        reader.prefetch(upcoming[0])  # read while this step runs, as train.fit has it done
        batch_images = load_images(reader, current, dev, True)
        update(contrastive_loss(model, batch_images, aug_cfg, loss_fn, TEMPERATURE))

    def data_only():
        return load_images(images, rows(), dev, True)

    def two_views(batch_images):
        augment.augment_view(batch_images, aug_cfg)
        augment.augment_view(batch_images, aug_cfg)

    def seconds(fn, *args) -> float:
        sync(dev)
        tic = time.perf_counter()
        fn(*args)
        sync(dev)
        return time.perf_counter() - tic

    model_only(), pipeline()  # warm-up
    t_model, t_pipe = [], []
    for _ in range(steps):  # alternate, so that load drift hits both alike
        t_model.append(seconds(model_only))
        t_pipe.append(seconds(pipeline))
    reader.close()
    t_data = statistics.median(seconds(data_only) for _ in range(max(3, steps)))
    sample = data_only()
    t_aug = statistics.median(seconds(two_views, sample) for _ in range(max(3, steps)))
    n_images = 2 * batch
    model_s, pipe_s = statistics.median(t_model), statistics.median(t_pipe)
    return {
        "backbone": backbone,
        "resolution": size,
        "batch_per_view": batch,
        "images_per_step": n_images,
        "model_s_per_step": round(model_s, 4),
        "pipeline_s_per_step": round(pipe_s, 4),
        "model_images_per_s": round(n_images / model_s, 1),
        "pipeline_images_per_s": round(n_images / pipe_s, 1),
        "ratio": round(model_s / pipe_s, 3),
        "gather_s": round(t_data, 4),
        "two_views_s": round(t_aug, 4),
        "steps": steps,
    }


def parse_cases(texts: list[str]) -> list[tuple[str, int, int]]:
    """'resnet18:224:16' -> ("resnet18", 224, 16)."""
    cases = []
    for text in texts:
        parts = text.split(":")
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            raise SystemExit(
                f"--cases: {text!r} is not backbone:resolution:batch (e.g. resnet18:32:128)"
            )
        cases.append((parts[0], int(parts[1]), int(parts[2])))
    return cases


def run(
    cases: list[tuple[str, int, int]],
    cache: Path,
    source: Path,
    steps: int,
    threads: int,
    device: str = "auto",
    n_decoded: int = 512,
) -> list[dict]:
    """One row per (backbone, resolution, batch per view) case."""
    threads = set_threads(threads)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        arrays: dict[int, np.ndarray] = {}
        for backbone, resolution, batch in cases:
            if resolution not in arrays:
                arrays[resolution] = images_at(resolution, cache, source, n_decoded, Path(tmp))
            row = measure(arrays[resolution], backbone, batch, steps, device)
            out.append({**row, **environment(threads)})
            print(f"  {backbone} {resolution} px: ratio {row['ratio']}", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("results/prepared/synth"))
    parser.add_argument("--source", type=Path, default=Path("data/synth"))
    parser.add_argument(
        "--cases", nargs="+", default=["resnet18:32:128"], help="backbone:resolution:batch ..."
    )
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="0 = every core")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", type=Path, default=RESULTS / "train_throughput.csv")
    args = parser.parse_args(argv)
    rows = run(
        parse_cases(args.cases),
        args.cache,
        args.source,
        args.steps,
        args.threads,
        args.device,
    )
    print(markdown(rows))
    print(f"wrote {write_csv(args.csv, rows)}")


if __name__ == "__main__":
    main()
