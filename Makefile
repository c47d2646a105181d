# Two commands on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup sysdeps demo test bench build clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# socat gives the virtual-board test a pty; installed when we may (CI runs as root), else
# that one test is skipped and says why.
sysdeps:
	@command -v socat >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q socat >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q socat >/dev/null 2>&1)) ; } || \
	  echo "note: socat not installed; the virtual-board test will be skipped"

demo: setup
	$(BIN)/python -m host.sim

# The scenarios mostly wait on sockets and timers, so 4 workers fit 2 cores.
PYTEST_ARGS ?= -n 4

test: setup sysdeps
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools bench

build: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tools build

clean:
	rm -rf $(VENV) dist .pytest_cache
