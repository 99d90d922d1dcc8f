# balanca: `make run` sets up and runs the service; `make test` sets up and runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e '.[mysql]' --config-settings editable_mode=compat
	$(BIN)/twistd --help > /dev/null  # regenerates the plugin cache
	touch $@

$(VENV)/.test: $(VENV)/.run
	$(BIN)/pip install -q -e '.[mysql,test]' --config-settings editable_mode=compat
	touch $@

run: $(VENV)/.run
	$(BIN)/twistd -n --pidfile= balanca $(ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check balanca twisted tests bench
	$(BIN)/ruff format --check balanca twisted tests bench
	$(BIN)/mypy balanca

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache

bench: $(VENV)/.test
	$(BIN)/python bench/run.py $(BENCH_ARGS)
