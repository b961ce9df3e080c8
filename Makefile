# Bare `make` lists the targets. Every target sets up the environment first (scripts/env.sh).
SHELL := /bin/bash
ENV := source scripts/env.sh &&

.PHONY: help repro test lint sweep kfold bench-env lock
help:
	@echo "make repro     set up the environment, run the pipeline (dvc repro), print the first numbers"
	@echo "make test      set up the environment, run lint and the whole test suite"
	@echo "make lint      ruff, the import layers (lint-imports) and mypy only"
	@echo "make sweep     queue encoder x decoder experiments, run them, show the table"
	@echo "make kfold     every fold of the default model and the random forest, mean ± sd per metric (~1 h)"
	@echo "make bench-env the benches' own environment (adds requirements-bench.lock: torchgeo, Lightning)"
	@echo "make lock      re-pin requirements.lock and requirements-bench.lock from pyproject.toml"

# env first, forced: this machine's fingerprint (metrics/env.json); unchanged bits leave every other stage as it was
repro:
	$(ENV) dvc repro --force env && dvc repro && python scripts/summary.py

test:
	$(ENV) ruff check src stages tests bench && ruff format --check src stages tests bench && lint-imports && mypy \
	  && python -m pytest

lint:
	$(ENV) ruff check src stages tests bench && lint-imports && mypy

sweep:
	$(ENV) bash scripts/sweep.sh

# (grep without -q: under env.sh's pipefail, grep -q closing the pipe early kills dvc with SIGPIPE and ends the wait)
kfold:
	$(ENV) python scripts/kfold.py queue default \
	  && python scripts/kfold.py queue rf -S model.encoder=random_forest -S model.decoder=none \
	     -S 'model.indices=[NDWI,NDVI,MNDWI]' \
	  && dvc queue start -j 1 && while dvc queue status | grep -E "Queued|Running" >/dev/null; do sleep 20; done \
	  && python scripts/kfold.py show

bench-env:
	SANDMINE_BENCH=1 $(ENV) python -c "import torchgeo; print('bench environment:', torchgeo.__name__, torchgeo.__version__)" \
	  && echo 'activate it with: SANDMINE_BENCH=1 source scripts/env.sh'

# base lock from .[dev]; the bench lock is what .[bench] adds on top of it, resolved against the base pins
LOCK := /tmp/sandmine-lock
lock:
	rm -rf $(LOCK) && python3.11 -m venv $(LOCK) && $(LOCK)/bin/pip install -q -e ".[dev]" \
	  && $(LOCK)/bin/pip freeze --exclude-editable | grep -vi '^sandmine' > $(LOCK)/base.txt \
	  && { echo "# Exact versions for reproducible numbers: runtime + dev (make repro, make test). Regenerate: make lock"; \
	       echo "# (after changing pyproject.toml). The bench extra is pinned apart in requirements-bench.lock."; \
	       cat $(LOCK)/base.txt; $(LOCK)/bin/pip list --format=freeze | grep -i '^setuptools=='; } > requirements.lock \
	  && $(LOCK)/bin/pip install -q -c $(LOCK)/base.txt -e ".[dev,bench]" \
	  && { echo "# Exact versions of the bench extra (torchgeo and the Lightning stack it pulls in), installed on top of"; \
	       echo "# requirements.lock into an environment of its own by \`make bench-env\`. Regenerate: make lock"; \
	       $(LOCK)/bin/pip freeze --exclude-editable | grep -vi '^sandmine' | grep -vxFf $(LOCK)/base.txt; } \
	     > requirements-bench.lock
