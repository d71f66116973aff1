"""The equihand pipeline against the loader a user would otherwise write.

    python bench/baseline.py [--cases resnet18:32:128 ...] [--steps 4] [--rounds 3]

The common baseline: a torch DataLoader with one worker process per core, each reading the
dataset's JPEG files (`--source`, FreiHAND layout), decoding them (torchvision.io), resizing
them once to the training resolution and making two views per sample with torchvision v2
transforms (RandomAffine with the config's rotation/translation/scale ranges, ColorJitter with
probability `jitter_p`, ToDtype), collated into batches; then the same contrastive model's
forward/backward + optimiser step (the invariant objective: the baseline keeps no geometry),
in a process with malloc's default settings, as a user's script has them. The same process then
times the model alone on pre-made tensors (`model_default`): the best the baseline could do.

Each round runs two fresh processes one after the other, per case: this baseline, then
bench/train_throughput.py (the equihand pipeline and the model alone under `equihand
pretrain`'s runtime setup). The speed-up is the pipeline's images/s over the baseline's of the
same round; the table gives its median over the rounds and its range. Writes
results/bench/baseline.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
import train_throughput
from common import RESULTS, environment, markdown, set_threads, sync, write_csv
from fixtures import jpeg_files
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from equihand.config import load_config
from equihand.methods import augment, objectives
from equihand.methods.models import build_contrastive_model
from equihand.train.optim import build_optimizer
from equihand.train.runtime import resolve_device

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

    def update(views) -> None:
        z1, z2 = model(views).float().chunk(2)
        loss = loss_fn(z1, z2, None, None, temperature=TEMPERATURE, image_size=resolution)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    def step() -> float:
        tic = time.perf_counter()
        v1, v2_ = next(it)
        views = torch.cat([v1, v2_]).to(dev, non_blocking=True)
        update(views.contiguous(memory_format=torch.channels_last))
        sync(dev)
        return time.perf_counter() - tic

    made = torch.rand(2 * batch, 3, resolution, resolution, device=dev)
    made = made.contiguous(memory_format=torch.channels_last)

    def model_only() -> float:
        tic = time.perf_counter()
        update(made)
        sync(dev)
        return time.perf_counter() - tic

    step()  # warm-up: starts the workers
    seconds = statistics.median(step() for _ in range(steps))
    model_only()  # the workers' queue is full now: they are idle while the model runs alone
    model_s = statistics.median(model_only() for _ in range(steps))
    return {
        "backbone": backbone,
        "resolution": resolution,
        "batch_per_view": batch,
        "workers": workers,
        "baseline_s_per_step": round(seconds, 4),
        "baseline_images_per_s": round(2 * batch / seconds, 1),
        "model_default_images_per_s": round(2 * batch / model_s, 1),
    }


def baseline_rows(
    cases: list[tuple[str, int, int]],
    source: Path,
    steps: int,
    threads: int,
    device: str = "auto",
    n_files: int = 2048,
) -> list[dict]:
    """The baseline of each case, measured in this process (malloc's defaults)."""
    set_threads(threads)
    files = jpeg_files(source, n_files)
    workers = os.cpu_count() or 1
    return [measure(files, *case, steps, workers, device) for case in cases]


def _in_fresh_process(script: str, cases, args: list[str]) -> dict:
    """Run bench/`script` on `cases` in a new Python process; its CSV rows by case."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.csv"
        spec = [f"{b}:{r}:{n}" for b, r, n in cases]
        command = [sys.executable, str(Path(__file__).with_name(script)), "--cases", *spec]
        done = subprocess.run(
            [*command, *args, "--csv", str(out)], check=True, stdout=subprocess.PIPE, text=True
        )
        print("".join(f"  {line}\n" for line in done.stdout.splitlines() if line.startswith("  ")))
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
    return {(r["backbone"], int(r["resolution"]), int(r["batch_per_view"])): r for r in rows}


def run(
    cases: list[tuple[str, int, int]],
    cache: Path,
    source: Path,
    steps: int,
    threads: int,
    device: str = "auto",
    rounds: int = 3,
) -> list[dict]:
    """One row per case: the baseline's and the pipeline's images/s over `rounds` rounds of a
    fresh baseline process then a fresh pipeline process, and the pipeline's speed-up."""
    threads = set_threads(threads)
    common = ["--steps", str(steps), "--threads", str(threads), "--device", device]
    measured: dict[tuple, list[tuple[dict, dict]]] = {case: [] for case in cases}
    for r in range(rounds):
        print(f"  round {r + 1} of {rounds}", flush=True)
        theirs = _in_fresh_process(
            "baseline.py", cases, [*common, "--baseline-only", "--source", str(source)]
        )
        ours = _in_fresh_process(
            "train_throughput.py", cases, [*common, "--cache", str(cache), "--source", str(source)]
        )
        for case in cases:
            measured[case].append((theirs[case], ours[case]))
    out = []
    for case, pairs in measured.items():
        base = [float(b["baseline_images_per_s"]) for b, _ in pairs]
        pipe = [float(p["pipeline_images_per_s"]) for _, p in pairs]
        speedups = [p / b for p, b in zip(pipe, base, strict=True)]
        model_default = statistics.median(float(b["model_default_images_per_s"]) for b, _ in pairs)
        model = statistics.median(float(p["model_images_per_s"]) for _, p in pairs)
        row = {
            "backbone": case[0],
            "resolution": case[1],
            "batch_per_view": case[2],
            "workers": pairs[0][0]["workers"],
            "baseline_images_per_s": round(statistics.median(base), 2),
            "pipeline_images_per_s": round(statistics.median(pipe), 2),
            "speedup": round(statistics.median(speedups), 3),
            "speedup_min": round(min(speedups), 3),
            "speedup_max": round(max(speedups), 3),
            "model_default_images_per_s": round(model_default, 2),
            "baseline_vs_model_default": round(statistics.median(base) / model_default, 3),
            "model_images_per_s": round(model, 2),
            "pipeline_vs_model": round(statistics.median(pipe) / model, 3),
            "rounds": rounds,
            "steps": steps,
            **environment(threads),
        }
        print(f"  {case[0]} {case[1]} px: speed-up {row['speedup']}", flush=True)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("results/prepared/synth"))
    parser.add_argument("--source", type=Path, default=Path("data/synth"))
    parser.add_argument(
        "--cases", nargs="+", default=["resnet18:32:128"], help="backbone:resolution:batch ..."
    )
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0 = every core")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", type=Path, default=RESULTS / "baseline.csv")
    parser.add_argument(
        "--baseline-only",
        action="store_true",
        help="only the baseline, in this process (what each round runs)",
    )
    args = parser.parse_args(argv)
    cases = train_throughput.parse_cases(args.cases)
    if args.baseline_only:
        rows = baseline_rows(cases, args.source, args.steps, args.threads, args.device)
    else:
        rows = run(
            cases, args.cache, args.source, args.steps, args.threads, args.device, args.rounds
        )
        print(markdown(rows))
    print(f"wrote {write_csv(args.csv, rows)}")


if __name__ == "__main__":
    main()
