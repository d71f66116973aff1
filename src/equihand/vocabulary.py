"""The study's names, in one place: what the workflow, the CLI, the config schema and the analysis
all call things.

- the arms of the study: ``none`` (no pretraining) and the registered pretraining objectives, in
  the order every table, figure and report lists them;
- the encoders of the part-aware probe (random init, supervised, every pretrained objective);
- how a label fraction is written (in run folders, tables and prose);
- the run folders of each training, evaluation and probe step, and a table cell's name;
- the study's figures and their captions.

Standard library only: the Snakefile reads this module too, before any heavy import.

Adding an objective is one loss function (the signature in `equihand.methods.objectives`) and one
`register_objective` line below. The config schema's allowed objectives, the workflow's grid,
wildcards and rules, the CLI's choices, the pretraining step and the analysis' ordering all read
the registry.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

NO_PRETRAINING = "none"  # the study arm finetuned from the random (or ImageNet) initialisation
MIM = "mim"  # masked image modelling alone
WITH_MIM = f"+{MIM}"  # "<contrastive>+mim": a contrastive objective with the MIM loss added
RANDOM_ENCODER = "random"  # probe: an untrained encoder
SUPERVISED_ENCODER = "supervised"  # probe: the `none` run finetuned on the most labels
NAME_PATTERN = re.compile(r"[a-z][a-z0-9+-]*")  # safe in run folders ('_' separates fields)
# the encoders a study can use (equihand.methods.backbones builds them): torchvision's names, so a
# run folder's backbone field may hold '_' (objectives, the first field, never do)
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "regnet_x_400mf")


@dataclass(frozen=True)
class ObjectiveEntry:
    """A registered pretraining objective: where its loss lives and what it needs (the one record
    of an objective; equihand.methods.objectives.get_objective looks it up by name)."""

    name: str
    loss_path: str  # "module:function"; equihand.methods.objectives documents the signature
    contrastive: bool = True  # needs two projected views (z1, z2) and their geometry
    masked: bool = False  # needs a masked view reconstructed by the pixel decoder (recon)

    @property
    def loss(self) -> Callable:
        """The loss function itself, imported when asked for (the Snakefile never asks)."""
        module, _, function = self.loss_path.partition(":")
        return getattr(importlib.import_module(module), function)


# name -> entry, in study order (registration order)
OBJECTIVES: dict[str, ObjectiveEntry] = {}


def register_objective(
    name: str, loss: str, *, contrastive: bool = True, masked: bool = False
) -> ObjectiveEntry:
    """Add a pretraining objective to the study's vocabulary (after the ones already there)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"objective name {name!r} must match {NAME_PATTERN.pattern}")
    if name in (NO_PRETRAINING, RANDOM_ENCODER, SUPERVISED_ENCODER) or name in OBJECTIVES:
        raise ValueError(f"objective name {name!r} is taken")
    if not (contrastive or masked):
        raise ValueError(f"objective {name!r} must be contrastive, masked or both")
    module, _, function = loss.partition(":")
    if not module or not function:
        raise ValueError(f"loss {loss!r} of objective {name!r} must be 'module:function'")
    OBJECTIVES[name] = ObjectiveEntry(name, loss, contrastive, masked)
    return OBJECTIVES[name]


register_objective("invariant", "equihand.methods.objectives:invariant")
register_objective("equivariant", "equihand.methods.objectives:equivariant")
register_objective(MIM, "equihand.methods.objectives:mim", contrastive=False, masked=True)
register_objective("invariant+mim", "equihand.methods.objectives:invariant_mim", masked=True)
register_objective("equivariant+mim", "equihand.methods.objectives:equivariant_mim", masked=True)


def pretraining_objectives() -> tuple[str, ...]:
    """The registered objectives, in study order (`none` excluded: it has no loss)."""
    return tuple(OBJECTIVES)


def study_objectives() -> tuple[str, ...]:
    """Every arm of the study, in order: `none`, then each registered objective."""
    return (NO_PRETRAINING, *OBJECTIVES)


