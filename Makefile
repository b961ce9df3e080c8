# Bare `make` lists the targets. Every target sets up the environment first (scripts/env.sh).
SHELL := /bin/bash
ENV := source scripts/env.sh &&

.PHONY: help repro test lint sweep lock
help:
	@echo "make repro   set up the environment, run the pipeline (dvc repro), show the metrics"
	@echo "make test    set up the environment, run lint and the whole test suite"
	@echo "make lint    ruff and mypy only"
	@echo "make sweep   queue encoder x decoder experiments, run them, show the table"
	@echo "make lock    re-pin requirements.lock from pyproject.toml (needs the registries)"

repro:
	$(ENV) dvc repro && dvc metrics show

test:
	$(ENV) ruff check src stages tests bench && ruff format --check src stages tests bench && mypy && python -m pytest

lint:
	$(ENV) ruff check src stages tests bench && mypy

sweep:
	$(ENV) bash scripts/sweep.sh

lock:
	python3.11 -m venv /tmp/sandmine-lock && /tmp/sandmine-lock/bin/pip install -q -e ".[dev,bench]" \
	  && { echo "# Exact versions for reproducible numbers. Regenerate: make lock"; \
	       /tmp/sandmine-lock/bin/pip freeze --exclude-editable | grep -vi '^sandmine'; \
	       /tmp/sandmine-lock/bin/pip list --format=freeze | grep -i '^setuptools=='; } > requirements.lock
