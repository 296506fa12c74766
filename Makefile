# `make demo` to see crewtrace, `make test` for the whole suite (what CI runs), `make test-fast` while you work.
# Each builds the virtual environment it needs in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOWEST_VENV ?= .venv-lowest
# CrewAI 1.15 holds pydantic, openai and mcp below the newest the ranges allow: its tests get their own environment.
CREWAI_VENV ?= .venv-crewai
# Skip reasons and the 15 slowest tests at the end of every run.
PYTEST := -m pytest -q -rs --durations=15
# The main suite runs on 4 processes (pytest-xdist): much of its time is spent waiting on subprocesses,
# sockets and timers. Each module runs whole on one process (--dist loadscope), so a module-scoped fixture
# (a demo run, a wheel build) runs once. The CrewAI tests are too few to gain from it.
PARALLEL := -n 4 --dist loadscope
# The inner loop (under 2 minutes on 2 cores): no fault suite, no real Prometheus, nothing marked slow.
FAST := -m "not slow and not integration" --ignore=tests/reliability
# What the tests need beyond the test extra: `build` for tests/test_packaging.py.
TEST_TOOLS := "build>=1.2,<2"
# The gate `make test` starts with: pinned to a minor, since new rules and format changes arrive in minors.
LINT_TOOLS := "ruff>=0.17,<0.18" "mypy>=2.4,<2.5"

.PHONY: demo lint test test-newest test-crewai test-fast test-lowest bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs crewtrace and its runtime dependencies only.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]' $(TEST_TOOLS) $(LINT_TOOLS)
	touch $@

$(CREWAI_VENV)/.test-installed: pyproject.toml
	$(PYTHON) -m venv $(CREWAI_VENV)
	$(CREWAI_VENV)/bin/python -m pip install -q --upgrade pip
	$(CREWAI_VENV)/bin/python -m pip install -q -e '.[test,crewai]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/crewtrace demo

# ruff (lint and format) and mypy in strict mode.
lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The gate, then the newest versions the dependency ranges allow (pip's resolution), the whole suite;
# the CrewAI integration tests in the CrewAI environment. CI runs the three side by side (`make test -j3`):
# the CrewAI environment installs while the suite runs.
test: lint test-newest test-crewai

test-newest: $(VENV)/.test-installed
	$(BIN)/python $(PYTEST) $(PARALLEL) --ignore=tests/integrations

test-crewai: $(CREWAI_VENV)/.test-installed
	$(CREWAI_VENV)/bin/python $(PYTEST) tests/integrations

test-fast: $(VENV)/.test-installed
	$(BIN)/python $(PYTEST) $(PARALLEL) $(FAST) --ignore=tests/integrations

# The lowest versions the ranges allow (uv's lowest-direct resolution), in a second environment: the whole suite
# but what `make test` runs once: the soak and memory tests (marked soak), and the wheel build, which runs in an
# isolated environment of its own whatever the versions here. Bytecode is compiled at install, as pip does:
# else every test process would compile litellm's on its first import.
test-lowest: $(VENV)/.test-installed
	$(BIN)/python -m pip install -q "uv>=0.5,<1"
	$(BIN)/uv venv -q --allow-existing --python $(BIN)/python $(LOWEST_VENV)
	$(BIN)/uv pip install -q --compile-bytecode --python $(LOWEST_VENV)/bin/python --resolution lowest-direct -e '.[test]' $(TEST_TOOLS) "pip>=24"
	$(BIN)/uv pip list --python $(LOWEST_VENV)/bin/python | grep -iE '^(litellm|openai|pydantic|opentelemetry-(api|sdk|semantic-conventions)|prometheus.client) '
	$(LOWEST_VENV)/bin/python $(PYTEST) $(PARALLEL) -m "not soak" --ignore=tests/integrations --ignore=tests/test_packaging.py

# Not part of the tests: a side-by-side benchmark (~12 min on 2 cores), results in docs/benchmarks.md.
bench: $(VENV)/.test-installed
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m bench.run

# Debian's prometheus package (prometheus + promtool) for the integration tests.
system-deps:
	@command -v promtool >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q prometheus; }

clean:
	rm -rf $(VENV) $(LOWEST_VENV) $(CREWAI_VENV) .pytest_cache .import_linter_cache build dist
