# Two commands: `make run` (set up and start everything) and `make test` (set up and run every test).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000
PAY_PORT ?= 5001
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin))

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# --- set-up ---------------------------------------------------------------------------------

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

app/static/build/.built: node_modules/.installed build/assets.mjs $(shell find app/static/src -type f)
	npm run --silent build
	touch $@

.env:
	sed -e "s/^SECRET_KEY=$$/SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(32))')/" \
	    -e "s/^SESSION_COOKIE_SECURE=true/SESSION_COOKIE_SECURE=false/" \
	    -e "s/^WTF_CSRF_SSL_STRICT=true/WTF_CSRF_SSL_STRICT=false/" .env.example > $@
	@echo "Wrote .env with a new random SECRET_KEY (for this machine only)."

system-deps: ## Install Chromium and PostgreSQL from Debian if missing (tests need them)
	@if [ ! -x /usr/bin/chromium ] || [ -z "$(PG_BIN)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql >/dev/null; \
	  else echo "Install chromium and postgresql (apt-get install chromium postgresql) and run again"; exit 1; fi; \
	fi

setup: $(VENV)/.installed app/static/build/.built .env ## Install Python and front-end dependencies, build assets
	@# An older .env keeps its values; settings added to .env.example since are appended with their defaults.
	@awk -F= '/^[A-Z_]+=/{print $$1}' .env.example | while read -r name; do \
	  grep -q "^$$name=" .env || { grep "^$$name=" .env.example >> .env; echo "Added $$name to .env"; }; \
	done

# --- running --------------------------------------------------------------------------------

migrate: setup ## Apply database migrations
	$(FLASK) migrate

seed: migrate ## Create the demo council (idempotent)
	$(FLASK) seed-demo

run: seed ## Set everything up and start the service on http://127.0.0.1:5000
	@echo "Starting on http://$(HOST):$(PORT) (web, worker and the GOV.UK Pay emulator on $(HOST):$(PAY_PORT)). Stop with Ctrl+C."
	PATH="$(abspath $(BIN)):$$PATH" BIND=$(HOST):$(PORT) GOVUK_PAY_EMULATOR_BIND=$(HOST):$(PAY_PORT) \
	  $(BIN)/honcho start web worker govukpay

# --- checking -------------------------------------------------------------------------------

lint: $(VENV)/.installed ## ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup system-deps lint ## Set up and run every test (unit, integration on SQLite and PostgreSQL, browser)
	$(BIN)/pytest

bench: setup ## Performance benchmarks (not part of make test)
	@ls bench/*.py >/dev/null 2>&1 && for b in bench/bench_*.py; do $(BIN)/python $$b; done || echo "No benchmarks yet."

migration: setup ## Write the next migration from model changes: make migration NAME=what_changed
	$(FLASK) make-migration $(NAME)

clean: ## Remove built assets and the local database (keeps .env)
	rm -rf app/static/build instance/ims.db* instance/huey.db* instance/govuk-pay-emulator.db*

.PHONY: help system-deps setup migrate seed run lint test bench migration clean
