"""The one command line: ``equihand <step> [--config FILE] [--set key=value ...] ...``.

Each step lives in its own module exposing ``add_arguments(parser)`` and ``run(args, config)``;
this file only dispatches. Every Snakemake rule is one of these calls.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from equihand import __version__, progress
from equihand.config import ConfigError, load_config
from equihand.errors import UserError

# The map of the package: step name -> (its module below equihand, one-line help). A step module
# imports library modules, never another step (tests/test_structure.py).
STEPS = {
    "synth": ("data.synth", "render the synthetic hand dataset in the FreiHAND layout"),
    "download": ("data.download", "download and extract FreiHAND"),
    "prepare": ("data.prepare", "validate a FreiHAND-layout dataset and build the cache"),
    "pretrain": ("train.pretrain", "self-supervised pretraining of an encoder (no labels)"),
    "finetune": ("train.finetune", "supervised 2.5D pose finetuning, selected on validation"),
    "evaluate": ("evaluate.evaluate", "FreiHAND metrics and predictions of a finetuned model"),
    "score": ("evaluate.score", "score a FreiHAND-format pred.json against ground truth"),
    "reference": ("evaluate.reference", "the PA-EPE, EPE and AUC a model must beat"),
    "probe-data": ("probe.probe_data", "whole-image and part-crop sets of the part probe"),
    "probe": ("probe.probe", "linear probes and retrieval of one frozen encoder"),
    "aggregate": ("analysis.aggregate", "the ablation table (CSV, Markdown, LaTeX) from metrics"),
    "figures": ("analysis.figures", "the study's figures (PNG and PDF) from its evaluations"),
    "part-aware": ("analysis.part_aware", "the part-aware table, figure and claims over runs"),
    "report": ("analysis.report", "the written ablation report (Markdown and HTML) with CIs"),
    "pull": ("pull", "dvc pull that checks every object's md5 before checking out"),
}


def step_module(step: str) -> str:
    """The full name of `step`'s module."""
    return f"equihand.{STEPS[step][0]}"


# steps that write no output of their own (dvc pull checks out what DVC tracks)
NO_OUTPUT = {"pull"}


def build_parser(step: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen `step`'s module is imported (steps import heavy libraries)."""
    parser = argparse.ArgumentParser(prog="equihand", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"equihand {__version__}")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, (_, help_text) in STEPS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", help="YAML config (keys: src/equihand/schema.yaml)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one config key, e.g. --set synth.n_train=100 (repeatable)",
        )
        if name not in NO_OUTPUT:
            p.add_argument(
                "--force",
                action="store_true",
                help="move an existing output that equihand did not write aside "
                "(<name>.old-<time>) instead of refusing",
            )
        if name == step:
            module = importlib.import_module(step_module(name))
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    step = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(step if step in STEPS else None).parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        progress.set_mode(config["progress"])
        args._module.run(args, config)
    except (ConfigError, UserError) as e:
        print(f"equihand {args.step}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
