# bulk-restore: developer and CI commands. `make` alone lists the targets.

PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
REGION ?= us-east-1

# Without Docker, `sam build` installs the dependencies with the runtime's own interpreter
# (python3.13), which must be on PATH. Use the one on PATH, or a pyenv-installed one.
PYTHON313 = $(firstword $(shell for p in python3.13 "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do \
	"$$p" -c 'import sys; print(sys.executable)' 2>/dev/null && break; done))

.DEFAULT_GOAL := help
.PHONY: help install lock test lint format scan sam-venv validate build local demo bench openapi clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Stamp of the last install: targets that run the project install it first if needed. The
# versions are requirements/dev.lock's (pinned, with hashes), then the project itself.
$(VENV)/.installed: pyproject.toml requirements/dev.lock | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -r requirements/dev.lock
	$(VENV)/bin/python -m pip install --no-deps -e .
	@touch $@

LOCK_DEV := uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes --no-emit-package bulk-restore -o requirements/dev.lock
LOCK_LAMBDA := uv pip compile requirements/lambda.in --python-version 3.13 --python-platform aarch64-manylinux_2_28 --generate-hashes -o src/requirements.txt

lock: $(VENV)/.installed ## Re-pin requirements/dev.lock and the functions' src/requirements.txt (after a dependency change)
	$(VENV)/bin/$(LOCK_DEV) -q
	$(VENV)/bin/$(LOCK_LAMBDA) -q

install: ## Create .venv (if missing) and install the package with its dev extras
	@rm -f $(VENV)/.installed
	@$(MAKE) --no-print-directory $(VENV)/.installed

test: $(VENV)/.installed ## Run the test suite on 2 workers
	$(VENV)/bin/python -m pytest -n 2 -q

lint: $(VENV)/.installed ## cfn-lint on template.yaml; ruff (lint and format) on the code; mypy --strict on domain, usecases, adapters
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/ruff check src tools tests
	$(VENV)/bin/ruff format --check src tools tests
	$(VENV)/bin/mypy

format: $(VENV)/.installed ## Format the code and apply ruff's safe fixes
	$(VENV)/bin/ruff format src tools tests
	$(VENV)/bin/ruff check --fix src tools tests

CHECKOV_VENV := .venv-checkov

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install checkov

scan: $(CHECKOV_VENV)/bin/checkov ## Scan template.yaml with checkov (skips explained in .checkov.yaml)
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --config-file .checkov.yaml --skip-download

$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install aws-sam-cli

sam-venv: $(SAM_VENV)/bin/sam ## Create .venv-sam with the AWS SAM CLI (it pins its own boto3)

validate: $(SAM_VENV)/bin/sam ## sam validate --lint
	$(SAM) validate --lint --region $(REGION)

build: $(SAM_VENV)/bin/sam ## sam build (needs python3.13 on PATH or from pyenv; no Docker needed)
	@test -n "$(PYTHON313)" || { echo "sam build needs python3.13 (the Lambda runtime) on PATH, e.g. 'pyenv install 3.13'" >&2; exit 1; }
	PATH="$(dir $(PYTHON313)):$$PATH" $(SAM) build
	$(PYTHON) tools/package_report.py .aws-sam/build

local: $(VENV)/.installed ## Run the local stack (emulated AWS) in the foreground
	$(VENV)/bin/bulk-restore local

demo: $(VENV)/.installed ## Run a job end to end on the local stack
	$(VENV)/bin/bulk-restore demo

bench: $(VENV)/.installed ## Run the benchmark
	$(VENV)/bin/python -m bulk_restore_cli.bench

openapi: $(VENV)/.installed ## Regenerate openapi.json, the API's OpenAPI document, from the code's models
	$(VENV)/bin/python -m bulk_restore.openapi openapi.json

clean: ## Remove build output and caches (keeps the virtual environments)
	rm -rf .aws-sam .pytest_cache .hypothesis bench-results build dist
	find . -path ./$(VENV) -prune -o -path ./$(SAM_VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
