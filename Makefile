# Every target creates .venv when it is missing and installs what it needs, once.
# torch is installed first and pinned, so pip takes the CPU wheel instead of a CUDA build.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.softzoo-installed
TORCH := torch==2.13.0

.PHONY: install demo test test-all lint bench clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install $(TORCH) 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PIP) install -c constraints.txt -e '.[dev]' 2>&1 | { grep -v "is ignored: it is neither" || true; }
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m softzoo.demo

# Two test processes (pytest-xdist), one file each at a time: the fast suite takes about
# half its serial time on 2 cores.
test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" -q -n 2 --dist loadfile

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check softzoo tests benchmarks export tools
	$(PY) -m ruff format --check softzoo tests benchmarks export tools

bench: $(STAMP)
	$(PY) -m softzoo.cli bench --out benchmarks/results

clean:
	rm -rf $(VENV) lightning_logs .pytest_cache .ruff_cache build *.egg-info
