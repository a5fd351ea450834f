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

JAVA17 := /usr/lib/jvm/java-17-openjdk-amd64

.PHONY: app test install java demo clean

install: $(STAMP) java

# Spark's local mode (a warehouse source, and its tests) runs on Debian's Java 17 runtime.
java:
	@if [ -z "$$JAVA_HOME" ] && [ ! -x $(JAVA17)/bin/java ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "Java 17 is missing: installing Debian's openjdk-17-jre-headless for Spark"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) \
				|| echo "could not install Java 17: Spark sources and their tests are unavailable" >&2; \
		else \
			echo "Java 17 is missing (no root or apt-get): install openjdk-17-jre-headless for Spark sources" >&2; \
		fi; \
	fi

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
