# One target per job; CI (.ci/run) and Cloud Build call these same targets.
# The functions' runtime is python313 (cloudbuild.yaml); the venv is built on the same Python,
# found by scripts/python313.sh unless PYTHON names one.
PYTHON ?= $(shell bash scripts/python313.sh)
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: help venv lint format test-unit test check-infra run bench bench-report clean openapi fuzz

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PY):
	@test -n "$(PYTHON)" || { echo "no Python 3.13 found (see above)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) requirements.txt requirements-dev.txt requirements-infra.txt pyproject.toml
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed  ## create .venv with pinned dependencies
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' || \
	  { echo "$(VENV) is not Python 3.13 (the functions' runtime): make clean, then retry" >&2; exit 1; }

lint: venv  ## ruff (lint + format check) and mypy --strict
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv  ## apply ruff's formatting and safe fixes
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test-unit: venv  ## unit and infra-structure tests (no emulators; the contract tier needs them: `make test`)
	$(PY) -m pytest -m "not integration and not e2e" -q

check-infra: venv  ## terraform fmt, provider schemas, checkov, cloudbuild.yaml parse and structure (offline)
	PYTHON=$(PY) bash scripts/check-infra.sh

test: venv lint check-infra  ## everything: lint, infra checks, all tests on fresh emulators
	$(PY) -m p0_receiver dev with-emulators -- $(PY) -m pytest -q

run: venv  ## the whole product locally: emulators, function, signed sample deliveries
	$(PY) -m p0_receiver dev up

bench: venv  ## import budget per function; the receiver against the obvious baseline on the emulators (ratios)
	PYTHONPATH=src $(PY) benchmarks/import_budget.py
	$(PY) -m p0_receiver dev with-emulators -- $(PY) benchmarks/versus_baseline.py
	$(PY) -m p0_receiver dev with-emulators -- $(PY) benchmarks/access_review.py

bench-report: venv  ## access-review report time and peak memory at 10k and 100k records (emulators)
	$(PY) -m p0_receiver dev with-emulators -- $(PY) benchmarks/access_review.py

openapi: venv  ## regenerate openapi.yaml from the models and error classes
	$(PY) -m tests.openapi_document

FUZZ_EXAMPLES ?= 2000
FUZZ_SECONDS ?= 900
PROPERTY_SCALE ?= 20
fuzz: venv  ## long runs: schemathesis (FUZZ_EXAMPLES per test, FUZZ_SECONDS cap), properties x20
	P0_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) P0_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  P0_PROPERTY_SCALE=$(PROPERTY_SCALE) $(PY) -m p0_receiver dev with-emulators -- \
	  $(PY) -m pytest tests/integration/test_fuzz_openapi.py tests/unit/test_properties.py -q

clean:  ## remove what the targets created: venvs, caches, local dev state (never Terraform's files)
	rm -rf $(VENV) .venv-checkov .cache .dev .pytest_cache .mypy_cache .ruff_cache .hypothesis \
	  .coverage htmlcov dist
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -prune \
	  -exec rm -rf {} +
