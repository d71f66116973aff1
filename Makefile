# Two entry points for a fresh clone (see README): `make study` and `make test`.
# Both create .venv from the pinned requirements first; that step is skipped when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
export PATH := $(BIN):$(PATH)

.PHONY: venv system-packages study smoke test test-fast lint clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (equihand needs Python 3.11; set PYTHON=...)" >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt -c requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

## The whole default study (synthetic hands, CPU).
study: venv
	snakemake --cores $(CORES)

## The same DAG in miniature.
smoke: venv
	snakemake --cores $(CORES) --configfile config/smoke.yaml --config results_dir=results/smoke data_dir=data/smoke

## Debian packages the tests need (slurm-wlm, munge, git), installed when missing.
system-packages:
	bash tools/system-packages.sh

## Every test (unit, integration, workflow).
test: venv system-packages
	pytest -q

## The unit tests only: no Debian packages, no SLURM, DVC, workflow, bench or simulation tests.
test-fast: venv
	pytest -q -m "not slow"

lint: venv
	ruff check src tests bench
	ruff format --check src tests bench
	snakefmt --check .
	snakemake --lint

clean:
	rm -rf .snakemake logs benchmarks results/smoke data/smoke
