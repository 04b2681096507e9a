# belonging: `make run` builds everything and starts the server; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := models/base/multilingual-e5-small
BUNDLE := models/default
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1

# A failed recipe never leaves a target that looks finished (bundles are also renamed into place whole).
.DELETE_ON_ERROR:
RECIPE := training/recipes/default.toml

.PHONY: run install model base test test-slow bench lint format splits seeds-table

run: model
	@echo "Moderator pages: http://$(HOST):$(PORT)/ (create an account: $(BIN)/belong users add NAME --role moderator)"
	$(BIN)/belong serve --bundle $(BUNDLE) --host $(HOST) --port $(PORT) --issue-key

install: $(VENV)/.installed

# torch==2.13.0 (pinned in pyproject) is the CPU wheel on this machine's disk: no multi-GB CUDA pull.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	touch $@

base: install $(BASE)/config.json

$(BASE)/config.json:
	$(BIN)/belong base import --out $(BASE)

model: base $(BUNDLE)/bundle.json

# Public corpora under ../shared/data are used when present and skipped with a note when not.
$(BUNDLE)/bundle.json:
	$(BIN)/belong train --recipe $(RECIPE) --out $(BUNDLE)

test: install
	$(BIN)/python -m pytest -q

test-slow: base
	$(BIN)/python -m pytest -q -m slow

bench: model
	$(BIN)/python bench/train_bench.py
	$(BIN)/python bench/serve_bench.py --bundle $(BUNDLE)

# The format check, the linter and mypy on every package; CI runs this before the tests.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy training serving belonging_cli belonging

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

splits: install
	$(BIN)/belong splits --data seeds --out data/splits.jsonl

seeds-table: install
	$(BIN)/python scripts/seeds_table.py --write seeds/README.md
