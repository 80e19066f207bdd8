# Zentry's entry points. The two that matter: `make dev` runs the mesh, `make test`
# runs the tests; both set up everything they need on a fresh machine first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INFRA := $(PY) -m infra
PYTEST_ARGS ?=

PROTO_SOURCES := $(shell find protos -name '*.proto')

.PHONY: help setup tools protos dev test test-unit test-integration test-e2e lint lock migrate \
        fuzz k8s-validate replay-feed replay-leaderboard replay-analytics dead-letters redrive bench chaos \
        infra-up infra-down infra-status infra-reset status

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: tools gen/.stamp ## venv, pinned servers and tools under .tools/, generated protos (idempotent)

tools: $(VENV)/.installed
	@$(INFRA) install

protos: $(VENV)/.installed | tools ## regenerate gen/ (code, descriptor set, openapi.json) from protos/; buf lint
	@$(PY) protos/generate.py
	@.tools/bin/buf lint
	@touch gen/.stamp

gen/.stamp: $(VENV)/.installed $(PROTO_SOURCES) protos/generate.py protos/openapi.py buf.yaml | tools
	@$(PY) protos/generate.py
	@.tools/bin/buf lint
	@touch $@

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "setup: Python 3.11+ is needed as '$(PYTHON)'; install it or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]' || \
	  { echo "setup: pip could not install the Python packages; read the lines above (is PyPI reachable?)" >&2; exit 1; }
	@touch $@

dev: setup ## run the mesh: servers, every service, the gateway; Ctrl-C stops what it started
	@$(INFRA) dev

test: infra-up k8s-validate ## set up, start the infrastructure, validate k8s/, run every test tier
	@$(PY) -m pytest $(PYTEST_ARGS) tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure, not a pass" >&2; exit 1; fi; \
	exit $$rc

test-unit: $(VENV)/.installed gen/.stamp ## only the fast tests that need no server
	@$(PY) -m pytest $(PYTEST_ARGS) tests/unit

test-integration: infra-up ## only the tests against the real servers
	@$(PY) -m pytest $(PYTEST_ARGS) tests/integration

test-e2e: infra-up ## only the REST-through-Envoy tests (they start their own service instances)
	@$(PY) -m pytest $(PYTEST_ARGS) tests/e2e

fuzz: infra-up ## a longer fuzzing run: FUZZ_EXAMPLES (300) cases per operation, a new seed each time
	@ZENTRY_FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} ZENTRY_FUZZ_SEED=random $(PY) -m pytest -s tests/e2e/test_fuzz.py

k8s-validate: setup ## render every k8s/ overlay (kustomize) and validate it offline against the Kubernetes schema
	@$(INFRA) k8s

bench: infra-up ## benchmarks with their figures (not tests), beside this machine's limits; BENCH_SCALE=1
	@$(PY) -m bench

chaos: infra-up ## load and faults against a mesh of its own, then an audit of every read model; CHAOS_SECONDS=60
	@$(PY) -m chaos

replay-feed: infra-up ## rebuild the feed's read models from Kafka's first event (stop the feed consumers first)
	@$(INFRA) replay-feed

replay-leaderboard: infra-up ## rebuild the leaderboards from Kafka's first event (stop the leaderboard consumers first)
	@$(INFRA) replay-leaderboard

replay-analytics: infra-up ## rebuild the sleep statistics from Kafka's first event (stop the analytics consumers first)
	@$(INFRA) replay-analytics

dead-letters: setup ## what consumers parked, per topic and group, with each event's reason
	@$(PY) -m services.kit.deadletters list --events

redrive: setup ## publish GROUP's parked events again, in order (DRY_RUN=1 to look, OUT_OF_ORDER=1: see README)
	@test -n "$(GROUP)" || { echo "make redrive GROUP=<consumer group>, e.g. GROUP=feed.entries" >&2; exit 2; }
	@$(PY) -m services.kit.deadletters redrive $(GROUP) $(if $(filter 1,$(DRY_RUN)),--dry-run) $(if $(filter 1,$(OUT_OF_ORDER)),--out-of-order)

migrate: infra-up ## apply every service's database migrations (services also do it at start)
	@$(PY) -m services.kit.migrate

lint: setup ## ruff over the Python, buf over the protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	.tools/bin/buf lint

lock: $(VENV)/.installed ## re-pin constraints.txt from the current venv
	@{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

infra-up: setup ## start PostgreSQL, Redis, Kafka, Consul and Envoy; wait until ready
	@$(INFRA) up

infra-down: ## stop the servers infra-up started (data stays in .run/)
	@if [ -x $(PY) ]; then $(INFRA) down; else echo "nothing to stop: no venv yet"; fi

infra-status: ## what runs, where, and its log (exit 3 if something is down)
	@$(INFRA) status

status: $(VENV)/.installed ## the servers, then the mesh: instances' health, consumer lag, outbox, parked events
	@$(INFRA) status --mesh

infra-reset: ## stop our servers and delete .run/ (all local data and logs)
	@if [ -x $(PY) ]; then $(INFRA) reset; else rm -rf .run; fi
