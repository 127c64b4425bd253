# driftloop — the two commands are `make demo` and `make test`; both create .venv when needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Telemetry off everywhere the Makefile runs something.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PREFECT_SERVER_ANALYTICS_ENABLED=false \
       DVC_NO_ANALYTICS=1 ITERATIVE_DO_NOT_TRACK=1 PREFECT_UI_ENABLED=true
# A GPU host can pick the CUDA torch build: make install TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck unit clean help images kind-up kind-down k8s-e2e

help:
	@echo "make demo   - create .venv if needed, start the embedded platform and run the closed loop"
	@echo "make test   - create .venv if needed, lint, typecheck and run the test suite"
	@echo "make install | lint | typecheck | unit | clean"

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "python3.11 not found: install Python 3.11 (apt-get install python3.11 python3.11-venv)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" "setuptools>=68" wheel
	@if [ -n "$(TORCH_INDEX)" ]; then $(BIN)/pip install --quiet torch==2.13.0 --index-url $(TORCH_INDEX); fi
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/driftloop demo

LINT_PATHS := $(wildcard platform flows serving tests benchmarks scripts)

# lint: style, formatting, the architecture contracts (pyproject [tool.importlinter]) and types.
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory typecheck

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(STAMP)  ## the fast tests (no servers): a couple of minutes
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

clean:
	-$(BIN)/driftloop down 2>/dev/null
	rm -rf $(VENV) .driftloop .pytest_cache .mypy_cache .ruff_cache

# --- container images and Kubernetes (docker/, scripts/images.sh, scripts/kind.sh, scripts/k8s-local/)
TAG ?= dev

images:  ## build driftloop-platform:$(TAG) and driftloop-serving:$(TAG), then smoke-test both
	TAG=$(TAG) scripts/images.sh

kind-up:  ## kind cluster + images loaded + chart installed (needs Docker, kind, kubectl)
	TAG=$(TAG) scripts/kind.sh up

kind-down:  ## uninstall the chart and delete the kind cluster
	scripts/kind.sh down

k8s-e2e: $(STAMP)  ## real one-node Kubernetes 1.20 built from Debian's source (root, ~10 min first time)
	TAG=$(TAG) scripts/k8s-local/e2e.sh
