# keeperpam — two commands from a fresh clone:
#
#   make run    set up, migrate, load the demo organisation, serve http://127.0.0.1:8000/
#   make test   set up (plus the browser and terminal tools), run the whole test suite
#
# Set-up steps are file targets, so they only run again when their inputs change:
# the virtualenv when missing, pip when requirements.txt is newer than its stamp,
# npm ci when package-lock.json is newer than node_modules' stamp.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-x -k demo"`.
PYTEST_ARGS ?=
# Tests marked `integration` need a running Celery worker on Redis and PostgreSQL;
# .ci/run selects them separately (PYTEST_MARKERS=integration) with those services up.
PYTEST_MARKERS ?= not integration

PY        := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.requirements.stamp
NPM_STAMP := node_modules/.keeperpam-npm.stamp

# The static packages (players, HPKE) are optional until package-lock.json exists.
ifneq ($(wildcard package-lock.json),)
NPM_DEPS := $(NPM_STAMP)
else
NPM_DEPS :=
endif

.DEFAULT_GOAL := help
.PHONY: help setup run test lint migrate demo worker beat clean distclean test-tools

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- set-up

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(PIP_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(NPM_STAMP): package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(PIP_STAMP) $(NPM_DEPS)  ## Create .venv, install Python and npm packages (when stale)
ifeq ($(NPM_DEPS),)
	@echo "note: no package-lock.json yet, skipping npm ci (browser players unavailable)"
endif
	@mkdir -p var/static

test-tools:  ## Install Chromium, asciinema and scriptreplay when missing (apt-get)
	@bash scripts/ensure-test-tools.sh

# ------------------------------------------------------------------- run

migrate: setup  ## Apply database migrations
	$(PY) manage.py migrate --noinput

demo: migrate  ## Create (or restore) the demo organisation and print its logins
	$(PY) manage.py demo_setup --url http://$(HOST):$(PORT)/

run: demo  ## Set up, load demo data and serve the vault on http://127.0.0.1:8000/
	@echo "Serving keeperpam on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT)

worker:  setup  ## Run a Celery worker (needs CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/0)
	@test -n "$$CELERY_BROKER_URL" || { echo "CELERY_BROKER_URL is not set: the embedded default runs tasks eagerly, no worker needed"; exit 1; }
	$(VENV)/bin/celery -A keeperpam worker --loglevel=INFO

beat:  setup  ## Run Celery beat (periodic tasks; needs CELERY_BROKER_URL)
	@test -n "$$CELERY_BROKER_URL" || { echo "CELERY_BROKER_URL is not set"; exit 1; }
	$(VENV)/bin/celery -A keeperpam beat --loglevel=INFO --schedule var/celerybeat-schedule

# ------------------------------------------------------------------ check

test: setup test-tools  ## Set up and run the whole suite (SQLite, or DATABASE_URL if set)
	$(VENV)/bin/pytest -m "$(PYTEST_MARKERS)" $(PYTEST_ARGS)

lint: setup  ## ruff, missing migrations, Django system checks
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check

# ------------------------------------------------------------------ clean

clean:  ## Remove caches, collected static files and set-up stamps (keeps var/ data)
	find . -path ./node_modules -prune -o -path ./$(VENV) -prune -o \
		-name __pycache__ -type d -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis var/static $(PIP_STAMP) $(NPM_STAMP)

distclean: clean  ## Also remove .venv and node_modules (var/ data is kept)
	rm -rf $(VENV) node_modules
