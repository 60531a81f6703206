# Every target bootstraps .venv itself: a fresh clone needs only python3 (>= 3.10) and make.
# Each target installs only what it needs, and each part has its own stamp, so the stamps stay true
# whichever target runs first:
#   core   clipadapt and its runtime dependencies   quickstart, bench (and under every other one)
#   dev    pytest, pytest-xdist, ruff, mypy          test, lint
#   docs   mkdocs and its plugins                    docs, test (tests/docs builds the site)
#   mmdet  MMDetection 3.3.0 + mmcv 2.1.0            test, mmdet (detection configs need it)
# pip's output goes to .venv/install.log; a failed step prints the end of that log and its path.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CORE := $(VENV)/.stamp-core
DEV := $(VENV)/.stamp-dev
DOCS := $(VENV)/.stamp-docs
MMDET := $(VENV)/.stamp-mmdet

.PHONY: quickstart test bench lint docs mmdet clean-venv
# One pip at a time into the same .venv, even under `make -j`.
.NOTPARALLEL:

$(CORE): setup.cfg pyproject.toml tools/bootstrap.py
	@test -x $(PY) || { echo "==> creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@$(PY) tools/bootstrap.py core
	@touch $@

$(DEV): $(CORE)
	@$(PY) tools/bootstrap.py dev
	@touch $@

$(DOCS): $(CORE)
	@$(PY) tools/bootstrap.py docs
	@touch $@

# The first run builds mmcv 2.1.0's wheel (no wheel exists for torch 2.14; 15 to 50 minutes on two cores,
# elapsed time shown), caches it under ~/.cache/clipadapt/wheels and reuses it from then on.
$(MMDET): $(CORE) tools/install_mmdet.py
	@$(PY) tools/install_mmdet.py
	@touch $@

quickstart: $(CORE)
	$(PY) tools/quickstart.py

test: $(DEV) $(DOCS) $(MMDET)
	$(PY) -m pytest -n 2 --dist loadgroup -q --durations=15

bench: $(CORE)
	$(PY) tools/benchmark.py

# The style and type checks of CI (.ci/run): lint and format of the whole tree, types of clipadapt/ (pyproject.toml).
lint: $(DEV)
	$(VENV)/bin/ruff check clipadapt plugins benchmarks tools tests examples
	$(VENV)/bin/ruff format --check clipadapt plugins benchmarks tools tests examples
	$(VENV)/bin/mypy

docs: $(DOCS)
	$(VENV)/bin/mkdocs build --strict

mmdet: $(MMDET)

clean-venv:
	rm -rf $(VENV)
