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
DEMO_NIGHTS ?= 3
DEMO_START ?= 2026-06-01
CLUSTER_DIR ?= $(CURDIR)/cluster-demo
# The slowest tests are listed after every run, so a CI log says where its minutes went.
PYTEST_ARGS ?= --durations=20

.DEFAULT_GOAL := help
.PHONY: help setup demo cluster-demo backtest robustness package test test-slow bench lint clean browser screenshots

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The review page's browser test and the screenshots drive Debian's chromium through chromedriver,
# installed from Debian when missing (as root, or through sudo).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
browser: ## Debian's chromium and chromedriver, for the review page's browser test and the screenshots
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

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

# Delta's JARs come from Maven Central through Spark's Ivy, once, into the user cache folder
# (~/.cache/pricing-lakehouse/ivy); sessions then load them from there, whatever folder they start in.
$(CACHE)/.jars-user-cache: $(VENV)/.installed
	$(BIN)/pricing setup-jars
	touch $@

# A per-machine pseudonymisation secret for the demo, never committed (.cache/ is ignored).
$(SALT_FILE):
	mkdir -p $(CACHE)
	$(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $@
	chmod 600 $@

setup: $(VENV)/.installed $(VENV)/.horovod $(CACHE)/.jars-user-cache $(SALT_FILE) ## create .venv, install the project (+Horovod), prefetch Delta JARs

# The nightly job over the market's last DEMO_NIGHTS days: each night its files are delivered into
# landing, then `pricing nightly` ingests them, updates the panel, retrains when due and prices the
# next day. The last night's prices are also judged against the simulator's true demand. After the
# first night, 30 % of the SKUs enter a price experiment (half keep their prices), read out at the end.
# One competitor delivers its own listings (id, title, brand, size) instead of our SKU: the nightly job
# matches them by their text, and the listings it would not match are shown at the end.
demo: setup ## simulate a market, then run the nightly job on it for several nights (tables under ./demo)
	rm -rf $(DEMO_DIR)
	$(BIN)/pricing simulate --skus $(DEMO_SKUS) --days $(DEMO_DAYS) simulate.start_date=$(DEMO_START) \
		simulate.listing_competitors=1 paths.landing=$(DEMO_DIR)/market paths.truth=$(DEMO_DIR)/truth
	set -e; last=$$(date -d "$(DEMO_START) + $$(( $(DEMO_DAYS) - 1 )) days" +%F); \
	for back in $$(seq $$(( $(DEMO_NIGHTS) - 1 )) -1 0); do \
		night=$$(date -d "$$last - $$back days" +%F); \
		$(BIN)/pricing deliver --market $(DEMO_DIR)/market --landing $(DEMO_DIR)/landing --through $$night; \
		PRICING_PII_SALT=$$(cat $(SALT_FILE)) $(BIN)/pricing nightly --landing $(DEMO_DIR)/landing \
			--lakehouse $(DEMO_DIR)/lakehouse --run-date $$night --truth $(DEMO_DIR)/truth; \
		if [ $$back -eq $$(( $(DEMO_NIGHTS) - 1 )) ]; then \
			$(BIN)/pricing experiment start --lakehouse $(DEMO_DIR)/lakehouse --name demo-holdout \
				--share 0.3 --from $$(date -d "$$night + 2 days" +%F) --days 28; \
		fi; \
	done; \
	$(BIN)/pricing experiment readout --lakehouse $(DEMO_DIR)/lakehouse --name demo-holdout; \
	$(BIN)/pricing listings review --lakehouse $(DEMO_DIR)/lakehouse --limit 10; \
	report=$(abspath $(DEMO_DIR))/lakehouse/reports/night-$$last.html; test -f $$report; \
	echo "The last night's report (open it in a browser): $$report"

# spark-submit ships the package as a zip (--py-files); the wheel is for pip and Databricks wheel tasks.
package: setup ## build dist/pricing.zip (spark-submit --py-files) and the wheel
	rm -rf dist && mkdir -p dist
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w dist .
	$(BIN)/python -c 'import shutil; shutil.make_archive("dist/pricing", "zip", ".", "pricing")'

# A real standalone cluster (master + worker from the installed pyspark) running the nightly job
# through spark-submit, client mode: the driver reads conf/ here, executors run the venv's Python.
cluster-demo: setup package ## run the nightly job with spark-submit on a local standalone cluster
	rm -rf $(CLUSTER_DIR)
	$(BIN)/pricing simulate --skus 30 --days 45 simulate.start_date=$(DEMO_START) \
		paths.landing=$(CLUSTER_DIR)/market paths.truth=$(CLUSTER_DIR)/truth
	night=$$(date -d "$(DEMO_START) + 44 days" +%F); \
	$(BIN)/pricing deliver --market $(CLUSTER_DIR)/market --landing $(CLUSTER_DIR)/landing --through $$night && \
	PRICING_PII_SALT=$$(cat $(SALT_FILE)) PRICING_CONF_DIR=$(CURDIR)/conf PYSPARK_PYTHON=$(abspath $(BIN))/python \
	$(BIN)/python -m pricing.platform.standalone --workers 1 --cores 2 --memory 3g -- \
		--driver-memory 2g --executor-memory 2g --py-files dist/pricing.zip \
		$$($(BIN)/pricing spark-conf --env cluster) jobs/nightly.py --env cluster \
		--landing $(CLUSTER_DIR)/landing --lakehouse $(CLUSTER_DIR)/lakehouse --run-date $$night \
		--truth $(CLUSTER_DIR)/truth spark.shuffle_partitions=4 train.epochs=5 \
		train.tracking_uri=sqlite:///$(CLUSTER_DIR)/mlflow.db train.artifact_location=$(CLUSTER_DIR)/mlartifacts

test: setup ## run the test suite (local Spark + Delta, tmp folders), slow end-to-end tests excluded
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup package browser ## kill -9 and rerun, standalone cluster, notebooks, driver GPUs, review page in a browser (~36 min)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

# Policies compared on one simulated market, night by night (docs/backtest.md).
BACKTEST_DIR ?= demo-backtest
BACKTEST_SKUS ?= 80
BACKTEST_NIGHTS ?= 10
BACKTEST_MLFLOW = train.tracking_uri=sqlite:///$(BACKTEST_DIR)/mlflow.db

backtest: setup ## compare pricing policies on a simulated market (closed loop), then the HTML report (~45 min)
	PRICING_PII_SALT=$$(cat $(SALT_FILE)) $(BIN)/pricing backtest --workdir $(BACKTEST_DIR) \
		--nights $(BACKTEST_NIGHTS) simulate.n_skus=$(BACKTEST_SKUS) $(BACKTEST_MLFLOW)
	$(BIN)/pricing report --backtest $(BACKTEST_DIR) $(BACKTEST_MLFLOW)

# The product on markets it was not tuned on: every evaluation family x seed, the nightly job from
# scratch, judged by each market's true demand (docs/benchmarks.md, "Robustness").
ROBUSTNESS_DIR ?= demo-robustness
ROBUSTNESS_SKUS ?= 100
ROBUSTNESS_DAYS ?= 60
ROBUSTNESS_SEEDS ?= 1,2,3
ROBUSTNESS_FAMILIES ?=
ROBUSTNESS_DECISIONS ?=
ROBUSTNESS_JOBS ?= 2

robustness: setup ## every evaluation market family x 3 seeds, nightly job from scratch, judged by true demand (~50 min, two markets at a time)
	PRICING_PII_SALT=$$(cat $(SALT_FILE)) $(BIN)/pricing evaluate --workdir $(ROBUSTNESS_DIR) \
		--seeds $(ROBUSTNESS_SEEDS) --skus $(ROBUSTNESS_SKUS) --days $(ROBUSTNESS_DAYS) --jobs $(ROBUSTNESS_JOBS) \
		$(if $(ROBUSTNESS_DECISIONS),--decisions $(ROBUSTNESS_DECISIONS)) \
		$(if $(ROBUSTNESS_FAMILIES),--families $(ROBUSTNESS_FAMILIES)) --out bench/results/robustness.json

# Ratios measured side by side in one run, figures as JSON under bench/results/ (docs/benchmarks.md).
bench: setup ## benchmarks: ETL vs DuckDB, scoring, training, incremental nights, elasticity, scale, evaluation workers (~150 min)
	test -d $(DEMO_DIR)/lakehouse || $(MAKE) demo
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/etl.py
	$(BIN)/python bench/scoring.py --lakehouse $(DEMO_DIR)/lakehouse --tracking-uri sqlite:///$(DEMO_DIR)/lakehouse/_mlflow/mlflow.db
	$(BIN)/python bench/training.py --lakehouse $(DEMO_DIR)/lakehouse
	$(BIN)/python bench/incremental.py
	$(BIN)/python bench/ingest.py
	PRICING_PII_SALT=$$(cat $(SALT_FILE)) $(BIN)/python bench/maintain.py
	$(BIN)/python bench/elasticity.py
	$(BIN)/python bench/elasticity.py --sweep train.hidden=4,8,16,64 --out bench/results/elasticity_capacity.json
	$(BIN)/python bench/elasticity_nuisance.py
	$(BIN)/python bench/scale.py
	PRICING_PII_SALT=$$(cat $(SALT_FILE)) $(BIN)/python bench/evaluate_jobs.py

# The pictures in docs/ of the review page and of a night's report, from the demo's lakehouse.
screenshots: setup browser ## screenshots of the review page and the last night's report into docs/img (runs make demo first if needed)
	test -d $(DEMO_DIR)/lakehouse || $(MAKE) demo
	$(BIN)/python docs/screenshots.py --lakehouse $(DEMO_DIR)/lakehouse --out docs/img

lint: setup ## ruff and mypy
	$(BIN)/ruff check pricing jobs tests notebooks bench
	$(BIN)/mypy pricing

clean: ## remove demo output and caches (keeps .venv and the JAR cache)
	rm -rf $(DEMO_DIR) $(CLUSTER_DIR) $(BACKTEST_DIR) $(ROBUSTNESS_DIR) dist build .pytest_cache .mypy_cache .ruff_cache spark-warehouse
