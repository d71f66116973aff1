"""Load, validate and record the one equihand config.

The schema (``schema.yaml`` beside this file) is the single source of keys, types, allowed
values and defaults; the allowed objectives come from the study's vocabulary
(equihand.vocabulary), written into the schema as it is loaded. The Snakefile and the CLI both
validate here, with jsonschema, filling in defaults as ``snakemake.utils.validate`` does.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from equihand.io import atomic_write_text
from equihand.vocabulary import study_objectives

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")


class ConfigError(ValueError):
    """A config file or override that does not satisfy the schema."""


def load_schema() -> dict:
    """schema.yaml, its objective names (#/$defs/objective) filled from the vocabulary."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    schema["$defs"]["objective"]["enum"] = list(study_objectives())
    return schema


def _with_defaults(validator_class):
    """A validator that fills in `default` values for missing properties, as snakemake does."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        return f"{error.message} at '{key}'; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"'{key}' is {error.instance!r}; expected one of {error.validator_value}"
    hint = f" ({schema['description'].strip()})" if "description" in schema else ""
    return f"'{key}': {error.message}{hint}"


def _origin(error: jsonschema.ValidationError, overrides: list[str]) -> str:
    """`--set KEY=VALUE` when the last override touching the error's key set it, else ""."""
    path = [str(p) for p in error.absolute_path]
    for text in reversed(overrides):
        parts = parse_override(text)[0]
        n = min(len(parts), len(path))
        if parts[:n] == path[:n] and (len(parts) <= len(path) or error.validator != "required"):
            return f" (from --set {text})"
    return ""


def validate(config: dict, source: str = "config", overrides: list[str] | None = None) -> dict:
    """Validate `config` in place against the schema, filling defaults; return it. An error on a
    key one of `overrides` set is blamed on that `--set KEY=VALUE`."""
    errors = sorted(_Validator(load_schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        overrides = overrides or []
        described = [_describe(e) + _origin(e, overrides) for e in errors]
        if all(d.endswith(")") and "(from --set " in d for d in described):
            source = "(command line)"
        lines = "\n  ".join(described)
        raise ConfigError(f"invalid config {source}:\n  {lines}")
    study = config["study"]
    if study["small_fraction_seeds"] and len(study["label_fractions"]) < 2:
        raise ConfigError(
            f"invalid config {source}:\n  'study.small_fraction_seeds' is "
            f"{study['small_fraction_seeds']}, but study.label_fractions "
            f"{study['label_fractions']} has no fraction below the largest to run them at"
        )
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value read as JSON, else YAML) into (["a", "b", "c"], value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    try:  # JSON first: YAML 1.1 reads an exponent without a dot (1e-06) as a string
        return parts, json.loads(value)
    except ValueError:
        return parts, yaml.safe_load(value)


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        node = config
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: '{p}' is not a section")
        node[parts[-1]] = value
    return config


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Read a YAML config (or start empty), apply ``key=value`` overrides, validate, fill in
    defaults."""
    config: dict = {}
    source = "(defaults)"
    if path is not None:
        path = Path(path)
        source = str(path)
        if path.is_dir():
            raise ConfigError(f"--config {path} is a folder; expected a YAML file")
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
        if not isinstance(config, dict):
            kind = type(config).__name__
            raise ConfigError(f"config file {path} must hold a mapping, found {kind}")
    apply_overrides(config, overrides or [])
    return validate(config, source, overrides)


def _flatten(prefix: list[str], value: Any, source: str, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten([*prefix, str(k)], v, source, out)
    else:
        out[".".join(prefix)] = (value, source)


def explicit_settings(path: str | Path | None, overrides: list[str] | None) -> dict:
    """The keys a user set (not defaults): dotted key -> (value, where it came from), where is
    ``--config FILE`` or ``--set KEY=VALUE``; an override wins over the file."""
    out: dict[str, tuple[Any, str]] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        _flatten([], data, f"--config {path}", out)
    for text in overrides or []:
        parts, value = parse_override(text)
        _flatten(parts, value, f"--set {text}", out)
    return out


def write_resolved(config: dict, path: str | Path) -> Path:
    """Write the fully resolved config (defaults filled) beside a run's outputs."""
    return atomic_write_text(path, yaml.safe_dump(config, sort_keys=True))
