"""One recipe: the schema's defaults are the default study's settings.

A step run without --config (``equihand synth --out data/mine``) must do what docs/study.md
recommends, so every value config/default.yaml sets equals the schema's default, or says why it
differs in a comment on its line or in the comment block directly above it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from equihand.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _keys_with_lines(text: str) -> dict[str, list[str]]:
    """Dotted key -> the lines that may explain it: its own line and the comment block above."""
    lines = text.splitlines()
    out, stack = {}, []
    for i, line in enumerate(lines):
        body = line.split("#", 1)[0].rstrip()
        if not body.strip() or ":" not in body:
            continue
        depth = (len(body) - len(body.lstrip())) // 2
        key = body.strip().split(":", 1)[0]
        stack = [*stack[:depth], key]
        notes, j = [line], i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            notes.append(lines[j])
            j -= 1
        out[".".join(stack)] = notes
    return out


def _leaves(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            _leaves(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def unexplained_departures(text: str) -> list[str]:
    """Keys a config file sets to something else than the schema's default, with no comment."""
    defaults = _leaves("", load_config(None, []), {})
    notes = _keys_with_lines(text)
    return [
        f"{key}: {value!r} (schema default {defaults[key]!r})"
        for key, value in _leaves("", yaml.safe_load(text), {}).items()
        if value != defaults[key] and not any("#" in line for line in notes[key])
    ]


def test_the_default_config_departs_from_the_schema_only_with_a_reason():
    assert unexplained_departures((REPO / "config/default.yaml").read_text()) == []


def test_a_silent_departure_is_found_and_a_commented_one_is_not():
    silent = "pretrain:\n  epochs: 3\n  lr: 0.001\n"
    assert unexplained_departures(silent) == ["pretrain.epochs: 3 (schema default 6)"]
    above = "pretrain:\n  # three: the smoke budget\n  epochs: 3\n"
    inline = "pretrain:\n  epochs: 3  # the smoke budget\n"
    assert unexplained_departures(above) == unexplained_departures(inline) == []
    # a comment above the section does not explain a key inside it
    section = "# tiny\npretrain:\n  lr: 0.001\n  epochs: 3\n"
    assert unexplained_departures(section) == ["pretrain.epochs: 3 (schema default 6)"]


def test_a_step_without_config_gets_the_default_study():
    shipped = load_config(REPO / "config/default.yaml", [])
    assert load_config(None, []) == shipped


def test_small_fraction_seeds_run_below_the_largest_fraction_only():
    from equihand.vocabulary import seeds_at

    study = load_config(None, ["study.small_fraction_seeds=[5, 3, 4]"])["study"]
    assert seeds_at(study, 0.1) == [0, 1, 2, 3, 4, 5]
    assert seeds_at(study, 1.0) == [0, 1, 2]
    assert seeds_at(load_config(None, [])["study"], 0.1) == [0, 1, 2]  # default: none


def test_small_fraction_seeds_without_a_smaller_fraction_are_refused():
    import pytest

    from equihand.config import ConfigError

    bad = ["study.small_fraction_seeds=[3]", "study.label_fractions=[1.0]"]
    with pytest.raises(ConfigError, match=r"small_fraction_seeds.*\[3\].*no fraction below"):
        load_config(None, bad)
