# Every target bootstraps .venv itself: a fresh clone needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: quickstart test bench lint docs clean-venv

# tools/install_mmdet.py adds the [mmdet] extra: it builds mmcv 2.1.0's wheel on the first run (about
# 15 minutes on two cores), caches it under ~/.cache/clipadapt/wheels and reuses it from then on.
$(STAMP): setup.cfg pyproject.toml tools/install_mmdet.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -e ".[dev,docs]"
	$(PY) tools/install_mmdet.py
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
