# The hotline's commands. `make help` lists them. Two environments:
#   .venv-rasa  Python 3.10, rasa 3.6.21 only (the Rasa server, training, rasa test)
#   .venv       Python 3.11+, action server, tools, tests
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help
export RASA_TELEMETRY_ENABLED := false
export PYTHONPATH := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PTB_TIMEDELTA := true

RASA_VENV := .venv-rasa
APP_VENV := .venv
RASA := $(RASA_VENV)/bin/rasa
PY := $(APP_VENV)/bin/python
MODEL := models/hotline.tar.gz
RASA_DATA := nlu_data bot build/data
RASA_DOMAIN := build/domain
CONTENT_FILES := $(shell find content -name '*.yml') domain.yml $(wildcard hotline/*.py)
TRAIN_INPUTS := $(shell find nlu_data bot -name '*.yml') config.yml $(CONTENT_FILES) $(wildcard rasa_plugins/*.py)

.PHONY: help setup run test lint typecheck unit rasa-validate rasa-test e2e content audit confirmations service-corrections bench bench-nlu bench-nlu-versions bench-latency bench-reports bench-gateway bench-memory bench-cluster bench-sms bench-operations bench-resend telegram-webhook console-admin clean postgres keys public-figures purge chromium docker-compose attack redis haproxy cluster loadtest

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(RASA_VENV)/.installed: requirements/rasa.txt
	@echo "==> Rasa environment (Python 3.10, rasa 3.6.21): first time takes a few minutes"
	@py=$$(scripts/find-python310.sh) && rm -rf $(RASA_VENV) && $$py -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install --disable-pip-version-check --progress-bar on -q --upgrade pip setuptools wheel
	$(RASA_VENV)/bin/pip install --disable-pip-version-check --progress-bar on -r requirements/rasa.txt 2>&1 | { grep -vE '^(Requirement already|WARNING: Location)' || true; }
	@$(RASA_VENV)/bin/python -c "import rasa; assert rasa.__version__ == '3.6.21', rasa.__version__"
	@touch $@

$(APP_VENV)/.installed: requirements/app.txt requirements/dev.txt
	@echo "==> Modern environment (Python 3.11+): action server, tools, tests"
	@py=$$(scripts/find-python-modern.sh) && rm -rf $(APP_VENV) && $$py -m venv $(APP_VENV)
	$(APP_VENV)/bin/pip install --disable-pip-version-check -q --upgrade pip
	$(APP_VENV)/bin/pip install --disable-pip-version-check --progress-bar on -r requirements/dev.txt 2>&1 | { grep -vE '^(Requirement already|WARNING: Location)' || true; }
	@touch $@

setup: $(RASA_VENV)/.installed $(APP_VENV)/.installed ## Create both environments (done by run and test)

build/.content: $(CONTENT_FILES) $(APP_VENV)/.installed
	@echo "==> Building responses and generated rules from content/"
	$(PY) -m hotline.build
	@touch $@

content: build/.content ## Render content/ into Rasa responses (checks facts and SMS length)

$(MODEL): $(TRAIN_INPUTS) build/.content $(RASA_VENV)/.installed
	@echo "==> Training the model (only when data, domain or config changed; about a minute)"
	@# Rasa fingerprints data and config, not our components' code: retrain fully when it changed.
	$(RASA) train --domain $(RASA_DOMAIN) --data $(RASA_DATA) --config config.yml --out models \
		--fixed-model-name hotline $(if $(filter rasa_plugins/% hotline/%,$?),--force)
	@touch $@

model: $(MODEL) ## Train the model if data, domain or config changed

run: setup $(MODEL) ## Start the hotline locally (Rasa :5005, actions :5055, gateway :8000, console :8100) and chat in the terminal
	$(PY) -m scripts.run

audit: $(APP_VENV)/.installed ## List facts that are not verified or whose check is old
	$(PY) -m hotline.audit

confirmations: $(APP_VENV)/.installed ## Write staff fact confirmations from the database into content/confirmations.yml
	$(PY) -m console.facts_audit export --out content/confirmations.yml

service-corrections: $(APP_VENV)/.installed ## Write approved services-directory corrections into content/service_corrections.yml, then check the content
	$(PY) -m console.service_corrections export --out content/service_corrections.yml
	$(PY) -m hotline.build --check
	$(PY) -m hotline.build --check

chromium: ## Install Debian's chromium for the browser tests when missing (apt)
	scripts/ensure-debian-package.sh "$${CHROMIUM_PATH:-/usr/bin/chromium}" chromium "the browser tests"

docker-compose: ## Install Debian's docker-compose for the deployment tests when missing (apt)
	scripts/ensure-debian-package.sh "$${DOCKER_COMPOSE:-/usr/bin/docker-compose}" docker-compose "the deployment tests"

postgres: ## Start the local PostgreSQL if nothing answers on 127.0.0.1:5432 (the tests need it)
	scripts/ensure-postgres.sh

redis: ## Start a local Redis if nothing answers on 127.0.0.1:6379 (the cluster and its tests need it)
	scripts/ensure-redis.sh

haproxy: ## Install Debian's HAProxy when missing (apt): the cluster's load balancer
	scripts/ensure-debian-package.sh "$${HAPROXY_PATH:-/usr/sbin/haproxy}" haproxy "the cluster"

cluster: setup $(MODEL) postgres redis haproxy ## The line as a busy line runs it: 2 Rasa, 2 actions, 2 gateways behind HAProxy, PostgreSQL, Redis
	$(PY) -m scripts.cluster

loadtest: setup $(MODEL) haproxy ## 200 conversations through the cluster while Rasa, a gateway, PostgreSQL and Redis fail (5-10 min)
	$(PY) -m scripts.loadtest --conversations 200 --spread 60 --record

keys: $(APP_VENV)/.installed ## Create the report keyring in keys/ (HOTLINE_KEYS_DIR); never overwrites
	$(PY) -m reports.keys init

attack: $(APP_VENV)/.installed ## Try issue 10's attacks against a running `make run` (other terminal); prints refused/answered
	$(PY) -m scripts.attack

public-figures: $(APP_VENV)/.installed ## Write the public figures page (public/cifras/index.html; docs/public-figures.md)
	$(PY) -m reports.public_figures

purge: $(APP_VENV)/.installed ## Delete closed reports and conversations past their retention period
	$(PY) -m reports.jobs purge

console-admin: $(APP_VENV)/.installed ## Create a console admin account: make console-admin USERNAME=ana (asks the password)
	$(PY) -m reports.keys init
	$(PY) -m reports.db upgrade
	$(PY) -m console.accounts create --username "$(USERNAME)" --role admin --totp

telegram-webhook: $(APP_VENV)/.installed ## Register the Telegram webhook (HOTLINE_PUBLIC_URL, TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET)
	$(PY) -m channels.telegram set-webhook

lint: $(APP_VENV)/.installed ## ruff (lint and format check) and mypy
	$(APP_VENV)/bin/ruff check .
	$(APP_VENV)/bin/ruff format --check .
	$(APP_VENV)/bin/mypy

unit: setup build/.content postgres docker-compose ## Unit tests (content, NLU helpers, actions)
	$(APP_VENV)/bin/pytest -m "not rasa" $(PYTEST_ARGS)

rasa-validate: setup build/.content ## rasa data validate
	$(RASA) data validate --domain $(RASA_DOMAIN) --data $(RASA_DATA) --config config.yml

rasa-test: setup $(MODEL) postgres ## Rasa test stories (every flow) against the trained model
	$(APP_VENV)/bin/pytest -m rasa $(PYTEST_ARGS)

test: setup build/.content $(MODEL) lint postgres redis haproxy chromium docker-compose ## Everything: lint, types, unit, rasa validate, story tests, end-to-end
	$(APP_VENV)/bin/pytest $(PYTEST_ARGS)

bench-nlu: setup build/.content ## Held-out NLU: our pipeline vs Rasa's default, side by side
	$(RASA_VENV)/bin/python -m bench.nlu_eval

NLU_BASE ?= d73b231
bench-nlu-versions: setup build/.content ## Held-out NLU per intent: the NLU at NLU_BASE (main, d73b231) vs this tree
	git worktree remove --force build/nlu-base 2>/dev/null || true
	git worktree add --detach build/nlu-base $(NLU_BASE)
	$(RASA_VENV)/bin/python -m bench.nlu_eval --version main=build/nlu-base --version new=.
	git worktree remove --force build/nlu-base

bench-latency: setup $(MODEL) ## REST latency and throughput, memory, start-up time
	$(PY) -m bench.latency

bench-reports: setup postgres ## Filing a report under 20 concurrent tipsters, SQLite vs PostgreSQL
	$(PY) -m bench.reports

bench-operations: setup postgres ## Issue 13's periodic work: /cifras/ rendering, question-count flush, the on-call chain
	$(PY) -m bench.operations

bench-resend: setup $(MODEL) ## What sending a message to Rasa again costs, against a message without an id
	$(PY) -m bench.resend

bench-gateway: setup $(MODEL) ## The gateway's overhead against Rasa's REST webhook, 20 and 50 senders
	$(PY) -m bench.gateway

bench-memory: setup $(MODEL) ## Memory of each process under load: deploy/k8s/ resource requests
	$(PY) -m bench.memory

bench-cluster: setup $(MODEL) postgres redis haproxy ## What each layer of the cluster costs: bare Rasa to two of each behind HAProxy
	$(PY) -m bench.cluster

bench-sms: setup ## SMS segments per answer page against main before issue 12 (one segment by default)
	$(PY) -m bench.sms_pages

bench: bench-nlu bench-latency bench-reports bench-gateway bench-memory bench-cluster bench-sms bench-operations bench-resend ## All benchmarks (writes bench/RESULTS.md)

clean: ## Remove build output (keeps environments and models)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
