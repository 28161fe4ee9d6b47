# The two commands a new user needs: `make up` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One test process per registry backend (SQLite, Postgres): the suite mostly waits on Temporal and agents.
TEST_WORKERS ?= 2
# The folders installed as the ains.* import package (pyproject.toml's package-dir).
PACKAGES := models workflows activities core api workers sdk examples

.PHONY: install up test test-unit lint bench chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing AINS with dev extras (first run takes a minute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --progress-bar off -e '.[dev]'
	@touch $(STAMP)

up: install
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/ains up

test: install
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# The unit tier alone (no Temporal dev server, workers or agents): what to run while editing.
test-unit: install
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@mkdir -p .typecheck/ains && for pkg in $(PACKAGES); do ln -sfn ../../$$pkg .typecheck/ains/$$pkg; done
	$(BIN)/mypy $(addprefix -p ains.,$(PACKAGES))

bench: install
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python -m bench

# Long fault scenarios (SIGKILL the worker during 200 running tasks); the short ones run in `make test`.
chaos: install
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python -m bench.chaos
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python -m bench.chaos --scenario queued

clean:
	rm -rf $(VENV) .ains .pytest_cache .mypy_cache .ruff_cache .typecheck
