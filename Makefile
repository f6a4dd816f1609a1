# Quick start: `make demo` and `make test`. Both create .venv with pip if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
FULL := $(VENV)/.installed-full
# torch is pinned to the CPU wheel; norse is installed without its dependencies because its
# torchvision requirement cannot be imported beside CPU torch (see docs/getting-started.md).
PINS := "numpy>=2,<2.4" "pyparsing<3.3" torch==2.13.0

.PHONY: demo test lint bench docs notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(CORE): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e . "numpy>=2,<2.4"
	touch $@

$(FULL): $(CORE)
	$(BIN)/pip install -q -e ".[dev,torch,brian2,norse,docs,data]" $(PINS)
	$(BIN)/pip install -q --no-deps norse==1.1.0
	touch $@

demo: $(CORE)
	$(BIN)/neurosnap train models/egru-copy.toml --out runs/demo --overwrite

# lint, formatting and types first (seconds), then the whole suite
test: lint
	$(BIN)/python -m pytest -q

# lint, format check and types (configured in pyproject.toml); also run by pre-commit
# (.pre-commit-config.yaml); `ruff format neurosnap tests benchmarks` fixes the formatting
lint: $(FULL)
	$(BIN)/ruff check neurosnap tests benchmarks
	$(BIN)/ruff format --check neurosnap tests benchmarks
	$(BIN)/mypy neurosnap

# the documentation site in site/, strict (warnings fail); executes the notebooks at full size
docs: $(FULL)
	$(BIN)/mkdocs build --strict

# .ipynb copies of the jupytext notebooks (notebooks/*.py), unexecuted, in notebooks/ipynb/ (git-ignored)
notebooks: $(FULL)
	mkdir -p notebooks/ipynb
	for nb in notebooks/[0-9][0-9]-*.py; do \
		$(BIN)/jupytext --quiet --to ipynb --output notebooks/ipynb/$$(basename $$nb .py).ipynb $$nb || exit 1; \
	done

bench: $(FULL)
	NUMBA_NUM_THREADS=1 $(BIN)/python benchmarks/sparse_rtrl.py

clean:
	rm -rf $(VENV) runs .pytest_cache