def encoders() -> tuple[str, ...]:
    """Every encoder the probe knows, in order: random, supervised, each pretrained one."""
    return (RANDOM_ENCODER, SUPERVISED_ENCODER, *OBJECTIVES)


def probe_encoders(objectives: Iterable[str]) -> list[str]:
    """The probe's encoders for a study of `objectives`: random init, supervised (when the study
    has `none` runs) and every pretrained objective, in the study's order."""
    objectives = list(objectives)
    supervised = [SUPERVISED_ENCODER] if NO_PRETRAINING in objectives else []
    return [RANDOM_ENCODER, *supervised, *(o for o in objectives if o != NO_PRETRAINING)]


def rank(name: str, order: Iterable[str]) -> int:
    """`name`'s position in `order`; names not in it come after all of them (len(order))."""
    order = list(order)
    return order.index(name) if name in order else len(order)


def in_order(names: Iterable[str], order: Iterable[str]) -> list[str]:
    """The distinct `names`: those in `order` first, in its order, then the rest sorted."""
    names, order = set(names), list(order)
    known = [n for n in order if n in names]
    return known + sorted(names - set(known))


# --- label fractions ---------------------------------------------------------------------------


def percent(fraction: float) -> str:
    """A label fraction in prose and figure labels: 0.1 -> '10%'."""
    return f"{100 * fraction:g}%"


def fraction_text(fraction: float) -> str:
    """A label fraction in a table: 0.1 -> '0.1', 1.0 -> '1'."""
    return f"{fraction:g}"


def seeds_at(study: dict, fraction: float) -> list[int]:
    """The seeds a `study` config section runs at label `fraction`: `seeds`, and at every
    fraction but the largest also `small_fraction_seeds`, sorted."""
    seeds = set(study["seeds"])
    if fraction < max(study["label_fractions"]):
        seeds |= set(study.get("small_fraction_seeds", ()))
    return sorted(seeds)


# --- run folders -------------------------------------------------------------------------------

# below results_dir: one folder per run; {fraction} is the label fraction as the config writes it
RUN_FOLDERS = {
    "pretrain": "pretrain/{objective}_{backbone}_s{seed}",
    "finetune": "finetune/{objective}_{backbone}_f{fraction}_s{seed}",
    "evaluate": "evaluate/{objective}_{backbone}_f{fraction}_s{seed}",
    "probe": "probe/{encoder}_{backbone}_s{seed}",
}
# a cell of the ablation table: a finetuning run's name without its seed
CELL = "{objective}_{backbone}_f{fraction}"


def run_folder(step: str, **fields) -> str:
    """The run folder of `step` (a key of RUN_FOLDERS) for these field values, below results_dir;
    without fields, the pattern itself (Snakemake reads its fields as wildcards)."""
    pattern = RUN_FOLDERS[step]
    return pattern.format(**fields) if fields else pattern


def cell_name(objective: str, backbone: str, fraction: float) -> str:
    return CELL.format(objective=objective, backbone=backbone, fraction=fraction)


# --- figures -----------------------------------------------------------------------------------

# `equihand figures`: name -> caption, in the order the report shows them (captions for
# `snakemake --report` in report/<name>.rst)
FIGURES = {
    "pa_epe_per_objective": "Test PA-EPE (cm, lower is better) per pretraining objective: "
    "mean ± std over seeds (bars) and every seed (points), one panel per label fraction.",
    "pck_curves": "PCK and PA-PCK against the error threshold (mm): mean over seeds, min-max "
    "band shaded; the legend gives each objective's mean AUC.",
    "label_efficiency": "Test PA-EPE (cm) against the fraction of labels used for finetuning: "
    "mean ± std over seeds per objective.",
    "per_joint_heatmap": "Test PA-EPE (cm) per joint and objective, mean over seeds.",
    "loss_curves": "Training curves, mean over seeds with min-max band: the self-supervised "
    "pretraining loss, and the finetuning loss and validation PA-EPE per label fraction.",
    "qualitative_grid": "Test predictions of one seed at the smallest label fraction: true "
    "skeleton white, predicted in colour; titles give the run's test PA-EPE.",
}
PART_AWARE_FIGURE = "part_aware"  # `equihand part-aware`'s figure
