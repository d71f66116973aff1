"""The equihand pipeline against the loader a user would otherwise write.

    python bench/baseline.py [--backbone resnet18] [--resolution 32] [--batch 128] [--steps 4]

The common baseline: a torch DataLoader with one worker process per core, each reading the
dataset's JPEG files (`--source`, FreiHAND layout), decoding them (torchvision.io), resizing
them once to the training resolution and making two views per sample with torchvision v2
transforms (RandomAffine with the config's rotation/translation/scale ranges, ColorJitter with
probability `jitter_p`, ToDtype), collated into batches; then the same contrastive model's
forward/backward + optimiser step (the invariant objective: the baseline keeps no geometry).
Timed per step after one warm-up batch (which includes starting the workers). The equihand
pipeline's figure is the `pipeline` of bench/train_throughput.py for the same case. Writes
results/bench/baseline.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import torch
import torchvision
import train_throughput
from common import RESULTS, environment, markdown, set_threads, write_csv
from fixtures import jpeg_files
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from equihand import augment, objectives
from equihand.config import load_config
from equihand.models import build_contrastive_model
from equihand.optim import build_optimizer
from equihand.train import resolve_device

TEMPERATURE = train_throughput.TEMPERATURE


def view_transform(cfg: augment.AugmentConfig) -> v2.Compose:
    jitter = v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
    return v2.Compose(
        [
            v2.RandomAffine(
                degrees=cfg.rotation_deg, translate=(cfg.translate, cfg.translate), scale=cfg.scale
            ),
            v2.RandomApply([jitter], p=cfg.jitter_p),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


class JpegPairs(Dataset):
    """Two independently transformed views of each JPEG file, resized once first."""

    def __init__(self, files: list[Path], resolution: int, transform):
        self.files, self.transform = [str(f) for f in files], transform
        self.resize = v2.Resize((resolution, resolution), antialias=True)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        image = self.resize(torchvision.io.decode_jpeg(torchvision.io.read_file(self.files[i])))
        return self.transform(image), self.transform(image)


def measure(
    files: list[Path],
    backbone: str,
    resolution: int,
    batch: int,
    steps: int,
    workers: int,
    device: str = "auto",
) -> dict:
    config = load_config(None, [f"model.backbone={backbone}", f"device={device}"])
    dev = resolve_device(config["device"])
    aug_cfg = augment.AugmentConfig.from_config(config["augment"])
    loss_fn = objectives.get_objective("invariant").loss
    torch.manual_seed(0)
    model = build_contrastive_model(config["model"]).to(dev).to(memory_format=torch.channels_last)
    opt = build_optimizer(model, config["pretrain"])
    loader = DataLoader(
        JpegPairs(files, resolution, view_transform(aug_cfg)),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=dev.type == "cuda",
    )

    def batches():
        while True:
            yield from loader

    it = batches()

    def step() -> float:
        tic = time.perf_counter()
        v1, v2_ = next(it)
        views = torch.cat([v1, v2_]).to(dev, non_blocking=True)
        views = views.contiguous(memory_format=torch.channels_last)
        z1, z2 = model(views).float().chunk(2)
        loss = loss_fn(z1, z2, None, None, temperature=TEMPERATURE, image_size=resolution)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        return time.perf_counter() - tic

    step()  # warm-up: starts the workers
    seconds = statistics.median(step() for _ in range(steps))
    return {
        "backbone": backbone,
        "resolution": resolution,
        "batch_per_view": batch,
        "workers": workers,
        "baseline_s_per_step": round(seconds, 4),
        "baseline_images_per_s": round(2 * batch / seconds, 1),
    }


def run(
    cases: list[tuple[str, int, int]],
    cache: Path,
    source: Path,
    steps: int,
    threads: int,
    device: str = "auto",
    pipeline: list[dict] | None = None,
    n_files: int = 2048,
) -> list[dict]:
    """One row per case: baseline and pipeline images/s and the pipeline's speed-up.

    `pipeline`: rows of train_throughput.run for the same cases (measured here when missing)."""
    threads = set_threads(threads)
    workers = os.cpu_count() or 1
    known = {(r["backbone"], r["resolution"], r["batch_per_view"]): r for r in pipeline or []}
    missing = [c for c in cases if c not in known]
    if missing:
        for r in train_throughput.run(missing, cache, source, steps, threads, device):
            known[(r["backbone"], r["resolution"], r["batch_per_view"])] = r
    files = jpeg_files(source, n_files)
    out = []
    for case in cases:
        backbone, resolution, batch = case
        row = measure(files, backbone, resolution, batch, steps, workers, device)
        ours = known[case]["pipeline_images_per_s"]
        row |= {
            "pipeline_images_per_s": ours,
            "speedup": round(ours / row["baseline_images_per_s"], 3),
            "steps": steps,
            **environment(threads),
        }
        print(f"  {backbone} {resolution} px: speed-up {row['speedup']}", flush=True)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("results/prepared/synth"))
    parser.add_argument("--source", type=Path, default=Path("data/synth"))
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128, help="images per view")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="0 = every core")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--pipeline-csv", type=Path, help="take the pipeline's figures from this throughput CSV"
    )
    parser.add_argument("--cases", nargs="+", help="several cases as backbone:resolution:batch")
    parser.add_argument("--csv", type=Path, default=RESULTS / "baseline.csv")
    args = parser.parse_args(argv)
    cases = [(args.backbone, args.resolution, args.batch)]
    if args.cases:
        cases = [(b, int(r), int(n)) for b, r, n in (c.split(":") for c in args.cases)]
    pipeline = None
    if args.pipeline_csv:
        with open(args.pipeline_csv, newline="") as f:
            pipeline = [
                {**r, "resolution": int(r["resolution"]),
                 "batch_per_view": int(r["batch_per_view"]),
                 "pipeline_images_per_s": float(r["pipeline_images_per_s"])}
                for r in csv.DictReader(f)
            ]  # fmt: skip
    rows = run(cases, args.cache, args.source, args.steps, args.threads, args.device, pipeline)
    print(markdown(rows))
    print(f"wrote {write_csv(args.csv, rows)}")


if __name__ == "__main__":
    main()
