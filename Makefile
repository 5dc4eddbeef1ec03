# The two commands README.md gives. CI runs `make test` exactly as written there.
PYTHON ?= python
CONSTRAINTS ?= .ci/constraints-cpu.txt

.PHONY: install train test lint

install:
	$(PYTHON) -m pip install --quiet --constraint $(CONSTRAINTS) --editable ".[dev]"

train: install
	attnlab-train

test: install
	$(PYTHON) -m ruff check src tests
	$(PYTHON) -m pytest -q -n 2 --dist loadfile --durations=12

lint:
	$(PYTHON) -m ruff check src tests
	$(PYTHON) -m ruff format --check src tests
