# Entry points that do all set-up on a fresh machine:
#   make demo   fit with callbacks -> bundle -> restore -> run in LiteRT -> report
#   make test   the whole test suite (Python + Java), in two pytest-xdist workers (one
#               test file per worker at a time, so module fixtures are built once)
#   make lint   ruff: lint rules and formatting (settings in pyproject.toml)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keras-dc-installed

.PHONY: demo test lint java-deps clean

$(STAMP): pyproject.toml setup.py requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# The Java tests (tests/test_java.py) need javac/java and Debian's JUnit 5 console launcher,
# at exactly the path below (package junit5). Installs what is missing with apt-get
# (through sudo when not root).
JUNIT_LAUNCHER := /usr/share/java/junit-platform-console-standalone.jar
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

java-deps:
	@if ! command -v javac >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then \
	  echo "java-deps: installing a JDK (default-jdk-headless)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless >/dev/null; \
	fi
	@if [ ! -f $(JUNIT_LAUNCHER) ]; then \
	  echo "java-deps: installing JUnit 5 (junit5)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq junit5 >/dev/null; \
	fi
	@test -f $(JUNIT_LAUNCHER) || { echo "java-deps: $(JUNIT_LAUNCHER) is still missing"; exit 1; }

demo: $(STAMP)
	$(PY) -m examples.quickstart

test: $(STAMP) java-deps
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25 tests

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) out build *.egg-info .ruff_cache
