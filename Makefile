# Two commands for a fresh clone:  make run  and  make test.
# Both create the virtual environment first if it is missing or stale.

PYTHON_310 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python) $(shell command -v python3.10))
PYTHON ?= $(PYTHON_310)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The data: $IMDB_DATA when set (as for every command of the CLI); else the
# archive with train/unsup/ this workspace provides (the BiLSTM distils through its
# unlabelled reviews), else the plain training archive; else the official download.
# Override with DATA=... or --data in ARGS.
DATA ?= $(or $(IMDB_DATA),$(firstword $(wildcard ../shared/data/aclImdb_train_unsup.tar.gz) $(wildcard ../shared/data/aclImdb_train.tar.gz)))
HOME_DIR ?= pipeline_home
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast lint venv image clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.10 not found (TFX 1.16 needs 3.9-3.10); set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==24.2"
	$(BIN)/pip install --quiet --constraint constraints.txt --editable ".[test]"
	@touch $@

# The full pipeline on the full training set (flags in ARGS win over the defaults).
run: $(STAMP)
	IMDB_DATA="$(DATA)" $(BIN)/imdb-pipeline run --profile full --home $(HOME_DIR) $(ARGS)

# Test files run side by side, one worker per core up to four (pytest-xdist). A file's
# tests stay on one worker, so a module fixture (one shared pipeline run) runs once.
# Files in collection order, where tests/conftest.py puts the longest first (xdist's
# own reorder, by number of tests, would start them last).
TEST_WORKERS ?= auto
XDIST = -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(BIN)/python -m pytest -ra $(XDIST) $(PYTEST_ARGS)

# ruff (pycodestyle + pyflakes) over every Python file; configured in pyproject.toml.
# Then the docs: every path, flag and exit code they name must exist.
lint: $(STAMP)
	$(BIN)/ruff check pipeline components trainer reporting local kubeflow cli benchmarks tests tools
	$(BIN)/python tools/check_docs.py

# Everything but the tests that run a real pipeline (seconds, not minutes).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow" $(XDIST) $(PYTEST_ARGS)

# The image every Kubeflow step runs in. Needs a Docker engine (none on the
# development machines of this project, so this target is untested there).
IMAGE ?= imdb-sentiment:dev
image:
	docker build -f kubeflow/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) $(HOME_DIR) .pytest_cache
