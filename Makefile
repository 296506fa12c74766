# Two entry points: `make demo` and `make test`. Each builds its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench system-deps clean

$(BIN)/crewtrace: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/crewtrace
	$(BIN)/crewtrace demo

test: $(BIN)/crewtrace
	$(BIN)/python -m pytest -q

# Not part of the tests: a side-by-side benchmark (~12 min on 2 cores), results in docs/benchmarks.md.
bench: $(BIN)/crewtrace
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m bench.run

# Debian's prometheus package (prometheus + promtool) for the integration tests.
system-deps:
	@command -v promtool >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q prometheus; }

clean:
	rm -rf $(VENV) .pytest_cache
