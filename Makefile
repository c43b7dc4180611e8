# Two commands for a new user: `make demo` (set up, import the bundled MovieLens sample,
# train, serve) and `make test` (set up, run the tests). Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MARQUEE := $(VENV)/bin/marquee
DEMO_HOME ?= $(CURDIR)/.marquee
DEMO_STEPS ?= 60000
DEMO_PORT ?= 8000

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(MARQUEE) --home $(DEMO_HOME) ingest movielens
	$(MARQUEE) --home $(DEMO_HOME) graph stats
	$(MARQUEE) --home $(DEMO_HOME) train --timesteps $(DEMO_STEPS) --alias champion
	$(MARQUEE) --home $(DEMO_HOME) serve --host 127.0.0.1 --port $(DEMO_PORT)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy agent env features serving experiments marquee

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .mypy_cache .ruff_cache
