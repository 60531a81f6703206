# Every target bootstraps .venv itself: a fresh clone needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: quickstart test bench lint docs clean-venv

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -e ".[dev,docs]"
	@touch $(STAMP)

quickstart: $(STAMP)
	$(PY) tools/quickstart.py

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(PY) tools/benchmark.py

lint: $(STAMP)
	$(VENV)/bin/ruff check clipadapt plugins tools tests examples

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

clean-venv:
	rm -rf $(VENV)
