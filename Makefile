# The interface people and CI share. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER_DIR := .cluster
KUBECONFIG_LOCAL := $(CLUSTER_DIR)/kubeconfig
BIN = $(shell hack/build-tools.sh --print)
CACHE ?= $(or $(PULSEBASE_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pulsebase-operator)
WHEELHOUSE = $(CACHE)/wheelhouse/$(shell cat requirements/*.lock | sha256sum | cut -c1-16)
EXAMPLE ?= examples/pulsebase.yaml

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,lint]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create the virtual environment with the operator and test tools

.PHONY: tools
tools: ## build the pinned control plane and KWOK into the cache (skipped when present)
	hack/build-tools.sh

.PHONY: crds
crds: venv ## regenerate crds/, the chart's copy and docs/spec.md from the models
	$(PY) -m pulsebase_operator.cli crd > crds/pulsebase.yaml
	cp crds/pulsebase.yaml charts/pulsebase-operator/crds/pulsebase.yaml
	$(PY) hack/spec_reference.py > docs/spec.md

.PHONY: cluster-up
cluster-up: venv tools ## start a local control plane; kubeconfig in .cluster/kubeconfig
	PULSEBASE_BIN_DIR=$(BIN) $(PY) -m tests.support.localcluster up --state-dir $(CLUSTER_DIR)

.PHONY: cluster-down
cluster-down: ## stop the operator and the local control plane, and remove .cluster
	@if [ -f $(CLUSTER_DIR)/operator.pid ]; then \
	  pid=$$(cat $(CLUSTER_DIR)/operator.pid); kill $$pid 2>/dev/null || true; \
	  for _ in $$(seq 30); do kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; fi
	@if [ -d $(CLUSTER_DIR) ]; then \
	  $(PY) -m tests.support.localcluster down --state-dir $(CLUSTER_DIR); fi
	rm -rf $(CLUSTER_DIR)

.PHONY: dev
dev: cluster-up ## local control plane + CRD + operator + the example stack, then wait for Ready
	$(PY) hack/dev.py --state-dir $(CLUSTER_DIR) --kubectl $(BIN)/kubectl --example $(EXAMPLE)

.PHONY: wheelhouse
wheelhouse: venv ## download the image's locked dependencies once, for the offline install test
	@[ -f $(WHEELHOUSE)/.complete ] || { \
	  $(PY) -m pip download --quiet --require-hashes --only-binary=:all: \
	    -r requirements/build.lock -r requirements/operator.lock -d $(WHEELHOUSE) \
	    && touch $(WHEELHOUSE)/.complete; }

.PHONY: lock
lock: venv ## regenerate requirements/*.lock (with hashes) at the versions in constraints.txt
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe -c constraints.txt \
	  --no-emit-find-links -o requirements/operator.lock pyproject.toml
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe -c constraints.txt \
	  --no-emit-find-links -o requirements/build.lock requirements/build.in

.PHONY: test-deps
test-deps: ## install the Debian packages the tests run (only those missing; needs root then), and Patroni
	hack/install-test-deps.sh
	hack/install-patroni.sh

.PHONY: test
test: test-deps venv tools wheelhouse ## unit, integration and end-to-end tests (starts and stops what they need)
	PULSEBASE_BIN_DIR=$(BIN) PULSEBASE_WHEELHOUSE=$(WHEELHOUSE) \
	  PULSEBASE_PATRONI=$(shell hack/install-patroni.sh --print) $(VENV)/bin/pytest tests

.PHONY: lint
lint: venv ## ruff, mypy --strict, layer contracts, CRD drift
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile
	$(PY) -m pulsebase_operator.cli crd | diff -u crds/pulsebase.yaml - \
	  || (echo "crds/ is stale: run 'make crds'"; exit 1)

.PHONY: bench
bench: venv tools ## print render and reconcile figures (write requests, pass time, memory)
	PULSEBASE_BIN_DIR=$(BIN) $(PY) hack/bench.py

.PHONY: bench-backups
bench-backups: venv ## drill on a generated 1 GB database: recovery time and point, raw restore time
	$(PY) hack/bench_backups.py

.PHONY: kind-up
kind-up: venv ## for machines with Docker: a kind cluster with the CRD (not run in CI)
	kind create cluster --name pulsebase --config hack/kind.yaml
	kubectl apply --server-side -f crds/
	@echo "Run the operator against it: $(VENV)/bin/pulsebase-operator run"
