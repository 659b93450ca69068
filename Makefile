# pricing-lakehouse: `make demo` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache
SALT_FILE := $(CACHE)/pii-salt
DEMO_DIR ?= demo
DEMO_SKUS ?= 200
DEMO_DAYS ?= 90
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup demo test lint clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstalls only when pyproject.toml changes; pip's cache serves torch after the first time.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,text]'
	touch $@

# Horovod 0.28.1 (the last release) from source: no build isolation (it must compile against the venv's
# torch), --no-deps (its extras would replace torch and pyarrow), C++20 for torch's headers through a
# compiler wrapper (the sdist hard-codes C++14), CPU build with Gloo. pip caches the wheel (~8 min once).
HOROVOD_ENV := HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
	HOROVOD_WITHOUT_MXNET=1 CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS=-j2 CXX=$(abspath $(CACHE))/cxx20
$(VENV)/.horovod: $(VENV)/.installed
	mkdir -p $(CACHE)
	printf '%s\n' '#!/usr/bin/env bash' 'args=()' 'for a in "$$@"; do case "$$a" in -std=c++1[147]|-std=gnu++1[147]) args+=(-std=c++20);; *) args+=("$$a");; esac; done' 'exec g++ "$${args[@]}"' > $(CACHE)/cxx20
	chmod +x $(CACHE)/cxx20
	$(HOROVOD_ENV) $(BIN)/pip install --quiet --no-build-isolation --no-deps horovod==0.28.1
	$(BIN)/pip install --quiet cloudpickle psutil packaging
	$(BIN)/horovodrun --check-build | grep -q '\[X\] PyTorch'
	touch $@

# Delta's JARs come from Maven Central through Spark's Ivy, once; sessions then load the cache.
$(CACHE)/.jars: $(VENV)/.installed
	$(BIN)/pricing setup-jars
	touch $@

# A per-machine pseudonymisation secret for the demo, never committed (.cache/ is ignored).
$(SALT_FILE):
	mkdir -p $(CACHE)
	$(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $@
	chmod 600 $@

setup: $(VENV)/.installed $(VENV)/.horovod $(CACHE)/.jars $(SALT_FILE) ## create .venv, install the project (+Horovod), prefetch Delta JARs

demo: setup ## simulate a market and run the pipeline on it locally (tables under ./demo)
	rm -rf $(DEMO_DIR)
	$(BIN)/pricing simulate --skus $(DEMO_SKUS) --days $(DEMO_DAYS) \
		paths.landing=$(DEMO_DIR)/landing paths.truth=$(DEMO_DIR)/truth
	PRICING_PII_SALT=$$(cat $(SALT_FILE)) $(BIN)/pricing ingest \
		--landing $(DEMO_DIR)/landing --lakehouse $(DEMO_DIR)/lakehouse
	$(BIN)/pricing features --lakehouse $(DEMO_DIR)/lakehouse
	$(BIN)/pricing train --lakehouse $(DEMO_DIR)/lakehouse --truth $(DEMO_DIR)/truth \
		train.tracking_uri=sqlite:///$(DEMO_DIR)/mlflow.db train.artifact_location=$(DEMO_DIR)/mlartifacts
	$(BIN)/pricing score --lakehouse $(DEMO_DIR)/lakehouse --truth $(DEMO_DIR)/truth \
		train.tracking_uri=sqlite:///$(DEMO_DIR)/mlflow.db

test: setup ## run the test suite (local Spark + Delta, tmp folders)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup ## ruff and mypy
	$(BIN)/ruff check pricing jobs tests notebooks
	$(BIN)/mypy pricing

clean: ## remove demo output and caches (keeps .venv and the JAR cache)
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache spark-warehouse
