# Developer entry points. The README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup binaries lint fmt test test-unit test-integration test-e2e run bench image clean

setup: $(VENV)/.installed binaries

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok from Go
# modules into ~/.cache/agentic-operator (reused when present). Skipped when KUBEBUILDER_ASSETS
# names a directory with those binaries already.
binaries:
	@if [ -z "$$KUBEBUILDER_ASSETS" ]; then testenv/build-binaries.sh >/dev/null; fi

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Everything: lint, unit tests, then integration and end-to-end tests on a local control plane.
test: setup lint
	$(BIN)/pytest -q -p no:cacheprovider tests

test-unit: $(VENV)/.installed
	$(BIN)/pytest -q tests/unit

test-integration: setup
	$(BIN)/pytest -q tests/integration

test-e2e: setup
	$(BIN)/pytest -q tests/e2e

# Starts a local control plane, installs the CRDs and RBAC, runs the operator, creates a sample
# session, follows it to Running, stops it and follows it to Stopped, then keeps running until Ctrl-C.
run: setup
	$(BIN)/python -m testenv.run

bench: setup
	$(BIN)/python -m bench

# Builds localhost/agentic-operator:dev from the Dockerfile with buildah (no Docker engine needed; as
# root on Debian: installs buildah/podman, makes a bookworm stand-in for python:3.11-slim) and checks
# it (USER 1001, ENTRYPOINT, --help). Where a Docker engine runs, `docker build .` works as well.
image:
	testenv/image/build-image.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .testenv
