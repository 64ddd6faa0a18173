# TownPulse: `make up` runs the system, `make test` runs the tests. `make help` lists the rest.
SHELL := /bin/bash
VENV := .venv
# What a town installs (`pip install .`, no development extras), for the footprint benchmark.
PROD_VENV := .venv-prod
TP := $(VENV)/bin/townpulse
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install up down status logs test test-unit lint bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

install: ## Install what is missing: Mosquitto, PostgreSQL, Kafka jars, Python packages
	@bash deploy/install.sh

up: install ## Start Kafka, Mosquitto, PostgreSQL, the services and the simulator (SIM=0: no simulator)
	@$(TP) up $(if $(filter 0,$(SIM)),--no-sim,--sim)

down: ## Stop everything the stack started (data is kept in .run/)
	@if [ -x $(TP) ]; then $(TP) down; fi

status: ## Each component: up/down, pid, port
	@$(TP) status

logs: ## The last lines of every component's log
	@$(TP) logs

# The tests' webhook receiver listens on 127.0.0.1, which webhooks may not reach by default.
test: export TOWNPULSE_WEBHOOK_ALLOWED_NETWORKS ?= ["127.0.0.1/32"]
test: install ## Unit, integration and end-to-end tests against the real stack (started if needed)
	@$(TP) up --no-sim
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-unit: ## Unit tests only (no stack needed)
	@$(VENV)/bin/python -m pytest -m unit $(PYTEST_ARGS)

lint: ## ruff, mypy and the import contracts (pyproject.toml, [tool.importlinter])
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports

bench: install ## Run every benchmark and rebuild BENCHMARKS.md (the load tests need the stack: make up)
	@$(TP) up --no-sim
	@$(VENV)/bin/python -m bench.e2e
	@$(VENV)/bin/python -m bench.alerts_fanout
	@$(VENV)/bin/python -m bench.chaos
	@$(VENV)/bin/python -m bench.mosquitto_autosave
	@$(TP) down
	@[ -x $(PROD_VENV)/bin/townpulse ] || { python3 -m venv $(PROD_VENV) && $(PROD_VENV)/bin/pip install -q -e .; }
	@$(PROD_VENV)/bin/townpulse up
	@$(VENV)/bin/python -m bench.footprint --settle 600 --window 900
	@$(PROD_VENV)/bin/townpulse down
	@$(VENV)/bin/python -m bench
