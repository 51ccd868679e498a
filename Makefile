# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench faults conformance serve clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# A real best-of-N and self-consistency search, embedded: SQLite, in-process executor,
# the simulated endpoint.
demo: install
	$(BIN)/ttc demo

# Lint, types and the whole suite (starts local Postgres and Redis if they are down), in
# two test processes, a module per process at a time (tests/conftest.py gives the second
# its own Redis and starts the slowest modules first); then the `serial` tests alone (they
# restart servers on ports that a parallel test could take meanwhile).
test: install
	scripts/ensure-services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile -m 'not conformance and not serial'
	$(BIN)/pytest -q -m 'serial and not conformance'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	scripts/ensure-services.sh
	$(BIN)/python bench/fanout.py

# The fault suite alone (kill -9, Redis and Postgres restarts, endpoint faults); CI runs it
# inside `make test`.
faults: install
	scripts/ensure-services.sh
	$(BIN)/pytest -q tests/faults tests/integration/test_endpoint_faults.py -s

# ttc against real server software (vLLM's CPU build) with tiny models built locally:
# installs and builds into a cache on first use (minutes), then starts the servers.
conformance: install
	scripts/ensure-services.sh
	scripts/conformance/setup.sh
	TTC_CONFORMANCE=1 $(BIN)/pytest -q -m conformance tests/conformance --timeout=1200

serve: install
	$(BIN)/ttc serve

clean:
	rm -rf $(VENV) ttc.db* ttc-demo.db*
