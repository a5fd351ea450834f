# Two commands do all set-up on a fresh machine (see README.md):
#   make app    install into .venv; first start: ask for the first admin, build the demo campaign; open the app
#   make test   install into .venv, run the test suite (SQLite; TEST_DB=postgresql+psycopg://... for PostgreSQL)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
HOST ?= 127.0.0.1
TEST_DB ?=
PYTEST_ARGS ?=

.PHONY: app test install demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

app: install
	$(BIN)/recall app --port $(PORT) --host $(HOST)

demo: install
	$(BIN)/recall demo

test: install
	RECALL_TEST_DATABASE_URL="$(TEST_DB)" $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) recall.db recall.db-* test-output .pytest_cache
