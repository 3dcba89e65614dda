# Dockyard: `make demo` brings up a single-node cluster with a demo app; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
DOCKYARD := $(VENV)/bin/dockyard
PYTEST_ARGS ?=

.PHONY: demo demo-down test unit lint install prereqs docker bench clean

$(VENV)/.installed: pyproject.toml | prereqs
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

prereqs:
	scripts/ensure-packages.sh

docker: prereqs
	scripts/ensure-docker.sh

demo: install docker
	DOCKYARD=$(DOCKYARD) scripts/demo.sh

demo-down:
	DOCKYARD=$(DOCKYARD) scripts/demo.sh down

test: install docker
	$(PY) -m pytest -q -rs --durations=20 $(PYTEST_ARGS) tests

unit: install
	$(PY) -m pytest -q tests/unit

lint: install
	$(VENV)/bin/ruff check orchestrator agent tests bench
	$(VENV)/bin/mypy

bench: install docker
	$(PY) bench/pod_start.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
