# Two entry points do all set-up on a fresh machine:
#   make demo   fit with callbacks -> bundle -> restore -> run in LiteRT -> report
#   make test   the whole test suite (Python + Java)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keras-dc-installed

.PHONY: demo test java-deps clean

$(STAMP): setup.py requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

java-deps:
	@command -v javac >/dev/null && ls /usr/share/java/junit-platform-console-standalone*.jar >/dev/null 2>&1 \
	  || (apt-get update -qq && apt-get install -y -qq default-jdk-headless junit5 >/dev/null)

demo: $(STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP) java-deps
	$(PY) -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) out build *.egg-info
