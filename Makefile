# The two commands of the README: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install migrate run test test-fast clean

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

run: migrate
	$(PY) -m runtime.launcher

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest tests/core

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
